"""Real-network loss landscapes (optimlab.bench.slices): the plane, the projections and
their residuals against NumPy's least squares, the batched grid against the model run
point by point, the Hessian's top eigenvalue against the full Hessian's spectrum, the
pictures and the command.

Float32 tolerances: a logit of the digits MLP is a sum of at most 100 products per layer,
whose rounding error is at most about n * 2**-24 = 6e-6 of the sum of magnitudes per layer
(Higham's gamma_n); over two layers and the softmax the loss can move by a few 1e-5
relative, so 1e-4 (rtol) holds whatever order a CPU's kernels sum in."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch.func import functional_call

from optimlab import cli
from optimlab.bench import slices
from optimlab.bench.slices import (
    _endpoint_plane,
    _project,
    _random_plane,
    _stack_weights,
    plot_slice,
    slice_landscape,
    top_hessian_eigenvalue,
)
from optimlab.bench.tasks import get as get_task
from optimlab.bench.trainer import _init_model

F32 = 1e-4  # see the module's text


@pytest.fixture(scope="module")
def digits():
    return get_task("digits")


@pytest.fixture(scope="module")
def small(digits):
    return slice_landscape(digits, "mlp", {"sgd": {"lr": 0.1}, "adam": {"lr": 0.003},
                                           "momentum": {"lr": 0.02, "momentum": 0.9}},
                           steps=40, grid=7, points=10, eval_size=300)


def test_projection_gives_numpys_least_squares_coordinates_and_residuals():
    gen = np.random.default_rng(0)
    origin, basis, points = gen.normal(size=50), gen.normal(size=(50, 2)), gen.normal(size=(9, 50))
    coords, residual = _project(torch.tensor(points), torch.tensor(origin), torch.tensor(basis))
    want, *_ = np.linalg.lstsq(basis, (points - origin).T, rcond=None)
    np.testing.assert_allclose(coords.numpy(), want.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(residual.numpy(),
                               np.linalg.norm(points - origin - want.T @ basis.T, axis=1),
                               rtol=1e-10)
    on_plane = origin + np.array([[0.5, -2.0]]) @ basis.T
    coords, residual = _project(torch.tensor(on_plane), torch.tensor(origin), torch.tensor(basis))
    np.testing.assert_allclose(coords.numpy(), [[0.5, -2.0]], atol=1e-12)
    assert float(residual[0]) < 1e-12


def test_the_endpoint_plane_is_the_pair_that_leaves_least_off_it():
    gen = torch.Generator().manual_seed(1)
    origin = torch.randn(30, generator=gen, dtype=torch.float64)
    paths = {name: origin + torch.randn(6, 30, generator=gen, dtype=torch.float64).cumsum(0)
             for name in "abcd"}
    paths = {name: torch.cat([origin[None], p]) for name, p in paths.items()}
    basis, pair = _endpoint_plane(origin, paths)
    np.testing.assert_allclose((basis.T @ basis).numpy(), np.eye(2), atol=1e-12)
    every = torch.cat(list(paths.values())).numpy() - origin.numpy()
    totals = {}
    for a in paths:  # brute force with NumPy: every pair's plane, its squared residuals
        for b in paths:
            if a < b:
                span = np.stack([paths[a][-1] - origin, paths[b][-1] - origin], 1)
                c, *_ = np.linalg.lstsq(span, every.T, rcond=None)
                totals[(a, b)] = float(((every - (span @ c).T) ** 2).sum())
    assert pair == min(totals, key=totals.get)
    for name in pair:  # both endpoints lie on it
        _, residual = _project(paths[name][-1:], origin, basis)
        assert float(residual[0]) < 1e-9 * float((paths[name][-1] - origin).norm())
    with pytest.raises(ValueError, match="span a plane"):
        _endpoint_plane(origin, {"a": torch.stack([origin, origin + 1]),
                                 "b": torch.stack([origin, origin + 2])})


def test_random_directions_are_filter_normalised(digits):
    model = _init_model(digits, "mlp", 0)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    basis = _random_plane(model, flat, seed=3)
    assert basis.shape == (flat.numel(), 2)
    for column in basis.T:
        for w, d in zip(model.parameters(), _stack_weights(model, column[None])):
            d = d[0]
            if w.dim() == 1:
                assert torch.count_nonzero(d) == 0  # biases stay put
            else:
                torch.testing.assert_close(d.reshape(d.shape[0], -1).norm(dim=1),
                                           w.detach().reshape(w.shape[0], -1).norm(dim=1),
                                           rtol=1e-5, atol=1e-7)


def test_the_batched_grid_is_the_model_run_point_by_point(small, digits):
    model = _init_model(digits, "mlp", 0)
    origin = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    # rebuild the plane from the recorded paths' coordinates: the endpoints of the pair
    # that spans it sit at their coordinates, so two of them give the basis back
    paths = {p.optimizer: p for p in small.paths}
    assert small.through and all(paths[n].end_residual < 1e-6 for n in small.through)
    index = slices.eval_indices(len(digits.x_train), 300)
    x, y = digits.x_train[index], digits.y_train[index]
    # the grid point nearest the origin and a corner, recomputed as one ordinary model
    names = [n for n, _ in model.named_parameters()]
    for i, j in [(0, 0), (len(small.ys) - 1, len(small.xs) - 1), (3, 2)]:
        coords = torch.tensor([small.xs[j], small.ys[i]], dtype=torch.float64)
        basis = _basis_from(small, origin)
        weights = (origin.double() + basis @ coords).float()
        params = dict(zip(names, [w[0] for w in _stack_weights(model, weights[None])]))
        with torch.no_grad():
            loss = float(digits.loss_fn(functional_call(model, params, (x,)), y))
        assert small.loss[i, j] == pytest.approx(loss, rel=F32)


def _basis_from(result, origin):
    """The plane's orthonormal basis, recomputed from the training the slice did."""
    paths, _, _ = slices._train(get_task("digits"), "mlp",
                                {p.optimizer: p.hparams for p in result.paths}, result.steps,
                                100, 0, 4, None)
    basis, pair = _endpoint_plane(origin, paths)
    assert pair == result.through
    return basis.double()


def test_paths_start_at_the_shared_initialisation_and_are_reported(small):
    assert [p.optimizer for p in small.paths] == ["sgd", "adam", "momentum"]
    for p in small.paths:
        assert p.steps[0] == 0 and p.steps[-1] == 40 and len(p.coords) == len(p.steps)
        np.testing.assert_allclose(p.coords[0], [0, 0], atol=1e-9)
        assert p.residual[0] == pytest.approx(0, abs=1e-9) and p.reach > 0
        assert 0 <= p.relative(p.max_residual) <= 1 + 1e-9
        assert p.sharpness is not None and p.sharpness > 0
        assert 0 < p.test_metric <= 1
    assert small.loss.shape == (7, 7) and np.isfinite(small.loss).all()
    for name, curve in small.interpolation.items():
        alpha = np.asarray(curve["alpha"])
        assert len(curve["train_loss"]) == len(alpha) and alpha[0] == -0.25
    # from the initialisation (alpha 0) to the solution (alpha 1): training lowered the loss
    first = small.interpolation["init -> sgd"]
    alpha, loss = np.asarray(first["alpha"]), np.asarray(first["train_loss"])
    assert loss[np.argmin(abs(alpha - 1))] < loss[np.argmin(abs(alpha))]
    table = small.table()
    assert "top Hessian eig" in table and table.count("\n") == 4
    json.dumps(small.to_json())  # plain JSON


def test_lines_between_two_solutions_take_no_optimizers_colour(small):
    """They took matplotlib's default cycle, "C0", "C1"...: "sgd -> adam" in momentum's
    orange, beside momentum's own line in the other panel."""
    from matplotlib.colors import to_hex

    from optimlab.landscapes.plots import plt_close
    from optimlab.optim.palette import color, colors, pair_styles

    fig = slices.plot_interpolation(small)
    try:
        left, right = fig.axes[:2]
        drawn = {line.get_label(): (to_hex(line.get_color()), line.get_marker())
                 for line in right.lines if "->" in line.get_label()}
        styles = pair_styles([k for k in small.interpolation if not k.startswith("init")])
        assert drawn == {f"{k} (train)": v for k, v in styles.items()}
        assert not {c for c, _ in drawn.values()} & set(colors().values())
        assert {to_hex(line.get_color()) for line in left.lines
                if "->" in line.get_label()} == {color(n) for n in ("sgd", "adam", "momentum")}
    finally:
        plt_close(fig)


def test_the_pictures_keep_the_backend_the_user_chose(small):
    """A notebook's inline backend (here svg, another one chosen before): plot_slice and
    plot_interpolation switched every process to Agg, after which no figure of the user's
    showed in the notebook. Agg is chosen only where no backend is."""
    import matplotlib

    from optimlab.landscapes.plots import plt_close

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        for draw in (plot_slice, slices.plot_interpolation):
            plt_close(draw(small))
            assert matplotlib.get_backend() == "svg", draw.__name__
    finally:
        matplotlib.use(before)


def test_top_eigenvalue_matches_the_full_hessians_spectrum(digits):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 3), torch.nn.Tanh(), torch.nn.Linear(3, 10))
    model.double()
    x, y = digits.x_train[:200].double(), digits.y_train[:200]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    names = [(n, p.shape, p.numel()) for n, p in model.named_parameters()]

    def loss(w):
        params, i = {}, 0
        for n, shape, k in names:
            params[n] = w[i:i + k].reshape(shape)
            i += k
        return digits.loss_fn(functional_call(model, params, (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, flat)
    eigs = np.linalg.eigvalsh(hessian.numpy())
    top = eigs[np.argmax(np.abs(eigs))]
    got = top_hessian_eigenvalue(digits, model, flat, x, y, iters=2000, tol=1e-12)
    assert got == pytest.approx(top, rel=1e-6)
    # no product, no estimate: the count is refused, where it returned None for a float
    for iters in (0, -3, 1.5):
        with pytest.raises(ValueError, match="iters must be an integer >= 1"):
            top_hessian_eigenvalue(digits, model, flat, x, y, iters=iters)
    with pytest.raises(ValueError, match="tol must be"):
        top_hessian_eigenvalue(digits, model, flat, x, y, tol=-1.0)


def test_the_path_record_does_not_hide_pathlib_under_a_star_import():
    """``from optimlab.bench.slices import *`` brought a dataclass named ``Path`` over
    pathlib's; the record is ``SlicePath`` (the old name stays importable by name)."""
    from optimlab.bench import slices

    assert "Path" not in slices.__all__ and "SlicePath" in slices.__all__
    assert slices.Path is slices.SlicePath


def test_bad_arguments_are_refused(digits):
    for kwargs, match in [({"plane": "pca"}, "plane must be"), ({"on": "valid"}, "on must"),
                          ({"grid": 1}, "grid must"), ({"steps": 0}, "steps must"),
                          ({"margin": -1.0}, "margin must"),
                          ({"optimizers": {"sgd": {"lr": 0.1}}}, "at least two"),
                          ({"model": "resnet"}, "no model 'resnet'")]:
        with pytest.raises(ValueError, match=match):
            slice_landscape(digits, **{"steps": 2, **kwargs})
    with pytest.raises(ValueError, match="adamm"):
        slice_landscape(digits, optimizers={"adamm": {}, "sgd": {}}, steps=2)


def test_bad_arguments_are_refused_before_anything_trains(digits, monkeypatch):
    """Each of these failed only after every optimizer had trained (chunk 0: range() arg 3
    must not be zero; eval_size 0: ZeroDivisionError) or with a raw error without the
    argument's name (a list of optimizers, a misspelt hyperparameter); eval_size -5 was
    taken. Every one is now refused, naming the argument, before the task trains."""

    def no_training(*args, **kwargs):
        raise AssertionError("slice_landscape trained before refusing its arguments")

    monkeypatch.setattr(slices, "_train", no_training)
    monkeypatch.setattr(slices, "get_task", no_training)
    two = {"sgd": {"lr": 0.1}, "adam": {"lr": 0.003}}
    for kwargs, error, match in [
            ({"chunk": 0}, ValueError, r"^chunk must be an integer >= 1, got 0$"),
            ({"eval_size": 0}, ValueError, r"^eval_size must be an integer >= 1, got 0$"),
            ({"eval_size": -5}, ValueError, r"^eval_size must be an integer >= 1, got -5$"),
            ({"points": "x"}, ValueError, r"^points must be an integer"),
            ({"margin": "x"}, TypeError, r"^margin must be a finite number >= 0, got str 'x'$"),
            ({"margin": None}, TypeError, r"^margin must be a finite number >= 0, got NoneType"),
            ({"progress": 5}, TypeError, r"^progress must be a callable"),
            ({"optimizers": ["adam", "sgd"]}, TypeError,
             r"^optimizers must be a dict of registry name -> hyperparameters"),
            ({"optimizers": {"adam": 0.1, "sgd": {}}}, TypeError,
             r"^slice optimizer 'adam': hyperparameters must be a dict, got float 0.1$"),
            ({"optimizers": {"sgd": {}, "adam": {"lrr": 1}}}, ValueError,
             r"^slice optimizer 'adam': 'lrr' is not a hyperparameter of Adam .*did you mean "
             r"'lr'\?"),
            ({"optimizers": {"sgd": {}, "adam": {"lr": -1}}}, ValueError,
             r"^slice optimizer 'adam': lr must be > 0, got -1$"),
            ({"task": 5}, TypeError, r"^task must be a Task .*got int 5"),
    ]:
        arguments = {"task": digits, "optimizers": two, "steps": 2, "grid": 3, **kwargs}
        with pytest.raises(error, match=match) as err:
            slice_landscape(**arguments)
        assert "\n" not in str(err.value), kwargs


def test_a_random_plane_shows_how_much_of_the_paths_it_misses(digits):
    result = slice_landscape(digits, "mlp", {"adam": {"lr": 0.003}}, steps=30, grid=5,
                             plane="random", sharpness=False, eval_size=200, points=5)
    path, = result.paths
    assert result.through == () and path.sharpness is None
    assert path.relative(path.end_residual) > 0.9  # a real path lies almost all off it
    assert np.isfinite(result.loss).all()


def test_the_command_writes_the_pictures_and_the_table(tmp_path, capsys):
    code = cli.main(["slice", "digits", "--optimizers", "sgd,sam", "--steps", "20", "--grid",
                     "5", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "top Hessian eig" in out and "grid 5 x 5 over train examples" in out
    for name in ("slice.png", "interpolation.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "out" / "slice.json").read_text())
    assert [p["optimizer"] for p in data["paths"]] == ["sgd", "sam"]
    assert len(data["loss"]) == 5 and len(data["loss"][0]) == 5
    for argv, match in [(["--optimizers", "sgd"], "at least two"),
                        (["--lr", "lion=0.1"], "--lr names lion"),
                        (["--grid", "1"], "--grid: takes a whole number >= 2"),
                        (["--grid", "1000"], "--grid")]:
        assert cli.main(["slice", "digits", "--steps", "2", "--out", str(tmp_path / "x"),
                         *argv]) == 2
        assert match in capsys.readouterr().err


def test_a_cnn_on_mnist1d_slices_too_and_its_grid_is_the_model_run_point_by_point():
    """The MNIST-1D CNN (convolutions, so the batched grid goes through vmap over conv
    weights): the grid at two points against the model run alone. Tolerance: the CNN's
    longest dot product is its linear head's (a few hundred to about 1.3e3 terms), so the
    float32 bound n * 2**-24 (Higham's gamma_n) is about 1e-4 of the magnitudes per layer;
    over three layers and the softmax, 1e-3 relative holds whatever order a CPU sums in."""
    task = get_task("mnist1d")
    chosen = {"sgd": {"lr": 0.05}, "adam": {"lr": 0.003}}
    result = slice_landscape(task, "cnn", chosen, steps=12, grid=5, points=4, eval_size=200)
    assert result.loss.shape == (5, 5) and np.isfinite(result.loss).all()
    assert [p.optimizer for p in result.paths] == ["sgd", "adam"]
    assert all(p.sharpness is not None and p.sharpness > 0 for p in result.paths)
    model = _init_model(task, "cnn", 0)
    origin = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    paths, _, _ = slices._train(task, "cnn", chosen, 12, 100, 0, 3, None)
    basis, pair = _endpoint_plane(origin, paths)
    assert pair == result.through
    index = slices.eval_indices(len(task.x_train), 200)
    x, y = task.x_train[index], task.y_train[index]
    names = [n for n, _ in model.named_parameters()]
    for i, j in [(0, 0), (4, 4)]:
        coords = torch.tensor([result.xs[j], result.ys[i]], dtype=torch.float64)
        weights = (origin.double() + basis.double() @ coords).float()
        params = dict(zip(names, [w[0] for w in _stack_weights(model, weights[None])]))
        with torch.no_grad():
            loss = float(task.loss_fn(functional_call(model, params, (x,)), y))
        assert result.loss[i, j] == pytest.approx(loss, rel=1e-3)


def test_an_optimizer_for_sparse_gradients_only_is_refused_up_front(digits, tmp_path, capsys):
    """SparseAdam refuses dense gradients: the slice says so by name before it trains, as
    ``race`` and populations do, and the command prints it as one error line."""
    with pytest.raises(ValueError, match="'sparseadam' takes sparse gradients only"):
        slice_landscape(digits, optimizers={"sparseadam": {}, "adam": {}}, steps=2)
    code = cli.main(["slice", "digits", "--optimizers", "sparseadam,adam", "--steps", "2",
                     "--grid", "3", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("optimlab: error: optimizer 'sparseadam' takes sparse gradients")
    assert not (tmp_path / "out").exists()


def _quadratic_top(task) -> float:
    """quadratic-deep's loss is 0.5 (theta - x)^T H (theta - x) per sample: its Hessian is
    H = 2/d root root^T whatever the data, its top eigenvalue from the full matrix."""
    root = _init_model(task, "theta", 0).root.double()
    return float(torch.linalg.eigvalsh(root @ root.T * 2 / root.shape[0])[-1])


def test_the_sharpness_of_an_mse_model_is_read_from_its_hessian():
    """quadratic-deep's mse loss made forward-over-reverse products raise ("ZeroTensors are
    immutable"). Its Hessian is known, so the products are checked exactly: one product
    gives the Rayleigh quotient of the seeded start v, two give that of H v (float64)."""
    task = get_task("quadratic-deep")
    model = _init_model(task, "theta", 0).double()
    root = model.root
    hessian = root @ root.T * 2 / root.shape[0]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    v = torch.randn(flat.shape, generator=torch.Generator().manual_seed(3), dtype=flat.dtype)
    hv = hessian @ v
    for iters, want in [(1, v @ hv / (v @ v)), (2, hv @ hessian @ hv / (hv @ hv))]:
        got = top_hessian_eigenvalue(task, model, flat, task.x_train[:10].double(),
                                     task.y_train[:10].double(), iters=iters, seed=3)
        assert got == pytest.approx(float(want), rel=1e-10)


def test_a_loss_linear_in_the_weights_has_zero_sharpness(digits):
    class Summed:  # a task whose loss is the sum of a linear model's outputs
        loss_fn = staticmethod(lambda output, target: output.sum())

    model = torch.nn.Linear(64, 3)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert top_hessian_eigenvalue(Summed, model, flat, digits.x_train[:20],
                                  digits.y_train[:20]) == 0.0


def test_quadratic_deep_slices_with_its_sharpness():
    task = get_task("quadratic-deep")
    result = slice_landscape(task, None, {"sgd": {"lr": 0.01}, "adam": {"lr": 0.003}},
                             steps=10, grid=3, points=2, eval_size=100)
    top = _quadratic_top(task)
    for p in result.paths:  # 10 of H's 100 eigenvalues lie in (30, 60), the rest below 1
        assert not p.diverged and 30 < p.sharpness <= top * (1 + 1e-4)


def test_the_table_shows_the_rate_used_and_marks_and_warns_of_divergence(digits, tmp_path,
                                                                         capsys):
    """A rate left out is the optimizer's default, shown as such; a diverged optimizer is
    marked, and a plane through its endpoint is warned of (the command prints it)."""
    code = cli.main(["slice", "digits", "--model", "logreg", "--optimizers", "sgd,lion",
                     "--lr", "sgd=10000", "--steps", "5", "--grid", "3",
                     "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split()[0]: line for line in out.splitlines()
            if line.startswith(("sgd", "lion"))}
    assert rows["sgd"].split()[:3] == ["sgd", "(diverged)", "1e+04"]
    assert rows["lion"].split()[1:3] == ["0.0001", "(default)"]  # lion's own default
    assert ("warning: the plane passes through the endpoint of sgd, which diverged, so the "
            "picture is scaled to weights that blew up") in out
    data = json.loads((tmp_path / "out" / "slice.json").read_text())
    assert [(p["optimizer"], p["lr"], p["diverged"]) for p in data["paths"]] == [
        ("sgd", 10000.0, True), ("lion", 1e-4, False)]


def test_a_diverged_path_off_the_plane_is_warned_of_too():
    def path(name, diverged, hparams):
        return slices.Path(name, hparams, [0, 1], np.zeros((2, 2)), np.zeros(2), 1.0, 0.5,
                           0.5, 0.9, None, diverged, slices._lr_used(name, hparams))

    result = slices.Slice("t", "m", "accuracy", 1, "endpoints", ("adam", "sgd"),
                          np.zeros(2), np.zeros(2), np.zeros((2, 2)), "train",
                          [path("adam", False, {}), path("sgd", False, {"lr": 0.1}),
                           path("momentum", False, {"lr": 0.05}),
                           path("lion", True, {}), path("sam", True, {"rho": 0.05})])
    headers, rows = result.rows()
    # sgd's 0.1 is the slice's preset, which the command line gives it unless --lr does:
    # said so (it read as a rate the user chose)
    assert [r[:2] for r in rows] == [["adam", "0.001 (default)"], ["sgd", "0.1 (slice preset)"],
                                     ["momentum", "0.05"],
                                     ["lion (diverged)", "0.0001 (default)"],
                                     ["sam (diverged)", "0.001 (default)"]]
    assert result.notes() == ["warning: lion and sam diverged, so their rows describe "
                              "weights that blew up"]
    assert result.table().endswith(result.notes()[0])


def test_endpoints_on_one_line_through_the_origin_span_no_plane():
    """Two optimizers that end at the same weights (up to float32 rounding) were taken as a
    plane whose second axis was rounding noise."""
    origin = torch.zeros(50)
    end = torch.linspace(-1, 1, 50)
    noisy = end * (1 + 1e-7 * torch.randn(50, generator=torch.Generator().manual_seed(0)))
    paths = {"sgd": torch.stack([origin, end]), "gd": torch.stack([origin, noisy])}
    with pytest.raises(ValueError, match="no two optimizers' endpoints span a plane"):
        slices._endpoint_plane(origin, paths)
    paths["adam"] = torch.stack([origin, end.flip(0) ** 2])  # off the line: a plane
    _, pair = slices._endpoint_plane(origin, paths)
    assert "adam" in pair


def test_a_slice_read_back_from_its_json_is_the_slice(small):
    """Slice.from_json is to_json's inverse (the playground rebuilds a slice from its file
    to show its rates and warnings as the command line does)."""
    data = json.loads(json.dumps(small.to_json()))
    again = slices.Slice.from_json(data)
    assert again.to_json() == small.to_json()
    assert again.table() == small.table() and again.notes() == small.notes()


@pytest.mark.parametrize("change, says", [
    (lambda d: d.pop("loss"), "it lacks loss"),
    (lambda d: d.update(steps=2.5), "its steps is not a whole number"),
    (lambda d: d["paths"][0].update(coords=[[0.0]]), "its paths[0].coords is not a list of points"),
    (lambda d: d.update(interpolation=[]), "its interpolation is not an object"),
])
def test_json_that_is_no_slice_is_refused_naming_its_first_wrong_field(small, change, says):
    """The one check of a slice's JSON (the playground lists a bad file with it, and
    from_json refuses it) names what is wrong instead of failing inside numpy."""
    data = json.loads(json.dumps(small.to_json()))
    assert slices.json_problem(data) is None
    change(data)
    assert slices.json_problem(data).startswith(says)
    with pytest.raises(ValueError, match=f"^not a slice: {re.escape(says)}"):
        slices.Slice.from_json(data)
    assert slices.json_problem([]).startswith("it lacks task, model")


def test_a_slice_of_numpy_integers_writes_json_and_reads_back(small):
    """steps and grid given as NumPy integers were kept so: json.dumps refused the slice."""
    import numpy as np

    again = slices.slice_landscape("digits", "mlp", {"sgd": {"lr": 0.1}, "adam": {"lr": 0.003}},
                                   steps=np.int64(3), grid=np.int64(3), points=2, eval_size=50)
    data = json.loads(json.dumps(again.to_json()))
    assert type(data["steps"]) is int and slices.Slice.from_json(data).steps == 3


def test_paths_that_coincide_stay_visible_in_the_picture(small):
    """Two optimizers whose paths nearly coincide (SGD's and SAM's at one rate) must not hide
    one another: each path is drawn thinner than the one before and on top of it, and
    every end marker above every line."""
    import matplotlib.pyplot as plt

    fig = plot_slice(small)
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    ends = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "o"]
    plt.close(fig)
    assert len(lines) == len(small.paths) == len(ends) == 3
    widths = [ln.get_linewidth() for ln in lines]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 3
    assert [ln.get_zorder() for ln in lines] == sorted(ln.get_zorder() for ln in lines)
    assert min(e.get_zorder() for e in ends) > max(ln.get_zorder() for ln in lines)


#: sgd at lr 1e20 on the digits MLP: finite after one step (weights of about 1e20), NaN from
#: the second on; adam's and momentum's runs stay finite
BLOWS_UP = {"sgd": {"lr": 1e20}, "adam": {"lr": 0.003}, "momentum": {"lr": 0.02, "momentum": 0.9}}


@pytest.mark.parametrize("plane", ["endpoints", "random"])
def test_a_run_that_diverges_to_nan_is_marked_and_left_out_of_the_plane_and_the_grid(digits,
                                                                                      plane):
    """One NaN point made the grid's bounds NaN, so every grid value was NaN and plot_slice
    failed on an empty array ("zero-size array to reduction operation fmin"); the endpoints
    plane was chosen with NaN residuals. The run that blew up is now left out of the plane
    and the grid's extent, marked and warned of, and drawn up to where it blew up."""
    import matplotlib.pyplot as plt

    result = slice_landscape(digits, "mlp", BLOWS_UP, steps=6, grid=5, points=6, plane=plane,
                             eval_size=200, sharpness=False)
    paths = {p.optimizer: p for p in result.paths}
    sgd = paths["sgd"]
    assert sgd.diverged and not np.isfinite(sgd.coords[-1]).any()  # it did blow up
    assert not paths["adam"].diverged and not paths["momentum"].diverged
    assert result.through == (("adam", "momentum") if plane == "endpoints" else ())
    assert np.isfinite(result.loss).all()
    assert np.isfinite(sgd.coords[:2]).all()  # after a finite step
    for name in ("adam", "momentum"):  # the grid spans the finite paths, not sgd's 1e20 step
        x, y = paths[name].coords.T
        assert result.xs[0] <= x.min() and x.max() <= result.xs[-1]
        assert result.ys[0] <= y.min() and y.max() <= result.ys[-1]
    assert abs(sgd.coords[1]).max() > 1e3 * max(abs(result.xs).max(), abs(result.ys).max())
    assert "sgd (diverged)" in result.table()
    assert "warning: sgd diverged" in result.table()
    # its distance off the plane at the end is no number: "-", not "nan (nan%)"
    row = next(r for r in result.rows()[1] if r[0] == "sgd (diverged)")
    assert row[-2] == "-" and "nan" not in row[-1], row
    fig = plot_slice(result)
    try:
        ax = fig.axes[0]
        assert len(fig.axes) == 2  # the contours' colour bar: the grid was drawn
        drawn = {ln.get_label().split(":")[0]: ln for ln in ax.get_lines()
                 if ln.get_linestyle() == "-"}
        assert set(drawn) == {"sgd (diverged)", "adam", "momentum"}
        assert np.isfinite(drawn["sgd (diverged)"].get_xydata()).all()
        assert len(drawn["sgd (diverged)"].get_xydata()) == np.isfinite(sgd.coords).all(1).sum()
        assert ax.get_xlim() == (result.xs[0], result.xs[-1])
    finally:
        plt.close(fig)


def test_no_endpoints_plane_without_two_finite_endpoints_names_the_run_that_blew_up(digits):
    """With one of two runs at NaN weights, the plane through "both endpoints" was NaN."""
    with pytest.raises(ValueError, match=r"no two optimizers' endpoints span a plane .*\(sgd "
                                         r"diverged to non-finite weights: give it a lower "
                                         r"learning rate or leave it out\); use plane='random'"):
        slice_landscape(digits, "mlp", {"sgd": {"lr": 1e20}, "adam": {"lr": 0.003}}, steps=4,
                        grid=3, points=4, eval_size=50, sharpness=False)


def test_a_grid_with_no_finite_loss_is_drawn_as_paths_without_contours():
    """plot_slice took the minimum of the finite grid values, of which there were none."""
    import matplotlib.pyplot as plt

    def path(name, coords, diverged):
        coords = np.asarray(coords, dtype=float)
        return slices.Path(name, {}, list(range(len(coords))), coords, np.zeros(len(coords)),
                           1.0, 0.5, 0.5, 0.9, None, diverged, None)

    result = slices.Slice("t", "m", "accuracy", 2, "random", (), np.linspace(-1, 1, 3),
                          np.linspace(-1, 1, 3), np.full((3, 3), np.nan), "train",
                          [path("sgd", [[0, 0], [0.5, 0.2], [np.nan, np.nan]], True),
                           path("adam", [[0, 0], [0.1, 0.3], [0.2, 0.4]], False)])
    fig = plot_slice(result)
    try:
        ax = fig.axes[0]
        assert len(fig.axes) == 1  # no contours, no colour bar
        lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
        assert [len(ln.get_xydata()) for ln in lines] == [2, 3]
        ends = [tuple(ln.get_xydata()[0]) for ln in ax.get_lines() if ln.get_marker() == "o"]
        assert ends == [(0.5, 0.2), (0.2, 0.4)]
    finally:
        plt.close(fig)
