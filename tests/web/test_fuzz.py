"""The API fuzzed from its own OpenAPI schema (schemathesis, in process): for every
operation, requests that the schema allows and that it forbids, each checked for no 500, a
documented status code and content type, a body that matches the documented model, and a
refusal (4xx) of every request the schema forbids; a request the schema allows may be
refused only by a rule the schema cannot state (the budget, the domain, an optimizer's own
check), never by the server's validation.

Deterministic and bounded: :data:`EXAMPLES` generated requests per operation
(``derandomize``), plus schemathesis's coverage phase, which sends each bound and the value
just past it, each wrong type and each undocumented method once (a fixed set, from the
schema): 17981 requests in all, 72 s in one process here (63 s before valid race, inspect
and basins requests reached a run), the slowest request 1 s. A valid case fills ``params``
with every landscape's keys (``angle``, ``kappa``), which the server refuses for a landscape
without them: :func:`_cheap` drops the keys the case's landscape does not take, so that
about 1170 of each operation's 5800 requests reach a run and answer 200 (about 60 did), at
least :data:`MIN_OK` of them, checked as each operation's fuzzing ends. A valid count of
steps is cut to at most :data:`FUZZ_STEPS`, and a basins map's grid to :data:`FUZZ_GRID`
starts per side, integers and integral floats alike, so that a request costs milliseconds
(the limits themselves, work budget included, are tested in ``test_api.py``). The counts
go to ``test-artifacts/web/fuzz.json`` and are printed (``pytest -s``) at the end of the module.
"""

import json
import os
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from optimlab.landscapes import get as get_landscape  # noqa: E402
from optimlab.web.models import (  # noqa: E402
    LANDSCAPE_PARAMS,
    MAX_BASIN_GRID,
    MAX_BASIN_STEPS,
    MAX_INSPECT_STEPS,
    MAX_STEPS,
)
from optimlab.web.server import create_app  # noqa: E402

from .conftest import ARTIFACTS, LOCAL  # noqa: E402

#: Requests per operation (schemathesis's generated ones; valid and invalid ones mixed).
EXAMPLES = 120
#: Most steps a fuzzed race takes (a valid ``steps`` is cut to 1..FUZZ_STEPS).
FUZZ_STEPS = 4
#: What each response is checked for.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]

#: Requests sent and statuses seen, per operation (written out at the end).
SENT: Counter = Counter()
#: The slowest request per operation, in seconds.
SLOWEST: Counter = Counter()
STATUSES: dict[str, Counter] = {}
#: Valid requests (by the schema) that were refused, by the rule that refused them.
REFUSED_VALID: Counter = Counter()

#: The rules the schema cannot state (two fields together, or the optimizer's own checks),
#: named in ``RaceRequest``'s and ``BasinsRequest``'s descriptions (a basins map needs a
#: landscape with a minimum): a request the schema allows may still break one.
CROSS_FIELD = ("start", "starts", "fan", "params", "steps", "hparams", "landscape",
               *LANDSCAPE_PARAMS)
#: Each operation's own limit on ``steps``: a count past it is left as it is, to be refused.
STEP_LIMITS = {"/api/race": MAX_STEPS, "/api/inspect": MAX_INSPECT_STEPS,
               "/api/basins": MAX_BASIN_STEPS}
#: Most starts per side of a fuzzed basins map (a valid ``grid`` is cut to 2..FUZZ_GRID).
FUZZ_GRID = 3
#: Fewest requests answered 200 per operation that does work, of its EXAMPLES generated ones
#: and its coverage phase's: about half of what one run answers (derandomized: race 1188,
#: inspect 1173, basins 1163, grid 30 of 5864, 5787, 5781 and 193 requests), so a change
#: that makes valid requests refused again (as unknown ``params`` did: 58, 66, 62 answered
#: 200) fails, while another schemathesis version's cases still pass.
MIN_OK = {"POST /api/race": 500, "POST /api/inspect": 500, "POST /api/basins": 500,
          "GET /api/landscapes/{name}/grid": 15}


#: The app under test; its run store is set by :func:`_store` (schemathesis reads the schema
#: when the module is collected, before any fixture runs).
APP = create_app(None, warm=False)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP,
                                        headers={"Host": "127.0.0.1:8000"})
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# values come from the schema only, not from constants found in the modules loaded so far
# (which depend on what else the test run imported: the cases would not be the same)
schema.config.analysis.constants.enabled = False


@pytest.fixture(scope="module", autouse=True)
def _store(sweep_db):
    """The app reads the tests' run store (one real sweep)."""
    APP.state.db_path = str(sweep_db[0])


def _whole(value) -> bool:
    """A count as the API takes one: an integer, or a float with an integer value."""
    return (isinstance(value, int) and not isinstance(value, bool)) or \
        (isinstance(value, float) and value.is_integer())


def _cheap(case) -> None:
    """Drop the ``params`` keys a valid case's landscape does not take (the schema lists
    every landscape's), so that it can reach a run. Cut a valid race's steps (and give a
    default), and a basins map's grid, so one request costs milliseconds. A count sent as
    a float (``357.0``) is cut too and stays a float: uncut, three basins requests of 21x21
    starts x 357 steps with L-BFGS took 72 s each, most of this module's time."""
    body = case.body
    if not (isinstance(body, dict) and case.path in STEP_LIMITS):
        return
    params = body.get("params")
    takes = _takes(body.get("landscape")) if isinstance(body.get("landscape"), str) else None
    if _positive(case) and isinstance(params, dict) and takes is not None:
        # only in a valid case: a key dropped from an invalid one could leave it valid
        body["params"] = {k: v for k, v in params.items() if k in takes}
    steps = body.get("steps", 500)
    if _whole(steps) and 1 <= steps <= STEP_LIMITS[case.path]:
        body["steps"] = type(steps)(1 + (int(steps) - 1) % FUZZ_STEPS)
    grid = body.get("grid", 15)
    if case.path == "/api/basins" and _whole(grid) and 2 <= grid <= MAX_BASIN_GRID:
        body["grid"] = type(grid)(2 + (int(grid) - 2) % (FUZZ_GRID - 1))


@cache
def _takes(name) -> frozenset | None:
    """The ``params`` keys landscape ``name`` takes (its builder's); None if it is none."""
    try:
        return frozenset(get_landscape(name).params)
    except (TypeError, ValueError):  # not a landscape's name
        return None


def _positive(case) -> bool:
    """Whether schemathesis generated every part of ``case`` to fit the schema (False when
    its metadata is not there to say so)."""
    meta = getattr(case, "_meta", None)
    try:
        return not meta.generation.mode.is_negative and not any(
            c.mode.is_negative for c in meta.components.values())
    except AttributeError:
        return False


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck), print_blob=False)
def test_the_api_answers_what_its_schema_says(case):
    _fuzz(case)


@pytest.fixture(autouse=True)
def _operation_checked(request):
    """After an operation's fuzzing item (all its generated cases and its coverage phase,
    in this process, xdist or not): it sent requests to its operation, and an operation
    that does work answered at least :data:`MIN_OK` of them 200."""
    yield
    key = _operation(request.node)
    if key is None:
        return
    assert SENT[key] > 0, f"no request was sent to {key}"
    ok = STATUSES[key][200]
    assert ok >= MIN_OK.get(key, 0), f"{key}: only {ok} of {SENT[key]} requests answered 200"


def _operation(item) -> str | None:
    """``"POST /api/race"`` for the fuzzing item of that operation, None for another test."""
    name = item.name
    if not name.startswith("test_the_api_answers_what_its_schema_says["):
        return None
    return name[name.index("[") + 1:-1]


def _fuzz(case) -> None:
    """Send one generated case, count it, and check the answer against the schema."""
    _cheap(case)
    began = time.perf_counter()
    response = case.call(base_url=LOCAL, timeout=120)  # (a loaded CI machine is slow)
    key = f"{case.method} {case.path}"
    SLOWEST[key] = max(SLOWEST[key], time.perf_counter() - began)
    SENT[key] += 1
    STATUSES.setdefault(key, Counter())[response.status_code] += 1
    _save_counts()
    case.validate_response(response, checks=CHECKS)
    if response.status_code == 422 and _positive(case):
        # a request the schema allows is refused only by a rule the schema cannot state,
        # by the server's own check (type value_error), never by pydantic's validation
        detail = response.json()["detail"]
        for d in detail:
            rule = next((p for p in d["loc"] if p in CROSS_FIELD), None)
            assert d["type"] == "value_error" and rule is not None, (case.body, detail)
            REFUSED_VALID[rule] += 1


def _shared_dir() -> Path | None:
    """A folder every xdist worker of this run sees (named by the run's id); None when
    the tests run in one process."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return None
    folder = Path(tempfile.gettempdir()) / f"optimlab-fuzz-{run}"
    folder.mkdir(exist_ok=True)
    return folder


def _save_counts() -> None:
    """This worker's counts so far, for the summary another worker may write."""
    folder = _shared_dir()
    if folder is not None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        tmp = folder / f"{worker}.tmp"
        tmp.write_text(json.dumps({"sent": SENT, "statuses": STATUSES}))
        tmp.replace(folder / f"{worker}.json")


def _all_counts() -> tuple[Counter, dict]:
    """This process's counts, plus, under pytest-xdist, what the other workers have
    written so far (without waiting for them: a worker blocked here could hold the very
    items it waits for in its queue)."""
    folder = _shared_dir()
    if folder is None:
        return SENT, STATUSES
    _save_counts()
    sent, statuses = Counter(), {}
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        sent.update(data["sent"])
        for key, counts in data["statuses"].items():
            statuses.setdefault(key, Counter()).update({int(k): v for k, v in counts.items()})
    return sent, statuses


def test_every_documented_operation_has_a_fuzzing_item(request):
    """Each documented operation (read from the raw schema) has its fuzzing item (one per
    operation, from the parametrization); :func:`_operation_checked` makes each item fail
    unless it sent requests to its operation, so every documented operation is sent."""
    documented = {f"{method.upper()} {path}" for path, methods in schema.raw_schema["paths"].items()
                  for method in methods}
    # the module's items as pytest collects them (whatever this run selected, in any worker)
    fuzzed = [key for key in map(_operation, _items(request.node.parent)) if key is not None]
    assert len(documented) >= 10 and sorted(fuzzed) == sorted(documented), \
        documented.symmetric_difference(fuzzed)


def _items(node) -> list:
    """Every test item below ``node``, collected afresh."""
    if isinstance(node, pytest.Item):
        return [node]
    return [item for child in node.collect() for item in _items(child)]


def test_the_fuzzing_counts_are_recorded():
    """(Runs after the fuzzing above, in file order.) Writes and prints the counts (under
    pytest-xdist: this worker's and what the others have written so far)."""
    if not SENT:
        pytest.skip("no fuzzing ran in this process (its items ran in other xdist workers)")
    documented = {f"{method.upper()} {path}" for path, methods in schema.raw_schema["paths"].items()
                  for method in methods}
    sent, statuses = _all_counts()
    summary = {"operations": len(documented), "requests": sum(sent.values()),
               "slowest_s": {k: round(v, 3) for k, v in SLOWEST.most_common(3)},
               "requests_to_documented_operations": sum(sent[k] for k in documented),
               "server_errors": sum(c[500] for c in statuses.values()),
               "per_operation": {k: {"requests": n, "statuses": dict(sorted(statuses[k].items()))}
                                 for k, n in sorted(sent.items())},
               "valid_but_refused_by": dict(REFUSED_VALID)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "fuzz.json").write_text(json.dumps(summary, indent=1))
    print(f"\nfuzzed {summary['requests']} requests ({summary['requests_to_documented_operations']} "
          f"to the {summary['operations']} operations, the rest other methods), "
          f"{summary['server_errors']} server errors")
    assert summary["server_errors"] == 0
