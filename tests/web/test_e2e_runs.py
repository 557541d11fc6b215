"""The Runs and Slices tabs in a real browser (the fixtures of :mod:`tests.web.test_e2e`):
the summary's mean with the confidence interval the command line shows, in its rank order;
log axes whose ticks say their numbers; slices by an id that stays, written in UTC."""

import re
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest

from . import test_e2e

# the fixtures of test_e2e (bound by assignment: a test's `page` argument then shadows no import)
browser, page, server = test_e2e.browser, test_e2e.page, test_e2e.server


def _open(page, query=""):
    page.goto(f"{page.base}/{query}")
    page.wait_for_selector("body[data-ready='1']")


def _ticks(page, selector):
    """The labels of an axis's ticks (``.xtick``, ``.y2tick``...) in ``selector``'s chart, as
    numbers (Plotly writes a minus as U+2212), after it is drawn."""
    deadline = time.time() + 30
    while not page.locator(selector).count():
        assert time.time() < deadline, f"no ticks {selector}"
        time.sleep(0.05)
    texts = page.locator(selector).all_text_contents()
    try:
        return [float(t.replace("\u2212", "-")) for t in texts]
    except ValueError:
        raise AssertionError(f"a tick of {selector} is not a number: {texts}") from None


def _said_whole(values, selector):
    """Each tick says its own number: the labels rise along the axis (a bare "2" after
    "0.1", or "1 9 8 7" down a decade, is a digit of a tick between powers of ten)."""
    assert len(values) >= 2, (selector, values)
    assert all(a < b for a, b in zip(values, values[1:])), (selector, values)


def _cli_rows(text):
    lines = text.split("\n  * ")[0].splitlines()[2:]
    return {cells[1]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)}


def test_the_runs_summary_says_the_mean_and_its_confidence_interval_as_the_cli(page, sweep_db):
    """The column under the note "with its 95% confidence interval over seeds" shows that
    interval, as ``optimlab runs`` does (it showed the standard deviation), in the command
    line's order (rank 1 first)."""
    from optimlab.bench.report import summary_table
    from optimlab.bench.store import RunStore

    path, sweep_id = sweep_db
    with RunStore(path) as store:
        cli = _cli_rows(summary_table(store, sweep_id))
    _open(page, f"?tab=runs&sweep={sweep_id}")
    page.wait_for_selector(f"body[data-sweep='{sweep_id}']")
    head = page.locator("#sweep-summary thead th").all_text_contents()
    assert head[3] == "accuracy (mean ± 95% CI)", head
    rows = [row.locator("td").all_text_contents() for row in page.locator("#sweep-summary tbody tr").all()]
    assert [r[1] for r in rows] == list(cli)
    for r in rows:
        assert r[0] == cli[r[1]][0] and r[3] == cli[r[1]][3], (r, cli[r[1]])
    assert "95% confidence interval" in page.text_content("#sweep-notes")


def test_the_runs_log_axes_label_each_tick_with_its_number(page, sweep_db):
    """The learning-rate axis of the sensitivity chart and the train-loss axis of the curves
    say whole numbers ("0.05", "0.2"), not Plotly's bare digits between powers of ten."""
    _open(page, f"?tab=runs&sweep={sweep_db[1]}")
    page.wait_for_selector(f"body[data-sweep='{sweep_db[1]}']")
    lrs = _ticks(page, "#sweep-sensitivity .xtick text")
    _said_whole(lrs, "lr")
    assert 0.05 in lrs and 50 in lrs, lrs  # the sweep's rates fall on ticks
    _said_whole(_ticks(page, "#sweep-curves .y2tick text"), "train loss")


@pytest.fixture(scope="module")
def wide_server(slice_dir, tmp_path_factory):
    """The playground over a slice whose losses along straight lines span three decades
    (one line's scaled by 1/1000), where Plotly writes bare digits between powers of ten."""
    from .conftest import slice_copy

    def change(data):
        curve = next(iter(data["interpolation"].values()))
        curve["train_loss"] = [v / 1000 for v in curve["train_loss"]]

    root = tmp_path_factory.mktemp("wide")
    slice_copy(slice_dir[0], root / "wide", change)
    yield from test_e2e._serve(None, [root], warm=False)


@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "three-decades"])
def test_the_slices_interpolation_log_axis_labels_each_tick_with_its_number(page, request,
                                                                           wide):
    """The train-loss axis along straight lines says whole numbers ("0.7", "0.002"), not
    Plotly's bare digits between powers of ten, over less than a decade and over three."""
    if wide:
        page.base = request.getfixturevalue("wide_server")
    _open(page, "?tab=slices")
    page.wait_for_selector("#slice-list tbody tr")
    good = page.locator("#slice-list tbody tr:not(.broken)")
    slice_id = good.get_attribute("data-slice")
    good.click()
    page.wait_for_selector(f"body[data-slice='{slice_id}']")
    _said_whole(_ticks(page, "#slice-interp .ytick text"), "interpolation loss")


def test_the_slices_tab_says_utc_and_links_the_id_the_api_lists(page, slice_dir):
    """A slice's written time is UTC, as the Runs tab's times (it was a bare local time); its
    link carries the id the API lists (a hash of its path, not its place in the list), which
    reopens it."""
    _open(page, "?tab=slices")
    page.wait_for_selector("#slice-list tbody tr")
    good = page.locator("#slice-list tbody tr:not(.broken)")
    cells = good.locator("td").all_text_contents()
    mtime = (slice_dir[0] / "runs" / "digits" / "slice.json").stat().st_mtime
    written = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    assert cells[1] == "digits" and cells[-1] == written, cells
    broken = page.locator("#slice-list tbody tr.broken td").all_text_contents()
    assert broken[-1].endswith(" UTC"), broken
    slice_id = good.get_attribute("data-slice")
    good.click()
    page.wait_for_selector(f"body[data-slice='{slice_id}']")
    assert parse_qs(urlparse(page.url).query)["slice"] == [slice_id]
    _open(page, f"?tab=slices&slice={slice_id}")
    page.wait_for_selector(f"body[data-slice='{slice_id}']")
    assert "(digits)" in page.text_content("#slice-title")


@pytest.fixture(scope="module")
def char_server(tmp_path_factory):
    """The playground over a store with one char-rnn sweep (bits per char, lower is better),
    its runs ended by hand: no training."""
    from optimlab.bench.store import RunStore

    path = tmp_path_factory.mktemp("char") / "runs.db"
    with RunStore(path) as store:
        sweep = store.open_sweep({"task": "char-rnn", "optimizers": ["adam"], "lrs": [0.01],
                                  "metric": {"name": "bits_per_char", "higher_is_better": False}})
        for run in store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.01},
                                           "seed": s} for s in range(2)]):
            store.start_run(run)
            store.finish_run(run, "finished", summary={"final_metric": 3.2 + run / 10,
                                                       "score": 3.2 + run / 10},
                             points=[(k, {"test_metric": 3.5 - k / 10, "train_loss": 2.0},
                                      0.1) for k in (1, 2, 3)])
    yield from test_e2e._serve(path, [], warm=False)


def test_the_runs_summary_names_the_metric_as_the_cli_table_does(page, request):
    """The summary's header read "bits_per_char (mean ± 95% CI)" where the command line's
    table and the report say "bits per char"; the curves' axis says it alike."""
    page.base = request.getfixturevalue("char_server")
    _open(page, "?tab=runs&sweep=1")
    page.wait_for_selector("body[data-sweep='1']")
    head = page.locator("#sweep-summary thead th").all_text_contents()
    assert head[3] == "bits per char (mean ± 95% CI)", head
    assert "bits_per_char" not in page.text_content("#runs-view")
