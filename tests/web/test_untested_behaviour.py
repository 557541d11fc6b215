"""Behaviour of the playground's web package that no other test pins (found by mutation
testing): boundaries of its limits, fields echoed in its answers, noise where it is asked
for, and the slices and sweeps lists."""

import json

import pytest

from optimlab.web import api, models
from optimlab.web.models import MAX_BASIN_WORK, MAX_POINTS, MAX_WORK

from .conftest import slice_copy


def race_body(**overrides):
    body = {"landscape": "rosenbrock", "start": [-1.5, 2.0], "steps": 200,
            "optimizers": [{"name": "gd", "hparams": {"lr": 1e-3}},
                           {"name": "adam", "hparams": {"lr": 0.05}}]}
    return {**body, **overrides}


def _stub_race(monkeypatch, target="race"):
    """Replace the library's race (or basins map) by one that records its keyword
    arguments and fails, so a request that gets past the budget answers 422 "stubbed"."""
    calls = []

    def stub(*args, **kwargs):
        calls.append(kwargs)
        raise ValueError("stubbed")

    if target == "race":
        monkeypatch.setattr(api, "race", stub)
    else:
        import importlib
        monkeypatch.setattr(importlib.import_module("optimlab.exhibits.basins"), "basins", stub)
    return calls


# ----------------------------------------------------------------------------- grid


def test_one_insert_evicts_as_many_old_answers_as_it_takes():
    """The grid cache is bounded by bytes: a large answer pushes out every older one it
    must, not just the oldest (a 6 MB grid after many 400 kB ones)."""
    cache = api._ByteCache(10)
    for key in "abc":
        cache.put(key, b"x" * 3)
    cache.put("big", b"x" * 9)
    assert cache.size == 9 <= cache.most and len(cache) == 1
    assert cache.get("big") is not None and all(cache.get(k) is None for k in "abc")


def test_the_grid_takes_its_smallest_and_largest_size(client):
    for n in (models.GRID_MIN, models.GRID_MAX):
        answer = client.get(f"/api/landscapes/booth/grid?n={n}")
        assert answer.status_code == 200, answer.text
        grid = answer.json()
        assert grid["n"] == n and len(grid["x"]) == len(grid["z"]) == n
    for n in (models.GRID_MIN - 1, models.GRID_MAX + 1):
        assert client.get(f"/api/landscapes/booth/grid?n={n}").status_code == 422


def test_the_colour_bars_title_says_the_scale(client):
    log = client.get("/api/landscapes/rosenbrock/grid?n=20").json()
    assert log["log"] is True and log["color_title"] == "log10(f - f_min + ε)"
    flat = client.get("/api/landscapes/rastrigin/grid?n=20").json()
    assert flat["log"] is False and flat["color_title"] == "f"
    assert flat["color"] == flat["z"]


# ----------------------------------------------------------------------------- races


def test_a_fan_of_the_races_own_rate_costs_nothing_in_the_budget(client, monkeypatch):
    """`fan: [1.0]` runs nothing more (the race's own path), so a race exactly at the work
    limit stays within it with such a fan."""
    calls = _stub_race(monkeypatch)
    body = race_body(steps=10_000, fan=[1.0], optimizers=[{"name": "gd"}] * 20)
    assert models.work(10_000, 20, False) == MAX_WORK
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 422 and "stubbed" in answer.text, answer.text
    assert calls, "refused before it raced"


def test_a_tuned_race_whose_extension_fits_exactly_may_extend(client, monkeypatch):
    """The grid of a tuned race is extended past its edge when the work with the extension
    counted is within the limit: exactly at the limit counts as within."""
    steps, starts = 6250, [[0.0, 0.0], [0.5, 0.5], [1.0, 0.5]]
    assert models.work(steps, 1, True, len(starts), extension=True) == MAX_WORK
    calls = _stub_race(monkeypatch)
    answer = client.post("/api/race", json=race_body(
        steps=steps, tune=True, starts=starts, optimizers=[{"name": "gd"}]))
    assert answer.status_code == 422 and "stubbed" in answer.text, answer.text
    assert calls and all(call["extend"] is True for call in calls)
    calls.clear()
    assert models.work(steps + 1, 1, True, len(starts), extension=True) > MAX_WORK
    client.post("/api/race", json=race_body(steps=steps + 1, tune=True, starts=starts,
                                            optimizers=[{"name": "gd"}]))
    assert calls and all(call["extend"] is False for call in calls)


@pytest.mark.parametrize("steps", [2000, 2001, 4001])
def test_a_race_never_comes_back_with_more_than_max_points(client, steps):
    body = race_body(steps=steps, optimizers=[{"name": "adam", "hparams": {"lr": 0.01}}])
    answer = client.post("/api/race", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert len(result["step"]) <= MAX_POINTS and result["step"][-1] == steps
    assert result["step"][:2] == [0, result["stride"]]
    assert len(result["results"][0]["x"]) == len(result["step"])


def test_a_race_says_the_noise_seed_and_tolerance_it_ran_with(client):
    answer = client.post("/api/race", json=race_body(steps=10, noise=2.5, seed=7, tol=0.01))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["noise"], result["seed"], result["tol"], result["steps"]) == (2.5, 7, 0.01, 10)


def test_the_extra_paths_of_a_noisy_race_feel_its_noise(client):
    """More starts and a fan run on the race's landscape, its noise included: with noise
    they differ from the noiseless race's, and the same seed gives the same paths."""
    def extra(noise):
        body = race_body(steps=40, noise=noise, seed=3, starts=[[0.5, -0.5]], fan=[0.5],
                         optimizers=[{"name": "gd", "hparams": {"lr": 1e-3}}])
        answer = client.post("/api/race", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()["results"][0]["extra"]

    quiet, noisy, again = extra(0.0), extra(5.0), extra(5.0)
    assert len(quiet) == len(noisy) == 3
    assert noisy == again
    for q, n in zip(quiet, noisy):
        assert q["x"] != n["x"], (q["start"], q["factor"])


def test_inspect_runs_with_the_noise_it_is_asked_for(client):
    def inspect(noise, seed=1):
        answer = client.post("/api/inspect", json={
            "landscape": "rosenbrock", "steps": 20, "noise": noise, "seed": seed,
            "optimizer": {"name": "gd", "hparams": {"lr": 1e-3}}})
        assert answer.status_code == 200, answer.text
        return answer.json()

    quiet, noisy = inspect(0.0), inspect(5.0)
    assert noisy["grad"] != quiet["grad"] and noisy["x"] != quiet["x"]
    assert inspect(5.0) == noisy and inspect(5.0, seed=2)["grad"] != noisy["grad"]


# ----------------------------------------------------------------------------- basins


def test_a_basins_map_of_exactly_the_budget_is_run(client, monkeypatch):
    grid, steps = 25, 800
    assert models.basin_work(grid, steps, 1) == MAX_BASIN_WORK
    calls = _stub_race(monkeypatch, "basins")
    answer = client.post("/api/basins", json={"landscape": "two_wells", "grid": grid,
                                              "steps": steps, "optimizers": [{"name": "gd"}]})
    assert answer.status_code == 422 and "stubbed" in answer.text, answer.text
    assert calls
    over = client.post("/api/basins", json={"landscape": "two_wells", "grid": grid,
                                            "steps": steps + 1, "optimizers": [{"name": "gd"}]})
    assert over.status_code == 422 and "too big" in over.json()["message"]


def test_a_basins_maps_default_radius_is_5_percent_of_the_narrower_side(client):
    """six_hump_camel's domain is 5 wide and 3 high: the radius is 0.15."""
    answer = client.post("/api/basins", json={"landscape": "six_hump_camel", "grid": 3,
                                              "steps": 5, "optimizers": [{"name": "gd"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["radius"] == pytest.approx(0.15)


def test_a_basins_maps_colours_name_their_classes(client):
    from optimlab.exhibits.basins import DIVERGED, NOT_SETTLED, basin_color

    answer = client.post("/api/basins", json={"landscape": "two_wells", "grid": 3, "steps": 5,
                                              "optimizers": [{"name": "gd"}]})
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["colors"] == {"not settled": basin_color(NOT_SETTLED),
                             "diverged": basin_color(DIVERGED)}
    assert [m["color"] for m in out["minima"]] == [basin_color(i) for i in range(len(out["minima"]))]
    assert out["colors"]["not settled"] != out["colors"]["diverged"]


# ----------------------------------------------------------------------------- slices


def test_a_slice_three_folders_down_is_listed_and_one_four_down_is_not(tmp_path, slice_dir):
    root = tmp_path / "slices"
    slice_copy(slice_dir[0], root / "a" / "b" / "c", lambda data: None)
    slice_copy(slice_dir[0], root / "a" / "b" / "c" / "d", lambda data: None)
    listed = api.slices([root])
    assert [row["name"] for row in listed] == ["c"] and listed[0]["error"] is None


def test_a_slices_grid_is_its_xs_by_its_ys(tmp_path, slice_dir):
    def narrower(data):
        data["ys"] = data["ys"][:4]
        data["loss"] = data["loss"][:4]

    slice_copy(slice_dir[0], tmp_path / "s" / "narrow", narrower)
    row, = api.slices([tmp_path / "s"])
    assert row["error"] is None and row["grid"] == [6, 4]


# ----------------------------------------------------------------------------- sweeps


def test_a_sweeps_runs_still_running_count_as_to_run(tmp_path, sweep_db):
    from .conftest import store_copy

    db = store_copy(sweep_db[0], tmp_path / "runs.db",
                    "UPDATE runs SET status = 'running', summary = NULL WHERE id IN "
                    "(SELECT id FROM runs ORDER BY id LIMIT 2)",
                    "UPDATE runs SET status = 'pending', summary = NULL WHERE id = "
                    "(SELECT MAX(id) FROM runs)")
    (row,) = api.sweeps(db)
    assert row["counts"]["running"] == 2 and row["counts"]["pending"] == 1
    assert row["runs"].endswith("3 to run)"), row["runs"]


def test_a_creation_time_without_a_zone_is_utc_whatever_the_machines_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert api._created_at("2024-01-15T12:00:00") == "2024-01-15T12:00:00+00:00"
        assert api._created_at("2024-01-15T12:00:00+02:00") == "2024-01-15T10:00:00+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_sweeps_mean_curves_count_the_seeds_of_ended_runs_only(tmp_path, sweep_db):
    """Each curve is the mean over the seeds whose runs ended at its best rate (``seeds``
    counts them, not their points); a run still training is left out of it."""
    from .conftest import store_copy

    whole = api.sweep_detail(sweep_db[0], sweep_db[1])
    assert {name: curve["seeds"] for name, curve in whole["curves"].items()} == \
        {"sgd": 2, "adam": 2}
    db = store_copy(sweep_db[0], tmp_path / "runs.db",
                    "UPDATE runs SET status = 'running' WHERE id = (SELECT MAX(id) FROM runs "
                    "WHERE optimizer = 'adam' AND status = 'finished')")
    curves = api.sweep_detail(db, 1)["curves"]
    assert curves["adam"]["seeds"] == 1 and curves["sgd"]["seeds"] == 2


def test_a_sweeps_sensitivity_lists_its_rates_from_the_lowest(tmp_path, sweep_db):
    """The page draws each optimizer's sensitivity as a line over the rates: in rate order,
    whatever order the runs were stored in."""
    from .conftest import store_copy

    db = store_copy(sweep_db[0], tmp_path / "runs.db",
                    "UPDATE runs SET hparams = json_set(hparams, '$.lr', CASE WHEN "
                    "json_extract(hparams, '$.lr') = 0.05 THEN 50.0 ELSE 0.05 END) "
                    "WHERE optimizer = 'sgd'")
    rows = {row["optimizer"]: row for row in api.sweep_detail(db, 1)["summary"]}
    assert [point["lr"] for point in rows["sgd"]["sensitivity"]] == [0.05, 50.0]
    assert [point["lr"] for point in rows["adam"]["sensitivity"]] == [0.05, 50.0]


# ----------------------------------------------------------------------------- library calls


def test_two_slice_paths_whose_ids_collide_take_the_next_free_id(tmp_path, slice_dir, monkeypatch):
    """Ids are a hash of the path in a fixed range; one that another path took already
    becomes the next free one in that range (here a range of two ids, and two paths that
    hash to its first)."""
    import hashlib

    low = 1_000_000
    monkeypatch.setattr(api, "_SLICE_IDS", (low, low + 1))

    def first(name):
        rel = f"{name}/{api.SLICE_FILE}"
        return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") % 2 == 0

    names = [n for n in (f"s{i}" for i in range(20)) if first(n)][:2]
    for name in names:
        slice_copy(slice_dir[0], tmp_path / "s" / name, lambda data: None)
    ids = api._slice_ids([tmp_path / "s"])
    assert sorted(ids) == [low, low + 1]
    assert [p.parent.name for _, p in sorted(ids.items())] == sorted(names)


def test_a_landscape_that_is_not_2d_is_refused_by_the_api_too():
    with pytest.raises(api.RequestError, match="2-D landscapes only") as refused:
        api.landscape("rosenbrock_nd")
    assert refused.value.loc == ("landscape",) and refused.value.status == 422


# ----------------------------------------------------------------------------- server


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_the_limit_is_read(client, chunked):
    """MAX_BODY bytes is the longest body taken (413 only past it), whether its length is
    sent or it comes in chunks."""
    body = json.dumps(race_body(steps=1, optimizers=[{"name": "gd"}])).encode()
    for size, status in ((models.MAX_BODY, 200), (models.MAX_BODY + 1, 413)):
        padded = body + b" " * (size - len(body))
        content = (padded[i:i + 65536] for i in range(0, size, 65536)) if chunked else padded
        answer = client.post("/api/race", content=content,
                             headers={"Content-Type": "application/json"})
        assert answer.status_code == status, (size, answer.text[:200])


def test_a_typed_name_comes_back_cut_to_60_characters(client):
    name = "adamx" * 14  # 70 characters
    answer = client.post("/api/race", json=race_body(optimizers=[{"name": name}]))
    assert answer.status_code == 422
    message = answer.json()["message"]
    assert "unknown optimizer" in message and name not in message
    assert repr(name)[:57] + "..." in message


def test_an_integer_too_large_for_a_float_is_said_so(client):
    raw = b'{"landscape": "rosenbrock", "optimizers": [{"name": "adam", "hparams": {"lr": 1' \
          + b"0" * 400 + b"}}]}"
    answer = client.post("/api/race", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert "this integer is too large for a float" in answer.json()["message"], answer.text


def test_the_page_is_revalidated_and_plotly_kept_a_day(client):
    assert client.get("/").headers["cache-control"] == "no-cache"
    assert client.get("/static/plotly.min.js").headers["cache-control"] == "public, max-age=86400"


@pytest.mark.parametrize("host, url", [("::", "http://[::1]:8000/"), ("[::]", "http://[::1]:8000/"),
                                       ("0.0.0.0", "http://127.0.0.1:8000/"),
                                       ("", "http://127.0.0.1:8000/"),
                                       ("::1", "http://[::1]:8000/")])
def test_a_server_on_every_address_gives_a_loopback_url(host, url):
    from optimlab.web.server import Playground

    assert Playground(None, None, host, 8000).url == url


@pytest.mark.parametrize("port", [-1, 65536, True, 80.0])
def test_a_port_outside_0_to_65535_is_a_value_error(port):
    from optimlab.web.server import _listen

    with pytest.raises(ValueError, match="port must be a whole number from 0 to 65535"):
        _listen("127.0.0.1", port)


def test_a_number_beyond_float32_is_said_so(client):
    answer = client.post("/api/race", json=race_body(
        optimizers=[{"name": "adagrad", "hparams": {"lr_decay": 1e39}}]))
    assert answer.status_code == 422
    assert "magnitude at most 3.403e+38 (float32's largest)" in answer.json()["message"]


# ----------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("optimizer, key, bad, says", [
    ("momentum", "momentum", 1.0, "less than or equal to 0.999"),
    ("lbfgs", "max_iter", 101, "less than or equal to 100"),
    ("lbfgs", "history_size", 1001, "less than or equal to 1000"),
    ("sam", "rho", 2.5, "less than or equal to 2"),
    ("lookahead", "k", 0, "greater than or equal to 1"),
])
def test_the_playgrounds_own_ranges_are_enforced(client, optimizer, key, bad, says):
    answer = client.post("/api/race", json=race_body(
        steps=5, optimizers=[{"name": optimizer, "hparams": {key: bad}}]))
    assert answer.status_code == 422, answer.text
    message = answer.json()["message"]
    assert key in message and says in message, message


def _shown_as(kind: str, default, nullable: bool) -> bool:
    number = isinstance(default, (int, float)) and not isinstance(default, bool)
    if kind == "bool":
        return isinstance(default, bool)
    if kind == "pair":
        return isinstance(default, list) and len(default) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in default)
    return number or (default is None and nullable)


def test_every_shown_hyperparameters_default_is_what_its_slider_shows(client):
    """A page shows a hyperparameter as a slider of its kind: its default must be one
    (Adafactor's eps is a pair with a null and AdEMAMix's betas three numbers: neither is
    the table's eps nor its betas, so neither is shown)."""
    for optimizer in client.get("/api/optimizers").json():
        for h in optimizer["hyperparameters"]:
            assert _shown_as(h["kind"], h["default"], h.get("nullable", False)), \
                (optimizer["name"], h)
    shown = {o["name"]: {h["name"] for h in o["hyperparameters"]}
             for o in client.get("/api/optimizers").json()}
    assert "eps" not in shown["adafactor"] and "betas" not in shown["ademamix"]


# ----------------------------------------------------------------------------- request bounds


def _basins(**overrides):
    return {"landscape": "two_wells", "grid": 3, "steps": 5, "optimizers": [{"name": "gd"}],
            **overrides}


def _inspect(**overrides):
    return {"landscape": "rosenbrock", "steps": 5, "optimizer": {"name": "gd"}, **overrides}


@pytest.mark.parametrize("path, body, field", [
    ("/api/race", race_body(steps=5, starts=[[0.0, 0.0]] * (models.MAX_STARTS + 1)), "starts"),
    ("/api/race", race_body(steps=5, fan=[0.0]), "fan"),
    ("/api/race", race_body(steps=5, fan=[2.0] * (models.MAX_FAN + 1)), "fan"),
    ("/api/race", race_body(steps=5, fan=[models.MAX_FAN_FACTOR * 1.01]), "fan"),
    ("/api/race", race_body(steps=5, tol=0.0), "tol"),
    ("/api/race", race_body(steps=5, noise=models.MAX_NOISE * 1.01), "noise"),
    ("/api/race", race_body(steps=5, start=[-models.MAX_COORD * 2, 0.0]), "start"),
    ("/api/race", race_body(steps=5, optimizers=[{"name": "gd", "label": "x" * 41}]), "label"),
    ("/api/race", race_body(steps=5, optimizers=[{"name": "gd", "label": ""}]), "label"),
    ("/api/race", race_body(steps=5, seed=models.MAX_SEED + 1), "seed"),
    ("/api/race", race_body(steps=5, landscape="rotated_quadratic", start=None,
                            params={"angle": 181.0}), "angle"),
    ("/api/race", race_body(steps=5, landscape="quadratic", start=None,
                            params={"kappa": models.MAX_KAPPA * 2}), "kappa"),
    ("/api/basins", _basins(grid=1), "grid"),
    ("/api/basins", _basins(grid=models.MAX_BASIN_GRID + 1), "grid"),
    ("/api/basins", _basins(radius=0.0), "radius"),
    ("/api/basins", _basins(grid=2, steps=models.MAX_BASIN_STEPS + 1), "steps"),
    ("/api/inspect", _inspect(steps=models.MAX_INSPECT_STEPS + 1), "steps"),
])
def test_each_bound_of_a_request_is_enforced(client, path, body, field):
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text[:300]
    # the field itself is named (not an optimizer that failed with it)
    detail = answer.json()["detail"]
    assert any(field in map(str, d["loc"]) for d in detail), detail


@pytest.mark.parametrize("path, body", [
    ("/api/race", race_body(steps=5, starts=[[0.0, 0.0]] * models.MAX_STARTS,
                            optimizers=[{"name": "gd"}])),
    ("/api/race", race_body(steps=5, fan=[0.5] * models.MAX_FAN, optimizers=[{"name": "gd"}])),
    ("/api/race", race_body(steps=5, optimizers=[{"name": "gd", "label": "x" * 40}])),
    ("/api/race", race_body(steps=5, landscape="rotated_quadratic", start=None,
                            params={"angle": -180.0})),
    ("/api/basins", _basins(grid=2)),
    ("/api/inspect", _inspect(steps=models.MAX_INSPECT_STEPS)),
])
def test_each_bound_itself_is_taken(client, path, body):
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text[:300]


def test_the_limits_endpoint_says_each_limit_under_its_own_name(client):
    assert client.get("/api/limits").json() == {
        "max_steps": models.MAX_STEPS, "max_optimizers": models.MAX_OPTIMIZERS,
        "max_work": models.MAX_WORK, "tune_racers": models.TUNE_RACERS,
        "max_noise": models.MAX_NOISE, "max_seed": models.MAX_SEED,
        "max_points": models.MAX_POINTS, "grid_min": models.GRID_MIN,
        "grid_max": models.GRID_MAX, "grid_default": models.GRID_DEFAULT,
        "max_label": models.MAX_LABEL, "max_coord": models.MAX_COORD,
        "max_kappa": models.MAX_KAPPA, "max_starts": models.MAX_STARTS,
        "max_fan": models.MAX_FAN, "max_fan_factor": models.MAX_FAN_FACTOR,
        "max_inspect_steps": models.MAX_INSPECT_STEPS,
        "max_basin_grid": models.MAX_BASIN_GRID, "max_basin_steps": models.MAX_BASIN_STEPS,
        "max_basin_work": models.MAX_BASIN_WORK, "max_body": models.MAX_BODY,
        "max_seconds": models.MAX_SECONDS}
    assert (models.MAX_STARTS, models.MAX_FAN) == (16, 9)


# ----------------------------------------------------------------------------- lrs


def test_rebuilding_some_landscapes_rates_keeps_the_others(monkeypatch, tmp_path):
    """``python -m optimlab.web.lrs booth`` recomputes booth's row and keeps every other
    landscape's."""
    from optimlab.web import lrs

    file = tmp_path / "lrs.json"
    file.write_text(json.dumps({"rule": "r", "steps": 1, "grid": [],
                                "lrs": {"booth": {"adam": 0.1}, "beale": {"adam": 0.2}}}))
    monkeypatch.setattr(lrs, "LRS_FILE", file)
    monkeypatch.setattr(lrs, "build", lambda names, say=print: {
        "rule": "r", "steps": 1, "grid": [], "library_rate": [],
        "lrs": {name: {"adam": 0.5} for name in names}})
    lrs.table.cache_clear()
    try:
        assert lrs.main(["booth"]) == 0
        assert json.loads(file.read_text())["lrs"] == {"booth": {"adam": 0.5},
                                                       "beale": {"adam": 0.2}}
    finally:
        monkeypatch.undo()
        lrs.table.cache_clear()


def test_only_a_rule_stepping_member_by_member_through_a_closure_keeps_its_library_rate():
    """L-BFGS keeps its library rate; SAM and Sophia (closures, but two-phase: batched) get
    a rate computed for each landscape."""
    from optimlab.web import lrs

    assert [n for n in lrs.lr_names() if lrs._member_closure(n)] == ["lbfgs"]
    assert not lrs._member_closure("sam") and not lrs._member_closure("sophia")
    assert lrs.table()["library_rate"] == ["lbfgs"]


# ----------------------------------------------------------------------------- docs


def test_a_classs_page_lists_the_registry_names_that_preset_it(tmp_path):
    from optimlab.web.docs import write_docs

    write_docs(tmp_path)
    sgd = (tmp_path / "sgd.html").read_text()
    assert "<h2>Other names</h2>" in sgd
    assert all(f"<code>{name}</code>" in sgd for name in ("gd", "momentum", "nag"))
    index = (tmp_path / "index.html").read_text()
    assert "or a NumPy transcription of the paper written for the tests (" in index


# ----------------------------------------------------------------------------- plugins


def test_a_plugins_refusal_of_any_kind_is_the_users_error_also_inside_a_wrapper():
    """A registered optimizer's constructor may refuse a value with any exception (here a
    RuntimeError): the playground answers 422 naming it, also where a built-in wrapper (SAM)
    builds it by name, rather than a 500 for a built-in's bug."""
    import optimlab
    from optimlab.optim.base import RuleOptimizer
    from optimlab.optim.capabilities import Capabilities
    from optimlab.web import hparams

    class Touchy(RuleOptimizer):
        init = staticmethod(lambda p, **_: {})
        update = staticmethod(lambda p, g, state, *, lr, **_: p - lr * g)
        capabilities = Capabilities()

        def __init__(self, params, lr=0.1, beta=0.1, *, maximize=False):
            if beta > 0.5:
                raise RuntimeError("beta too large for this plugin")
            super().__init__(params, dict(lr=lr, beta=beta, maximize=maximize))

    optimlab.register(Touchy)
    try:
        for name, given in (("touchy", {"beta": 0.7}),
                            ("sam", {"base_optimizer": "touchy", "beta": 0.7})):
            with pytest.raises(hparams.HyperparameterError,
                               match=rf"^{name}: RuntimeError: beta too large for this plugin$"):
                hparams.check(name, given)
        assert hparams.check("sam", {"base_optimizer": "touchy", "beta": 0.2})["beta"] == 0.2
    finally:
        optimlab.unregister("touchy")
