"""The playground in a real browser: a link's parts the page does not take are said in the
link note (never dropped silently), the run settings' boxes say why they refuse a value, the
start can be typed, and on a narrow screen the map stays near the Race button.

Uses the browser, page and server of ``test_e2e`` (headless Chromium and Playwright)."""

import time
from urllib.parse import parse_qs, urlparse

from . import test_e2e

# the fixtures of test_e2e (bound by assignment: a test's `page` argument then shadows no import)
browser, page, server = test_e2e.browser, test_e2e.page, test_e2e.server

TIMEOUT_S = 60


def _until(page, expression, timeout=TIMEOUT_S):
    """Wait until a JavaScript expression is true (no wait_for_function: the page's
    Content-Security-Policy forbids eval)."""
    deadline = time.time() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        assert time.time() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def _open(page, query=""):
    page.goto(f"{page.base}/{query}")
    page.wait_for_selector("body[data-ready='1']")


def _race(page):
    """Race and stop the animation at its last step."""
    page.click("#race")
    page.wait_for_selector("body[data-raced='1']")
    last = page.get_attribute("#scrub", "max")
    page.fill("#scrub", last)
    page.dispatch_event("#scrub", "input")
    _until(page, f"document.body.dataset.frame === '{last}'")


def _type(page, selector, text):
    page.fill(selector, text)
    page.dispatch_event(selector, "change")


def _query(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def _link_note(page) -> str:
    """The "Not taken from this link" note, "" when hidden."""
    return page.text_content("#link-note") if page.is_visible("#link-note") else ""


def _field_note(page, box_id: str) -> str:
    """The visible note under a run setting's box (steps, seed, ...), "" when none."""
    return page.evaluate(f"""() => {{
        const note = document.getElementById('{box_id}').closest('.row').nextElementSibling;
        return note && note.classList.contains('field-note') && !note.hidden ? note.textContent : ''; }}""")


def _start_marker(page):
    return page.evaluate("""() => { const t = document.getElementById('map').data
        .find((t) => t.name === 'start'); return [t.x[0], t.y[0]]; }""")


def test_at_800_wide_the_map_is_near_the_race_button(page):
    """On a narrow screen (the controls above the map) the optimizers' list scrolls in its
    own box: after a race its map is within one and a half screens of the Race button."""
    page.set_viewport_size({"width": 800, "height": 600})
    _open(page, "?l=rosenbrock&n=50&o=gd&o=adam")
    _race(page)
    race, stage, height = page.evaluate("""() => [
        document.getElementById('race').getBoundingClientRect().top,
        document.getElementById('map').getBoundingClientRect().top, innerHeight]""")
    assert stage > race and stage - race < 1.5 * height, (race, stage, height)
    # every optimizer can still be reached: the list scrolls
    assert page.evaluate("""() => { const box = document.getElementById('optimizers');
        return box.scrollHeight > box.clientHeight && getComputedStyle(box).overflowY === 'auto'; }""")


def test_a_link_says_each_part_it_does_not_take(page):
    """A misspelt landscape, an optimizer the server lacks, a hyperparameter it does not
    have, step-by-step of an optimizer not chosen, more starts than the limit, a start off
    the domain and an unknown tab are each named in the link note, not dropped silently."""
    _open(page, "?l=rosenbrok&n=50&o=adam")
    note = _link_note(page)
    assert "l=rosenbrok is not a landscape" in note, note
    assert _query(page)["l"] == [page.input_value("#landscape")] != ["rosenbrok"]

    _open(page, "?l=rosenbrock&n=50&o=nosuchopt:lr=0.1&o=adam&race=1")
    page.wait_for_selector("body[data-raced='1']")
    assert "nosuchopt" in _link_note(page)
    assert page.locator("#results tbody tr").count() == 1

    _open(page, "?l=rosenbrock&n=50&o=adam:zzz=3&insp=sgd&tab=nosuch")
    note = _link_note(page)
    for part in ("zzz", "insp=sgd", "tab=nosuch"):
        assert part in note, (part, note)
    assert page.input_value("#inspect") == "" and "insp" not in _query(page)

    starts = ";".join(f"{-1.9 + 0.1 * i:.1f},0.5" for i in range(20))
    _open(page, f"?l=rosenbrock&n=50&o=gd&st={starts}&s=9,9")
    note = _link_note(page)
    limit = page.evaluate("fetch('/api/limits').then((r) => r.json()).then((l) => l.max_starts)")
    assert limit < 20
    assert "st=" in note and f"first {limit}" in note, note
    assert len(_query(page)["st"][0].split(";")) == limit
    assert "s=9,9" in note and "domain" in note, note
    assert "s" not in _query(page)
    _open(page, "?l=rosenbrock&n=50&o=gd&insp=gd")  # all taken: no note
    assert _link_note(page) == "" and page.input_value("#inspect") == "gd"


def test_an_unknown_landscape_parameter_of_a_link_is_dropped_and_the_race_runs(page):
    """quadratic has no parameter zzz: the link's zzz=3 is not taken (the note says so),
    so the race the link asks for runs instead of being refused for good."""
    _open(page, "?l=quadratic&p=kappa=5;zzz=3&n=100&o=adam&race=1")
    page.wait_for_selector("body[data-raced='1']")
    assert "zzz" in _link_note(page)
    assert page.text_content("#message") == ""
    assert page.locator("#results tbody tr").count() == 1
    assert _query(page)["p"] == ["kappa=5"]


def test_the_run_settings_boxes_say_why_they_refuse_a_value(page):
    """Steps past the limit are refused (not cut to it) and the noise seed 2.5 too, each
    with a note under its box saying the bounds and the value kept; a valid value clears it."""
    _open(page, "?l=rosenbrock&n=50&o=gd")
    limit = page.get_attribute("#steps", "max")
    _type(page, "#steps", "20000")
    assert page.input_value("#steps") == "50" and _query(page)["n"] == ["50"]
    note = _field_note(page, "steps")
    assert "20000" in note and limit in note and "kept 50" in note, note
    _type(page, "#steps", "60")
    assert _field_note(page, "steps") == "" and _query(page)["n"] == ["60"]
    _type(page, "#seed", "2.5")
    note = _field_note(page, "seed")
    assert "whole number" in note and "kept 0" in note, note
    assert "seed" not in _query(page)
    _type(page, "#seed", "3")
    assert _field_note(page, "seed") == "" and _query(page)["seed"] == ["3"]
    page.check("#basins")
    _type(page, "#basins-grid", "31")
    assert "kept 15" in _field_note(page, "basins-grid")


def test_the_start_can_be_typed_and_follows_the_map_and_the_link(page):
    """Two boxes set the start's x and y: a point in the domain is taken (the URL, the label
    and the marker follow, a race of the old start goes), one outside is refused with a
    note; the boxes follow a map click and a link's start."""
    _open(page, "?l=rosenbrock&s=0.5,1&n=50&o=gd")
    x, y = "#controls input[aria-label='start x']", "#controls input[aria-label='start y']"
    assert float(page.input_value(x)) == 0.5 and float(page.input_value(y)) == 1
    _race(page)
    _type(page, x, "-1.5")
    _type(page, y, "2.5")
    _until(page, "document.body.dataset.raced === '0'", timeout=10)
    assert _query(page)["s"] == ["-1.5,2.5"]
    assert page.text_content("#start-label").startswith("(-1.5, 2.5)")
    _until(page, "document.getElementById('map').dataset.start === '-1.5,2.5'", timeout=10)
    assert _start_marker(page) == [-1.5, 2.5]
    _type(page, x, "9")
    note = page.locator("#controls .field-note", has_text="start x")
    assert note.is_visible() and note.text_content() == "start x must be a number from -2 to 2 (kept -1.5)"
    assert _query(page)["s"] == ["-1.5,2.5"]
    area = page.locator("#map .nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + 0.75 * area["width"], area["y"] + 0.75 * area["height"])
    _until(page, "document.getElementById('map').dataset.start !== '-1.5,2.5'", timeout=10)
    sx, sy = (float(v) for v in _query(page)["s"][0].split(","))
    _until(page, f"document.querySelector(\"{x}\").value === '{sx:g}'", timeout=10)
    assert float(page.input_value(y)) == sy and not note.is_visible()
    page.click("#start-reset")
    _until(page, f"document.querySelector(\"{x}\").value === '-1.2'", timeout=10)


def test_a_link_to_a_sweep_or_slice_that_is_not_there_says_so(page):
    """`sweep=99` and `slice=7` that the store and the slices folder do not hold were
    ignored without a word (and `slice=7` stayed in the URL): each tab now says so."""
    _open(page, "?tab=runs&sweep=99")
    _until(page, "document.body.dataset.sweeps !== undefined")
    assert page.text_content("#runs-message").startswith("No sweep 99 in this run store.")
    assert "sweep" not in _query(page)
    _open(page, "?tab=slices&slice=7")
    _until(page, "document.body.dataset.slices !== undefined")
    assert page.text_content("#slices-message").startswith("No slice 7 among these files.")
    assert "slice" not in _query(page)
