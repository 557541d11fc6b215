"""The playground's JSON API, in process: valid requests, refused ones (422 with a reason),
divergence as an answer, static files from the package only, sweeps from a real store."""

import json
import math
import re

import numpy as np
import pytest

import optimlab
from optimlab.landscapes import TUNE_GRID, race
from optimlab.web import api
from optimlab.web.models import MAX_OPTIMIZERS, MAX_POINTS, MAX_STEPS, MAX_WORK
from optimlab.web.server import STATIC_DIR


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


@pytest.mark.parametrize("url, field", [
    ("/api/landscapes/rosenbrock/grid?n=5", "n"),
    ("/api/landscapes/rosenbrock/grid?n=4000", "n"),
    ("/api/landscapes/rosenbrok/grid", "landscape"),
    ("/api/landscapes/quadratic/grid?kappa=-1", "params"),
    ("/api/landscapes/quadratic/grid?kappa=abc", "kappa"),
    ("/api/landscapes/rosenbrock/grid?kappa=3", "params"),
    ("/api/landscapes/rosenbrock_nd/grid", "landscape"),
])
def test_bad_grid_requests_are_refused_with_a_reason(client, url, field):
    answer = client.get(url)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert field in json.dumps(body["detail"][0]["loc"]) or field in body["message"]
    assert body["message"]


def test_optimizers_come_from_the_library_catalog(client):
    answer = client.get("/api/optimizers")
    assert answer.status_code == 200
    rows = {row["name"]: row for row in answer.json()}
    assert list(rows) == [entry.name for entry in optimlab.available()]
    adam = rows["adam"]
    info = optimlab.resolve("adam").info
    assert adam["rule_latex"] == info.rule_latex and "\\frac" in adam["rule_latex"]
    assert adam["strengths"] == info.strengths and adam["typical_use"] == info.typical_use
    shown = {h["name"]: h for h in adam["hyperparameters"]}
    assert list(shown) == ["lr", "betas", "eps", "weight_decay", "amsgrad"]
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
                                "diverged": False}
    used = {r["label"]: r["hparams"] for r in result["results"]}
    # every value used is said: alias presets, the chosen ones and the shown defaults
    assert used["momentum"]["momentum"] == 0.9 and used["momentum"]["lr"] == 1e-3
    assert used["adam"] == {"lr": 0.05, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0,
                            "amsgrad": False}


def test_a_tuned_race_says_which_learning_rates_it_chose(client):
    body = race_body(tune=True, steps=100, start=None)
    result = strict_json(client.post("/api/race", json=body))
    for r in result["results"]:
        assert r["hparams"]["lr"] in TUNE_GRID
        assert len(r["tuning"]) == len(TUNE_GRID)
        finals = [t["final_loss"] for t in r["tuning"] if t["final_loss"] is not None]
        assert r["metrics"]["final_loss"] == pytest.approx(min(finals))
    assert result["start"] == [-1.2, 1.0]  # the landscape's own start


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
    names = [e.name for e in optimlab.available()][:MAX_OPTIMIZERS]
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
    ({"optimizers": [{"name": "adam", "hparams": {"lr": 0.0}}]}, "lr", "lr must be > 0"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": -1e-3}}]}, "lr", "lr must be > 0"),
    ({"optimizers": [{"name": "adam", "hparams": {"lr": 50.0}}]}, "lr", "<= 10"),
    ({"optimizers": [{"name": "adamx"}]}, "name", "unknown optimizer 'adamx'; did you mean"),
    ({"optimizers": [{"name": "adam", "hparams": {"betas": [0.9, 1.5]}}]}, "betas", "< 1"),
    ({"optimizers": [{"name": "adam", "hparams": {"betas": [0.9]}}]}, "betas", "two numbers"),
    ({"optimizers": [{"name": "adam", "hparams": {"eps": -1.0}}]}, "eps", "eps must be > 0"),
    ({"optimizers": [{"name": "adam", "hparams": {"momentum": 0.9}}]}, "momentum",
     "adam has no hyperparameter 'momentum'"),
    ({"optimizers": [{"name": "adam", "hparams": {"amsgrad": 1}}]}, "amsgrad", "true or false"),
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
    ({"start": [0.0, 1.0, 2.0]}, "start", "two numbers"),
    ({"noise": -1}, "noise", "greater than or equal to 0"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"tune": "yes"}, "tune", "boolean"),
    ({"speed": "fast"}, "speed", "Extra inputs"),
    ({"steps": 10_000, "tune": True, "optimizers": [{"name": "sam"}] * 2}, "steps",
     f"too big.*limit is {MAX_WORK}"),
])
def test_requests_outside_the_limits_get_422_saying_why(client, change, field, reason):
    _refused(client, race_body(**change), field, reason)


@pytest.mark.parametrize("raw, field", [
    (b'{"landscape": "rosenbrock", "start": [NaN, 1.0], "optimizers": [{"name": "adam"}]}',
     "start"),
    (b'{"landscape": "rosenbrock", "start": [0, Infinity], "optimizers": [{"name": "adam"}]}',
     "start"),
    (b'{"landscape": "rosenbrock", "optimizers": [{"name": "adam", "hparams": {"lr": NaN}}]}',
     "lr"),
    (b'{"landscape": "rosenbrock", "optimizers": [', "body"),
])
def test_non_finite_numbers_and_broken_json_get_422(client, raw, field):
    answer = client.post("/api/race", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    payload = strict_json(answer)
    assert field in json.dumps(payload["detail"]) and payload["message"]


def test_the_server_keeps_answering_after_refusals(client):
    for bad in ({"steps": 10**9}, {"landscape": None}, {"optimizers": "adam"}):
        assert client.post("/api/race", json=race_body(**bad)).status_code == 422
    answer = client.post("/api/race", json=race_body(steps=20))
    assert answer.status_code == 200 and len(answer.json()["results"]) == 3


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
    assert client.get("/api/sweeps/999").status_code == 404
    assert client.get("/api/sweeps/abc").status_code == 422


def test_a_missing_store_has_no_sweeps(tmp_path):
    from fastapi.testclient import TestClient

    from optimlab.web.server import create_app

    with TestClient(create_app(tmp_path / "none.db", warm=False)) as fresh:
        assert fresh.get("/api/sweeps").json() == []
        assert fresh.get("/api/sweeps/1").status_code == 404
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("name", [entry.name for entry in optimlab.available()])
def test_every_default_lies_inside_the_playgrounds_ranges(name):
    shown = {h["name"]: h["default"] for h in api.hp.exposed(name)}
    assert "lr" in shown, name  # every optimizer, wrappers included, has a step size to set
    assert api.hp.check(name, shown) == {k: tuple(v) if isinstance(v, list) else v
                                         for k, v in shown.items()}
