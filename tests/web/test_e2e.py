"""The playground in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright's Python package, against a uvicorn server on a free port in a thread.

Skipped, with the reason, when Chromium or Playwright is missing, unless the environment
sets ``OPTIMLAB_REQUIRE_BROWSER=1`` (as ``.ci/run`` does): then it fails. Screenshots are
saved under ``test-artifacts/web/``.
"""

import contextlib
import os
import re
import shutil
import socket
import threading
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest

from optimlab.web.lrs import rates_for

from .conftest import ARTIFACTS

CHROMIUM = os.environ.get("OPTIMLAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000


def _missing() -> str | None:
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module."""
    reason = _missing()
    if reason:
        if os.environ.get("OPTIMLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"OPTIMLAB_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


def _serve(db, slices, warm=True):
    """The playground over ``db`` and ``slices`` on a free loopback port, in a background
    thread: yields its address, stops it after."""
    import uvicorn

    from optimlab.web.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(db, slices=slices, warm=warm), host="127.0.0.1",
                            port=port,
                            log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not uv.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(sweep_db, slice_dir):
    """The playground on a free loopback port, in a background thread."""
    yield from _serve(sweep_db[0], [slice_dir[0]])


@pytest.fixture(scope="module")
def odd_server(sweep_db, slice_dir, tmp_path_factory):
    """The playground over a store whose sweep fixed sgd's momentum, left adam's runs to run
    and saw some seeds diverge, and over a slice whose task is markup and whose optimizer
    spanning the plane diverged."""
    from .conftest import fix_hparams, slice_copy, store_copy

    root = tmp_path_factory.mktemp("odd")
    db = store_copy(sweep_db[0], root / "runs.db", fix_hparams({"sgd": {"momentum": 0.9}}),
                    "UPDATE runs SET status = 'pending', summary = NULL "
                    "WHERE optimizer = 'adam' AND lr = 50",
                    "UPDATE runs SET status = 'diverged' WHERE id = (SELECT MIN(id) FROM runs "
                    "WHERE optimizer = 'adam' AND lr = 0.05)",
                    "UPDATE runs SET status = 'diverged' WHERE optimizer = 'sgd' AND lr = 50")
    through = slice_dir[1].through[0]

    other = next(p.optimizer for p in slice_dir[1].paths if p.optimizer not in ("sgd", through))

    def change(data):
        data["task"] = "<b>digits</b>"
        for p in data["paths"]:
            p["diverged"] = p["diverged"] or p["optimizer"] == through
            if p["optimizer"] == other:  # a name Plotly would fill as a hover template
                p["optimizer"] = f"{other} %{{x}}"
        data["through"] = [f"{other} %{{x}}" if name == other else name for name in data["through"]]

    slice_copy(slice_dir[0], root / "slices" / "odd", change)
    yield from _serve(db, [root / "slices"], warm=False)


@pytest.fixture
def page(browser, server):
    """A fresh page; the test fails if the page logs an error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda err: errors.append(f"page error: {err}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and "status of 422" not in msg.text else None)
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.base = server
    yield page
    context.close()
    assert not errors, errors


def _until(page, expression, timeout=TIMEOUT_MS / 1000):
    """Wait until a JavaScript expression is true. (Playwright's wait_for_function compiles
    its argument in the page, which the page's Content-Security-Policy forbids: no eval.)"""
    deadline = time.time() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        assert time.time() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def _num(value: float) -> str:
    """A number as JavaScript's String() writes it (1, not 1.0)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _options(page) -> dict[str, str]:
    """The URL's optimizers: name -> its "k=v;k=v" (its lr always among them)."""
    return dict((o.split(":") + [""])[:2] for o in parse_qs(urlparse(page.url).query)["o"])


def _open(page, query=""):
    page.goto(f"{page.base}/{query}")
    page.wait_for_selector("body[data-ready='1']")


def _race(page, watch=True):
    """Race; ``watch`` waits for the animation to end, else it is stopped at the last step."""
    page.click("#race")
    page.wait_for_selector("body[data-raced='1']")
    if watch:
        _until(page, "document.body.dataset.playing === '0'")
    else:
        _scrub(page, -1)


def _scrub(page, step):
    """Move the scrubber (which pauses the animation) to a point; -1 for the last."""
    if step < 0:
        step = int(page.get_attribute("#scrub", "max"))
    page.fill("#scrub", str(step))
    page.dispatch_event("#scrub", "input")
    _until(page, f"document.body.dataset.frame === '{step}'")


def _paths(page):
    return page.evaluate("""() => document.getElementById('map').data
        .filter((t) => t.meta === 'path').map((t) => ({name: t.name, points: t.x.length}))""")


def _shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _choose(page, names):
    for box in page.locator("#optimizers .opt-head input[type=checkbox]").all():
        want = box.get_attribute("value") in names
        if box.is_checked() != want:
            box.click()


def test_race_on_rosenbrock_from_a_clicked_start(page):
    _open(page)
    page.select_option("#landscape", "himmelblau")
    _until(page, "document.getElementById('map').layout.xaxis.range[1] === 5")
    page.select_option("#landscape", "rosenbrock")
    _until(page, "document.getElementById('map').layout.xaxis.range[1] === 2")
    chosen = ["gd", "momentum", "adam", "rmsprop"]
    _choose(page, chosen)
    page.fill(".opt[data-name='adam'] .hp input[aria-label='adam lr value']", "0.05")
    page.press(".opt[data-name='adam'] .hp input[aria-label='adam lr value']", "Enter")
    # click at 15% across and 25% down the plot area: (-1.4, 2.0) on rosenbrock's domain
    area = page.locator("#map .nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + 0.15 * area["width"], area["y"] + 0.25 * area["height"])
    _until(page, "!document.getElementById('start-label').textContent.includes('default')")
    x, y = (float(v) for v in parse_qs(urlparse(page.url).query)["s"][0].split(","))
    assert abs(x + 1.4) < 0.05 and abs(y - 2.0) < 0.05, (x, y)
    _race(page)
    paths = _paths(page)
    assert len(paths) == len(chosen)
    assert all(p["points"] == 501 for p in paths), paths
    assert any("adam (lr=0.05)" in p["name"] for p in paths)
    rows = page.locator("#results tbody tr")
    assert rows.count() == len(chosen)
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_text_contents()
        assert cells[0].strip() in chosen and cells[2] not in ("", "–") and cells[5] in ("yes", "no")
    # the chart beside: one loss curve per optimizer, on a log axis
    assert page.evaluate("document.getElementById('loss').data.length") == len(chosen)
    assert page.evaluate("document.getElementById('loss').layout.yaxis.type") == "log"
    # the race's start is the clicked one, and the table says the values used
    assert page.text_content("#start-label").startswith(f"({x:.4g}, {y:.4g})")
    assert "lr=0.05" in page.text_content("#results tbody")
    # one panel per optimizer, its update rule rendered by KaTeX
    assert page.locator("#info .card").count() == len(chosen)
    assert page.locator("#info .card .katex").count() == len(chosen)
    assert page.locator(".katex-error").count() == 0
    # scrubbing moves every path back
    _scrub(page, 100)
    assert {p["points"] for p in _paths(page)} == {101}
    assert page.text_content("#step-label") == "step 100 / 500"
    _scrub(page, 500)
    page.locator("#stage").scroll_into_view_if_needed()
    _shot(page, "race_rosenbrock.png")
    # a new start voids the race run from the old one (the map's "start-moved" event):
    # no paths, no rows, and the start label shows the new point
    area = page.locator("#map .nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + 0.6 * area["width"], area["y"] + 0.6 * area["height"])
    _until(page, "document.body.dataset.raced === '0'")
    assert _paths(page) == [] and page.locator("#results tbody tr").count() == 0
    assert not page.text_content("#start-label").startswith(f"({x:.4g}, {y:.4g})")


def test_steps_are_a_whole_number_in_the_box_and_in_a_link(page):
    _open(page, "?l=rosenbrock&n=-5&o=adam")
    default = page.input_value("#steps")
    assert int(default) >= 1  # a link's n=-5 is not taken
    for typed in ("", "2.5", "-3"):
        page.fill("#steps", typed)
        page.dispatch_event("#steps", "change")
        assert page.input_value("#steps") == default, typed
    assert "n=NaN" not in page.url
    page.fill("#steps", "99999999")  # past the limit: refused with a note, the last value kept
    page.dispatch_event("#steps", "change")
    assert page.input_value("#steps") == default
    assert parse_qs(urlparse(page.url).query).get("n", [default]) == [default]


def test_tuning_3d_and_the_url_state(page):
    _open(page, "?l=rosenbrock&s=-1.5,2.5&n=200&o=gd&o=adam:lr=0.01")
    assert page.text_content("#start-label").startswith("(-1.5, 2.5)")
    assert page.input_value(".opt[data-name='adam'] input[aria-label='adam lr value']") == "0.01"
    page.check("#tune")
    _race(page, watch=False)
    used = page.text_content(".opt[data-name='adam'] .used")
    assert "(tuned)" in used and "lr=0.01 " not in used
    assert "(tuned)" in page.text_content("#results tbody")
    assert page.text_content("#tuning-note").startswith(
        "lr tuned by: worst loss over the last 25% of steps; a run above its start past halfway is out")
    page.check("#surface")
    _until(page, "document.getElementById('map').data[0].type === 'surface'")
    assert len(_paths(page)) == 2
    _shot(page, "race_3d.png")
    assert parse_qs(urlparse(page.url).query)["v"] == ["3d"]
    page.uncheck("#surface")  # (reloading in 3-D is slow without a GPU)
    _until(page, "document.getElementById('map').data[0].type === 'contour'")
    # the link reproduces the configuration, and races it
    query = urlparse(page.url).query
    gd_lr = rates_for("rosenbrock")["gd"]  # the landscape's rate, written out: links keep it
    assert {k: v for k, v in parse_qs(query).items() if k in ("tune", "race", "s", "o")} == {
        "tune": ["1"], "race": ["1"], "s": ["-1.5,2.5"], "o": [f"gd:lr={_num(gd_lr)}", "adam:lr=0.01"]}
    _open(page, "?" + query)
    page.wait_for_selector("body[data-raced='1']")
    _scrub(page, -1)
    assert page.is_checked("#tune") and not page.is_checked("#surface")
    assert page.text_content("#start-label").startswith("(-1.5, 2.5)")
    assert page.locator("#results tbody tr").count() == 2
    assert "(tuned)" in page.text_content("#results tbody")


def test_a_refused_race_says_why_and_the_page_goes_on(page):
    _open(page)
    # the box holds steps to the limit (10000); tuning 17 rates of each optimizer at that
    # many steps passes the server's work budget, which refuses it
    page.fill("#steps", "10000")
    page.dispatch_event("#steps", "change")
    page.check("#tune")
    page.click("#race")
    _until(page, "document.getElementById('message').textContent.length > 0")
    assert "steps" in page.text_content("#message") and "10000" in page.text_content("#message")
    page.uncheck("#tune")
    page.fill("#steps", "50")
    page.dispatch_event("#steps", "change")
    _race(page, watch=False)
    assert page.text_content("#message") == ""
    assert page.locator("#results tbody tr").count() == 3


def test_a_refused_landscape_parameter_leaves_nothing_of_the_last_landscape(page):
    """A landscape parameter the server refuses (quadratic's kappa 0) empties the map (no
    contours, paths or legend of the last race), the description and the status say the
    parameters were refused (not the catalog's "kappa = 10" nor "raced ..."); a valid value
    brings the landscape back."""
    _open(page, "?l=quadratic&p=kappa=1000&n=50&o=gd&o=adam")
    assert "kappa = 1000" in page.text_content("#landscape-desc")
    _race(page, watch=False)
    assert len(_paths(page)) == 2 and page.text_content("#status").startswith("raced 2")
    page.fill("#landscape-params input[aria-label='kappa']", "0")
    page.dispatch_event("#landscape-params input[aria-label='kappa']", "change")
    _until(page, "document.getElementById('message').textContent.includes('kappa')")
    _until(page, "document.body.dataset.contour === '0'")
    assert page.evaluate("document.getElementById('map').data.length") == 0
    assert page.locator("#results tbody tr").count() == 0
    desc, status = page.text_content("#landscape-desc"), page.text_content("#status")
    assert "kappa = 0" in desc and "refused" in desc and "kappa = 10" not in desc, desc
    assert "refused" in status and "raced" not in status, status
    assert page.evaluate("document.getElementById('loss').data.length") == 0
    assert page.evaluate("document.getElementById('loss')._fullLayout.yaxis.showticklabels") is False
    _shot(page, "landscape_refused.png")
    page.fill("#landscape-params input[aria-label='kappa']", "5")
    page.dispatch_event("#landscape-params input[aria-label='kappa']", "change")
    _until(page, "document.body.dataset.contour === '1'")
    assert "kappa = 5" in page.text_content("#landscape-desc")
    assert page.text_content("#message") == "" and page.text_content("#status").startswith("ready")
    assert page.evaluate("document.getElementById('map').data[0].type") == "contour"


def test_the_loss_chart_shows_tiny_losses_as_they_are(page):
    """Gradient descent at lr 0.9 on the round bowl shrinks the loss 100-fold a step, to
    1e-300 in 150 steps: the chart draws it there, not flat at a floor of 1e-16 that reads
    as a stall. A loss of exactly the minimum (momentum 0 at lr 1: one step to the centre)
    is drawn at the smallest positive float64 and its hover says 0."""
    _open(page, "?l=quadratic&p=kappa=1&n=150&o=gd:lr=0.9&o=momentum:lr=1;momentum=0")
    _race(page, watch=False)
    curves = page.evaluate("""() => document.getElementById('loss').data
        .map((t) => ({name: t.name, low: Math.min(...t.y), zero: t.customdata.includes(0)}))""")
    low = {c["name"]: c["low"] for c in curves}
    assert 0 < low["gd"] < 1e-250, low
    assert low["momentum"] == 5e-324 and next(c["zero"] for c in curves if c["name"] == "momentum")
    bottom = page.evaluate("document.getElementById('loss')._fullLayout.yaxis.range[0]")
    assert bottom < -300, bottom  # the axis reaches down to them (log10 units)
    notes = page.evaluate("document.getElementById('loss').layout.annotations.map((a) => a.text)")
    assert "f − f_min = 0 (drawn at 5e-324)" in notes
    _shot(page, "loss_tiny.png")


def test_a_mean_over_seeds_says_why_it_has_no_interval(page):
    """The runs tab's summary cell: "mean ± half-width of its 95% interval", and where the
    API sends none (one seed, or seeds all alike) the reason in words, as the command line's
    "(1 seed: no interval)", not "± ?"."""
    _open(page)
    texts = page.evaluate("""async () => {
        const { ciText } = await import('/static/js/format.js');
        return [ciText(0.91234, 0.0123, 2), ciText(0.91234, null, 1),
                ciText(0.5, null, 3), ciText(null, null, 0)];
    }""")
    assert texts == ["0.9123 ± 0.012", "0.9123 (1 seed: no interval)",
                     "0.5 (3 seeds, all alike: no interval)", "–"]


def test_the_tuning_note_says_when_every_rate_is_out(page):
    """The race tab's note under a tuned race, as the command line's table says it: a label
    whose every rate is out won nothing (not "on the grid's low edge"), and the criterion's
    line says the smallest is then shown."""
    _open(page)
    notes = page.evaluate("""async () => {
        const { tuningNote } = await import('/static/js/race.js');
        const race = (out) => ({tune: true, extend: true, tuned_by: "worst loss",
            results: [{label: "gd", every_rate_out: out, tuning_edge: "low", tuning_extended: []}]});
        return [tuningNote(race(true)), tuningNote(race(false))];
    }""")
    assert notes[0] == ("lr tuned by: worst loss (a diverged run never wins, unless every rate "
                        "is out: then the smallest is shown). gd: every rate tried is out by "
                        "that criterion; the lr shown, the smallest, won nothing.")
    assert notes[1] == ("lr tuned by: worst loss (a diverged run never wins). gd: the tuned lr "
                        "is on the grid's low edge; a better rate may lie beyond it.")


def test_the_runs_tab_shows_the_store(page, sweep_db):
    _open(page)
    page.click("#tab-runs")
    page.wait_for_selector("#sweeps tbody tr")
    assert page.locator("#sweeps tbody tr").count() == 1
    assert "digits" in page.text_content("#sweeps tbody")
    page.click("#sweeps tbody tr")
    page.wait_for_selector(f"body[data-sweep='{sweep_db[1]}']")
    assert page.locator("#sweep-summary tbody tr").count() == 2
    assert page.evaluate("document.getElementById('sweep-curves').data.length") == 4
    # the note under the table says how its best lr is chosen, unlike the chart beside
    note = page.text_content("#sweep-note")
    assert "worst test metric over the last 25% of evaluations" in note and "final accuracy" in note
    assert "tab=runs" in page.url
    _shot(page, "runs.png")


def test_auto_numbers_and_cautious_switch_go_into_the_url_and_the_race(page):
    """A number the optimizer may choose itself (Prodigy's growth_rate) has an "auto" switch:
    typing a value turns it off, turning it back on gives null; both reach the URL and the
    race. Adam's cautious masking is a checkbox like amsgrad."""
    _open(page, "?n=50&o=prodigy&o=adam")
    auto = ".opt[data-name='prodigy'] input[aria-label='prodigy growth_rate auto']"
    value = ".opt[data-name='prodigy'] input[aria-label='prodigy growth_rate value']"
    assert page.is_checked(auto)
    page.fill(value, "1.05")
    page.dispatch_event(value, "change")
    assert not page.is_checked(auto)
    page.check(".opt[data-name='adam'] input[aria-label='adam cautious']")
    options = _options(page)
    assert "growth_rate=1.05" in options["prodigy"].split(";")
    assert "cautious=true" in options["adam"].split(";")
    _race(page, watch=False)
    used = page.text_content(".opt[data-name='prodigy'] .used")
    assert "growth_rate=1.05" in used, used
    page.check(auto)
    assert _options(page)["prodigy"] == f"lr={_num(rates_for('rosenbrock')['prodigy'])}"
    _race(page, watch=False)
    # null is the optimizer's own choice: "auto", as the switch says (not "–", "no value")
    assert "growth_rate=auto" in page.text_content(".opt[data-name='prodigy'] .used")
    assert "growth_rate=auto" in page.text_content("#results tbody")
    # a link with null (auto) restores the switch
    _open(page, "?n=50&o=prodigy:beta3=null;growth_rate=2")
    assert page.is_checked(".opt[data-name='prodigy'] input[aria-label='prodigy beta3 auto']")
    assert not page.is_checked(auto)
    assert page.input_value(value) == "2"


def _extras(page):
    return page.evaluate("""() => document.getElementById('map').data
        .filter((t) => t.meta === 'extra').map((t) => ({points: t.x.length, dash: t.line.dash}))""")


def test_step_by_step_shows_the_gradient_the_state_and_the_step(page):
    _open(page, "?l=rosenbrock&n=200&o=gd&o=adam:lr=0.05")
    page.select_option("#inspect", "adam")
    assert parse_qs(urlparse(page.url).query)["insp"] == ["adam"]
    _race(page, watch=False)
    page.wait_for_selector("#inspect-panel:not([hidden])")
    assert "adam" in page.text_content("#inspect-title")
    _scrub(page, 40)
    _until(page, "document.getElementById('inspect-panel').dataset.step === '40'")
    rows = {r.locator("td").first.text_content(): r.locator("td").all_text_contents()[1:]
            for r in page.locator("#inspect-table tbody tr").all()}
    for name in ("point", "loss", "gradient", "−lr × gradient", "step taken",
                 "exp_avg (direction)", "exp_avg_sq (scale)", "√exp_avg_sq"):
        assert name in rows, rows.keys()
    # Adam's first step moves every coordinate by about lr; at step 40 the numbers are live
    grad = [float(v) for v in rows["gradient"]]
    step = [float(v) for v in rows["step taken"]]
    assert all(abs(s) <= 0.05 * 1.01 for s in step) and any(g != 0 for g in grad)
    # the arrows at the point: the step, -lr x gradient, -lr x the first moment
    colors = page.evaluate("document.getElementById('map').layout.annotations"
                           ".map((a) => a.arrowcolor)")
    assert sorted(colors) == sorted(["#000", "#d62728", "#1f77b4"]), colors
    _shot(page, "step_by_step.png")


def test_several_starts_and_a_fan_of_rates_race_as_one_batch(page):
    _open(page, "?l=himmelblau&n=150&o=adam:lr=0.05")
    # shift-click two more starts
    area = page.locator("#map .nsewdrag").first.bounding_box()
    for fx, fy in ((0.2, 0.2), (0.8, 0.75)):
        page.keyboard.down("Shift")
        page.mouse.click(area["x"] + fx * area["width"], area["y"] + fy * area["height"])
        page.keyboard.up("Shift")
    _until(page, "document.getElementById('starts-label').textContent.split('(').length === 3")
    page.check("#fan")
    _race(page, watch=False)
    extras = _extras(page)
    # 3 starts x 5 rates (x1 and the fan's 4), the race's own path left out
    assert len(extras) == 3 * 5 - 1, extras
    assert sum(e["dash"] == "solid" for e in extras) == 2  # x1 from the two extra starts
    assert all(e["points"] == 151 for e in extras)
    query = parse_qs(urlparse(page.url).query)
    assert query["fan"] == ["1"] and len(query["st"][0].split(";")) == 2
    _shot(page, "starts_and_fan.png")
    page.click("#starts-clear")
    _until(page, "document.getElementById('starts-label').textContent === 'none'")
    assert "st" not in parse_qs(urlparse(page.url).query)


def test_a_link_restores_starts_fan_and_step_by_step_and_races_them(page):
    _open(page, "?l=rosenbrock&s=-1,1.5&n=120&st=0.5,-0.5;1.5,2&fan=1&insp=momentum"
                "&o=momentum:lr=0.001&o=adam:lr=0.02&race=1")
    page.wait_for_selector("body[data-raced='1']")
    page.wait_for_selector("#inspect-panel:not([hidden])")
    assert page.is_checked("#fan") and page.input_value("#inspect") == "momentum"
    assert page.text_content("#starts-label").count("(") == 2
    assert page.text_content("#start-label").startswith("(-1, 1.5)")
    assert len(_extras(page)) == 2 * (3 * 5 - 1)  # two optimizers
    assert "momentum_buffer (direction)" in page.text_content("#inspect-table")
    _scrub(page, -1)
    _shot(page, "restored_from_url.png")


def test_the_info_button_shows_the_card_without_choosing_the_optimizer(page):
    _open(page, "?l=rosenbrock&o=adam")
    before = page.url
    page.click(".opt[data-name='lion'] .info-btn")
    page.wait_for_selector("#about[open]")
    assert page.text_content("#about h3").startswith("lion")
    assert page.locator("#about .katex").count() == 1 and page.locator(".katex-error").count() == 0
    assert not page.is_checked(".opt[data-name='lion'] input[type=checkbox]")
    assert page.url == before and page.locator("#info .card").count() == 1
    _shot(page, "about_dialog.png")
    page.click("#about-close")
    _until(page, "!document.getElementById('about').open")
    # a chosen optimizer's button goes to its card in the page, no dialog
    page.click(".opt[data-name='adam'] .info-btn")
    _until(page, "document.getElementById('info-adam').classList.contains('flash')")
    assert not page.evaluate("document.getElementById('about').open")
    # the card links to the class's reference page, which the server keeps at /docs/ and
    # which renders its math under the page's Content-Security-Policy (no inline script)
    link = page.get_attribute("#info-adam a.reference", "href")
    assert link == "/docs/adam.html"
    page.goto(page.base + link)
    page.wait_for_selector(".math .katex-display")
    assert page.locator(".math-error").count() == 0
    assert page.locator("[data-latex] .katex").count() == page.locator("[data-latex]").count()


def test_before_the_first_race_the_axes_and_every_label_read_whole(page):
    _open(page, "?l=rosenbrock&n=300&o=psgdkron&o=adamw")
    layout = page.evaluate("document.getElementById('loss').layout")
    assert layout["xaxis"]["range"] == [0, 300]
    low, high = layout["yaxis"]["range"]  # decades of f - f_min over the map
    assert layout["yaxis"]["type"] == "log" and low < 0 < 3 < high
    page.fill("#steps", "80")
    page.dispatch_event("#steps", "change")
    _until(page, "document.getElementById('loss').layout.xaxis.range[1] === 80")
    # no hyperparameter name is cut, and none breaks inside a word
    labels = page.evaluate("""() => [...document.querySelectorAll('.opt.on .hp > span')]
        .filter((s) => s.textContent).map((s) => ({text: s.textContent,
        cut: s.scrollWidth > s.clientWidth, lines: Math.round(s.getBoundingClientRect().height
          / parseFloat(getComputedStyle(s).lineHeight))}))""")
    names = {label["text"].replace("\u200b", "") for label in labels}
    assert {"pre_conditioner_update_probability", "weight_decay"} <= names, names
    assert not [label for label in labels if label["cut"]], labels
    for label in labels:  # a name spans as many lines as it has underscore-joined parts
        assert label["lines"] <= label["text"].count("_") + 1, label
    desc = page.evaluate("(() => { const d = document.getElementById('landscape-desc'); "
                         "return [d.scrollHeight, d.clientHeight]; })()")
    assert desc[0] <= desc[1] + 1, desc  # the description is shown whole
    _shot(page, "before_the_first_race.png")


def test_learning_rates_start_at_the_landscapes_rate_and_follow_it(page):
    _open(page)  # a first visit: gd, momentum and adam on rosenbrock
    lr = ".opt[data-name='adam'] input[aria-label='adam lr value']"
    rosenbrock, two_wells = rates_for("rosenbrock"), rates_for("two_wells")
    assert float(page.input_value(lr)) == rosenbrock["adam"] != 0.001
    page.select_option("#landscape", "two_wells")
    _until(page, f"document.querySelector(\"{lr}\").value === '{_num(two_wells['adam'])}'")
    assert float(page.input_value(".opt[data-name='gd'] input[aria-label='gd lr value']")) == \
        two_wells["gd"]
    # a rate the user typed stays when the landscape changes
    page.fill(lr, "0.0123")
    page.press(lr, "Enter")
    page.select_option("#landscape", "himmelblau")
    _until(page, "document.getElementById('map').layout.xaxis.range[1] === 5")
    assert page.input_value(lr) == "0.0123"
    assert float(page.input_value(".opt[data-name='gd'] input[aria-label='gd lr value']")) == \
        rates_for("himmelblau")["gd"]


def test_the_basins_view_maps_every_start_and_a_link_restores_it(page):
    _open(page, "?l=two_wells&n=150&o=gd:lr=0.1&o=momentum:lr=0.1&o=adam:lr=0.05")
    page.check("#basins")
    assert page.is_hidden("#race-plots") and page.is_visible("#basins-view")
    assert page.text_content("#race") == "Map basins"
    page.fill("#basins-grid", "8")
    page.dispatch_event("#basins-grid", "change")
    page.click("#race")
    page.wait_for_selector("body[data-basins='1']")
    assert page.locator(".basin-plot").count() == 3
    z = page.evaluate("document.querySelector('.basin-plot').data[0].z")
    assert len(z) == 8 and all(len(row) == 8 for row in z)
    rows = page.locator("#basins-table tbody tr")
    assert rows.count() == 3
    for i in range(3):
        shares = [int(c.rstrip("%")) for c in rows.nth(i).locator("td.num").all_text_contents()]
        assert abs(sum(shares) - 100) <= len(shares)  # whole percents, rounded
    query = parse_qs(urlparse(page.url).query)
    assert query["b"] == ["1"] and query["bg"] == ["8"] and query["race"] == ["1"]
    _shot(page, "basins.png")
    # the link maps the same basins on opening
    codes = page.evaluate("[...document.querySelectorAll('.basin-plot')].map((d) => d.data[0].z)")
    _open(page, "?" + urlparse(page.url).query)
    page.wait_for_selector("body[data-basins='1']")
    assert page.is_checked("#basins") and page.input_value("#basins-grid") == "8"
    assert page.evaluate("[...document.querySelectorAll('.basin-plot')].map((d) => d.data[0].z)") == codes
    # back to racing: the race view returns
    page.uncheck("#basins")
    assert page.is_visible("#race-plots") and page.text_content("#race") == "Race"


def test_the_slices_tab_shows_a_real_networks_slice_and_a_link_restores_it(page, slice_dir):
    _open(page)
    page.click("#tab-slices")
    page.wait_for_selector("#slice-list tbody tr")
    assert page.locator("#slice-list tbody tr").count() == 2  # the slice and the broken file
    broken = page.locator("#slice-list tbody tr.broken")
    assert broken.count() == 1 and "not a slice file" in broken.text_content()
    slice_id = page.get_attribute("#slice-list tbody tr:not(.broken)", "data-slice")
    page.click("#slice-list tbody tr:not(.broken)")
    page.wait_for_selector(f"body[data-slice='{slice_id}']")  # an id the API lists
    result = slice_dir[1]
    paths = page.evaluate("document.getElementById('slice-map').data.filter((t) => t.meta === 'path')"
                          ".map((t) => [t.name, t.x.length])")
    assert [(n.split(" ")[0], k) for n, k in paths] == [(p.optimizer, len(p.coords))
                                                       for p in result.paths]
    z = page.evaluate("document.getElementById('slice-map').data[0].z")
    assert len(z) == len(result.ys) and len(z[0]) == len(result.xs)
    assert page.evaluate("document.getElementById('slice-interp').data.length") == \
        len(result.interpolation)
    rows = page.locator("#slice-table tbody tr")
    assert rows.count() == len(result.paths)
    cells = rows.first.locator("td").all_text_contents()
    assert cells[0] == result.paths[0].optimizer and "%" in cells[5]
    assert float(cells[4]) == pytest.approx(result.paths[0].sharpness, rel=1e-3)  # 4 digits
    query = parse_qs(urlparse(page.url).query)
    assert query["tab"] == ["slices"] and query["slice"] == [slice_id]
    _shot(page, "slice.png")
    _open(page, "?" + urlparse(page.url).query)
    page.wait_for_selector(f"body[data-slice='{slice_id}']")
    assert page.is_visible("#slices-view") and not page.is_visible("#race-view")


def test_the_reference_pages_render_their_math_offline(browser, tmp_path):
    # `optimlab docs`: opened from disk, with every request that is not a local file
    # refused, each page renders its update rule (and the arguments' inline math) with the
    # vendored KaTeX, and none falls back to raw LaTeX
    from optimlab.optim.catalog import TABLE
    from optimlab.web.docs import page_name, write_docs

    index = write_docs(tmp_path / "docs")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    remote = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda err: errors.append(f"page error: {err}"))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        for info in TABLE:
            page.goto((index.parent / page_name(info)).as_uri())
            formulas = page.locator("[data-latex]").count()
            assert page.locator(".math .katex-display").count() == 1, info.name
            assert page.locator("[data-latex] .katex").count() == formulas, info.name
            assert page.locator(".math-error").count() == 0, info.name
            if info.name == "adam":
                _shot(page, "docs-adam.png")
        page.goto(index.as_uri())
        assert page.locator("tbody tr a").count() >= len(TABLE)
    finally:
        context.close()
    assert not errors and not remote, (errors, remote)


@contextlib.contextmanager
def _own_page(browser, base: str, **options):
    """A page of its own on the server at ``base`` (closed after the block); ``options`` go
    to its browser context (a time zone, ...)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.base = base
    try:
        yield page
    finally:
        context.close()


def test_the_runs_tab_says_fixed_hyperparameters_runs_left_and_diverged_seeds(browser,
                                                                              odd_server):
    """sgd's fixed momentum in the list, the table and the legend; the runs left to run; a
    rate where some seeds diverged drawn hollow with k/n, one where all did as its own
    marker (not dropped)."""
    with _own_page(browser, odd_server) as page:
        _open(page, "?tab=runs")
        page.wait_for_selector("#sweeps tbody tr")
        cells = page.locator("#sweeps tbody tr td").all_text_contents()
        assert cells[6] == "sgd (momentum=0.9), adam" and cells[5].endswith("2 to run)")
        assert "diverged" in cells[5]
        page.click("#sweeps tbody tr")
        page.wait_for_selector("body[data-sweep='1']")
        assert "sgd with momentum=0.9" in page.text_content("#sweep-title")
        names = page.locator("#sweep-summary tbody tr td:nth-child(2)").all_text_contents()
        assert names[0] == "sgd (momentum=0.9)" and len(names) == 2
        legend = page.evaluate("document.getElementById('sweep-curves').data.map((t) => t.name)")
        assert any(n.startswith("sgd (momentum=0.9)") for n in legend)
        sens = page.evaluate("document.getElementById('sweep-sensitivity').data"
                             ".map((t) => [t.meta, t.name, t.x, t.text || null])")
        assert ["partial", "adam", [0.05], ["1/2"]] in sens
        assert any(m == "diverged" and n.startswith("sgd") and x == [50] for m, n, x, _ in sens)


def test_the_slices_tab_says_rates_divergence_and_shows_markup_as_text(browser, odd_server,
                                                                       slice_dir):
    with _own_page(browser, odd_server) as page:
        import json
        from urllib.request import urlopen

        with urlopen(f"{odd_server}/api/slices") as answer:
            (listed,) = json.load(answer)
        _open(page, f"?tab=slices&slice={listed['id']}")
        page.wait_for_selector(f"body[data-slice='{listed['id']}']")
        through = slice_dir[1].through[0]
        other = next(p.optimizer for p in slice_dir[1].paths if p.optimizer not in ("sgd", through))
        rows = {r[0]: r for r in (row.locator("td").all_text_contents()
                                  for row in page.locator("#slice-table tbody tr").all())}
        assert f"{through} (diverged)" in rows
        assert rows["sgd"][1].startswith("lr=0.1 (slice preset)")
        assert "passes through the endpoint" in page.text_content("#slice-notes")
        # the task's markup is escaped for Plotly, so it shows as typed
        title = page.evaluate("document.getElementById('slice-map').layout.title.text")
        assert title.startswith("&lt;b&gt;digits&lt;/b&gt;")
        assert page.locator("#slice-map b").count() == 0
        # a "%{x}" in a name is not filled with the point's x in its hover text
        hovers = page.evaluate("document.getElementById('slice-map').data.map((t) => t.hovertemplate)")
        named = [h for h in hovers if h and "step %{text}" in h]
        assert len(named) == len(slice_dir[1].paths), hovers
        assert sum("&#37;{x}" in h for h in named) == 1 and not any(" %{x}" in h for h in named), named
        legend = page.locator("#slice-map .legendtext").all_text_contents()
        assert any(text.startswith(f"{other} %{{x}} (lr=") for text in legend), legend
        lines = page.evaluate("document.getElementById('slice-interp').data"
                              ".map((t) => [t.line.color, t.line.dash])")
        assert len({tuple(line) for line in lines}) == len(lines)


def _errors(page, expected=()):
    """The page's errors, collected into the list returned; a console line naming a status
    in ``expected`` (the browser logs a refused request) is not one."""
    errors = []
    page.on("pageerror", lambda err: errors.append(f"page error: {err}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and not any(f"status of {s}" in msg.text for s in expected)
            else None)
    return errors


def test_the_runs_tab_shows_the_reports_notes_ranks_edges_and_no_seeds_without_a_mean(
        browser, odd_server):
    """The notes under the command line's table (runs left to run, an optimizer with no rate
    where every seed finished, a best lr on the grid's edge) are listed under the summary;
    the table has the ranks, flags a best lr on the edge, and a row without a mean says
    seeds 0."""
    with _own_page(browser, odd_server) as page:
        errors = _errors(page)
        _open(page, "?tab=runs&sweep=1")
        page.wait_for_selector("body[data-sweep='1']")
        notes = page.locator("#sweep-notes li").all_text_contents()
        assert notes[0].startswith("Unfinished: 2 of 8 runs have not ended"), notes
        assert any(n.startswith("adam: no rate where every seed finished") for n in notes), notes
        assert any("the best lr 0.05 is the lowest rate tried" in n for n in notes), notes
        head = page.locator("#sweep-summary thead th").all_text_contents()
        assert head[:3] == ["rank", "optimizer", "best lr"] and head[4] == "seeds"
        rows = {r[1]: r for r in (row.locator("td").all_text_contents()
                                  for row in page.locator("#sweep-summary tbody tr").all())}
        sgd, adam = rows["sgd (momentum=0.9)"], rows["adam"]
        assert sgd[0] == "1" and sgd[2] == "0.05 (bottom of grid)"
        assert adam[0] == "–" and adam[2] == "–" and adam[3] == "–" and adam[4] == "0"
        _shot(page, "runs_notes.png")
    assert not errors, errors


@pytest.fixture(scope="module")
def damaged_server(sweep_db, slice_dir, tmp_path_factory):
    """The playground over a store of two sweeps, the second damaged (its detail answers
    503)."""
    from .conftest import SECOND_SWEEP, store_copy

    root = tmp_path_factory.mktemp("damaged")
    db = store_copy(sweep_db[0], root / "runs.db", SECOND_SWEEP,
                    "UPDATE sweeps SET config = 'not json' WHERE id = 2")
    yield from _serve(db, [slice_dir[0]], warm=False)


def test_a_sweep_that_cannot_be_shown_leaves_nothing_of_the_last_one(browser, damaged_server):
    """Clicking a damaged sweep after a whole one: the error is said and no sweep is shown
    (no title, charts or table of the last one, no row highlighted, no sweep in the URL); a
    list that fails to load leaves no rows of the last one either."""
    with _own_page(browser, damaged_server) as page:
        errors = _errors(page, expected=("503",))
        _open(page, "?tab=runs&sweep=1")
        page.wait_for_selector("body[data-sweep='1']")
        assert page.locator("#sweeps tbody tr.active").count() == 1
        page.click("#sweeps tbody tr[data-sweep='2']")
        _until(page, "document.getElementById('runs-message').textContent.includes('sweep 2')")
        assert page.locator("#sweep-detail").is_hidden()
        assert page.locator("#sweeps tbody tr.active").count() == 0
        assert "sweep" not in parse_qs(urlparse(page.url).query)
        assert page.get_attribute("body", "data-sweep") is None
        # the whole one again: shown, and the message no longer speaks of the other
        page.click("#sweeps tbody tr[data-sweep='1']")
        page.wait_for_selector("body[data-sweep='1']")
        assert page.locator("#sweep-detail").is_visible()
        assert "sweep 2" not in page.text_content("#runs-message")
        assert parse_qs(urlparse(page.url).query)["sweep"] == ["1"]
        # the list fails to load: its old rows go, and the sweep shown from it
        page.route("**/api/sweeps", lambda route: route.fulfill(
            status=503, content_type="application/json", body='{"message": "the store is away"}'))
        page.click("#tab-race")
        page.click("#tab-runs")
        page.wait_for_selector("body[data-sweeps='error']")
        assert page.text_content("#runs-message") == "the store is away"
        assert page.locator("#sweeps tbody tr").count() == 0
        assert page.locator("#sweep-detail").is_hidden()
        assert "sweep" not in parse_qs(urlparse(page.url).query)
    assert not errors, errors


def test_a_race_on_a_saddle_says_whether_and_when_each_run_escaped(page):
    """A landscape without a minimum heads the table's middle columns "escaped" and "steps
    to escape" and fills them from the answer (not "–" and "never"); one with a minimum
    heads them with the distance and the steps to it again."""
    _open(page, "?l=saddle&n=200&o=gd:lr=0.01&o=adam:lr=0.1")
    _race(page, watch=False)
    head = page.locator("#results thead th").all_text_contents()
    assert head[3:5] == ["escaped", "steps to escape"], head
    rows = {r[0].strip(): r for r in (row.locator("td").all_text_contents()
                                      for row in page.locator("#results tbody tr").all())}
    assert rows["gd"][3:5] == ["no", "never"], rows
    assert rows["adam"][3] == "yes" and rows["adam"][4].isdigit(), rows
    page.select_option("#landscape", "rosenbrock")
    _until(page, "document.getElementById('dist-head').textContent === 'distance to minimum'")
    assert page.text_content("#tol-head") == "steps to tolerance"
    _race(page, watch=False)
    assert page.text_content("#tol-head") == "steps to f − f_min ≤ 0.001"


def test_a_step_to_the_tolerance_the_run_did_not_keep_is_marked_left(page):
    """Lion at lr 0.01 on Rosenbrock reaches f - f_min <= 0.001 at step 286 and ends above
    it: its cell says "286 (left)", as the command line's table does; momentum, which
    stays within it, shows its step alone."""
    _open(page, "?l=rosenbrock&n=500&o=lion:lr=0.01&o=momentum:lr=0.00316")
    _race(page, watch=False)
    rows = {r[0].strip(): r for r in (row.locator("td").all_text_contents()
                                      for row in page.locator("#results tbody tr").all())}
    assert rows["lion"][4] == "286 (left)", rows
    assert rows["momentum"][4].isdigit(), rows


def _query(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def _type(page, selector, text):
    page.fill(selector, text)
    page.dispatch_event(selector, "change")


def test_whole_number_boxes_take_what_was_typed_or_say_it_is_invalid(page):
    """Lookahead's k, the noise seed and the basins' starts per side take a whole number
    within their bounds as typed ("1e1" is 10, not 1); "2.5", an empty box or a number out
    of bounds marks the box invalid and keeps the last value (no k=NaN, no 2 for 2.5)."""
    _open(page, "?l=rosenbrock&n=50&o=lookahead")
    k = ".opt[data-name='lookahead'] .hp input[type=number]"
    invalid = f"document.querySelector(\"{k}\").classList.contains('invalid')"
    for typed in ("2.5", "", "0", "101"):
        _type(page, k, typed)
        assert page.evaluate(invalid), typed
        assert _options(page)["lookahead"].count("k=") == 0, (typed, page.url)  # k=5, its default
        assert "NaN" not in page.url
    _type(page, k, "1e1")
    assert not page.evaluate(invalid)
    assert "k=10" in _options(page)["lookahead"].split(";")
    _type(page, k, "3.0")
    assert "k=3" in _options(page)["lookahead"].split(";")
    _race(page, watch=False)
    assert "k=3" in page.text_content("#results tbody")
    seed_invalid = _keeps_the_last_whole_number(page, "seed", "seed", "7", ("2.5", "", "-1", "1e12"))
    _type(page, "#seed", "1e1")
    assert _query(page)["seed"] == ["10"] and not page.evaluate(seed_invalid)
    page.check("#basins")
    _keeps_the_last_whole_number(page, "basins-grid", "bg", "20", ("2.5", "", "1", "31"))


def _keeps_the_last_whole_number(page, box: str, key: str, good: str, bad) -> str:
    """Type ``good`` into the box of id ``box`` (the URL's ``key`` takes it), then each of
    ``bad``: each marks the box invalid and leaves the URL's value at ``good``. Returns the
    script that reads whether the box is marked invalid."""
    invalid = f"document.getElementById('{box}').classList.contains('invalid')"
    _type(page, f"#{box}", good)
    assert _query(page)[key] == [good] and not page.evaluate(invalid)
    for typed in bad:
        _type(page, f"#{box}", typed)
        assert page.evaluate(invalid), typed
        assert _query(page)[key] == [good], typed
    return invalid


def test_a_change_to_what_a_race_runs_clears_it_and_its_link_no_longer_races(page):
    """After a race, a change of steps, seed, noise, tuning, an optimizer's value (its text
    box, slider, checkbox) or of the optimizers ticked clears the race: no paths or rows of
    it, and race=1 leaves the URL (a link races what the page shows)."""
    _open(page, "?l=rosenbrock&n=50&o=gd&o=adam")
    lr = ".opt[data-name='adam'] input[aria-label='adam lr value']"
    slider = ".opt[data-name='adam'] input[aria-label='adam lr']"
    changes = {
        "steps": lambda: _type(page, "#steps", "60"),
        "seed": lambda: _type(page, "#seed", "3"),
        "noise": lambda: (page.fill("#noise", "40"), page.dispatch_event("#noise", "input"),
                          page.dispatch_event("#noise", "change")),
        "tune": lambda: page.check("#tune"),
        "hyperparameter box": lambda: _type(page, lr, "0.02"),
        "hyperparameter slider": lambda: (page.fill(slider, "300"), page.dispatch_event(slider, "input"),
                                          page.dispatch_event(slider, "change")),
        "checkbox": lambda: page.check(".opt[data-name='adam'] input[aria-label='adam amsgrad']"),
        "optimizer ticked": lambda: _choose(page, ["gd", "adam", "momentum"]),
    }
    for what, change in changes.items():
        if what == "tune":
            page.uncheck("#tune")
        _race(page, watch=False)
        assert _query(page)["race"] == ["1"], what
        change()
        _until(page, "document.body.dataset.raced === '0'", timeout=10)
        assert "race" not in _query(page), (what, page.url)
        assert _paths(page) == [] and page.locator("#results tbody tr").count() == 0, what
    # a value typed that is refused changes nothing: the race stays
    _race(page, watch=False)
    _type(page, lr, "abc")
    assert _query(page)["race"] == ["1"] and page.locator("#results tbody tr").count() == 3


def test_a_change_while_racing_drops_the_answer_of_the_old_setup(page):
    """The seed changed while a race is on its way: its answer (of the old seed) is not
    shown nor linked as raced; racing again races the new setup."""
    _open(page, "?l=rosenbrock&n=50&o=gd&o=adam")
    held = []
    page.route("**/api/race", lambda route: held.append(route))
    page.click("#race")
    _until(page, "document.getElementById('status').textContent.startsWith('racing')")
    deadline = time.time() + 30
    while not held:
        assert time.time() < deadline, "the race was not asked for"
        page.evaluate("() => 1")  # (lets the route handler run)
    _type(page, "#seed", "3")
    held[0].continue_()
    page.unroute("**/api/race")
    _until(page, "!document.getElementById('race').disabled")
    assert "race" not in _query(page) and _query(page)["seed"] == ["3"]
    assert page.locator("#results tbody tr").count() == 0 and _paths(page) == []
    assert "changed" in page.text_content("#status")
    _race(page, watch=False)
    assert _query(page)["race"] == ["1"] and page.locator("#results tbody tr").count() == 2


def _start_marker(page):
    return page.evaluate("""() => { const t = document.getElementById('map').data
        .find((t) => t.name === 'start'); return [t.x[0], t.y[0]]; }""")


def test_the_start_shown_before_a_race_is_the_one_of_the_landscapes_parameters(page):
    """A rotated bowl's start turns with its angle: with angle 0 (not the catalog's 45) the
    label and the map's marker show where a race will start before any race, they follow
    a new angle typed, and the race starts there."""
    _open(page, "?l=rotated_quadratic&p=kappa=10;angle=0&n=20&o=gd")
    assert page.text_content("#start-label") == "(-2.5, 1.5) default"
    assert _start_marker(page) == pytest.approx([-2.5, 1.5])
    _type(page, "#landscape-params input[aria-label='angle']", "90")
    _until(page, "document.getElementById('start-label').textContent === '(-1.5, -2.5) default'")
    assert _start_marker(page) == pytest.approx([-1.5, -2.5])
    assert "s" not in _query(page)  # still the landscape's own start, not one the user set
    _race(page, watch=False)
    first = page.evaluate("""() => { const t = document.getElementById('map').data
        .find((t) => t.meta === 'path'); return [t.x[0], t.y[0]]; }""")
    assert first == pytest.approx([-1.5, -2.5]) and _start_marker(page) == pytest.approx(first)


def _note_of(page, box: str):
    """The note under the hyperparameter box ``box`` (a selector) saying why it refused."""
    return page.locator(box).locator("xpath=..").locator(".hp-note")


def test_hyperparameters_outside_their_bounds_are_refused_on_the_page(page):
    """Lookahead's alpha is > 0 (an open end): its slider's lowest end is the first value
    above 0, which races. A value typed outside the API's bounds (alpha 0 or 1.5, Adam's
    beta2 1, Lookahead's k 0) is refused next to its box, saying the bounds and the value
    kept; nothing of it reaches the URL or a race."""
    _open(page, "?l=rosenbrock&n=50&o=lookahead&o=adam")
    bodies = []
    page.on("request", lambda r: bodies.append(r.post_data) if r.url.endswith("/api/race") else None)
    slider = ".opt[data-name='lookahead'] input[aria-label='lookahead alpha']"
    alpha = ".opt[data-name='lookahead'] input[aria-label='lookahead alpha value']"
    page.fill(slider, "0")
    page.dispatch_event(slider, "input")
    page.dispatch_event(slider, "change")
    assert page.input_value(alpha) == "0.001"
    assert "alpha=0.001" in _options(page)["lookahead"].split(";")
    _race(page, watch=False)
    assert page.text_content("#message") == "" and page.locator("#results tbody tr").count() == 2
    beta2 = ".opt[data-name='adam'] input[aria-label='adam beta2 value']"
    k = ".opt[data-name='lookahead'] .hp input[type=number]"
    for box, typed, said in ((alpha, "0", "alpha must be > 0 and <= 1 (kept 0.001)"),
                             (alpha, "1.5", "alpha must be > 0 and <= 1 (kept 0.001)"),
                             (alpha, "abc", "alpha: not a number (kept 0.001)"),
                             (beta2, "1", "beta2 must be >= 0 and < 1 (kept 0.999)"),
                             (k, "0", "k must be a whole number from 1 to 100 (kept 5)")):
        _type(page, box, typed)
        note = _note_of(page, box)
        assert note.is_visible() and note.text_content() == said, (typed, note.text_content())
        assert page.evaluate(f"document.querySelector(\"{box}\").classList.contains('invalid')")
        assert _query(page)["race"] == ["1"], typed  # nothing changed: the race stays
    options = _options(page)
    assert "alpha=0.001" in options["lookahead"].split(";") and "k=" not in options["lookahead"]
    assert "betas" not in options["adam"]
    _race(page, watch=False)
    assert page.text_content("#message") == "" and len(bodies) == 2
    assert '"alpha":0.001' in bodies[-1] and '"alpha":0,' not in bodies[-1]
    _type(page, alpha, "0.3")  # a value within: taken, the note goes
    assert not _note_of(page, alpha).is_visible() and "alpha=0.3" in _options(page)["lookahead"]


def test_no_optimizer_chosen_stays_so_after_a_reload(page):
    """Every optimizer unticked is written to the link as a lone o= and read back as none
    (a reload keeps it); a link without o gets the default optimizers."""
    _open(page, "?l=rosenbrock&n=50")
    ticked = "document.querySelectorAll('#optimizers .opt-head input:checked').length"
    assert page.evaluate(ticked) > 0
    _choose(page, [])
    assert parse_qs(urlparse(page.url).query, keep_blank_values=True)["o"] == [""]
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.evaluate(ticked) == 0
    assert parse_qs(urlparse(page.url).query, keep_blank_values=True)["o"] == [""]
    page.click("#race")
    assert page.text_content("#message") == "choose at least one optimizer"
    _open(page, "?l=rosenbrock&n=50")
    assert page.evaluate(ticked) > 0 and "" not in _options(page)


def test_a_link_that_is_not_a_whole_or_finite_number_is_not_taken(page):
    """A link's whole-number fields (steps, seed, basins' starts per side, sweep, slice, an
    int hyperparameter) that are not whole numbers within bounds, real ones that are not
    finite (noise, a landscape parameter, a start) and hyperparameters out of their bounds
    keep their defaults, and a note says what was not taken: seed=2.5 is not seed 2."""
    _open(page, "?l=quadratic&p=kappa=Infinity&s=1,NaN&n=2.5&seed=2.5&bg=7.5&noise=Infinity"
                "&sweep=1.5&slice=abc&o=lookahead:k=2.5;alpha=0&o=adam:lr=abc")
    assert page.input_value("#seed") == "0" and page.input_value("#steps") == "500"
    note = page.text_content("#link-note")
    assert page.is_visible("#link-note")
    for part in ("kappa=Infinity", "s=1,NaN", "n=2.5", "seed=2.5", "bg=7.5", "noise=Infinity",
                 "sweep=1.5", "slice=abc", "k=2.5", "alpha=0", "lr=abc"):
        assert part in note, (part, note)
    assert page.input_value("#basins-grid") == "15"
    assert page.input_value("#landscape-params input[aria-label='kappa']") == "10"
    query = _query(page)
    assert query["n"] == ["500"] and query["p"] == ["kappa=10"]
    assert not {"seed", "noise", "sweep", "slice", "s", "bg"} & set(query), query
    options = _options(page)
    assert options["lookahead"] == f"lr={_num(rates_for('quadratic')['lookahead'])}", options
    assert options["adam"] == f"lr={_num(rates_for('quadratic')['adam'])}", options
    _open(page, f"?seed={2**31}&o=gd")  # a whole number past the largest seed
    assert f"seed={2**31}" in page.text_content("#link-note") and page.input_value("#seed") == "0"
    _open(page, "?l=rosenbrock&seed=7&b=1&bg=20&noise=0.5&o=gd")  # all taken: no note
    assert not page.is_visible("#link-note")
    assert page.input_value("#seed") == "7" and page.input_value("#basins-grid") == "20"
    assert _query(page)["noise"] == ["0.5"]


def test_the_runs_tab_says_its_times_are_utc(browser, server):
    """The sweeps' creation times are written in UTC and say so, as `optimlab runs` and the
    report write them (here in a browser whose own zone is UTC+5:30)."""
    with _own_page(browser, server, timezone_id="Asia/Kolkata") as page:
        _open(page, "?tab=runs")
        page.wait_for_selector("#sweeps tbody tr")
        created = page.evaluate("fetch('/api/sweeps').then((r) => r.json()).then((s) => s[0].created_at)")
        expected = datetime.fromisoformat(created).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        assert page.locator("#sweeps tbody tr td").nth(4).text_content() == expected
        texts = page.evaluate("""async () => {
            const { utcText } = await import('/static/js/format.js');
            return [utcText('2024-05-01T14:34:56.123456+02:00'), utcText('2024-05-01T23:59:00+00:00')];
        }""")
        assert texts == ["2024-05-01 12:34 UTC", "2024-05-01 23:59 UTC"]


def test_a_tuned_race_whose_grid_was_extended_draws_its_paths_and_says_so(page):
    """Tuning Adam on Rosenbrock over 500 steps extends its learning-rate grid: the note
    under the table lists the rates added (each in 3 significant digits), and the map, the
    loss chart and the player show the race (a page error, as the rates' list once threw,
    fails the test)."""
    _open(page, "?l=rosenbrock&n=500&tune=1&o=adam&race=1")
    page.wait_for_selector("body[data-raced='1']")
    _scrub(page, -1)
    note = page.text_content("#tuning-note")
    extended = re.search(r"adam: the grid was extended to (.+?)\.(?: |$)", note)
    assert extended, note
    rates = extended.group(1).split(", ")
    assert rates and all(float(r) > 0 and len(r.replace(".", "").strip("0")) <= 3 for r in rates), rates
    assert [p["points"] for p in _paths(page)] == [501]
    assert page.evaluate("document.getElementById('loss').data.length") == 1
    assert page.text_content("#step-label") == "step 500 / 500"


def _inspected(page) -> dict:
    """The step-by-step panel: its title, the step its table shows, and the arrows on the
    map."""
    return page.evaluate("""() => ({
        title: document.getElementById('inspect-title').textContent,
        step: document.getElementById('inspect-panel').dataset.step,
        arrows: (document.getElementById('map').layout.annotations || []).length})""")


def test_step_by_step_records_to_the_servers_limit_and_says_where_its_record_ends(page):
    """Step by step records the race's steps up to the server's max_inspect_steps (1000):
    at step 600 of a 1000-step race the panel shows step 600, at its last the last step
    taken (999, to the end point), as its title says. A race past the limit shows the
    record's last step at later steps, says so in the title and draws no arrows."""
    limit = page.context.request.get(f"{page.base}/api/limits").json()["max_inspect_steps"]
    assert limit == 1000
    _open(page, "?l=rosenbrock&n=1000&o=adam:lr=0.05&insp=adam&race=1")
    page.wait_for_selector("body[data-raced='1']")
    page.wait_for_selector("#inspect-panel:not([hidden])")
    _scrub(page, 600)
    _until(page, "document.getElementById('inspect-panel').dataset.step === '600'")
    shown = _inspected(page)
    assert shown["title"] == "Step by step: adam" and shown["arrows"] >= 2, shown
    _scrub(page, -1)
    assert page.text_content("#step-label") == "step 1000 / 1000"
    shown = _inspected(page)
    assert shown["step"] == "999", shown
    assert shown["title"] == "Step by step: adam at step 999, the last step taken", shown
    assert shown["arrows"] >= 2, shown
    # a race past the limit
    page.fill("#steps", "1500")
    page.dispatch_event("#steps", "change")
    _race(page, watch=False)
    page.wait_for_selector("#inspect-panel:not([hidden])")
    _scrub(page, 999)
    _until(page, "document.getElementById('inspect-panel').dataset.step === '999'")
    assert _inspected(page)["title"] == "Step by step: adam", _inspected(page)
    _scrub(page, 1200)
    assert page.text_content("#step-label") == "step 1200 / 1500"
    shown = _inspected(page)
    assert shown["step"] == "999" and shown["arrows"] == 0, shown
    assert shown["title"] == ("Step by step: adam at step 999: the record ends there "
                              "(1000 of the race's 1500 steps); the map is at step 1200"), shown


def test_the_results_table_heads_its_steps_column_with_the_gap_it_counts_to(page):
    """The results table's steps column counts the steps to the first loss within the
    tolerance of the minimum's value, f − f_min <= tol (not a distance: that is the column
    before), as the loss chart's f − f_min shows."""
    _open(page, "?l=rosenbrock&n=500&o=adam:lr=1&race=1")
    page.wait_for_selector("body[data-raced='1']")
    _scrub(page, -1)
    head = page.locator("#results thead th").all_text_contents()
    assert head[3:5] == ["distance to minimum", "steps to f − f_min ≤ 0.001"], head
    steps = int(page.locator("#results tbody tr").first.locator("td").nth(4).text_content())
    x, gap = page.evaluate("[document.getElementById('loss').data[0].x,"
                           " document.getElementById('loss').data[0].customdata]")
    first = next(s for s, g in zip(x, gap) if g is not None and g <= 1e-3)
    assert steps == first, (steps, first)
