"""The playground's JSON API, in process: valid requests, refused ones (422 with a reason),
divergence as an answer, static files from the package only, sweeps from a real store."""

import json
import math
import re

import numpy as np
import pytest

import optimlab
from optimlab.landscapes import TUNE_GRID, race
from optimlab.web import api, models
from optimlab.web import hparams as hp
from optimlab.web.models import MAX_OPTIMIZERS, MAX_POINTS, MAX_STEPS, MAX_WORK, TUNE_RACERS
from optimlab.web.server import STATIC_DIR
from tests.graphs import find_cycle

from .conftest import LOCAL, SECOND_SWEEP, fix_hparams, slice_copy, store_copy


def strict_json(response):
    """The body as JSON, refusing the NaN/Infinity tokens that are not JSON."""
    def refuse(token):
        raise AssertionError(f"{token} in a JSON answer")
    return json.loads(response.text, parse_constant=refuse)


def race_body(**overrides):
    body = {"landscape": "rosenbrock", "start": [-1.5, 2.0], "steps": 200,
            "optimizers": [{"name": "gd", "hparams": {"lr": 1e-3}},
                           {"name": "momentum", "hparams": {"lr": 1e-3}},
                           {"name": "adam", "hparams": {"lr": 0.05}}]}
    return {**body, **overrides}


# ----------------------------------------------------------------------------- catalog


def test_landscapes_are_the_2d_ones_of_the_catalog(client):
    answer = client.get("/api/landscapes")
    assert answer.status_code == 200
    names = [land["name"] for land in answer.json()]
    assert names == [n for n in optimlab.landscapes.names() if optimlab.landscapes.get(n).dim == 2]
    rosenbrock = answer.json()[0]
    assert rosenbrock["domain"] == [[-2.0, 2.0], [-1.0, 3.0]]
    assert rosenbrock["minima"] == [[1.0, 1.0]] and rosenbrock["log_scale"] is True
    quadratic = next(land for land in answer.json() if land["name"] == "quadratic")
    assert quadratic["params"] == {"kappa": 10.0}


def test_grid_is_the_landscape_on_its_domain(client):
    answer = client.get("/api/landscapes/rosenbrock/grid?n=30")
    assert answer.status_code == 200
    grid = strict_json(answer)
    assert len(grid["x"]) == len(grid["y"]) == 30 and len(grid["z"]) == 30
    assert grid["x"][0] == -2.0 and grid["y"][-1] == 3.0 and grid["log"] is True
    # z[i][j] is f(x[j], y[i]), as the library computes it
    f = optimlab.landscapes.get("rosenbrock").f
    import torch
    assert grid["z"][7][3] == pytest.approx(float(f(torch.tensor([grid["x"][3], grid["y"][7]],
                                                                  dtype=torch.float64))))
    # colours on a log scale: log10(f - zmin + offset)
    assert grid["color"][7][3] == pytest.approx(
        math.log10(grid["z"][7][3] - grid["zmin"] + grid["offset"]))
    steep = strict_json(client.get("/api/landscapes/quadratic/grid?n=20&kappa=100"))
    assert steep["params"] == {"kappa": 100.0} and "kappa = 100" in steep["description"]
    assert steep["z"][0][0] == pytest.approx(0.5 * (3.0**2 + 100 * 2.0**2))


def test_a_grid_says_where_a_race_with_its_parameters_starts(client):
    """The grid carries the landscape's start with the parameters asked for (a rotated
    bowl's start turns with its angle), where a race given no start begins: the page shows
    it before any race, not the catalog's start of the default parameters."""
    default = next(land for land in api.landscapes() if land["name"] == "rotated_quadratic")
    for angle, expected in ((45, default["start"]), (0, [-2.5, 1.5]), (90, [-1.5, -2.5])):
        grid = strict_json(client.get(f"/api/landscapes/rotated_quadratic/grid?n=20&angle={angle}"))
        assert grid["start"] == pytest.approx(expected), angle
        raced = client.post("/api/race", json=race_body(
            landscape="rotated_quadratic", params={"angle": angle}, start=None, steps=5)).json()
        assert raced["start"] == pytest.approx(grid["start"]), angle
    assert default["start"] != pytest.approx([-2.5, 1.5])


@pytest.mark.parametrize("url, loc, message", [
    ("/api/landscapes/rosenbrock/grid?n=5", ["query", "n"],
     "query.n: Input should be greater than or equal to 10"),
    ("/api/landscapes/rosenbrock/grid?n=4000", ["query", "n"],
     "query.n: Input should be less than or equal to 400"),
    ("/api/landscapes/rosenbrok/grid", ["path", "name"],
     "path.name: unknown landscape 'rosenbrok'; did you mean rosenbrock?"),
    ("/api/landscapes/quadratic/grid?kappa=-1", ["query", "kappa"],
     "query.kappa: Input should be greater than 0"),
    ("/api/landscapes/quadratic/grid?kappa=abc", ["query", "kappa"],
     "query.kappa: Input should be a valid number"),
    ("/api/landscapes/rosenbrock/grid?kappa=3", ["query", "kappa"],
     "query.kappa: unknown parameter(s) kappa for landscape 'rosenbrock'"),
    (f"/api/landscapes/quadratic/grid?kappa={10**400}", ["query", "kappa"],
     "query.kappa: Input should be a finite number"),
    ("/api/landscapes/quadratic/grid?kappa=1e7", ["query", "kappa"],
     "query.kappa: Input should be less than or equal to 1000000"),
    ("/api/landscapes/quadratic/grid?kappa=nan", ["query", "kappa"],
     "query.kappa: Input should be a finite number"),
    ("/api/landscapes/quadratic/grid?kappa=inf", ["query", "kappa"],
     "query.kappa: Input should be a finite number"),
    (f"/api/landscapes/rosenbrock/grid?n={2**64}", ["query", "n"],
     "query.n: Input should be less than or equal to 400"),
    ("/api/landscapes/rosenbrock/grid?speed=3", ["query", "speed"],
     "query.speed: Extra inputs are not permitted"),
    ("/api/landscapes/rosenbrock_nd/grid", ["path", "name"],
     "path.name: the playground races 2-D landscapes only; 'rosenbrock_nd' has dim=10"),
])
def test_bad_grid_requests_are_refused_with_a_reason(client, url, loc, message):
    answer = client.get(url)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert [d["loc"] for d in body["detail"]] == [loc], body
    assert body["message"].startswith(message), body


def test_optimizers_come_from_the_library_catalog(client):
    answer = client.get("/api/optimizers")
    assert answer.status_code == 200
    rows = {row["name"]: row for row in answer.json()}
    assert list(rows) == [entry.name for entry in optimlab.available(dense=True)]
    adam = rows["adam"]
    info = optimlab.resolve("adam").info
    assert adam["rule_latex"] == info.rule_latex and "\\frac" in adam["rule_latex"]
    assert adam["strengths"] == info.strengths and adam["typical_use"] == info.typical_use
    shown = {h["name"]: h for h in adam["hyperparameters"]}
    assert list(shown) == ["lr", "betas", "eps", "weight_decay", "amsgrad", "cautious"]
    assert shown["lr"]["default"] == info.defaults["lr"] and shown["lr"]["kind"] == "log"
    assert shown["betas"]["default"] == list(info.defaults["betas"])
    assert shown["lr"]["low"] == 0 and shown["lr"]["low_open"] and shown["lr"]["high"] == 10
    # alias presets are the defaults of the alias; wrappers show their inner step size
    momentum = {h["name"]: h["default"] for h in rows["momentum"]["hyperparameters"]}
    assert momentum["momentum"] == 0.9
    assert {"lr", "rho"} <= {h["name"] for h in rows["sam"]["hyperparameters"]}
    assert rows["sam"]["defaults"]["base_optimizer"] == "sgd"
    colors = [row["color"] for row in rows.values()]
    assert len(set(colors)) == len(colors)
    # what a step counts in the work limits, from the capability records
    assert {rows[n]["work_weight"] for n in ("adam", "sgd", "lamb")} == {1}
    assert rows["soap"]["work_weight"] == 10 and rows["lbfgs"]["work_weight"] == 100
    assert all(row["work_weight"] == optimlab.optim.registry.work_weight(name)
               for name, row in rows.items())


def test_limits_and_openapi(client):
    limits = client.get("/api/limits").json()
    assert limits["max_steps"] == MAX_STEPS == 10_000
    assert limits["max_optimizers"] == MAX_OPTIMIZERS == 20
    schema = client.get("/api/openapi.json").json()
    assert {"/api/race", "/api/landscapes", "/api/optimizers", "/api/sweeps",
            "/api/sweeps/{sweep_id}"} <= set(schema["paths"])


# ----------------------------------------------------------------------------- races


def test_a_race_is_the_library_race(client):
    answer = client.post("/api/race", json=race_body())
    assert answer.status_code == 200, answer.text
    result = strict_json(answer)
    assert [r["label"] for r in result["results"]] == ["gd", "momentum", "adam"]
    assert result["start"] == [-1.5, 2.0] and result["stride"] == 1
    assert result["step"] == list(range(201))
    expected = race("rosenbrock", {"gd": {"lr": 1e-3}, "momentum": {"lr": 1e-3},
                                   "adam": {"lr": 0.05}}, start=[-1.5, 2.0], steps=200)
    for r in result["results"]:
        path = expected.paths[r["label"]]
        np.testing.assert_array_equal(r["x"], path[:, 0])
        np.testing.assert_array_equal(r["y"], path[:, 1])
        np.testing.assert_array_equal(r["loss"], expected.losses[r["label"]])
        m = expected.metrics[r["label"]]
        assert r["metrics"] == {"final_loss": m.final_loss, "gap": m.gap,
                                "distance": m.distance, "steps_to_tol": m.steps_to_tol,
                                "diverged": False, "escaped": None, "steps_to_escape": None}
    used = {r["label"]: r["hparams"] for r in result["results"]}
    # every value used is said: alias presets, the chosen ones and the shown defaults
    assert used["momentum"]["momentum"] == 0.9 and used["momentum"]["lr"] == 1e-3
    assert used["adam"] == {"lr": 0.05, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0,
                            "amsgrad": False, "cautious": False}


def test_a_wrapper_given_its_inner_optimizer_says_every_value_used():
    """A wrapper named with its inner optimizer shows that optimizer's defaults (its alias
    preset too) and its own settings, as one left at its default inner optimizer does."""
    result = api.run_race(models.RaceRequest(landscape="rosenbrock", steps=3, optimizers=[
        {"name": "lookahead", "hparams": {"inner": "adam"}},
        {"name": "sam", "hparams": {"base_optimizer": "momentum", "lr": 0.01}}]))
    used = {r["label"]: r["hparams"] for r in result["results"]}
    assert used["lookahead"] == {"inner": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8,
                                 "weight_decay": 0, "amsgrad": False, "cautious": False, "k": 5,
                                 "alpha": 0.5}
    assert used["sam"] == {"base_optimizer": "momentum", "lr": 0.01, "momentum": 0.9,
                           "weight_decay": 0, "nesterov": False, "rho": 0.05,
                           "adaptive": False}


def test_a_tuned_race_says_which_learning_rates_it_chose(client):
    body = race_body(tune=True, steps=100, start=None)
    result = strict_json(client.post("/api/race", json=body))
    for r in result["results"]:
        assert r["hparams"]["lr"] in TUNE_GRID
        assert len(r["tuning"]) == len(TUNE_GRID)
        finals = [t["final_loss"] for t in r["tuning"] if t["final_loss"] is not None]
        assert r["metrics"]["final_loss"] == pytest.approx(min(finals))
    assert result["start"] == [-1.2, 1.0]  # the landscape's own start


def test_a_tuned_pick_on_the_grids_edge_is_extended_or_flagged(client):
    # gradient descent on 0.5 |x|^2: lr 1, the grid's top, lands on the minimum in one step
    body = race_body(landscape="quadratic", params={"kappa": 1}, start=None, tune=True,
                     steps=50, optimizers=[{"name": "gd"}])
    result = strict_json(client.post("/api/race", json=body))
    assert result["extend"] and result["tuned_by"] == (
        "worst loss over the last 25% of steps; a run above its start past halfway is out")
    (gd,) = result["results"]
    assert gd["hparams"]["lr"] == 1.0 and gd["tuning_edge"] is None
    assert gd["tuning_extended"] == pytest.approx([10 ** 0.25, 10 ** 0.5, 10 ** 0.75, 10.0])
    assert len(gd["tuning"]) == len(TUNE_GRID) + 4
    # 20 racers x 400 steps fit the work limit at 17 rates each but not with the 12 an
    # extension may add (TUNE_EXTENSION_RACERS): the edge is flagged instead
    assert models.work(400, 20, True) <= MAX_WORK < models.work(400, 20, True, extension=True)
    body.update(steps=400, optimizers=[{"name": "gd", "label": f"gd {i}"} for i in range(20)])
    result = strict_json(client.post("/api/race", json=body))
    assert not result["extend"]
    for gd in result["results"]:
        assert gd["hparams"]["lr"] == 1.0 and gd["tuning_edge"] == "high"
        assert gd["tuning_extended"] == [] and len(gd["tuning"]) == len(TUNE_GRID)


def test_a_tuned_race_where_every_rate_is_out_says_so(client):
    """From the minimum with noise every run ends above its start, so every rate is out by
    the criterion and the rate shown (the smallest tried) won nothing: the answer said only
    that it sat on the grid's low edge, under "a diverged run never wins"."""
    body = race_body(landscape="quadratic", params={"kappa": 1}, start=[0.0, 0.0], noise=0.5,
                     tune=True, steps=60, optimizers=[{"name": "gd"}])
    result = strict_json(client.post("/api/race", json=body))
    (gd,) = result["results"]
    assert gd["every_rate_out"] is True
    assert gd["hparams"]["lr"] == min(t["lr"] for t in gd["tuning"])


def test_an_untuned_race_says_nothing_of_tuning(client):
    result = strict_json(client.post("/api/race", json=race_body(steps=20)))
    assert result["tuned_by"] == "" and not result["extend"]
    assert all(r["tuning"] is None and r["tuning_edge"] is None and r["tuning_extended"] == []
               and r["every_rate_out"] is False for r in result["results"])


def test_long_races_come_back_sampled(client):
    body = race_body(steps=5000, optimizers=[{"name": "adam", "hparams": {"lr": 0.01}}])
    result = strict_json(client.post("/api/race", json=body))
    assert len(result["step"]) <= MAX_POINTS and result["step"][-1] == 5000
    assert result["stride"] == 3 and len(result["results"][0]["x"]) == len(result["step"])


def test_labels_let_one_optimizer_race_twice(client):
    body = race_body(optimizers=[{"name": "adam", "hparams": {"lr": 0.01}},
                                 {"name": "adam", "label": "fast adam", "hparams": {"lr": 0.3}},
                                 {"name": "adam", "hparams": {"lr": 0.1}}])
    result = strict_json(client.post("/api/race", json=body))
    assert [r["label"] for r in result["results"]] == ["adam", "fast adam", "adam #2"]
    assert [r["hparams"]["lr"] for r in result["results"]] == [0.01, 0.3, 0.1]


def test_diverging_optimizers_are_flagged_not_errors(client):
    names = [e.name for e in optimlab.available(dense=True)][:MAX_OPTIMIZERS]
    body = race_body(steps=60, start=[-2.0, 3.0],
                     optimizers=[{"name": n, "hparams": {"lr": 10.0}} for n in names])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 200, answer.text
    results = {r["label"]: r for r in strict_json(answer)["results"]}
    gd = results["sgd"]
    assert gd["metrics"]["diverged"] is True
    assert gd["metrics"]["final_loss"] is None and None in gd["x"]
    assert sum(r["metrics"]["diverged"] for r in results.values()) >= 5


def test_noise_is_seeded(client):
    body = race_body(noise=5.0, seed=3, steps=50)
    first, second = (strict_json(client.post("/api/race", json=body)) for _ in range(2))
    other = strict_json(client.post("/api/race", json={**body, "seed": 4}))
    assert first["results"] == second["results"]
    assert first["results"][0]["x"] != other["results"][0]["x"]


def _refused(client, body, field, reason=None, raw=None):
    answer = client.post("/api/race", json=body) if raw is None else \
        client.post("/api/race", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    payload = strict_json(answer)
    locs = [[str(p) for p in d["loc"]] for d in payload["detail"]]
    assert any(field in loc for loc in locs), (field, locs)
    assert field in payload["message"]
    if reason:
        assert re.search(reason, payload["message"]), payload["message"]
    return payload


@pytest.mark.parametrize("change, field, reason", [
    ({"steps": MAX_STEPS + 1}, "steps", "10000"),
    ({"steps": 0}, "steps", "greater than or equal to 1"),
    ({"steps": 2.5}, "steps", "integer"),
    ({"optimizers": [{"name": "adam"}] * (MAX_OPTIMIZERS + 1)}, "optimizers", "at most 20"),
    ({"optimizers": []}, "optimizers", "at least 1"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": 0.0}}]}, "lr", "greater than 0"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": -1e-3}}]}, "lr", "greater than 0"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": 50.0}}]}, "lr", "less than or equal to 10"),
    ({"optimizers": [{"name": "adamx"}]}, "name", "unknown optimizer 'adamx'; did you mean"),
    ({"optimizers": [{"name": "adam", "hparams": {"betas": [0.9, 1.5]}}]}, "betas", "less than 1"),
    ({"optimizers": [{"name": "adam", "hparams": {"betas": [0.9]}}]}, "betas", "at least 2 items"),
    ({"optimizers": [{"name": "adam", "hparams": {"eps": -1.0}}]}, "eps", "greater than 0"),
    ({"optimizers": [{"name": "adam", "hparams": {"momentum": 0.9}}]}, "momentum",
     "adam has no hyperparameter 'momentum'"),
    ({"optimizers": [{"name": "adam", "hparams": {"amsgrad": 1}}]}, "amsgrad", "valid boolean"),
    ({"optimizers": [{"name": "adagrad", "hparams": {"lr_decay": -1.0}}]}, "lr_decay",
     "lr_decay"),  # out of range for the optimizer itself: its own message
    ({"optimizers": [{"name": "sam", "hparams": {"base_optimizer": "lookahead"}}]},
     "base_optimizer", "plain optimizer"),
    ({"optimizers": [{"name": "adam", "hparams": {"maximize": True}}]}, "maximize",
     "cannot be set"),
    ({"landscape": "rosenbrok"}, "landscape", "did you mean rosenbrock"),
    ({"landscape": "rosenbrock_nd"}, "landscape", "2-D landscapes only"),
    ({"landscape": "quadratic", "params": {"kappa": -1}}, "params", "kappa"),
    ({"start": [5.0, 0.0]}, "start", r"outside rosenbrock's domain \[-2, 2\]"),
    ({"start": [0.0, 1.0, 2.0]}, "start", "at most 2 items"),
    ({"noise": -1}, "noise", "greater than or equal to 0"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"tune": "yes"}, "tune", "boolean"),
    ({"speed": "fast"}, "speed", "Extra inputs"),
    ({"steps": 10_000, "tune": True, "optimizers": [{"name": "sam"}] * 2}, "steps",
     f"too big.*limit is {MAX_WORK}"),
    # every tuning run is a racer, whatever the optimizer: 2 x 17 x 10000 > 200000
    ({"steps": 10_000, "tune": True, "optimizers": [{"name": "adam"}] * 2}, "steps",
     f"340000 optimizer-steps; the limit is {MAX_WORK}"),
    ({"steps": 589, "tune": True, "optimizers": [{"name": "gd"}] * 20}, "steps",
     f"x {TUNE_RACERS} learning rates tuned comes to 200260"),
    # 3 x 1000 L-BFGS steps, each counting 100 (a line search per member: about a
    # millisecond a step on 2 cores, so 20 x 10000 of them would have run for minutes)
    ({"steps": 1000, "optimizers": [{"name": "lbfgs"}] * 3}, "steps",
     "comes to 300000 optimizer-steps .*counts more than one: lbfgs 100 for up to 20 "
     "evaluations a step, lbfgs #2 100"),
    ({"steps": 10_000, "optimizers": [{"name": "adam"}, {"name": "soap"}] * 2}, "steps",
     "comes to 220000 optimizer-steps .*: soap 10, soap #2 10\\)"),
])
def test_requests_outside_the_limits_get_422_saying_why(client, change, field, reason):
    _refused(client, race_body(**change), field, reason)


@pytest.mark.parametrize("optimizers, where", [
    ([{"name": "gd"}, {"name": "adam"}, {"name": "adam", "hparams": {"lr": -1.0}}],
     "optimizers[adam #2].hparams.lr: Input should be greater than 0"),
    ([{"name": "gd"}, {"name": "adam", "label": "fast adam", "hparams": {"lr": 50.0}}],
     "optimizers[fast adam].hparams.lr: Input should be less than or equal to 10"),
    # refused by the optimizer itself (not the schema): named the same way
    ([{"name": "adam"}, {"name": "rprop", "hparams": {"step_sizes": [1.0, 0.1]}}],
     "optimizers[rprop].hparams.step_sizes: rprop: step_sizes must be"),
])
def test_a_refusal_names_the_optimizer_not_its_position(client, optimizers, where):
    """The message names the racer as the results table would (its label, repeated names
    numbered), not "optimizers.2"; the detail keeps the position for a program."""
    payload = _refused(client, race_body(optimizers=optimizers), "hparams")
    assert payload["message"].startswith(where), payload["message"]
    assert payload["detail"][0]["loc"][:3] == ["body", "optimizers", len(optimizers) - 1]


@pytest.mark.parametrize("optimizer, message", [
    ({"name": "nope"}, "optimizer.name: unknown optimizer 'nope' (the API takes sgd, "),
    ({"name": "adamx"}, "optimizer.name: unknown optimizer 'adamx'; did you mean adamax, adam"),
    ({}, "optimizer.name: each optimizer needs a name"),
    ({"name": "adam", "hparams": {"lr": -1.0}},
     "optimizer[adam].hparams.lr: Input should be greater than 0"),
])
def test_inspect_refuses_an_unknown_optimizer_as_a_race_does(client, optimizer, message):
    answer = client.post("/api/inspect", json={"landscape": "rosenbrock", "optimizer": optimizer})
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"].startswith(message), answer.json()["message"]
    assert "discriminator" not in answer.text and "Input tag" not in answer.text


def _json_error(raw: bytes) -> str:
    """Python's json error for ``raw`` as the API quotes it: ``27: expecting ...``."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as err:
        return f"{err.pos}: {err.msg[0].lower()}{err.msg[1:]}"
    raise AssertionError("valid JSON")


@pytest.mark.parametrize("raw, message", [
    (b'{"landscape": "rosenbrock", "optimizers": [',
     "the request body is not valid JSON (at character 43: expecting value)"),
    # Python's own words, which change between its versions (3.13: "illegal trailing comma
    # before end of object", at character 26)
    (b'{"landscape": "rosenbrock",}', "the request body is not valid JSON (at character "
                                     + _json_error(b'{"landscape": "rosenbrock",}') + ")"),
    (b"", "the request has no body: it must be a JSON object"),
])
def test_a_body_that_is_not_json_is_said_so(client, raw, message):
    answer = client.post("/api/race", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["message"] == message
    assert answer.json()["detail"][0]["loc"] == ["body"]


def test_a_landscape_named_as_a_users_function_is_unknown_and_imports_nothing(client,
                                                                               monkeypatch):
    """optimlab.landscapes.get takes "package.module:function" (a landscape of one's own);
    a request's name must not: "os:abort" would have imported os and called abort, killing
    the server. Every place the API reads a landscape's name goes by the catalog alone."""
    import optimlab._userfunc

    imported = []

    def refuse(module_name):  # recorded: an error raised here would read as a bad module
        imported.append(module_name)
        raise ImportError(f"the playground imported {module_name!r} for a request")

    monkeypatch.setattr(optimlab._userfunc, "import_from_here", refuse)
    for name in ("os:abort", "sys:exit", "os.path:sep"):
        for answer in (client.post("/api/race", json=race_body(landscape=name)),
                       client.get(f"/api/landscapes/{name}/grid"),
                       client.post("/api/inspect", json={"landscape": name, "optimizer": "adam",
                                                         "steps": 3}),
                       client.post("/api/basins", json=basins_body(landscape=name))):
            assert answer.status_code == 422, (name, answer.status_code, answer.text)
            assert f"unknown landscape {name!r}" in answer.json()["message"], answer.text
    assert imported == []


def test_unknown_names_list_only_what_the_api_takes(client):
    for answer in (client.post("/api/race", json=race_body(landscape="nope")),
                   client.get("/api/landscapes/nope/grid")):
        message = answer.json()["message"]
        assert answer.status_code == 422 and "unknown landscape 'nope'" in message
        listed = message.split("(the API takes ")[1].rstrip(")").split(", ")
        assert listed == list(models.LANDSCAPES) and "rosenbrock_nd" not in listed
    message = client.post("/api/race", json=race_body(optimizers=[{"name": "nope"}])).json()[
        "message"]
    listed = message.split("(the API takes ")[1].rstrip(")").split(", ")
    assert listed == list(models.OPTIMIZERS) and "sparseadam" not in listed


@pytest.mark.parametrize("optimizers", [
    [{"name": "x" * 100_000}],
    [{"name": "adam", "hparams": {"x" * 100_000: 1.0}}],
    [{"name": "sam", "hparams": {"base_optimizer": "x" * 100_000}}],
])
def test_a_huge_name_is_not_echoed_back(client, optimizers):
    answer = client.post("/api/race", json=race_body(optimizers=optimizers))
    assert answer.status_code == 422
    assert len(answer.text) < 3000 and "x" * 61 not in answer.text, len(answer.text)
    assert "x" * 50 + "..." in answer.json()["message"]


@pytest.mark.parametrize("raw, loc, message", [
    (b'{"landscape": "rosenbrock", "start": [NaN, 1.0], "optimizers": [{"name": "adam"}]}',
     ["body", "start", 0], "start.0: Input should be a finite number"),
    (b'{"landscape": "rosenbrock", "start": [0, Infinity], "optimizers": [{"name": "adam"}]}',
     ["body", "start", 1], "start.1: Input should be a finite number"),
    (b'{"landscape": "rosenbrock", "optimizers": [{"name": "adam", "hparams": {"lr": NaN}}]}',
     ["body", "optimizers", 0, "hparams", "lr"],
     "optimizers[adam].hparams.lr: Input should be a finite number"),
    (b'{"landscape": "rosenbrock", "optimizers": [', ["body"],
     "the request body is not valid JSON"),
])
def test_non_finite_numbers_and_broken_json_get_422(client, raw, loc, message):
    answer = client.post("/api/race", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    payload = strict_json(answer)
    assert [d["loc"] for d in payload["detail"]] == [loc], payload
    assert payload["message"].startswith(message), payload


#: Integers beyond what a float (or SQLite, or float32) holds, and floats beyond float32.
HUGE, BIG, F32 = 10**400, 2**64, 1e39


@pytest.mark.parametrize("change, field", [
    ({"start": [HUGE, 0.0]}, "start"),
    ({"start": [BIG, 0.0]}, "start"),
    ({"start": [0.0, -HUGE]}, "start"),
    ({"steps": BIG}, "steps"),
    ({"steps": HUGE}, "steps"),
    ({"seed": BIG}, "seed"),
    ({"seed": HUGE}, "seed"),
    ({"noise": HUGE}, "noise"),
    ({"tol": HUGE}, "tol"),
    ({"landscape": "quadratic", "params": {"kappa": HUGE}}, "kappa"),
    ({"landscape": "quadratic", "params": {"kappa": 1e300}}, "kappa"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": HUGE}}]}, "lr"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": BIG}}]}, "lr"),
    ({"optimizers": [{"name": "adam", "hparams": {"betas": [HUGE, 0.9]}}]}, "betas"),
    ({"optimizers": [{"name": "adam", "hparams": {"betas": [None, 0.9]}}]}, "betas"),
    ({"optimizers": [{"name": "adam", "hparams": {"betas": None}}]}, "betas"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": None}}]}, "lr"),
    ({"optimizers": [{"name": "lookahead", "hparams": {"k": BIG}}]}, "k"),
    ({"optimizers": [{"name": "adagrad", "hparams": {"lr_decay": HUGE}}]}, "lr_decay"),
    ({"optimizers": [{"name": "adagrad", "hparams": {"initial_accumulator_value": F32}}]},
     "initial_accumulator_value"),
    ({"optimizers": [{"name": "asgd", "hparams": {"lambd": F32}}]}, "lambd"),
    ({"optimizers": [{"name": "asgd", "hparams": {"t0": HUGE}}]}, "t0"),
    ({"optimizers": [{"name": "muon", "hparams": {"ns_coefficients": [F32, 1.0, 1.0]}}]},
     "ns_coefficients"),
    ({"optimizers": [{"name": "muon", "hparams": {"ns_steps": BIG}}]}, "ns_steps"),
    ({"optimizers": [{"name": "schedulefreeadamw", "hparams": {"warmup_steps": HUGE}}]},
     "warmup_steps"),
    ({"optimizers": [{"name": "rprop", "hparams": {"etas": [None, 1.2]}}]}, "etas"),
    ({"optimizers": [{"name": "rprop", "hparams": {"step_sizes": [HUGE, 1.0]}}]}, "step_sizes"),
    ({"optimizers": [{"name": "sam", "hparams": {"rho": HUGE}}]}, "rho"),
    ({"optimizers": [{"name": "sam", "hparams": {"base_optimizer": "adam", "betas": [0.9, BIG]}}]},
     "betas"),
])
def test_numbers_beyond_a_types_range_get_422_naming_the_field(client, change, field):
    _refused(client, race_body(**change), field)


@pytest.mark.parametrize("raw, field", [
    (b'{"landscape": "rosenbrock", "optimizers": [{"name": "adam", "hparams": {"lr": Infinity}}]}',
     "lr"),
    (b'{"landscape": "rosenbrock", "optimizers": [{"name": "adam", "hparams": {"lr": 1e400}}]}',
     "lr"),
    (b'{"landscape": "rosenbrock", "optimizers": [{"name": "adam", "hparams": {"lr": -Infinity}}]}',
     "lr"),
    (b'{"landscape": "rosenbrock", "noise": NaN, "optimizers": [{"name": "adam"}]}', "noise"),
    (b'{"landscape": "rosenbrock", "tol": 1e999, "optimizers": [{"name": "adam"}]}', "tol"),
    (b'{"landscape": "rosenbrock", "steps": 1e999, "optimizers": [{"name": "adam"}]}', "steps"),
])
def test_infinite_and_nan_hyperparameters_get_422(client, raw, field):
    _refused(client, None, field, raw=raw)


@pytest.mark.parametrize("path, status", [
    (f"/api/sweeps/{2**63}", 422), (f"/api/sweeps/{2**64}", 422), (f"/api/sweeps/{HUGE}", 422),
    (f"/api/sweeps/-{HUGE}", 422), ("/api/sweeps/0", 422), ("/api/sweeps/-1", 422),
    (f"/api/sweeps/{2**63 - 1}", 404), ("/api/sweeps/1e3", 422),
])
def test_ids_beyond_sqlite_are_refused_not_a_500(client, path, status):
    answer = client.get(path)
    assert answer.status_code == status, answer.text
    assert "sweep_id" in answer.json()["message"]


@pytest.mark.parametrize("error", [ValueError, TypeError, OverflowError, ZeroDivisionError])
def test_an_optimizer_refusing_its_hyperparameters_is_a_422(client, monkeypatch, error):
    # whatever the library raises while the request's optimizer is built (as it will for
    # lr=inf, nan or values beyond float32): 422 naming the hyperparameter, never a 500
    def refuse(name, params, **hparams):
        raise error(f"weight_decay {error.__name__} (as the library may say)")

    monkeypatch.setattr(hp, "create", refuse)
    body = race_body(optimizers=[{"name": "adam", "hparams": {"weight_decay": 0.5}}])
    payload = _refused(client, body, "weight_decay", "as the library may say")
    assert payload["detail"][0]["loc"] == ["body", "optimizers", 0, "hparams", "weight_decay"]


@pytest.mark.parametrize("error", [ValueError, TypeError, OverflowError])
def test_an_optimizer_failing_inside_the_race_is_a_422_naming_it(client, monkeypatch, error):
    real = api.race

    def fail(land, optimizers, **kwargs):  # momentum fails however it is raced
        if any(h["name"] == "momentum" for h in optimizers.values()):
            raise error("lr overflows float32 (as the library may say)")
        return real(land, optimizers, **kwargs)

    monkeypatch.setattr(api, "race", fail)
    payload = _refused(client, race_body(), "optimizers", "lr overflows float32")
    assert payload["detail"][0]["loc"] == ["body", "optimizers", 1, "hparams"]
    assert payload["message"].startswith("optimizers[momentum].hparams: momentum failed while "
                                          "racing")


def test_an_overflow_while_racing_is_a_422_naming_the_optimizer(client):
    # ScheduleFreeAdamW takes r=1e30 (within float32) but its step computes (k+1)**r: an
    # OverflowError at step time, answered as the optimizer's, not a 500
    body = race_body(steps=10, optimizers=[{"name": "adam"},
                                          {"name": "schedulefreeadamw", "hparams": {"r": 1e30}}])
    payload = _refused(client, body, "hparams")
    assert payload["detail"][0]["loc"][:4] == ["body", "optimizers", 1, "hparams"]
    assert "schedulefreeadamw" in payload["message"]


def test_the_server_keeps_answering_after_refusals(client):
    for bad in ({"steps": 10**9}, {"landscape": None}, {"optimizers": "adam"}):
        assert client.post("/api/race", json=race_body(**bad)).status_code == 422
    answer = client.post("/api/race", json=race_body(steps=20))
    assert answer.status_code == 200 and len(answer.json()["results"]) == 3


# ----------------------------------------------------------------------------- the schema


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _walk(schema: dict, node, seen=None):
    """Every sub-schema of a request schema, following references once."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref:
            if ref in seen:
                return
            seen.add(ref)
            node = _resolve(schema, node)
        yield node
        for value in node.values():
            yield from _walk(schema, value, seen)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(schema, value, seen)


def _request_schemas(schema: dict):
    for path in schema["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                yield parameter["schema"]
            body = operation.get("requestBody")
            if body:
                yield body["content"]["application/json"]["schema"]


def test_the_schema_bounds_every_number_a_request_may_hold(client):
    schema = client.get("/api/openapi.json").json()
    text = json.dumps(schema)
    # pydantic writes a constraint it cannot express as a bare "ge"/"le": none may be left
    assert not re.search(r'"(ge|le|gt|lt)":', text), re.findall(r'"(?:ge|le|gt|lt)": [^,}]+', text)
    numbers = 0
    for root in _request_schemas(schema):
        for node in _walk(schema, root):
            if node.get("type") in ("number", "integer"):
                numbers += 1
                assert ("minimum" in node or "exclusiveMinimum" in node) and \
                    ("maximum" in node or "exclusiveMaximum" in node), node
            if node.get("type") == "array":
                assert "maxItems" in node, node
            if node.get("type") == "string":
                assert "maxLength" in node or "enum" in node or "const" in node, node
    assert numbers > 100  # every hyperparameter of every optimizer


def test_the_schema_states_the_limits_the_server_enforces(client):
    schema = client.get("/api/openapi.json").json()
    race_request = _resolve(schema, schema["paths"]["/api/race"]["post"]["requestBody"]
                            ["content"]["application/json"]["schema"])
    props = race_request["properties"]
    assert (props["steps"]["minimum"], props["steps"]["maximum"]) == (1, MAX_STEPS)
    assert (props["optimizers"]["minItems"], props["optimizers"]["maxItems"]) == (1, MAX_OPTIMIZERS)
    assert (props["noise"]["minimum"], props["noise"]["maximum"]) == (0, models.MAX_NOISE)
    assert (props["seed"]["minimum"], props["seed"]["maximum"]) == (0, 2**31 - 1)
    assert props["tol"]["exclusiveMinimum"] == 0
    start = props["start"]["anyOf"][0]
    assert start["minItems"] == start["maxItems"] == 2
    assert props["landscape"]["enum"] == list(models.LANDSCAPES)
    # the rule JSON Schema cannot state is in the description, with its numbers
    assert str(MAX_WORK) in race_request["description"] and str(TUNE_RACERS) in \
        race_request["description"] and str(MAX_WORK) in props["steps"]["description"]
    racers = props["optimizers"]["items"]
    assert racers["discriminator"]["propertyName"] == "name"
    assert set(racers["discriminator"]["mapping"]) == {e.name for e in optimlab.available(dense=True)}
    adam = _resolve(schema, _resolve(schema, {"$ref": racers["discriminator"]["mapping"]["adam"]})
                    ["properties"]["hparams"])["properties"]
    assert (adam["lr"]["exclusiveMinimum"], adam["lr"]["maximum"]) == (0, 10)
    assert (adam["betas"]["items"]["minimum"], adam["betas"]["items"]["exclusiveMaximum"]) == (0, 1)
    assert adam["betas"]["minItems"] == adam["betas"]["maxItems"] == 2
    assert (adam["eps"]["exclusiveMinimum"], adam["eps"]["maximum"]) == (0, 1)
    grid = {p["name"]: p["schema"] for p in
            schema["paths"]["/api/landscapes/{name}/grid"]["get"]["parameters"]}
    assert (grid["n"]["minimum"], grid["n"]["maximum"]) == (models.GRID_MIN, models.GRID_MAX)
    assert grid["name"]["enum"] == list(models.LANDSCAPES)
    kappa = grid["kappa"]["anyOf"][0]
    assert (kappa["exclusiveMinimum"], kappa["maximum"]) == (0, models.MAX_KAPPA)
    (sweep_id,) = schema["paths"]["/api/sweeps/{sweep_id}"]["get"]["parameters"]
    assert (sweep_id["schema"]["minimum"], sweep_id["schema"]["maximum"]) == (1, 2**63 - 1)
    limits = client.get("/api/limits").json()
    assert limits["tune_racers"] == TUNE_RACERS == len(TUNE_GRID) and limits["max_work"] == MAX_WORK


#: Values to try against every hyperparameter: bounds, just past them, other types.
PROBES = (0, 1, -1, 0.5, 1.0, 10, 10.5, 0.999, 0.9999, 1e-300, 99, 100, 101, 2**31, HUGE, BIG,
          F32, -F32, 3.4e38, True, None, "adam", "original", "x" * 41, [0.9, 0.999],
          [0.9, 1.0], [None, 1e-3], [1.0, 2.0, 3.0], [0.5], 5.0)


@pytest.mark.parametrize("name", [entry.name for entry in optimlab.available(dense=True)])
def test_the_schema_and_the_check_accept_the_same_hyperparameters(name):
    """What a request's hyperparameter model (the schema) accepts, the playground's own
    check accepts too, and the other way round: the code enforces no bound the schema
    does not state (the optimizer's own checks, run after, are documented as such)."""
    from pydantic import ValidationError

    model = models.HYPERPARAMETER_MODELS[name]
    assert set(model.model_fields) == set(hp.accepted(name))
    for key, ranges in hp.accepted(name).items():
        for value in PROBES:
            try:
                model.model_validate({key: value})
                schema_ok = True
            except ValidationError:
                schema_ok = False
            check_ok = False
            for rng in ranges:
                try:
                    hp._check_one(key, rng, value)
                    check_ok = True
                except hp.HyperparameterError:
                    pass
            assert schema_ok == check_ok, (name, key, value, schema_ok, check_ok)


def test_the_work_budget_counts_every_tuning_run(client, monkeypatch):
    assert models.work(588, 20, True) == 588 * 20 * TUNE_RACERS <= MAX_WORK
    assert models.work(589, 20, True) > MAX_WORK
    # the largest tuned race allowed gets past the budget (to the race, stubbed here: it
    # would take a minute)
    monkeypatch.setattr(api, "race", lambda *a, **k: (_ for _ in ()).throw(ValueError("raced")))
    body = race_body(steps=588, tune=True, optimizers=[{"name": "gd"}] * 20)
    _refused(client, body, "optimizers", "raced")


def test_hyperparameter_check_is_the_optimizers_own():
    assert api.hp.check("momentum", {"lr": 0.1}) == {"lr": 0.1}
    with pytest.raises(ValueError, match="momentum"):
        api.hp.check("sgd", {"momentum": 1.5})  # the playground's range
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        api.hp.check("adagrad", {"initial_accumulator_value": -1.0})  # adagrad's own check


# ----------------------------------------------------------------------------- files


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/static/app.js", "/static/style.css", "/static/vendor/katex/katex.min.js",
                 "/static/vendor/katex/katex.min.css",
                 "/static/vendor/katex/fonts/KaTeX_Main-Regular.woff2"):
        assert client.get(path).status_code == 200, path
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert "javascript" in plotly.headers["content-type"] and b"plotly" in plotly.content[:2000]


#: The page's script modules besides app.js (its entry point), as paths under static/.
_MODULES = sorted(f"js/{p.name}" for p in (STATIC_DIR / "js").glob("*.js"))


def test_the_scripts_are_modules_served_as_javascript(client):
    html = (STATIC_DIR / "index.html").read_text()
    assert '<script type="module" src="/static/app.js">' in html
    assert _MODULES, "no modules under static/js"
    for name in ("app.js", *_MODULES):
        # a browser runs a module only when it comes with a JavaScript MIME type
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert "javascript" in answer.headers["content-type"], (name, answer.headers)
        # each import is relative and names a file that exists (no bare names: no bundler)
        text = (STATIC_DIR / name).read_text()
        for target in re.findall(r"""^import .* from ["']([^"']+)["'];$""", text, re.M):
            assert target.startswith("./"), (name, target)
            assert ((STATIC_DIR / name).parent / target).is_file(), (name, target)


def _module_imports(name: str) -> list[str]:
    """The modules (paths under static/) that module ``name`` imports."""
    text = (STATIC_DIR / name).read_text()
    folder = (STATIC_DIR / name).parent
    return [str(((folder / target).resolve()).relative_to(STATIC_DIR.resolve()))
            for target in re.findall(r"""^import .* from ["']([^"']+)["'];$""", text, re.M)]


def test_the_page_modules_import_each_other_without_a_cycle():
    """The modules stand in layers (grid.js under the map, the loss chart and the basins;
    the map under the race; the controls over them all): a module that must reach one
    above it does so through a DOM event (the map's "start-moved"), not an import."""
    graph = {name: _module_imports(name) for name in ("app.js", *_MODULES)}
    assert graph["js/loss.js"] and graph["js/map.js"]  # the parser reads the imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_page_loads_nothing_from_elsewhere():
    html = (STATIC_DIR / "index.html").read_text()
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert sources and not [s for s in sources if re.match(r"(https?:)?//", s)], sources
    for name in ("index.html", "app.js", "style.css", *_MODULES):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"https?://", text), name
    assert "http" not in (STATIC_DIR / "vendor/katex/katex.min.css").read_text()


@pytest.mark.parametrize("path", [
    "/static/../server.py", "/static/%2e%2e/server.py", "/static/%2E%2E/api.py",
    "/static/..%2fserver.py", "/static/%2e%2e%2fserver.py", "/static/vendor/../../server.py",
    "/static/vendor/katex/%2e%2e/%2e%2e/%2e%2e/server.py", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/missing.js",
])
def test_no_file_outside_the_static_folder_is_served(client, path):
    answer = client.get(path)
    assert answer.status_code == 404, (path, answer.status_code)
    assert "create_app" not in answer.text and "root:" not in answer.text


# ----------------------------------------------------------------------------- sweeps


def test_sweeps_list_the_store(client, sweep_db):
    _, sweep_id = sweep_db
    answer = client.get("/api/sweeps")
    assert answer.status_code == 200
    (sweep,) = answer.json()
    assert sweep["id"] == sweep_id and sweep["task"] == "digits" and sweep["name"] == "web-test"
    assert sweep["optimizers"] == ["sgd", "adam"] and sum(sweep["counts"].values()) == 8


def test_one_sweep_has_curves_and_its_summary(client, sweep_db):
    _, sweep_id = sweep_db
    detail = strict_json(client.get(f"/api/sweeps/{sweep_id}"))
    assert detail["metric"] == "accuracy" and detail["higher_is_better"] is True
    rows = {row["optimizer"]: row for row in detail["summary"]}
    assert set(rows) == {"sgd", "adam"}
    for name, row in rows.items():
        assert row["best_lr"] in (0.05, 50.0) and row["seeds"] == 2
        curve = detail["curves"][name]
        assert curve["lr"] == row["best_lr"] and curve["step"][0] == 0
        assert len(curve["test_metric"]) == len(curve["step"]) == len(curve["train_loss"])
    assert "sgd" in detail["summary_text"] and "best lr" in detail["summary_text"]
    # how the best lr is chosen, for the page to say under its table (not the final metric
    # its chart of final metric vs lr shows)
    from optimlab.bench.analysis import CRITERION
    assert detail["criterion"] == CRITERION and "last 25%" in CRITERION
    assert all(isinstance(row["ci"], float) for row in rows.values())  # two seeds
    assert client.get("/api/sweeps/999").status_code == 404
    assert client.get("/api/sweeps/abc").status_code == 422


def test_one_seed_has_no_spread_to_tell(tmp_path):
    """A sweep of one seed: its confidence interval is null (the page says "(1 seed: no
    interval)"), not 0.0, which would claim a spread measured as none."""
    from fastapi.testclient import TestClient

    from optimlab.bench.store import RunStore
    from optimlab.bench.sweep import SweepSpec, run_sweep
    from optimlab.bench.trainer import TrainConfig
    from optimlab.web.server import create_app

    path = tmp_path / "one-seed.db"
    spec = SweepSpec(task="digits", optimizers=("sgd",), lrs=(0.05,), seeds=1,
                     config=TrainConfig(steps=10, batch_size=64, eval_every=5))
    with RunStore(path) as store:
        sweep_id = run_sweep(spec, store)
    with TestClient(create_app(path, warm=False), base_url=LOCAL) as fresh:
        (row,) = strict_json(fresh.get(f"/api/sweeps/{sweep_id}"))["summary"]
    assert row["seeds"] == 1 and row["mean"] is not None and row["ci"] is None


def test_sweeps_without_a_model_or_name_list_as_null(tmp_path):
    # the tour's store: the MNIST-1D sweeps name their model, digits' uses its default and
    # no sweep has a name; pandas 3 reads those missing texts as NaN, which once made
    # /api/sweeps answer 500 ("Out of range float values are not JSON compliant")
    from fastapi.testclient import TestClient

    from optimlab.bench.store import RunStore
    from optimlab.bench.sweep import SweepSpec
    from optimlab.bench.tasks import get
    from optimlab.bench.trainer import TrainConfig
    from optimlab.web.server import create_app

    path = tmp_path / "tour-runs.db"
    with RunStore(path) as store:
        for task, model in (("mnist1d", "mlp"), ("digits", None)):
            spec = SweepSpec(task=task, optimizers=("sgd",), lrs=(0.1,), seeds=1,
                             config=TrainConfig(steps=2, model=model))
            store.open_sweep(spec.stored_config(get(task)))
    with TestClient(create_app(path, warm=False), base_url=LOCAL) as fresh:
        listed = strict_json(fresh.get("/api/sweeps"))
        assert [(s["task"], s["model"], s["name"]) for s in listed] == [
            ("mnist1d", "mlp", None), ("digits", None, None)]
        for sweep in listed:
            detail = strict_json(fresh.get(f"/api/sweeps/{sweep['id']}"))
            assert detail["sweep"] == sweep


def test_the_reference_is_served_under_the_pages_headers(client):
    index = client.get("/docs/")
    assert index.status_code == 200 and "the optimizers" in index.text
    assert "script-src 'self'" in index.headers["content-security-policy"]
    # every card's link (an alias: its class's page) answers
    for o in client.get("/api/optimizers").json():
        page = client.get(f"/docs/{o['alias_of'] or o['name']}.html")
        assert page.status_code == 200 and o["cls"] in page.text, o["name"]
        assert "<script>" not in page.text  # no inline script: the policy would block it
    assert client.get("/docs/render.js").status_code == 200
    assert client.get("/docs/katex/katex.min.js").status_code == 200
    assert client.get("/docs/nosuch.html").status_code == 404
    assert client.get("/docs/../server.py").status_code == 404


def test_the_playground_starts_without_the_reference_where_it_cannot_write_it(monkeypatch,
                                                                                 capsys):
    from fastapi.testclient import TestClient

    from optimlab.web import server

    def refuse(**_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(server.tempfile, "TemporaryDirectory", refuse)
    with TestClient(server.create_app(warm=False), base_url=LOCAL) as fresh:
        assert fresh.get("/").status_code == 200
        assert fresh.get("/docs/adam.html").status_code == 404
    assert "the optimizer reference is not served" in capsys.readouterr().err


def test_a_missing_store_has_no_sweeps(tmp_path):
    from fastapi.testclient import TestClient

    from optimlab.web.server import create_app

    with TestClient(create_app(tmp_path / "none.db", warm=False), base_url=LOCAL) as fresh:
        assert fresh.get("/api/sweeps").json() == []
        missing = fresh.get("/api/sweeps/1")
        assert missing.status_code == 404 and "no sweep 1" in missing.json()["message"]
        assert str(tmp_path) not in missing.text  # no path of this machine to a client
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("name", [entry.name for entry in optimlab.available(dense=True)])
def test_every_default_lies_inside_the_playgrounds_ranges(name):
    shown = {h["name"]: h["default"] for h in api.hp.exposed(name)}
    assert "lr" in shown, name  # every optimizer, wrappers included, has a step size to set
    assert api.hp.check(name, shown) == {k: tuple(v) if isinstance(v, list) else v
                                         for k, v in shown.items()}


@pytest.mark.parametrize("name", [entry.name for entry in optimlab.available(dense=True)])
def test_every_optimizer_races_in_the_playground(client, name):
    """A playground race with each registry name at the defaults the page shows: an answer,
    a path that moves, and the values it used (diverging is an answer too: ASGD at its
    default rate leaves Rosenbrock within ten steps)."""
    shown = {h["name"]: h["default"] for h in api.hp.exposed(name)}
    body = race_body(steps=30, optimizers=[{"name": name, "hparams": shown}])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 200, answer.text
    answer = strict_json(answer)
    (result,) = answer["results"]
    assert result["name"] == name and result["hparams"]["lr"] == shown["lr"]
    assert len(result["x"]) == len(answer["step"])
    assert result["x"][2] != result["x"][0], "the race did not move"  # ADOPT: 1 step late


def test_an_optimizer_for_sparse_gradients_only_is_not_offered(client):
    """The playground's gradients are dense: SparseAdam is listed nowhere on the page, and a
    request naming it is refused with the names it could use."""
    sparse_only = [e.name for e in optimlab.available() if e.capabilities.sparse_only]
    assert sparse_only  # SparseAdam
    assert not set(sparse_only) & {row["name"] for row in client.get("/api/optimizers").json()}
    answer = client.post("/api/race", json=race_body(
        optimizers=[{"name": sparse_only[0], "hparams": {"lr": 0.01}}]))
    assert answer.status_code == 422, answer.text
    # why, not "'sparseadam' is not a registry name as the API takes it; use 'sparseadam'"
    assert answer.json()["message"] == (
        f"optimizers[0].name: {sparse_only[0]} needs sparse gradients (an embedding's), which "
        f"the playground's landscapes never give, so the playground does not offer it")


@pytest.mark.parametrize("name, key, value", [
    ("prodigy", "growth_rate", 1.05), ("prodigy", "beta3", 0.95),
    ("dadaptadam", "growth_rate", 2.0), ("psgdkron", "pre_conditioner_update_probability", 0.5),
])
def test_numbers_the_optimizer_may_choose_take_a_number_or_null(client, name, key, value):
    """A hyperparameter whose default None lets the optimizer choose is shown as a number
    with an "auto" switch: the page gets its range, and a race takes a number or null."""
    (shown,) = [h for h in api.hp.exposed(name) if h["name"] == key]
    assert shown["nullable"] and shown["default"] is None and shown["kind"] in ("log", "linear")
    assert shown["ui_low"] <= shown["example"] <= shown["ui_high"]
    for given in (value, None):
        body = race_body(steps=20, optimizers=[{"name": name, "hparams": {key: given}}])
        answer = client.post("/api/race", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["hparams"][key] == given
    for bad in ("auto", shown["low"] - 1.0):
        body = race_body(optimizers=[{"name": name, "hparams": {key: bad}}])
        answer = client.post("/api/race", json=body)
        assert answer.status_code == 422 and key in answer.text, answer.text


@pytest.mark.parametrize("name, hparams, key", [
    ("lbfgs", {"max_eval": 50}, "max_eval"),                         # int or None
    ("ademamix", {"t_alpha_beta3": 50.0}, "t_alpha_beta3"),          # float or None
    ("soap", {"shampoo_beta": 0.9}, "shampoo_beta"),
    ("sam", {"base_optimizer": "soap", "shampoo_beta": 0.9}, "shampoo_beta"),
    ("lookahead", {"inner": "ademamix", "t_alpha_beta3": 50.0}, "t_alpha_beta3"),
    ("soap", {"precondition_frequency": 5}, "precondition_frequency"),  # int, default 10
])
def test_numbers_whose_default_is_none_or_whole_take_what_the_optimizer_takes(client, name,
                                                                             hparams, key):
    """A hyperparameter the page does not show takes the numbers its optimizer's own checks
    take (L-BFGS's max_eval whole numbers, ADEMAMix's t_alpha_beta3 any), or null where its
    default is None; not a text, nor a float where the optimizer wants an int."""
    body = race_body(steps=20, optimizers=[{"name": name, "hparams": hparams}])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["hparams"][key] == hparams[key]
    if optimlab.resolve(name).info.defaults.get(key, None) is None and not \
            optimlab.resolve(name).info.wrapper:
        answer = client.post("/api/race", json=race_body(
            steps=20, optimizers=[{"name": name, "hparams": {**hparams, key: None}}]))
        assert answer.status_code == 200, answer.text
    refused = client.post("/api/race", json=race_body(
        optimizers=[{"name": name, "hparams": {**hparams, key: str(hparams[key])}}]))
    assert refused.status_code == 422 and key in refused.json()["message"], refused.text


def _typed_keys() -> list[tuple[str, str, str]]:
    """(optimizer, hyperparameter, kind) for each hyperparameter the schema says is a whole
    number, or a text (a mode's name) where its default is None; wrappers are left out (their
    keys are their inner optimizers')."""
    rows = []
    for entry in optimlab.available(dense=True):
        if entry.info.wrapper:
            continue
        defaults = hp.defaults(entry.name)
        for key, ranges in hp.accepted(entry.name).items():
            for rng in ranges:
                if key in hp.ACCEPTED or rng.kind not in ("text", "int") \
                        or rng.kind == "text" and defaults[key] is not None:
                    continue
                rows.append((entry.name, key, rng.kind))
    return rows


TYPED_KEYS = _typed_keys()


def test_some_hyperparameters_are_typed():
    """The parametrization below is not empty (it would pass by running nothing)."""
    assert TYPED_KEYS, "no optimizer has a whole-number or text hyperparameter to probe"
    assert {kind for _, _, kind in TYPED_KEYS} == {"text", "int"}, TYPED_KEYS


@pytest.mark.parametrize("name, key, kind", TYPED_KEYS)
def test_no_hyperparameter_the_optimizer_takes_a_number_for_is_a_text(name, key, kind):
    """Where the schema says text (a mode's name) for a hyperparameter whose default is None,
    the optimizer's own check refuses a number; where it says a whole number, the optimizer
    refuses a fraction."""
    entry = optimlab.resolve(name)
    for value in (0.5, 1, 2) if kind == "text" else (0.5, 1.5):
        with pytest.raises((ValueError, TypeError)):
            optimlab.create(name, [hp._dummy(entry)], **{key: value})


@pytest.mark.parametrize("optimizer, steps, tune, weight", [
    # L-BFGS at lr 10 with 100 inner iterations: 126 ms a step here, so 2000 steps would run
    # for four minutes; it counts 5 x its default weight (100 evaluations a step, not 20)
    ({"name": "lbfgs", "hparams": {"lr": 10.0, "max_iter": 100}}, 2000, False, 500),
    ({"name": "lbfgs", "hparams": {"max_iter": 100}}, 30, True, 500),
    ({"name": "lbfgs", "hparams": {"max_eval": 125, "line_search_fn": "strong_wolfe"}}, 400,
     False, 625),
])
def test_the_work_budget_counts_lbfgs_inner_iterations(client, optimizer, steps, tune, weight):
    answer = client.post("/api/race", json=race_body(steps=steps, tune=tune,
                                                     optimizers=[optimizer]))
    assert answer.status_code == 422, answer.text
    message = answer.json()["message"]
    assert message.startswith("steps: the race is too big")
    assert re.search(rf"counts more than one: {optimizer['name']} {weight}\b", message), message
    cost = models.work(steps, [weight], tune)
    assert cost > MAX_WORK and f"comes to {cost} optimizer-steps" in message


def test_a_wrapper_around_lbfgs_is_refused_before_its_work_is_counted(client):
    """Lookahead steps its inner optimizer without a closure, which L-BFGS needs: it is
    refused as it is built (it was an internal error while racing)."""
    body = race_body(steps=100, optimizers=[{"name": "lookahead",
                                             "hparams": {"inner": "lbfgs", "max_iter": 100}}])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 422 and "Lookahead cannot wrap LBFGS" in answer.text, answer.text


def test_lbfgs_with_fewer_inner_iterations_counts_less(client, monkeypatch):
    assert api._work_weight("lbfgs", {}) == 100
    assert api._work_weight("lbfgs", {"max_iter": 100}) == 500
    assert api._work_weight("lbfgs", {"max_iter": 100, "max_eval": 40}) == 200
    assert api._work_weight("lbfgs", {"max_iter": 2}) == 10  # never below a member-step's
    # 400 steps of 100 evaluations fit (the race itself stubbed: it takes most of a minute)
    monkeypatch.setattr(api, "race", lambda *a, **k: (_ for _ in ()).throw(ValueError("raced")))
    body = race_body(steps=400, optimizers=[{"name": "lbfgs", "hparams": {"max_iter": 100}}])
    _refused(client, body, "optimizers", "raced")
    answer = client.post("/api/basins", json={
        "landscape": "himmelblau", "grid": 5, "steps": 100,
        "optimizers": [{"name": "lbfgs", "hparams": {"max_iter": 100}}]})
    assert answer.status_code == 422 and "lbfgs 500 for up to 100 evaluations a step" \
        in answer.json()["message"], answer.text


# ----------------------------------------------------------------------------- starts, fan, inspect


def test_more_starts_and_a_fan_come_back_as_each_racers_extra_paths(client):
    body = race_body(steps=60, starts=[[0.5, -0.5]], fan=[0.5, 2.0])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 200, answer.text
    for result in strict_json(answer)["results"]:
        extra = result["extra"]
        # 2 starts x 3 rates (its own and the fan's two), its race path left out
        assert [(e["start"], e["factor"]) for e in extra] == [
            ([-1.5, 2.0], 0.5), ([-1.5, 2.0], 2.0), ([0.5, -0.5], 1.0), ([0.5, -0.5], 0.5),
            ([0.5, -0.5], 2.0)]
        lr = result["hparams"]["lr"]
        for e in extra:
            assert e["lr"] == pytest.approx(lr * e["factor"]) and len(e["x"]) == 61
            alone = race("rosenbrock", {result["name"]: {"lr": e["lr"]}}, start=e["start"],
                         steps=60)
            # a batched run (run_fan) against one run alone: bit-equal here (measured 0, the
            # default, AVX2 and AVX-512 kernels alike); rtol 1e-12 leaves room for a few ulps
            # (1e-16) a step of a kernel that rounds batched and single rows apart, 60 steps
            np.testing.assert_allclose(e["x"], alone.paths[result["name"]][:, 0], rtol=1e-12)
    plain = strict_json(client.post("/api/race", json=race_body(steps=60)))
    assert all(r["extra"] == [] for r in plain["results"])


@pytest.mark.parametrize("overrides, loc, match", [
    ({"starts": [[5.0, 0.0]]}, ["body", "starts", 0], "outside rosenbrock's domain"),
    ({"steps": 10000, "fan": [0.5, 2, 4, 8, 0.25, 0.125]}, ["body", "steps"],
     "with 0 more starts and 6 rates in the fan comes to 210000"),
])
def test_starts_and_fan_outside_the_rules_are_refused(client, overrides, loc, match):
    answer = client.post("/api/race", json=race_body(**overrides))
    assert answer.status_code == 422
    detail, = answer.json()["detail"]
    assert detail["loc"] == loc and match in detail["msg"]


def test_inspect_gives_the_gradient_the_state_and_the_step(client):
    answer = client.post("/api/inspect", json={"landscape": "rosenbrock", "steps": 30,
                                               "optimizer": {"name": "adam",
                                                             "hparams": {"lr": 0.05}}})
    assert answer.status_code == 200, answer.text
    rec = strict_json(answer)
    assert rec["steps"] == 30 and len(rec["x"]) == 31 and len(rec["grad"]) == 30
    assert {(s["name"], s["kind"]) for s in rec["state"]} == {
        ("exp_avg", "direction"), ("exp_avg_sq", "scale"), ("step", "scalar")}
    for t in (0, 29):
        # the update is the same float64 subtraction (after - before), rounded the same
        assert rec["x"][t + 1] - rec["x"][t] == rec["update"][t][0]
    assert rec["hparams"]["lr"] == 0.05 and rec["start"] == [-1.2, 1.0]
    refused = client.post("/api/inspect", json={"landscape": "rosenbrock", "start": [9, 9],
                                                "optimizer": {"name": "adam"}})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "start"]
    bad = client.post("/api/inspect", json={"landscape": "rosenbrock",
                                            "optimizer": {"name": "adam", "hparams": {"lr": -1}}})
    assert bad.status_code == 422 and "lr" in json.dumps(bad.json()["detail"])


# ----------------------------------------------------------------------------- basins


def basins_body(**overrides):
    body = {"landscape": "two_wells", "steps": 150, "grid": 6,
            "optimizers": [{"name": "gd", "hparams": {"lr": 0.1}},
                           {"name": "adam", "hparams": {"lr": 0.05}}]}
    return {**body, **overrides}


def test_basins_class_each_start_by_the_minimum_its_own_race_ends_in(client):
    from optimlab.exhibits.basins import known_minima
    from optimlab.landscapes import get

    answer = client.post("/api/basins", json=basins_body())
    assert answer.status_code == 200, answer.text
    out = strict_json(answer)
    land = get("two_wells")
    minima = known_minima(land)
    assert [m["name"] for m in out["minima"]] == [n for n, _ in minima]
    assert len(out["xs"]) == len(out["ys"]) == 6 and out["steps"] == 150
    (x0, x1), (y0, y1) = land.domain
    assert out["radius"] == pytest.approx(0.05 * min(x1 - x0, y1 - y0))
    for result in out["results"]:
        assert len(result["basin"]) == 36 and set(result["basin"]) <= {-2, -1, 0, 1}
        assert sum(result["shares"].values()) == pytest.approx(1.0)
        # the oracle: a plain race of that optimizer from that start, its end classed by
        # distance (every fifth start, row by row with y outer)
        for k in range(0, 36, 5):
            start = [out["xs"][k % 6], out["ys"][k // 6]]
            alone = race(land, {result["name"]: {"lr": result["hparams"]["lr"]}}, start=start,
                         steps=150)
            end = np.asarray(alone.paths[result["name"]][-1])
            near = [i for i, (_, p) in enumerate(minima)
                    if np.linalg.norm(end - np.asarray(p)) <= out["radius"]]
            assert result["basin"][k] == (near[0] if near else -1), (result["name"], start)
    # each rule has its own map: Adam's sign-like steps end elsewhere from some starts
    gd, adam = out["results"]
    assert gd["basin"] != adam["basin"]


def _luminance(color: str) -> float:
    """WCAG's relative luminance of ``#rrggbb`` (0 black, 1 white)."""
    rgb = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    rgb = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def test_a_basin_cannot_be_mistaken_for_an_optimizer(client):
    """The basins' fills are lighter than every colour of the optimizer palette (whose first
    colours, tab10's, the basins once shared: Himmelblau's first basin was gd's blue)."""
    from optimlab.exhibits.basins import BASIN_COLORS
    from optimlab.optim.palette import COLORS

    answer = client.post("/api/basins", json=basins_body(landscape="himmelblau", grid=2,
                                                         steps=1))
    assert answer.status_code == 200, answer.text
    minima = [m["color"] for m in answer.json()["minima"]]
    assert len(minima) == 4 and minima == list(BASIN_COLORS[:4])
    darkest_basin = min(_luminance(c) for c in BASIN_COLORS)
    assert darkest_basin > max(_luminance(c) for c in COLORS) + 0.03, darkest_basin
    assert not set(BASIN_COLORS) & set(COLORS)
    # the grey of "not settled" and the black of "diverged" are no minimum's
    assert set(answer.json()["colors"].values()).isdisjoint(minima)


@pytest.mark.parametrize("overrides, loc, match", [
    ({"grid": 30, "steps": 2000}, ["body", "steps"], "member-steps; the limit is 500000"),
    # within the limit by count (67,500 member-steps) but not by cost: L-BFGS counts 100
    ({"grid": 15, "steps": 300, "optimizers": [{"name": "lbfgs"}]}, ["body", "steps"],
     "comes to 6750000 member-steps (a step of a rule that runs member by member counts "
     "more than one: lbfgs 100 for up to 20 evaluations a step)"),
    ({"landscape": "saddle"}, ["body", "landscape"], "no minimum"),
    ({"grid": 31}, ["body", "grid"], "30"),
    ({"radius": 0}, ["body", "radius"], "greater than 0"),
    ({"steps": 0}, ["body", "steps"], "1"),
])
def test_basins_outside_the_rules_are_refused(client, overrides, loc, match):
    answer = client.post("/api/basins", json=basins_body(**overrides))
    assert answer.status_code == 422, answer.text
    detail, = answer.json()["detail"]
    assert detail["loc"] == loc and match in detail["msg"], detail


# ----------------------------------------------------------------------------- learning rates


def test_every_landscape_offers_a_rate_for_every_optimizer_with_one(client):
    from optimlab.web.lrs import lr_names

    names = set(lr_names())
    for land in strict_json(client.get("/api/landscapes")):
        missing = names - set(land["lrs"])
        assert not missing, (f"{land['name']} has no playground rate for {sorted(missing)}: "
                             f"run python -m optimlab.web.lrs")
        assert all(v > 0 and math.isfinite(v) for v in land["lrs"].values())



# ----------------------------------------------------------------------------- slices


def test_slices_list_the_files_below_the_folders_and_give_each_whole(client, slice_dir):
    listed = strict_json(client.get("/api/slices"))
    assert [s["name"] for s in listed] == ["broken", "digits"]  # in path order
    broken, good = (s["id"] for s in listed)
    assert "not a slice file" in listed[0]["error"]
    result = slice_dir[1]
    assert listed[1]["error"] is None and listed[1]["task"] == "digits"
    assert listed[1]["optimizers"] == [p.optimizer for p in result.paths]
    detail = strict_json(client.get(f"/api/slices/{good}"))
    assert detail["id"] == good and detail["through"] == list(result.through) and detail["steps"] == 30
    # float64 through JSON (shortest round-trip repr) and back: exact
    np.testing.assert_array_equal(np.asarray(detail["loss"], dtype=float), result.loss)
    for got, path in zip(detail["paths"], result.paths):
        np.testing.assert_array_equal(np.asarray(got["coords"], dtype=float), path.coords)
        assert got["sharpness"] == pytest.approx(path.sharpness)
    assert client.get("/api/slices/3").status_code == 404
    assert client.get(f"/api/slices/{broken}").status_code == 503  # listed, but not a slice


def test_no_slices_folder_means_no_slices(tmp_path):
    from fastapi.testclient import TestClient

    from optimlab.web.server import create_app

    app = create_app(None, warm=False, slices=[tmp_path / "missing"])
    with TestClient(app, base_url=LOCAL) as fresh:
        assert fresh.get("/api/slices").json() == []
        assert fresh.get("/api/slices/1").status_code == 404


def _fresh(db=None, slices=()):
    """A client of a new app over ``db`` and ``slices`` (no warm-up)."""
    from fastapi.testclient import TestClient

    from optimlab.web.server import create_app

    return TestClient(create_app(db, warm=False, slices=list(slices)), base_url=LOCAL)


def _set(path, value):
    """A change for :func:`slice_copy`: the key path ``path`` (a tuple) set to ``value``."""
    def change(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


@pytest.mark.parametrize("key, value, says", [
    (("paths",), [1, 2], "paths[0]"),
    (("paths",), None, "paths"),
    (("xs",), 5, "xs"),
    (("task",), 1, "task"),
    (("loss",), [[1.0]], "loss"),
    (("paths", 0, "coords"), "far", "paths[0].coords"),
    (("interpolation",), {"init -> sgd": {"alpha": 1}}, "interpolation"),
])
def test_a_slice_file_of_wrong_types_is_listed_with_its_error(tmp_path, slice_dir, key, value,
                                                               says):
    """Right keys, wrong types: the list still shows it (with why) and the good slices; its
    detail is a 503 saying which field, never a 500 nor a 200 that breaks the page."""
    root = tmp_path / "slices"
    slice_copy(slice_dir[0], root / "a-bad", _set(key, value))
    slice_copy(slice_dir[0], root / "b-good", lambda data: None)
    with _fresh(slices=[root]) as fresh:
        listed = strict_json(fresh.get("/api/slices"))
        assert [(s["name"], s["error"] is None) for s in listed] == [("a-bad", False),
                                                                     ("b-good", True)]
        assert "not a slice file" in listed[0]["error"] and says in listed[0]["error"]
        bad = fresh.get(f"/api/slices/{listed[0]['id']}")
        assert bad.status_code == 503 and says in bad.json()["message"]
        assert fresh.get(f"/api/slices/{listed[1]['id']}").status_code == 200


def test_a_slices_learning_rates_and_warnings_come_as_the_command_line_says_them(tmp_path,
                                                                                 slice_dir):
    """Each path's lr as ``Path.lr_text`` writes it ("(slice preset)", "(default)"), and the
    slice's notes (a diverged optimizer whose endpoint spans the plane)."""
    result = slice_dir[1]
    first = result.through[0]

    def change(data):
        for p in data["paths"]:
            if p["optimizer"] == first:
                p["diverged"] = True
            if p["optimizer"] == "adam":
                del p["hparams"]["lr"]  # its class's default rate then (here the same number)

    slice_copy(slice_dir[0], tmp_path / "s", change)
    with _fresh(slices=[tmp_path]) as fresh:
        (listed,) = strict_json(fresh.get("/api/slices"))
        detail = strict_json(fresh.get(f"/api/slices/{listed['id']}"))
    texts = {p["optimizer"]: p["lr_text"] for p in detail["paths"]}
    assert texts["sgd"] == "0.1 (slice preset)" and texts["adam"] == "0.003 (default)"
    assert len(detail["notes"]) == 1
    assert f"passes through the endpoint of {first}, which diverged" in detail["notes"][0]


def test_the_schema_lists_a_slices_503(client):
    responses = client.get("/api/openapi.json").json()["paths"]["/api/slices/{slice_id}"]["get"][
        "responses"]
    assert "503" in responses and "404" in responses


@pytest.mark.parametrize("damage, broken, listed", [
    ("UPDATE sweeps SET config = 'not json' WHERE id = 2", 2, True),
    ("UPDATE sweeps SET config = '\"x\"' WHERE id = 2", 2, True),
    ("UPDATE sweeps SET created_at = 'yesterday' WHERE id = 2", 2, True),
    ("UPDATE runs SET summary = '{bad' WHERE id = (SELECT MIN(id) FROM runs)", 1, False),
    ("UPDATE runs SET hparams = '[1]' WHERE id = (SELECT MIN(id) FROM runs)", 1, False),
])
def test_a_damaged_row_of_the_store_is_said_for_its_sweep_alone(tmp_path, sweep_db, damage,
                                                                 broken, listed):
    """One damaged cell: the list still answers (the sweep flagged where its own row is
    damaged), that sweep's detail is a 503 naming it, the other sweep's detail is whole."""
    db = store_copy(sweep_db[0], tmp_path / "runs.db", SECOND_SWEEP, damage)
    with _fresh(db) as fresh:
        rows = strict_json(fresh.get("/api/sweeps"))
        assert [r["id"] for r in rows] == [1, 2]
        flagged = {r["id"] for r in rows if r["error"]}
        assert flagged == ({broken} if listed else set())
        if listed:
            assert f"sweep {broken}" in rows[broken - 1]["error"]
        answer = fresh.get(f"/api/sweeps/{broken}")
        assert answer.status_code == 503 and f"sweep {broken}" in answer.json()["message"]
        assert fresh.get(f"/api/sweeps/{3 - broken}").status_code == 200


def test_a_sweeps_fixed_hyperparameters_are_in_its_labels(tmp_path, sweep_db):
    db = store_copy(sweep_db[0], tmp_path / "runs.db", fix_hparams({"sgd": {"momentum": 0.9}}))
    with _fresh(db) as fresh:
        (row,) = strict_json(fresh.get("/api/sweeps"))
        detail = strict_json(fresh.get("/api/sweeps/1"))
    assert row["optimizers"] == ["sgd", "adam"]
    assert row["labels"] == ["sgd (momentum=0.9)", "adam"]
    assert {r["optimizer"]: r["label"] for r in detail["summary"]} == {
        "sgd": "sgd (momentum=0.9)", "adam": "adam"}
    assert all(c["label"] == {"sgd": "sgd (momentum=0.9)"}.get(n, n)
               for n, c in detail["curves"].items())
    assert "sgd with momentum=0.9" in detail["heading"]


def test_an_unfinished_sweep_has_a_row_per_optimizer_and_says_what_is_left(tmp_path, sweep_db):
    db = store_copy(sweep_db[0], tmp_path / "runs.db",
                    "UPDATE runs SET status = 'pending', summary = NULL WHERE optimizer = 'adam'",
                    "UPDATE runs SET status = 'failed' WHERE id = (SELECT MIN(id) FROM runs "
                    "WHERE optimizer = 'sgd')")
    with _fresh(db) as fresh:
        (row,) = strict_json(fresh.get("/api/sweeps"))
        detail = strict_json(fresh.get("/api/sweeps/1"))
    counts = row["counts"]
    assert counts["pending"] == 4 and counts["failed"] == 1
    assert row["runs"].startswith(f"{counts['finished']}/8 (")
    assert "1 failed" in row["runs"] and row["runs"].endswith("4 to run)")
    rows = {r["optimizer"]: r for r in detail["summary"]}
    assert set(rows) == {"sgd", "adam"}
    adam = rows["adam"]
    assert adam["note"] == "no run ended yet" and adam["mean"] is None
    assert adam["best_lr"] is None and adam["seeds"] == 0 and rows["sgd"]["note"] is None


def test_the_sensitivity_counts_the_seeds_that_finished_at_each_rate(tmp_path, sweep_db):
    """A rate where some seeds diverged keeps the mean of the others, with both counts; one
    where every seed diverged has no mean but is still there."""
    db = store_copy(sweep_db[0], tmp_path / "runs.db",
                    "UPDATE runs SET status = 'diverged' WHERE id = (SELECT MIN(id) FROM runs "
                    "WHERE optimizer = 'adam' AND lr = 0.05)",
                    "UPDATE runs SET status = 'diverged' WHERE optimizer = 'adam' AND lr = 50")
    with _fresh(db) as fresh:
        detail = strict_json(fresh.get("/api/sweeps/1"))
    (adam,) = [r for r in detail["summary"] if r["optimizer"] == "adam"]
    points = {p["lr"]: p for p in adam["sensitivity"]}
    assert set(points) == {0.05, 50.0}
    assert (points[0.05]["finished"], points[0.05]["diverged"], points[0.05]["seeds"]) == (1, 1, 2)
    assert points[0.05]["mean"] is not None
    assert (points[50.0]["finished"], points[50.0]["diverged"]) == (0, 2)
    assert points[50.0]["mean"] is None


#: sweep 1 with one of sgd's runs at lr 50 left to run, adam with no rate where every seed
#: finished, and marked as the sweep that keeps `optimlab advise`'s answer
UNFINISHED_ADVISED = (
    "UPDATE runs SET status = 'diverged' WHERE id = (SELECT MIN(id) FROM runs "
    "WHERE optimizer = 'adam' AND lr = 0.05)",
    "UPDATE runs SET status = 'diverged' WHERE optimizer = 'adam' AND lr = 50",
    "UPDATE runs SET status = 'pending', summary = NULL WHERE id = (SELECT MAX(id) FROM runs "
    "WHERE optimizer = 'sgd' AND lr = 50)",
    "UPDATE sweeps SET config = json_set(config, '$.advisor', json('{\"stage\": \"answer\"}')) "
    "WHERE id = 1")


def _cli_rows(text: str) -> dict[str, list[str]]:
    """The rows of the command line's summary table (``summary_text``) by optimizer."""
    lines = text.split("\n  * ")[0].splitlines()[2:]
    return {cells[1]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)}


def test_a_sweeps_detail_says_the_command_lines_notes_ranks_and_edges(client, sweep_db):
    """The notes under the command line's table come as a list (not only inside
    ``summary_text``), with each row's rank ("=1" shared) and the grid edge its best lr sits
    on, as that table says them."""
    from optimlab.bench.report import summary_notes
    from optimlab.bench.store import RunStore

    path, sweep_id = sweep_db
    detail = strict_json(client.get(f"/api/sweeps/{sweep_id}"))
    with RunStore(path) as store:
        assert detail["notes"] == summary_notes(store, sweep_id)
    assert detail["notes"] and all(f"  * {n}" in detail["summary_text"] for n in detail["notes"])
    cli = _cli_rows(detail["summary_text"])
    for row in detail["summary"]:
        rank, _, lr = cli[row["optimizer"]][:3]
        assert row["rank"] == rank
        flag = {"low": " (bottom of grid)", "high": " (top of grid)", None: ""}[row["edge"]]
        assert lr == f"{row['best_lr']:.3g}{flag}"
    assert any(row["edge"] == "low" for row in detail["summary"])  # 0.05 of (0.05, 50)


def test_an_unfinished_advised_sweep_says_so_and_a_row_without_a_mean_has_no_seeds(tmp_path,
                                                                                    sweep_db):
    """A sweep with a run left to run says so in its notes ("Unfinished: 1 of 8"), an
    advisor's answer says what its table holds; an optimizer with no rate where every seed
    finished has no mean, no rank and seeds 0, as the command line's table says (not the
    count of its runs)."""
    db = store_copy(sweep_db[0], tmp_path / "runs.db", *UNFINISHED_ADVISED)
    with _fresh(db) as fresh:
        detail = strict_json(fresh.get("/api/sweeps/1"))
    notes = detail["notes"]
    assert notes[0].startswith("Unfinished: 1 of 8 runs has not ended")
    assert any(n.startswith("This sweep keeps `optimlab advise`'s answer") for n in notes)
    assert any(n.startswith("adam: no rate where every seed finished") for n in notes)
    rows = {r["optimizer"]: r for r in detail["summary"]}
    adam = rows["adam"]
    assert adam["mean"] is None and adam["best_lr"] is None and adam["rank"] is None
    assert adam["seeds"] == 0 == int(_cli_rows(detail["summary_text"])["adam"][4])
    assert adam["diverged"] == 3 and adam["edge"] is None
    assert rows["sgd"]["rank"] == "1" and rows["sgd"]["seeds"] == 2


@pytest.mark.parametrize("name", ["saddle", "monkey_saddle"])
def test_a_race_on_a_saddle_says_whether_and_when_each_run_escaped(client, name):
    """A landscape without a minimum has no distance to one nor steps to reach it: the
    answer says, as the library's race does, whether each run escaped the saddle and at
    which step; on a landscape with a minimum both are null."""
    optimizers = [{"name": "gd", "hparams": {"lr": 0.01}}, {"name": "adam", "hparams": {"lr": 0.1}}]
    body = race_body(landscape=name, start=None, steps=200, optimizers=optimizers)
    result = strict_json(client.post("/api/race", json=body))
    expected = race(name, {o["name"]: {"name": o["name"], **o["hparams"]} for o in optimizers},
                    steps=200).metrics
    for r in result["results"]:
        m, want = r["metrics"], expected[r["label"]]
        assert m["distance"] is None and m["steps_to_tol"] is None
        assert m["escaped"] is want.escaped and m["steps_to_escape"] == want.steps_to_escape
    assert {r["label"]: r["metrics"]["escaped"] for r in result["results"]} == {
        "gd": False, "adam": True}
    assert result["results"][1]["metrics"]["steps_to_escape"] > 0
    bowl = strict_json(client.post("/api/race", json=race_body(optimizers=optimizers[:1])))
    metrics = bowl["results"][0]["metrics"]
    assert metrics["escaped"] is None and metrics["steps_to_escape"] is None


def test_a_fan_of_the_races_own_rate_runs_nothing_more(client, monkeypatch):
    """`fan: [1.0]` asked for the race's own path again: the work bound does not count it,
    yet the whole race was run a second time (and nothing of it returned)."""
    from optimlab.web import api

    calls = []
    monkeypatch.setattr(api, "run_fan", lambda *a, **k: calls.append(1) or [])
    answer = client.post("/api/race", json=race_body(steps=20, fan=[1.0, 1.0]))
    assert answer.status_code == 200, answer.text
    assert calls == [] and all(r["extra"] == [] for r in strict_json(answer)["results"])


def test_a_muon_coefficient_bfloat16_cannot_hold_is_refused_not_a_server_error(client):
    """The Newton-Schulz iteration runs in bfloat16: a coefficient above its largest value
    was a 500 wherever Muon runs batched (a fan, tuning, basins)."""
    body = race_body(steps=6, starts=[[0.0, 0.0]], optimizers=[
        {"name": "muon", "hparams": {"ns_coefficients": [3.4e38, 3.4e38, 3.4e38]}}])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 422, answer.text
    assert "ns_coefficients[0] must be in" in answer.text


def test_an_extra_paths_diverged_flag_is_the_races_own_rule(client):
    """An extra start at the race's own start repeats its path: a run that ends far above
    where it began (adam at lr 10 on Rosenbrock) is diverged in both, where the extra path
    counted only non-finite values."""
    body = race_body(steps=200, start=[-1.2, 1.0], starts=[[-1.2, 1.0]],
                     optimizers=[{"name": "adam", "hparams": {"lr": 10.0}}])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 200, answer.text
    result, = strict_json(answer)["results"]
    extra, = result["extra"]
    assert extra["loss"] == result["loss"]
    assert result["metrics"]["diverged"] is True and extra["diverged"] is True


# ----------------------------------------------------------------------------- sweep and slice ids


def test_a_sweeps_summary_gives_the_confidence_interval_the_command_line_shows(client, sweep_db):
    """Each summary row's ``ci`` is the half-width of the 95% interval the command line's
    table shows beside the mean (its note says so), not the standard deviation."""
    from optimlab.bench.analysis import CONFIDENCE, summarize
    from optimlab.bench.report import mean_text, resolve_metric
    from optimlab.bench.store import RunStore
    from optimlab.bench.sweep import run_records

    path, sweep_id = sweep_db
    detail = strict_json(client.get(f"/api/sweeps/{sweep_id}"))
    assert detail["confidence"] == CONFIDENCE
    with RunStore(path) as store:
        _, higher = resolve_metric(store, sweep_id)
        records = [r for r in run_records(store, sweep_id) if r["status"] != "pending"]
        want = {s.optimizer: s for s in summarize(records, higher)}
    cli = _cli_rows(detail["summary_text"])
    for row in detail["summary"]:
        assert "std" not in row
        assert row["ci"] == pytest.approx(want[row["optimizer"]].ci)
        assert cli[row["optimizer"]][3] == mean_text(row["mean"], row["ci"], row["seeds"],
                                                     bounds=detail["metric_range"])
    # an accuracy's interval past 1 is said clipped, and the page is given the range to
    # say it so
    assert detail["metric_range"] == [0.0, 1.0]
    assert any("(clipped: " in cli[row["optimizer"]][3] for row in detail["summary"])


@pytest.fixture(scope="module")
def ranked_db(tmp_path_factory):
    """A sweep where adam is clearly better than sgd (one small rate, three seeds), sgd
    listed first in its config (a few seconds)."""
    from optimlab.bench.store import RunStore
    from optimlab.bench.sweep import SweepSpec, run_sweep
    from optimlab.bench.trainer import TrainConfig

    path = tmp_path_factory.mktemp("ranked") / "runs.db"
    spec = SweepSpec(task="digits", optimizers=("sgd", "adam"), lrs=(0.003,), seeds=3,
                     config=TrainConfig(steps=20, batch_size=64, eval_every=5))
    with RunStore(path) as store:
        run_sweep(spec, store)
    return path


def test_a_sweeps_summary_rows_come_in_rank_order(ranked_db):
    """Rank 1 first, as the command line's table lists them (the rows were in the order of
    the stored runs: rank 2 above rank 1); an optimizer without a rank comes last."""
    with _fresh(ranked_db) as fresh:
        detail = strict_json(fresh.get("/api/sweeps/1"))
    rows = [(r["optimizer"], r["rank"]) for r in detail["summary"]]
    assert rows == [("adam", "1"), ("sgd", "2")], rows
    assert [r[0] for r in rows] == list(_cli_rows(detail["summary_text"]))
    # sgd without a rate where every seed finished: no rank, last
    db = store_copy(ranked_db, ranked_db.with_name("unranked.db"),
                    "UPDATE runs SET status = 'diverged' WHERE optimizer = 'adam'")
    with _fresh(db) as fresh:
        summary = strict_json(fresh.get("/api/sweeps/1"))["summary"]
    assert [(r["optimizer"], r["rank"]) for r in summary] == [("sgd", "1"), ("adam", None)]


def test_a_slices_id_stays_when_other_slices_are_added(tmp_path, slice_dir):
    """A slice's id (a link's ``slice=``) names the same file after a slice folder that
    sorts before it is added; a damaged file keeps an id of its own, listed with its error,
    its detail 503; an id no file has is 404."""
    root = tmp_path / "slices"
    slice_copy(slice_dir[0], root / "m-good", lambda data: None)
    with _fresh(slices=[root]) as fresh:
        (before,) = strict_json(fresh.get("/api/slices"))
    slice_copy(slice_dir[0], root / "a-first", lambda data: None)
    (root / "b-broken").mkdir()
    (root / "b-broken" / "slice.json").write_text("{\"task\": 1}")
    with _fresh(slices=[root]) as fresh:
        listed = strict_json(fresh.get("/api/slices"))
        assert [s["name"] for s in listed] == ["a-first", "b-broken", "m-good"]
        ids = {s["name"]: s["id"] for s in listed}
        assert ids["m-good"] == before["id"] and len(set(ids.values())) == 3
        detail = strict_json(fresh.get(f"/api/slices/{before['id']}"))
        assert detail["name"] == "m-good" and detail["id"] == before["id"]
        assert "not a slice file" in listed[1]["error"]
        assert fresh.get(f"/api/slices/{ids['b-broken']}").status_code == 503
        missing = next(i for i in range(1, 10) if i not in ids.values())
        assert fresh.get(f"/api/slices/{missing}").status_code == 404
    # the same slices folder served again: the same ids
    with _fresh(slices=[root]) as fresh:
        assert {s["name"]: s["id"] for s in strict_json(fresh.get("/api/slices"))} == ids


def test_a_slices_written_time_is_utc(client, slice_dir):
    """When a slice file was written, as ISO 8601 with its zone (UTC), like a sweep's
    ``created_at``: not a bare local time."""
    from datetime import datetime, timedelta

    listed = strict_json(client.get("/api/slices"))
    good = next(s for s in listed if s["name"] == "digits")
    when = datetime.fromisoformat(good["modified"])
    assert when.utcoffset() == timedelta(0)
    mtime = (slice_dir[0] / "runs" / "digits" / "slice.json").stat().st_mtime
    assert abs(when.timestamp() - mtime) < 1


def test_a_stopped_sweep_flags_no_edge_its_grid_has_not_reached(tmp_path):
    """The Runs tab's summary judged the grid's edge by the rates that had ended, as the
    report did: a sweep stopped before its top rate 0.1 ran called its best, 0.01, the top
    of its grid. It judges by the whole grid now, as the report and the table beside it do;
    the same sweep ended flags 0.1."""
    from fastapi.testclient import TestClient

    from optimlab.bench.store import RunStore
    from optimlab.web.server import create_app
    from tests.bench.test_profile_and_edges import _sweep_runs

    ended = {(lr, s): v for lr, v in ((0.001, 0.5), (0.01, 0.86), (0.1, 0.9)) for s in range(2)}
    for runs, best, edge in (({(0.001, 0): 0.5, (0.001, 1): 0.5, (0.01, 0): 0.86}, 0.01, None),
                             (ended, 0.1, "high")):
        path = tmp_path / f"runs-{len(runs)}.db"
        with RunStore(path) as store:
            sweep = _sweep_runs(store, runs)
        with TestClient(create_app(path, warm=False), base_url=LOCAL) as client:
            (row,) = client.get(f"/api/sweeps/{sweep}").json()["summary"]
        assert (row["best_lr"], row["edge"]) == (best, edge)


#: A store whose ``sweeps`` is a view over a recursive query that never ends (the real table
#: renamed away): reading it would spin a worker thread for ever.
ENDLESS_SWEEPS = (
    "ALTER TABLE sweeps RENAME TO sweeps_real",
    "CREATE VIEW sweeps AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT 1 AS id, 'k' AS key, 'n' AS name, 't' AS task, 'm' AS model, '{}' AS config, "
    "'2026-01-01' AS created_at, NULL AS environment FROM c WHERE x < 0")


def test_a_store_whose_tables_are_views_is_refused(tmp_path, sweep_db):
    """A view where the store has a table is refused at once (503, naming it)."""
    db = store_copy(sweep_db[0], tmp_path / "runs.db", *ENDLESS_SWEEPS)
    with _fresh(db) as fresh:
        for path in ("/api/sweeps", "/api/sweeps/1"):
            answer = fresh.get(path)
            assert answer.status_code == 503, path
            message = answer.json()["message"]
            assert "the run store cannot be read" in message and "sweeps is a view" in message
            assert str(tmp_path) not in message


def test_a_store_query_past_the_deadline_is_stopped_with_a_503(tmp_path, sweep_db, monkeypatch):
    """A query still running after STORE_DEADLINE_S is interrupted: 503 saying so (here the
    view check is off, so that the endless view is queried)."""
    monkeypatch.setattr(api, "STORE_TABLES", ())
    monkeypatch.setattr(api, "STORE_DEADLINE_S", 0.2)
    db = store_copy(sweep_db[0], tmp_path / "runs.db", *ENDLESS_SWEEPS)
    with _fresh(db) as fresh:
        for path in ("/api/sweeps", "/api/sweeps/1"):
            answer = fresh.get(path)
            assert answer.status_code == 503, path
            message = answer.json()["message"]
            assert "the run store cannot be read" in message and "took longer than 0.2 s" in message
        assert fresh.get("/api/limits").status_code == 200


def test_a_linked_slice_is_named_below_its_folder_and_never_followed_out_of_it(tmp_path,
                                                                                slice_dir):
    """A ``slice.json`` that is a link: one leading out of the slices folder is not shown
    (nor its target's folder name); one inside is named after where the link lies, not
    after the folder its target lies in."""
    root, outside = tmp_path / "slices", tmp_path / "secret" / "etc"
    target = slice_copy(slice_dir[0], outside, lambda data: None)
    deep = slice_copy(slice_dir[0], root / "a" / "b" / "c" / "hidden", lambda data: None)
    slice_copy(slice_dir[0], root / "good", lambda data: None)
    for name, to in (("escape", target), ("shown", deep)):
        (root / name).mkdir()
        try:
            (root / name / "slice.json").symlink_to(to)
        except OSError:  # pragma: no cover - no symlinks here
            pytest.skip("this file system has no symbolic links")
    (root / "dir-link").symlink_to(outside, target_is_directory=True)
    with _fresh(slices=[root]) as fresh:
        listed = strict_json(fresh.get("/api/slices"))
        assert sorted(s["name"] for s in listed) == ["good", "shown"]
        assert all(s["error"] is None for s in listed)
        for row in listed:
            detail = fresh.get(f"/api/slices/{row['id']}")
            assert detail.status_code == 200 and detail.json()["name"] == row["name"]
        assert "etc" not in fresh.get("/api/slices").text


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {},
                                     {"Content-Type": "application/x-www-form-urlencoded"}])
def test_a_json_body_not_sent_as_json_is_refused_saying_how_to_send_it(client, headers):
    """A cross-site form may post text/plain: the body is not read as JSON (422), and the
    message says to send it as application/json, not that it is no JSON object."""
    answer = client.post("/api/race", content=json.dumps(race_body()).encode(), headers=headers)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body"]
    assert "Content-Type: application/json" in answer.json()["message"]
    # a JSON body that is no object still says just that
    answer = client.post("/api/race", json=[1, 2])
    assert answer.status_code == 422
    assert answer.json()["message"] == "the request body must be a JSON object"


@pytest.mark.parametrize("raw, says", [
    (b'{"landscape": "rosenbrock", "steps": ' + b"1" * 5000 + b"}", "a number too long"),
    # deeper than any Python's json takes (3.13's takes 3,000 levels, 3.11's not)
    (b'{"landscape": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
])
def test_json_too_deep_or_with_a_number_too_long_is_a_422_saying_so(client, raw, says):
    answer = client.post("/api/race", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    payload = strict_json(answer)
    assert payload["detail"][0]["loc"] == ["body"] and says in payload["message"]
    assert "not valid JSON" in payload["message"]


def test_races_past_the_limit_wait_then_get_a_503_and_gets_still_answer(monkeypatch):
    """At most MAX_RACES races at once, on a thread limiter of their own: one more waits
    RACE_WAIT_S, then gets 503 saying the playground is busy; the GET endpoints still answer
    with AnyIO's default thread pool cut to one thread (which a race would otherwise hold)."""
    import threading

    import anyio.to_thread

    from optimlab.web import server

    monkeypatch.setattr(server, "MAX_RACES", 1)
    monkeypatch.setattr(server, "RACE_WAIT_S", 0.05)
    started, release = threading.Event(), threading.Event()

    def slow(body, control):  # a race that holds its slot until released
        started.set()
        release.wait(60)
        return {"fake": True}

    monkeypatch.setattr(api, "run_race", slow)
    with _fresh() as fresh:
        fresh.portal.call(lambda: setattr(anyio.to_thread.current_default_thread_limiter(),
                                          "total_tokens", 1))
        answers = {}

        def ask(name, method, *args, **kwargs):
            answers[name] = getattr(fresh, method)(*args, **kwargs)

        first = threading.Thread(target=ask, args=("first", "post", "/api/race"),
                                 kwargs={"json": race_body()})
        first.start()
        try:
            assert started.wait(60), "the fake race never started"
            for path in ("/api/race", "/api/basins", "/api/inspect"):
                body = {"/api/race": race_body(), "/api/basins": basins_body(),
                        "/api/inspect": {"landscape": "rosenbrock", "optimizer": {"name": "adam"}}}[path]
                busy = fresh.post(path, json=body)
                assert busy.status_code == 503, (path, busy.text)
                assert busy.json()["message"].startswith("the playground is busy: 1 race running")
                assert busy.headers["retry-after"] == "1"
            for path in ("/api/limits", "/api/landscapes"):
                getter = threading.Thread(target=ask, args=(path, "get", path))
                getter.start()
                getter.join(60)
                assert path in answers and answers[path].status_code == 200, path
        finally:
            release.set()
            first.join(60)
        assert answers["first"].status_code == 200 and answers["first"].json() == {"fake": True}
        assert fresh.post("/api/race", json=race_body()).status_code == 200  # its slot is free


def test_a_body_that_does_not_come_in_time_gets_408(monkeypatch):
    """A client that sends a Content-Length and then nothing (or trickles the body) is
    answered 408 once BODY_TIMEOUT_S have passed, not held for ever."""
    import asyncio

    from optimlab.web import server

    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.05)
    app = server.create_app(None, warm=False)
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
             "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/api/race",
             "raw_path": b"/api/race", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                         (b"content-length", b"100")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    sent = []

    calls = iter(range(2))

    async def receive():  # two parts of the body, then nothing more
        if next(calls, None) is not None:
            return {"type": "http.request", "body": b'{"landscape": ', "more_body": True}
        await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert "did not come within 0.05 s" in body["message"] and body["detail"][0]["loc"] == ["body"]


def test_a_slice_in_a_hidden_folder_is_not_listed(tmp_path, slice_dir):
    """A tour builds in ``.tour-new`` (hidden) until it completes: its slice is listed once
    the tour has moved it into ``slice/``, not before."""
    root = tmp_path / "optimlab-tour"
    slice_copy(slice_dir[0], root / ".tour-new" / "slice", lambda data: None)
    with _fresh(slices=[root]) as fresh:
        assert strict_json(fresh.get("/api/slices")) == []
    slice_copy(slice_dir[0], root / "slice", lambda data: None)
    with _fresh(slices=[root]) as fresh:
        assert [s["name"] for s in strict_json(fresh.get("/api/slices"))] == ["slice"]
