"""The Runs tab while a sweep is on its way, in a real browser (the fixtures of
:mod:`tests.web.test_e2e`): a late answer (or error) for a sweep clicked before another is
dropped, the wait is said and the detail marked busy, a long name is cut in the row's
accessible name; and the HTML report scrolls no page sideways in a 400 px window."""

import time
from urllib.parse import parse_qs, urlparse

import pytest

from . import test_e2e

browser = test_e2e.browser

_until, _own_page, _errors = test_e2e._until, test_e2e._own_page, test_e2e._errors

#: sweep 2's name: 500 characters (a name as long as `optimlab bench --name` takes)
LONG_NAME = ("lr grid of sixteen optimizers " * 20)[:500]


@pytest.fixture(scope="module")
def two_server(sweep_db, tmp_path_factory):
    """The playground over a store of two sweeps: the real one, and its copy (no runs)
    named :data:`LONG_NAME`."""
    from .conftest import SECOND_SWEEP, store_copy

    db = store_copy(sweep_db[0], tmp_path_factory.mktemp("two") / "runs.db", SECOND_SWEEP,
                    f"UPDATE sweeps SET name = '{LONG_NAME}' WHERE id = 2")
    yield from test_e2e._serve(db, [], warm=False)


def _open_runs(page):
    page.goto(f"{page.base}/?tab=runs")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#sweeps tbody tr[data-sweep='2']")


def _hold(page, sweep: int) -> list:
    """Hold the answers of ``GET /api/sweeps/<sweep>``: the routes held are listed in the
    list returned, to be let go (``continue_``) or answered (``fulfill``) later."""
    held = []
    page.route(f"**/api/sweeps/{sweep}", lambda route: held.append(route))
    return held


def _asked(page, held: list, count: int = 1):
    deadline = time.time() + 30
    while len(held) < count:
        assert time.time() < deadline, "the sweep was not asked for"
        page.evaluate("() => 1")  # (lets the route handler run)


def _shows(page, sweep: int):
    """The page shows ``sweep``, and only it: title, body's data-sweep, the one highlighted
    row, the URL; nothing said busy."""
    assert page.get_attribute("body", "data-sweep") == str(sweep)
    assert page.text_content("#sweep-title").startswith(f"Sweep {sweep}")
    assert page.locator("#sweep-detail").is_visible()
    active = page.locator("#sweeps tbody tr.active")
    assert active.count() == 1 and active.get_attribute("data-sweep") == str(sweep)
    assert parse_qs(urlparse(page.url).query)["sweep"] == [str(sweep)]
    assert page.get_attribute("#sweep-detail", "aria-busy") is None


def _idle(page):
    _until(page, "!document.getElementById('sweep-detail').hasAttribute('aria-busy')")


@pytest.mark.parametrize("late", ["answer", "error"])
def test_a_late_answer_for_the_sweep_clicked_before_is_dropped(browser, two_server, late):
    """Sweep 1 clicked, then sweep 2 before 1's answer came (a big sweep takes seconds):
    1's late answer showed sweep 1 under a URL naming sweep 2, and a late error hid sweep 2
    and dropped it from the URL. Only the last sweep asked for is shown."""
    with _own_page(browser, two_server) as page:
        errors = _errors(page, expected=("500",))
        _open_runs(page)
        held = _hold(page, 1)
        page.click("#sweeps tbody tr[data-sweep='1']")
        _asked(page, held)
        page.click("#sweeps tbody tr[data-sweep='2']")
        page.wait_for_selector("body[data-sweep='2']")
        _idle(page)
        with page.expect_response("**/api/sweeps/1") as response:
            if late == "answer":
                held[0].continue_()
            else:
                held[0].fulfill(status=500, content_type="application/json",
                                body='{"message": "sweep 1 is away"}')
        response.value.finished()
        page.wait_for_timeout(1500)  # (time for the page to show it, had it not dropped it)
        _shows(page, 2)
        assert page.text_content("#runs-message") == ("Click a sweep (or its id) to see its "
                                                      "curves and summary.")
    assert not errors, errors


def test_a_sweep_on_its_way_is_said_and_its_detail_marked_busy(browser, two_server):
    """Nothing changed for the seconds a big sweep takes to come: the status line says which
    sweep is loading and the detail is aria-busy until its answer, or its error, comes."""
    with _own_page(browser, two_server) as page:
        errors = _errors(page, expected=("500",))
        _open_runs(page)
        assert page.get_attribute("#runs-message", "role") == "status"
        held = _hold(page, 1)
        page.click("#sweeps tbody tr[data-sweep='1']")
        _asked(page, held)
        assert page.text_content("#runs-message") == "Sweep 1: loading…"
        assert page.get_attribute("#sweep-detail", "aria-busy") == "true"
        held[0].continue_()
        page.wait_for_selector("body[data-sweep='1']")
        _shows(page, 1)
        assert "loading" not in page.text_content("#runs-message")
        # another sweep on its way: the one shown stays, said busy; its error ends the wait
        held = _hold(page, 2)
        page.click("#sweeps tbody tr[data-sweep='2']")
        _asked(page, held)
        assert page.text_content("#runs-message") == "Sweep 2: loading…"
        assert page.get_attribute("#sweep-detail", "aria-busy") == "true"
        assert page.get_attribute("body", "data-sweep") == "1"
        held[0].fulfill(status=500, content_type="application/json",
                        body='{"message": "sweep 2 is away"}')
        _until(page, "document.getElementById('runs-message').textContent === 'sweep 2 is away'")
        assert page.get_attribute("#sweep-detail", "aria-busy") is None
        assert page.locator("#sweep-detail").is_hidden()
    assert not errors, errors


def test_a_long_sweep_name_is_cut_in_its_rows_accessible_name(browser, two_server):
    """The id button of a sweep named with 500 characters said all 500 to a screen reader
    on every row it passed: its name is cut to about 60 characters, with an ellipsis; the
    row's name cell still shows it whole."""
    with _own_page(browser, two_server) as page:
        _open_runs(page)
        row = page.locator("#sweeps tbody tr[data-sweep='2']")
        label = row.locator("button.row-open").get_attribute("aria-label")
        assert len(label) <= 64 and label.startswith(f"sweep 2 ({LONG_NAME[:40]}"), label
        assert label.endswith("…)"), label
        assert row.locator("td").nth(1).text_content() == LONG_NAME
        short = page.locator("#sweeps tbody tr[data-sweep='1'] button.row-open")
        assert short.get_attribute("aria-label") == "sweep 1 (web-test)"


def test_the_report_scrolls_no_page_sideways_in_a_400px_window(browser, sweep_db, tmp_path):
    """The report's "All runs" table (18 columns) and its summary made the page scroll
    sideways at 400 px: each table scrolls in a named, focusable region of its own, and
    the page is no wider than the window, its runs shown or not."""
    from optimlab.bench.report import write_report
    from optimlab.bench.store import RunStore

    path, sweep_id = sweep_db
    with RunStore(path) as store:
        report = write_report(store, sweep_id, tmp_path / "out")["report"]
    context = browser.new_context(viewport={"width": 400, "height": 800})
    try:
        page = context.new_page()
        page.goto(report.as_uri())
        width = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        for shown in (False, True):
            page.evaluate(f"document.querySelector('details').open = {str(shown).lower()}")
            scroll, client = page.evaluate(width)
            assert client == 400 and scroll <= client, (shown, scroll, client)
        regions = page.locator("div.table-wrap[role='region'][tabindex='0']")
        assert regions.count() == page.locator("table").count() == 3
        runs = page.locator("div.table-wrap[aria-label='all runs']")
        assert runs.locator("table").count() == 1
        assert runs.evaluate("(e) => e.scrollWidth > e.clientWidth")  # it does scroll
    finally:
        context.close()
