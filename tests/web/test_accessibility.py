"""The playground's accessibility in a real browser (the fixtures of :mod:`tests.web.test_e2e`):
stored sweeps and slices open from the keyboard, the focus stays where the user was, extra
starts can be added without a mouse, the active tab, a slider's value and a refused box are
said to assistive technology, the loss chart's lines differ by more than colour, and a
400 px wide window scrolls no page sideways."""

import time

from . import test_e2e

# the fixtures of test_e2e (bound by assignment: a test's `page` argument then shadows no import)
browser, page, server = test_e2e.browser, test_e2e.page, test_e2e.server

_until = test_e2e._until
WAIT_S = 30


def _open(page, query=""):
    page.goto(f"{page.base}/{query}")
    page.wait_for_selector("body[data-ready='1']")


def _focused(page) -> dict:
    return page.evaluate("""() => { const a = document.activeElement;
        return {id: a ? a.id : null, tag: a ? a.tagName : null,
                sweep: a && a.closest('#sweeps tbody tr') ? a.closest('tr').dataset.sweep : null,
                slice: a && a.closest('#slice-list tbody tr') ? a.closest('tr').dataset.slice : null}; }""")


def _tab_to(page, key: str, limit: int = 40) -> dict:
    """Press Tab until the focus is in a row whose ``key`` (sweep, slice) is set; bounded."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = _focused(page)
        if focused[key]:
            return focused
    raise AssertionError(f"{limit} Tabs never reached a row of the {key}s' table")


def test_the_keyboard_alone_opens_a_stored_sweep_and_the_focus_lands_on_its_title(page, sweep_db):
    _open(page, "?tab=runs")
    page.wait_for_selector("#sweeps tbody tr")
    assert page.get_attribute("#runs-message", "role") == "status"
    focused = _tab_to(page, "sweep")
    assert focused["tag"] == "BUTTON", focused
    page.keyboard.press("Enter")
    page.wait_for_selector(f"body[data-sweep='{focused['sweep']}']", timeout=WAIT_S * 1000)
    assert page.is_visible("#sweep-detail")
    assert _focused(page)["id"] == "sweep-title"
    assert page.text_content("#sweep-title").startswith(f"Sweep {sweep_db[1]}")


def test_the_keyboard_alone_opens_a_slice_and_the_focus_lands_on_its_title(page):
    _open(page, "?tab=slices")
    page.wait_for_selector("#slice-list tbody tr:not(.broken)")
    assert page.get_attribute("#slices-message", "role") == "status"
    focused = _tab_to(page, "slice")
    assert focused["tag"] == "BUTTON", focused
    page.keyboard.press("Space")
    page.wait_for_selector(f"body[data-slice='{focused['slice']}']", timeout=WAIT_S * 1000)
    assert page.is_visible("#slice-detail") and _focused(page)["id"] == "slice-title"


def test_the_focus_stays_on_the_race_button_after_a_race(page):
    _open(page, "?n=60&o=gd&o=adam")
    page.focus("#race")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-raced='1']", timeout=WAIT_S * 1000)
    assert _focused(page)["id"] == "race"
    # the race said in text, beside the charts that it describes
    summary = page.text_content("#race-summary")
    assert "gd" in summary and "adam" in summary and "60 steps" in summary, summary
    for chart in ("#map", "#loss"):
        ids = page.get_attribute(chart, "aria-describedby").split()
        assert "race-summary" in ids and "results" in ids


def test_the_info_button_of_a_raced_optimizer_focuses_its_card(page):
    _open(page, "?o=gd&o=adam")
    page.focus(".opt[data-name='adam'] .info-btn")
    page.keyboard.press("Enter")
    _until(page, "document.activeElement && document.activeElement.id === 'info-adam'", WAIT_S)
    rule = page.locator("#info-adam .rule")
    assert rule.get_attribute("tabindex") == "0" and rule.get_attribute("aria-label") == "adam update rule"


def test_the_add_start_button_adds_an_extra_start_from_the_keyboard(page):
    _open(page, "?l=rosenbrock")
    assert page.text_content("#starts-label") == "none"
    page.fill("input[aria-label='start x']", "0.5")
    page.dispatch_event("input[aria-label='start x']", "change")
    page.focus("#start-add")
    page.keyboard.press("Enter")
    _until(page, "document.getElementById('starts-label').textContent !== 'none'", WAIT_S)
    assert page.text_content("#starts-label").startswith("(0.5, ")
    assert page.text_content("#start-add") == "add as extra start"
    assert "add as extra start" in page.text_content(".hint")  # the hint says so


def test_the_tabs_are_a_tablist_the_arrow_keys_move_through(page):
    """The WAI-ARIA tabs pattern: the active tab is said (aria-selected) and is the one Tab
    reaches; Left/Right (wrapping), Home and End show and focus another; each panel is
    labelled by its tab."""
    _open(page)
    said = ("['race', 'runs', 'slices'].map((t) => { const b = document.getElementById('tab-' + t);"
            " return [b.getAttribute('role'), b.getAttribute('aria-selected'), b.tabIndex,"
            " document.getElementById(t + '-view').hidden]; })")

    def active():
        states = page.evaluate(said)
        assert all(role == "tab" for role, *_ in states)
        (on,) = [i for i, (_, selected, index, hidden) in enumerate(states)
                 if selected == "true" and index == 0 and not hidden]
        assert sum(selected == "true" for _, selected, _, _ in states) == 1
        return ["race", "runs", "slices"][on]

    assert page.get_attribute("#tab-race", "role") == "tab"
    assert page.evaluate("document.getElementById('tab-race').parentElement.getAttribute('role')") \
        == "tablist"
    assert page.get_attribute("#runs-view", "aria-labelledby") == "tab-runs"
    assert active() == "race"
    page.click("#tab-runs")
    assert active() == "runs"
    for key, then in (("ArrowRight", "slices"), ("ArrowRight", "race"), ("ArrowLeft", "slices"),
                      ("Home", "race"), ("End", "slices")):
        page.keyboard.press(key)
        assert active() == then, key
        assert _focused(page)["id"] == f"tab-{then}"
    page.keyboard.press("Tab")  # out of the tablist: no other tab takes the focus
    assert not (_focused(page)["id"] or "").startswith("tab-")


def test_a_slider_says_the_value_shown_beside_it(page):
    _open(page, "?o=adam")
    slider = ".opt[data-name='adam'] input[type=range][aria-label='adam lr']"
    text = ".opt[data-name='adam'] input[aria-label='adam lr value']"
    assert page.get_attribute(slider, "aria-valuetext") == page.input_value(text)
    page.focus(slider)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute(slider, "aria-valuetext") == page.input_value(text)
    page.focus("#noise")
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    assert page.get_attribute("#noise", "aria-valuetext") == page.text_content("#noise-label") != "0"


def test_a_refused_steps_value_is_marked_invalid_and_described_by_its_note(page):
    _open(page)
    page.fill("#steps", "2.5")
    page.dispatch_event("#steps", "change")
    assert page.get_attribute("#steps", "aria-invalid") == "true"
    ids = (page.get_attribute("#steps", "aria-describedby") or "").split()
    assert ids, "no aria-describedby"
    notes = [page.evaluate(f"document.getElementById({i!r}) && "
                           f"document.getElementById({i!r}).textContent") for i in ids]
    assert any(note and "steps 2.5 refused" in note for note in notes), notes
    page.fill("#steps", "40")
    page.dispatch_event("#steps", "change")
    assert page.get_attribute("#steps", "aria-invalid") is None
    assert page.get_attribute("#steps", "aria-describedby") is None


def _width(page) -> dict:
    return page.evaluate("({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})")


def test_a_400_px_window_scrolls_no_tab_sideways(browser, server):
    context = browser.new_context(viewport={"width": 400, "height": 800})
    try:
        narrow = context.new_page()
        narrow.set_default_timeout(WAIT_S * 1000)
        narrow.base = server
        _open(narrow)
        _until(narrow, "document.body.dataset.contour === '1'", WAIT_S)
        width = _width(narrow)
        assert width["scroll"] <= width["inner"], ("race", width)
        narrow.click("#tab-runs")
        narrow.wait_for_selector("#sweeps tbody tr")
        narrow.click("#sweeps tbody tr")
        narrow.wait_for_selector("body[data-sweep]")
        time.sleep(0.3)  # Plotly's resize after the layout changed
        width = _width(narrow)
        assert width["scroll"] <= width["inner"], ("runs", width)
    finally:
        context.close()


def test_every_docs_page_fits_a_400_px_window(browser, server):
    """The reference pages (served at /docs/) scrolled sideways at 400 px: every one of them,
    by its tables (a long argument name in code), the index by 1030 px, and three by a long
    URL in their references (an audit of the docs). Tables scroll in regions of their own."""
    from optimlab.optim.catalog import TABLE
    from optimlab.web.docs import page_name

    context = browser.new_context(viewport={"width": 400, "height": 800})
    try:
        narrow = context.new_page()
        narrow.set_default_timeout(WAIT_S * 1000)
        wide = {}
        for name in ["index.html", *(page_name(info) for info in TABLE)]:
            narrow.goto(f"{server}/docs/{name}")
            narrow.wait_for_load_state("load")
            width = _width(narrow)
            if width["scroll"] > width["inner"]:
                wide[name] = width["scroll"]
        assert not wide, wide
        assert narrow.evaluate("[...document.querySelectorAll('table')].every("
                               "(t) => t.parentElement.matches('.table-wrap[role=region]'))")
    finally:
        context.close()


def test_the_loss_chart_tells_optimizers_apart_by_dash_and_legend(page):
    _open(page, "?n=40&o=gd&o=momentum&o=adam")
    page.click("#race")
    page.wait_for_selector("body[data-raced='1']", timeout=WAIT_S * 1000)
    lines = page.evaluate("document.getElementById('loss').data.map((t) => [t.name, t.line.dash || 'solid'])")
    assert len(lines) == 3, lines
    assert len({dash for _, dash in lines}) == 3, lines
    assert page.evaluate("document.getElementById('loss').layout.showlegend") is True
    # the map's paths have the same dash as the loss chart's line of the same optimizer
    paths = dict(page.evaluate("document.getElementById('map').data.filter((t) => t.meta === 'path')"
                               ".map((t) => [t.name.split(' ')[0], t.line.dash || 'solid'])"))
    assert paths == dict(lines), (paths, lines)


def test_each_basins_map_says_in_words_where_its_starts_end(page):
    """The small maps were pictures only: each is a figure whose label gives its optimizer and
    every class's share, the same numbers as its row of the table, and points at the note."""
    _open(page, "?l=two_wells&n=150&o=gd:lr=0.1&o=adam:lr=0.05")
    page.check("#basins")
    page.fill("#basins-grid", "6")
    page.dispatch_event("#basins-grid", "change")
    page.click("#race")
    page.wait_for_selector("body[data-basins='1']", timeout=WAIT_S * 1000)
    maps = page.locator(".basin-plot")
    rows = page.locator("#basins-table tbody tr")
    assert maps.count() == rows.count() == 2
    heads = page.locator("#basins-table thead th").all_text_contents()[2:]  # "→ A", ...
    for i in range(2):
        label = maps.nth(i).get_attribute("aria-label")
        assert maps.nth(i).get_attribute("role") == "figure"
        assert maps.nth(i).get_attribute("aria-describedby") == "basins-note"
        assert label.startswith(f"basins of {rows.nth(i).get_attribute('data-label')} (")
        assert "from 6 × 6 starts: " in label
        cells = rows.nth(i).locator("td.num").all_text_contents()
        for head, cell in zip(heads, cells):
            name = head.replace("→", "").strip()
            said = f"{cell} {name}" if name in ("diverged", "not settled") else f"{cell} to {name}"
            assert (said in label) == (cell != "0%"), (said, label)
