"""The limits an audit found open: a huge invalid body, an inspection without a budget or a
stop, hyperparameters that make a step dearer, a loopback address other than 127.0.0.1, the
``angle`` range, the grid cache's size, and a sweep whose fixed hyperparameters are damaged."""

import json
import math
import re

import pytest
from fastapi.testclient import TestClient

from optimlab.landscapes import get as get_landscape
from optimlab.optim.registry import work_weight
from optimlab.web import api, models, server
from optimlab.web.models import MAX_OPTIMIZERS, MAX_WORK
from optimlab.web.server import allowed_hosts, create_app

from .conftest import LOCAL, SECOND_SWEEP, fix_hparams, store_copy

# ----------------------------------------------------------------------------- a huge body


class _Guarded(list):
    """A list whose items past the first ``MAX_OPTIMIZERS + 1`` may not be read."""

    def _check(self, i: int) -> None:
        if i > MAX_OPTIMIZERS:
            raise AssertionError(f"item {i} of {len(self)} read")

    def __iter__(self):
        for i, item in enumerate(super().__iter__()):
            self._check(i)
            yield item

    def __getitem__(self, index):
        if isinstance(index, slice):
            last = max(range(len(self))[index], default=0)
        else:
            last = range(len(self))[index]
        self._check(last)
        return super().__getitem__(index)


def test_the_racers_of_a_refused_body_are_read_no_further_than_a_race_goes():
    """Naming the racers of a 422 reads at most one more item than a race takes, whatever
    the body holds (200000 items took minutes: each numbered by trying every number)."""
    body = {"landscape": "rosenbrock", "optimizers": _Guarded([{"name": "adam"}] * 200_000)}
    names = server._racers(body)
    assert names == ["adam"] + [f"adam #{k}" for k in range(2, MAX_OPTIMIZERS + 2)]
    assert server._where(["body", "optimizers", 150_000, "hparams"], names) == \
        "optimizers[150000].hparams"


def test_repeated_labels_are_numbered_as_before_with_a_counter():
    """:func:`api.numbered` gives what trying ``#2``, ``#3``, ... from the start gave, labels
    that look numbered included."""
    def tried(labels):
        seen, out = set(), []
        for label in labels:
            base, k = label, 2
            while label in seen:
                label, k = f"{base} #{k}", k + 1
            seen.add(label)
            out.append(label)
        return out

    labels = ["a", "a", "a #2", "a", "b", "a #3", "a", "a #2", "a #2", "b", "a"]
    seen, counts = set(), {}
    assert [api.numbered(label, seen, counts) for label in labels] == tried(labels)


def test_a_huge_list_of_racers_is_refused_for_its_length(client):
    answer = client.post("/api/race", json={"landscape": "rosenbrock",
                                            "optimizers": [{"name": "adam"}] * 50_000})
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"] == \
        "optimizers: List should have at most 20 items after validation, not 50000"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_past_the_limit_is_refused_unread(client, chunked):
    body = json.dumps({"landscape": "rosenbrock",
                       "optimizers": [{"name": "adam"}] * 1_048_577}).encode()
    assert len(body) > models.MAX_BODY
    content = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    answer = client.post("/api/race", content=content,
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    payload = answer.json()
    assert payload["detail"][0]["loc"] == ["body"]
    assert payload["message"].startswith("the request body is too long")
    assert f"the limit is {models.MAX_BODY} bytes" in payload["message"]
    assert client.get("/api/limits").json()["max_body"] == models.MAX_BODY


# ----------------------------------------------------------------------------- inspect


def _inspect(optimizer, steps, **more):
    return {"landscape": "rosenbrock", "steps": steps, "optimizer": optimizer, **more}


def test_an_inspection_counts_the_races_work_budget(client, monkeypatch):
    """steps x the optimizer's work weight <= MAX_WORK, as a race of one (L-BFGS at 100
    inner iterations weighs 500: 401 steps are too many, 400 fit)."""
    lbfgs = {"name": "lbfgs", "hparams": {"max_iter": 100}}
    answer = client.post("/api/inspect", json=_inspect(lbfgs, 401))
    assert answer.status_code == 422, answer.text
    message = answer.json()["message"]
    assert message.startswith("steps: the inspection is too big: 401 steps x 1 optimizer comes "
                              "to 200500 optimizer-steps"), message
    assert "lbfgs 500 for up to 100 evaluations a step" in message
    assert f"the limit is {MAX_WORK}" in message
    monkeypatch.setattr(api, "inspect_steps",
                        lambda *a, **k: (_ for _ in ()).throw(ValueError("inspected")))
    answer = client.post("/api/inspect", json=_inspect(lbfgs, 400))
    assert answer.status_code == 422 and "inspected" in answer.json()["message"], answer.text


def test_a_cancelled_control_stops_an_inspection_at_its_next_step():
    control = api.RaceControl()
    control.cancel()
    request = models.InspectRequest(**_inspect({"name": "adam"}, 100))
    with pytest.raises(api.Cancelled):
        api.run_inspect(request, control)
    assert control.evaluations == 0
    counted = api.RaceControl()
    api.run_inspect(models.InspectRequest(**_inspect({"name": "adam"}, 30)), counted)
    assert counted.evaluations > 30


# ----------------------------------------------------------------------------- work weights


def test_history_size_and_ns_steps_weigh_in_the_work():
    assert work_weight("lbfgs", {"max_iter": 100, "history_size": 1000}) == 5000
    assert work_weight("lbfgs", {"history_size": 10}) == work_weight("lbfgs") == 100
    assert work_weight("muon", {"ns_steps": 99}) == pytest.approx(19.8)
    assert work_weight("muon", {"ns_steps": 1}) == work_weight("muon") == 1
    # a wrapper counts its inner optimizer's hyperparameters once, with the inner one
    assert api._work_weight("lookahead", {"inner": "muon", "ns_steps": 99}) == \
        pytest.approx(work_weight("lookahead") * 19.8)
    assert api._work_weight("lookahead", {"inner": "lbfgs", "history_size": 1000}) == \
        work_weight("lookahead") * 1000


@pytest.mark.parametrize("optimizers, steps, says", [
    # 400 steps at 100 inner iterations fitted (500 each); 1000 pairs make them 13x slower
    ([{"name": "lbfgs", "hparams": {"max_iter": 100, "history_size": 1000}}], 400,
     "comes to 2000000 optimizer-steps .*lbfgs 5000 for up to 100 evaluations a step and "
     "history_size 1000\\)"),
    # 20 x 1000 Muon steps fitted (weight 1); 99 Newton-Schulz iterations make them 7x slower
    ([{"name": "muon", "hparams": {"ns_steps": 99}}] * 20, 1000,
     "comes to 396000 optimizer-steps .*muon 19.8 for ns_steps 99, muon #2 19.8"),
])
def test_hyperparameters_that_make_a_step_dearer_count_in_the_budget(client, monkeypatch,
                                                                      optimizers, steps, says):
    monkeypatch.setattr(api, "race", lambda *a, **k: (_ for _ in ()).throw(ValueError("raced")))
    answer = client.post("/api/race", json={"landscape": "rosenbrock", "steps": steps,
                                            "optimizers": optimizers})
    assert answer.status_code == 422, answer.text
    message = answer.json()["message"]
    assert message.startswith("steps: the race is too big"), message
    assert re.search(says, message), message
    inspected = client.post("/api/inspect", json=_inspect(optimizers[0], 41))
    if optimizers[0]["name"] == "lbfgs":  # 41 x 5000 > 200000
        assert inspected.status_code == 422, inspected.text
        assert "the inspection is too big" in inspected.json()["message"]
    else:  # 41 x 19.8 is well within it
        assert inspected.status_code == 200, inspected.text


# ----------------------------------------------------------------------------- hosts


@pytest.mark.parametrize("host, header", [
    ("127.0.0.2", "127.0.0.2:8123"),
    ("127.1.2.3", "127.1.2.3:8123"),
    ("0:0:0:0:0:0:0:1", "[0:0:0:0:0:0:0:1]:8123"),
    ("[0:0:0:0:0:0:0:1]", "[0:0:0:0:0:0:0:1]:8123"),
])
def test_a_server_on_another_loopback_address_answers_its_own_url(monkeypatch, host, header):
    hosts = allowed_hosts(host, 8123)
    assert hosts[0] == header and set(hosts[1:]) == {f"{h}:8123" for h in server.LOOPBACK_HOSTS}
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(app))
    server.serve(host=host, port=8123)
    with TestClient(calls[0], base_url=f"http://{header}") as client:
        assert client.get("/api/limits").status_code == 200
        assert client.get("/api/limits", headers={"Host": "127.0.0.1:8123"}).status_code == 200
        assert client.get("/api/limits", headers={"Host": "evil.example:8123"}).status_code == 400
    assert allowed_hosts("LocalHost", 8000) == allowed_hosts("127.0.0.1", 8000)
    assert allowed_hosts("127.0.0.2", 0)[0] == "127.0.0.2"


# ----------------------------------------------------------------------------- landscape params


def _beyond(value: float, toward: float) -> float:
    return math.nextafter(value, toward) if value else math.copysign(1e-12, toward)


#: Bounds the API sets below what the landscape itself takes, on purpose (see models).
API_CAPS = {("kappa", "maximum"): models.MAX_KAPPA}


def test_the_schema_states_the_landscape_parameters_ranges_the_landscapes_take(client):
    """Each landscape parameter's bounds in the schema are what every landscape that has it
    accepts: its edges (or just inside an open one) build, just beyond them do not (but for
    the API's own caps, which the server refuses)."""
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]["LandscapeParams"]
    checked = 0
    for key, prop in schema["properties"].items():
        rng = next(p for p in prop["anyOf"] if p.get("type") != "null")
        owners = [n for n in models.LANDSCAPES if key in get_landscape(n).params]
        assert owners, key
        for bound, inside, outside in (("minimum", math.inf, -math.inf),
                                       ("exclusiveMinimum", math.inf, -math.inf),
                                       ("maximum", -math.inf, math.inf),
                                       ("exclusiveMaximum", -math.inf, math.inf)):
            if bound not in rng:
                continue
            edge = rng[bound]
            good = _beyond(edge, inside) if bound.startswith("exclusive") else edge
            bad = edge if bound.startswith("exclusive") else _beyond(edge, outside)
            for name in owners:
                assert get_landscape(name, **{key: good}).params[key] == good, (name, key, good)
                if (key, bound) in API_CAPS:
                    assert edge == API_CAPS[key, bound]
                else:
                    with pytest.raises(ValueError):
                        get_landscape(name, **{key: bad})
                answer = client.get(f"/api/landscapes/{name}/grid", params={"n": 10, key: bad})
                assert answer.status_code == 422 and key in answer.json()["message"], answer.text
                assert client.get(f"/api/landscapes/{name}/grid",
                                  params={"n": 10, key: good}).status_code == 200
                checked += 1
    assert checked >= 4  # kappa's two bounds on two landscapes, angle's two at least
    angle = next(p for p in schema["properties"]["angle"]["anyOf"] if p.get("type") != "null")
    assert (angle["minimum"], angle["maximum"]) == (-180, 180)


# ----------------------------------------------------------------------------- grid cache


def test_the_grid_cache_is_bounded_by_bytes(monkeypatch):
    assert api._GRIDS.most == api.GRID_CACHE_BYTES <= 64 * 2**20
    one = len(api.grid_json("quadratic", {"kappa": 1.5}, 50))
    cache = api._ByteCache(3 * one + one // 2)
    monkeypatch.setattr(api, "_GRIDS", cache)
    answers = [api.grid_json("quadratic", {"kappa": k}, 50) for k in (1.5, 2.5, 3.5, 4.5, 5.5)]
    assert cache.size <= cache.most and len(cache) == 3
    assert api.grid_json("quadratic", {"kappa": 5.5}, 50) is answers[-1]  # kept
    assert api.grid_json("quadratic", {"kappa": 1.5}, 50) is not answers[0]  # dropped
    assert cache.size == sum(len(v) for v in cache._items.values()) <= cache.most
    small = api._ByteCache(10)
    small.put("big", b"x" * 11)
    small.put("a", b"x" * 6)
    small.put("b", b"x" * 4)
    assert small.get("big") is None and small.get("a") is not None and small.size == 10
    small.put("c", b"x" * 2)  # b was used least recently
    assert small.get("b") is None and small.get("a") and small.get("c") and small.size == 8


# ----------------------------------------------------------------------------- sweeps


def test_a_sweep_whose_fixed_hyperparameters_are_not_an_object_has_a_damaged_config(tmp_path,
                                                                                      sweep_db):
    db = store_copy(sweep_db[0], tmp_path / "runs.db", SECOND_SWEEP, fix_hparams([1]))
    with TestClient(create_app(db, warm=False), base_url=LOCAL) as fresh:
        rows = fresh.get("/api/sweeps").json()
        assert [r["id"] for r in rows] == [1, 2] and rows[1]["error"] is None
        assert "sweep 1 cannot be shown: its stored config" in rows[0]["error"]
        answer = fresh.get("/api/sweeps/1")
        assert answer.status_code == 503, answer.text
        message = answer.json()["message"]
        assert "its stored config is not a JSON object of a sweep" in message, message
        assert "a run of it is damaged" not in message
        assert fresh.get("/api/sweeps/2").status_code == 200
