"""The training tasks: data splits, models, losses, metrics, file formats and user tasks."""

from __future__ import annotations

import functools
import gzip
import math
import random
import struct
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from optimlab import landscapes
from optimlab.bench import tasks as T


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="session")
def mnist1d():
    pytest.importorskip("mnist1d")
    return T.get("mnist1d", disk_cache=False)  # ~2.5 s, once per session


@pytest.fixture(scope="session")
def digits():
    pytest.importorskip("sklearn")
    return T.get("digits")


@pytest.fixture(scope="session")
def cheap_tasks():
    return {name: T.get(name) for name in ("sparse-logreg", "char-rnn", "quadratic-deep")}


@pytest.fixture
def all_tasks(request, cheap_tasks):
    """Every task that needs no files (digits and mnist1d when their packages are installed)."""
    tasks = dict(cheap_tasks)
    for name in ("digits", "mnist1d"):
        try:
            tasks[name] = request.getfixturevalue(name)
        except pytest.skip.Exception:
            pass
    return tasks


# --------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------

def test_names():
    assert T.names() == ["digits", "mnist1d", "sparse-logreg", "char-rnn", "quadratic-deep",
                         "mnist", "fashion-mnist"]


def test_unknown_name_lists_known_and_close_matches():
    with pytest.raises(ValueError, match="unknown task 'mnits'.*did you mean mnist.*known: digits"):
        T.get("mnits")


def test_name_spelling_is_forgiving(cheap_tasks):
    assert T.get("Sparse_Logreg").name == "sparse-logreg"


def test_unknown_argument_names_the_accepted_ones():
    with pytest.raises(ValueError, match="takes no argument 'lr'.*seed"):
        T.get("sparse-logreg", lr=0.1)


def test_task_checks_its_fields():
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64)
    fields = dict(name="t", x_train=x, y_train=y, x_test=x, y_test=y,
                  models={"m": lambda: nn.Linear(2, 2)}, default_model="m",
                  loss="cross_entropy", metric="accuracy", description="")
    T.Task(**fields)
    for bad, match in [({"loss": "hinge"}, "loss must be"), ({"metric": "f1"}, "metric must be"),
                       ({"default_model": "x"}, "default_model"),
                       ({"y_test": y[:3]}, "x_test has 4 examples but y_test has 3"),
                       ({"y_train": y.float()}, "int64 labels"),
                       ({"loss": "mse", "y_train": y.float(), "y_test": y.float()}, "needs loss")]:
        with pytest.raises(ValueError, match=match):
            T.Task(**{**fields, **bad})
    task = T.Task(**fields)
    with pytest.raises(ValueError, match="no model 'big'; its models: m"):
        task.make_model("big")


# --------------------------------------------------------------------------------------
# Every model: shapes, a finite evaluation, vmap over a population
# --------------------------------------------------------------------------------------

def test_models_forward_and_evaluate(all_tasks):
    for name, task in all_tasks.items():
        for model_name in task.models:
            torch.manual_seed(0)
            model = task.make_model(model_name)
            out = model(task.x_train[:8])
            if name == "char-rnn":
                assert out.shape == (8, 64, len(set(T._pydoc_corpus(2**18))))
            elif task.loss == "cross_entropy":
                assert out.shape == (8, int(task.y_train.max()) + 1), (name, model_name)
            else:
                assert out.shape == task.y_train[:8].shape
            result = task.evaluate(model)
            assert set(result) == {"loss", task.metric}, (name, result)
            assert all(math.isfinite(v) for v in result.values()), (name, model_name, result)
            assert model.training  # evaluate restores the mode


def test_same_seed_same_model(cheap_tasks):
    task = cheap_tasks["char-rnn"]
    torch.manual_seed(3)
    first = task.make_model()
    torch.manual_seed(3)
    second = task.make_model()
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


def test_every_model_runs_as_a_vmapped_population(all_tasks):
    """Population training maps a model over stacked parameters; every model must allow it."""
    for name, task in all_tasks.items():
        for model_name in task.models:
            members = [task.make_model(model_name) for _ in range(3)]
            params, buffers = stack_module_state(members)
            x = task.x_train[:4]
            out = vmap(lambda p, b: functional_call(members[0], (p, b), (x,)))(params, buffers)
            expected = torch.stack([m(x) for m in members])
            torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5,
                                       msg=f"{name}/{model_name}")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_matches_torch_gru(bidirectional):
    torch.manual_seed(1)
    ours = T.GRU(3, 5, bidirectional=bidirectional)
    torch.manual_seed(1)
    theirs = nn.GRU(3, 5, batch_first=True, bidirectional=bidirectional)
    # same draws for the same seed, and interchangeable state dicts
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    x = torch.randn(4, 9, 3)
    torch.testing.assert_close(ours(x), theirs(x)[0])


def _graph_nodes(grad_fn) -> set[str]:
    seen, names, stack = set(), set(), [grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


def test_gru_gradients_match_torch_gru_and_backward_is_linear_in_length():
    """Gradients equal nn.GRU's (float64), and the time steps are one ``unbind``: indexing
    ``x[..., t, :]`` made each step's backward fill a zero tensor of the whole sequence."""
    torch.manual_seed(2)
    ours = T.GRU(3, 5).double()
    torch.manual_seed(2)
    theirs = nn.GRU(3, 5, batch_first=True).double()
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    out = ours(x)
    out.square().sum().backward()
    theirs(x)[0].square().sum().backward()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=name)
    nodes = _graph_nodes(out.grad_fn)
    assert "UnbindBackward0" in nodes and "SelectBackward0" not in nodes, nodes


# --------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------

def test_digits_split_and_scaling(digits):
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert digits.x_train.min() == 0 and digits.x_train.max() == 1
    assert digits.x_test.min() >= 0 and digits.x_test.max() <= 1
    # stratified: each class's share of the test set matches its share of the train set
    train_counts = torch.bincount(digits.y_train, minlength=10)
    test_counts = torch.bincount(digits.y_test, minlength=10)
    assert torch.all((train_counts * 360 / 1437 - test_counts).abs() <= 1)
    assert torch.equal(T.get("digits").y_test, digits.y_test)  # a fixed split
    assert n_params(digits.make_model("mlp")) == 64 * 100 + 100 + 100 * 10 + 10
    assert n_params(digits.make_model("logreg")) == 650


# --------------------------------------------------------------------------------------
# MNIST-1D
# --------------------------------------------------------------------------------------

def test_mnist1d_data(mnist1d):
    assert mnist1d.x_train.shape == (4000, 40) and mnist1d.x_test.shape == (1000, 40)
    assert mnist1d.x_train.dtype == torch.float32 and mnist1d.y_train.dtype == torch.int64
    assert set(mnist1d.y_train.tolist()) == set(range(10))


def test_mnist1d_parameter_counts(mnist1d):
    counts = {name: n_params(mnist1d.make_model(name)) for name in mnist1d.models}
    # the paper's models (notebooks/models.py print these counts)
    assert counts == {"logreg": 410, "mlp": 15_210, "cnn": 5_210, "gru": 5_134}


def test_mnist1d_generation_leaves_global_rngs_alone(tmp_path):
    pytest.importorskip("mnist1d")
    random.seed(5)
    np.random.seed(5)
    expected = (random.random(), np.random.rand())
    random.seed(5)
    np.random.seed(5)
    small = T.get("mnist1d", disk_cache=False, num_samples=100, seed=7)
    assert (random.random(), np.random.rand()) == expected
    assert small.x_train.shape == (80, 40) and small.x_test.shape == (20, 40)


def test_mnist1d_disk_cache(tmp_path, monkeypatch):
    mnist1d_data = pytest.importorskip("mnist1d.data")
    first = T.get("mnist1d", data_dir=tmp_path, num_samples=100, seed=3)
    (cached,) = tmp_path.glob("mnist1d-*.npz")
    assert not list(tmp_path.glob("*.tmp"))
    T._mnist1d_arrays.cache_clear()

    def no_generation(*args, **kwargs):
        raise AssertionError("should have loaded the cache file")

    monkeypatch.setattr(mnist1d_data, "make_dataset", no_generation)
    again = T.get("mnist1d", data_dir=tmp_path, num_samples=100, seed=3)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    with pytest.raises(ValueError, match="unknown mnist1d dataset arguments"):
        T.get("mnist1d", data_dir=tmp_path, num_sample=100)


def test_cached_arrays_rebuilds_a_corrupt_file(tmp_path):
    path = tmp_path / "sub" / "thing.npz"
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(3)}

    assert T._cached_arrays(path, ("a",), build)["a"].tolist() == [0, 1, 2]
    assert T._cached_arrays(path, ("a",), build)["a"].tolist() == [0, 1, 2]
    assert len(calls) == 1
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert T._cached_arrays(path, ("a",), build)["a"].tolist() == [0, 1, 2]
    assert len(calls) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["thing.npz"]


# --------------------------------------------------------------------------------------
# sparse-logreg
# --------------------------------------------------------------------------------------

def test_sparse_logreg_has_rare_and_frequent_features(cheap_tasks):
    task = cheap_tasks["sparse-logreg"]
    assert task.x_train.shape == (4000, 1000) and task.x_test.shape == (1000, 1000)
    assert set(task.x_train.unique().tolist()) == {0.0, 1.0}
    frequency = task.x_train.mean(0)
    assert torch.all(frequency[:10] > 0.2)                              # frequent, informative
    assert torch.all((frequency[10:50] > 0.003) & (frequency[10:50] < 0.03))  # rare, informative
    assert (frequency[50:] < 0.02).sum() > 100                         # rare noise too
    assert 0.4 < task.y_train.float().mean() < 0.6
    assert torch.equal(T.get("sparse-logreg").x_test, task.x_test)
    assert not torch.equal(T.get("sparse-logreg", seed=1).x_test, task.x_test)
    assert n_params(task.make_model()) == 2002


# --------------------------------------------------------------------------------------
# char-rnn
# --------------------------------------------------------------------------------------

def test_char_rnn_corpus_and_windows(cheap_tasks):
    from pydoc_data.topics import topics

    task = cheap_tasks["char-rnn"]
    text = T._pydoc_corpus(2**18)
    vocab = sorted(set(text))
    decode = "".join
    assert decode(vocab[i] for i in task.x_train[0]) == text[:64]
    first_topic = topics[sorted(topics)[0]]
    assert text.startswith(first_topic[:200].translate(T._TYPOGRAPHY))
    assert task.x_train.dtype == torch.int64 and task.x_train.shape[1] == 64
    assert torch.equal(task.y_train[:, :-1], task.x_train[:, 1:])      # next-character targets
    assert torch.equal(task.y_train[:-1, -1], task.x_train[1:, 0])
    # the last 10% of the text is the test set
    n = len(text)
    assert decode(vocab[i] for i in task.x_test[0]) == text[int(n * 0.9):int(n * 0.9) + 64]
    assert (len(task.x_train) + len(task.x_test)) * 64 <= n


def test_char_rnn_untrained_model_is_near_uniform(cheap_tasks):
    task = cheap_tasks["char-rnn"]
    vocab_size = len(set(T._pydoc_corpus(2**18)))
    torch.manual_seed(0)
    model = task.make_model()
    assert model(task.x_test[:2]).shape == (2, 64, vocab_size)
    bits = task.evaluate(model)["bits_per_char"]
    assert abs(bits - math.log2(vocab_size)) < 0.25


# --------------------------------------------------------------------------------------
# quadratic-deep
# --------------------------------------------------------------------------------------

def test_quadratic_deep_is_the_deepobs_loss(cheap_tasks):
    task = cheap_tasks["quadratic-deep"]
    landscape = landscapes.get("quadratic_deep")
    model = task.make_model()
    assert torch.equal(model.theta.detach(), torch.ones(100))           # DeepOBS's start
    x = task.x_train[:128].double()
    expected = landscape(model.theta.detach().double() - x).mean()
    got = task.loss_fn(model(task.x_train[:128]), task.y_train[:128])
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)
    at_start = task.evaluate(model)["loss"]
    with torch.no_grad():
        model.theta.zero_()
    at_optimum = task.evaluate(model)["loss"]
    assert at_optimum < at_start / 2
    # at theta = 0 the loss is 0.5 E[x^T H x] = 0.5 * 0.6^2 * trace(H), up to sampling
    trace = torch.autograd.functional.hessian(landscape, torch.zeros(100, dtype=torch.float64))
    assert at_optimum == pytest.approx(0.18 * trace.trace().item(), rel=0.05)


# --------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST IDX files
# --------------------------------------------------------------------------------------

@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 20),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10)}
    for i, (name, array) in enumerate(arrays.items()):
        gz = i % 2 == 1  # some gzipped, some not
        with (gzip.open(tmp_path / f"{name}.gz", "wb") if gz else open(tmp_path / name, "wb")) as f:
            f.write(struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                    + array.astype(np.uint8).tobytes())
    return tmp_path, arrays


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_files_read_back_exactly(idx_dir, name):
    folder, arrays = idx_dir
    task = T.get(name, data_dir=folder)
    assert task.x_train.shape == (20, 1, 28, 28) and task.x_test.shape == (10, 1, 28, 28)
    assert torch.equal(task.x_train * 255, torch.tensor(arrays["train-images-idx3-ubyte"],
                                                        dtype=torch.float32).unsqueeze(1))
    assert task.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert task.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert task.x_train.min() >= 0 and task.x_train.max() <= 1
    for model_name, count in [("mlp", 784 * 100 + 100 + 1010), ("cnn", 61_706)]:
        model = task.make_model(model_name)
        assert n_params(model) == count
        assert model(task.x_train[:3]).shape == (3, 10)
        members = [task.make_model(model_name) for _ in range(2)]
        params, buffers = stack_module_state(members)
        out = vmap(lambda p, b: functional_call(members[0], (p, b), (task.x_test[:2],)))(params, buffers)
        assert out.shape == (2, 2, 10)


def test_idx_needs_data_dir():
    """The message fits both the API and the command line."""
    with pytest.raises(ValueError, match=r"pass data_dir= \(--data-dir on the command line\), "
                                         "the folder holding train-images-idx3-ubyte"):
        T.get("mnist")


def test_idx_missing_file_is_named(idx_dir):
    folder, _ = idx_dir
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="missing .*t10k-labels-idx1-ubyte.*expected the four IDX"):
        T.get("mnist", data_dir=folder)


@pytest.mark.parametrize("damage, match", [
    ("magic", "expected magic number 0x00000803, found 0x00000801"),
    ("truncated", "is truncated"),
    ("trailing", "longer than its header says"),
    ("empty", "found no header"),
])
def test_idx_corrupt_file_is_named(idx_dir, damage, match):
    folder, arrays = idx_dir
    path = folder / "train-images-idx3-ubyte"
    raw = path.read_bytes()
    raw = {"magic": raw[:3] + b"\x01" + raw[4:], "truncated": raw[:-5], "trailing": raw + b"\0",
           "empty": b""}[damage]
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=match) as err:
        T.get("mnist", data_dir=folder)
    assert "train-images-idx3-ubyte" in str(err.value)


def test_idx_bad_gzip_is_named(idx_dir):
    folder, _ = idx_dir
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        T.get("mnist", data_dir=folder)


def test_idx_count_mismatch_is_named(idx_dir):
    folder, _ = idx_dir
    labels = np.zeros(7, dtype=np.uint8)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 7) + labels.tobytes())
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte holds 10 images but .*"
                                         "t10k-labels-idx1-ubyte holds 7 labels"):
        T.get("mnist", data_dir=folder)


def _idx_bytes(array: np.ndarray) -> bytes:
    return (struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("damage, match", [
    ("deflate", "invalid block type"),                         # zlib.error
    ("crc", "CRC check failed"),                               # gzip.BadGzipFile
    ("truncated", "ended before the end-of-stream marker"),    # EOFError
])
def test_idx_corrupt_gzip_stream_is_one_line_naming_the_file(idx_dir, damage, match):
    """A .gz whose gzip header is fine but whose compressed data is damaged: a ValueError
    naming the file in one line, not zlib's or gzip's traceback."""
    folder, arrays = idx_dir
    (folder / "train-images-idx3-ubyte").unlink()
    gz = gzip.compress(_idx_bytes(arrays["train-images-idx3-ubyte"]), mtime=0)
    gz = {"deflate": gz[:10] + b"\xff" * 16 + gz[26:],  # block type 3 does not exist
          "crc": gz[:-8] + bytes(b ^ 0xFF for b in gz[-8:-4]) + gz[-4:],
          "truncated": gz[:len(gz) // 2]}[damage]
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gz)
    with pytest.raises(ValueError, match=match) as err:
        T.get("mnist", data_dir=folder)
    message = str(err.value)
    assert str(path) in message and "cannot read IDX file" in message and "\n" not in message
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        T.read_idx(path, 3)


@pytest.mark.parametrize("stem, shape, gz", [
    ("train-images-idx3-ubyte", (0, 28, 28), False),
    ("t10k-labels-idx1-ubyte", (0,), True),
    ("t10k-images-idx3-ubyte", (10, 0, 28), False),
])
def test_idx_with_zero_items_is_refused_up_front(idx_dir, stem, shape, gz):
    folder, _ = idx_dir
    for old in folder.glob(stem + "*"):
        old.unlink()
    path = folder / (stem + (".gz" if gz else ""))
    raw = _idx_bytes(np.zeros(shape, dtype=np.uint8))
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match="holds no items") as err:
        T.get("mnist", data_dir=folder)
    message = str(err.value)
    assert str(path) in message and str(shape) in message and "\n" not in message
    with pytest.raises(ValueError, match="holds no items"):
        T.read_idx(path, len(shape))


# --------------------------------------------------------------------------------------
# Bring your own task
# --------------------------------------------------------------------------------------

@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(textwrap.dedent("""
        import numpy as np
        import torch
        from torch import nn
        from optimlab.bench.tasks import Task

        def data(n):
            rng = np.random.default_rng(0)
            x = rng.normal(size=(n, 3))
            return x, (x[:, 0] > 0).astype(np.int64)

        def as_dict(n=20, data_dir=None):
            x, y = data(n)
            task = {"model": lambda: nn.Linear(3, 2), "x_train": x, "y_train": y,
                    "x_test": x[:5], "y_test": y[:5], "name": f"toy from {data_dir}"}
            if data_dir == "typo":
                task["metrik"] = "accuracy"
            return task

        def as_tuple():
            x, _ = data(10)
            return nn.Linear(3, 1), x, x[:, :1], x[:4], x[:4, :1], "mse"

        def as_task():
            x, y = data(10)
            t = torch.tensor(x, dtype=torch.float32)
            return Task("mine", t, torch.tensor(y), t, torch.tensor(y), {"m": lambda: nn.Linear(3, 2)},
                        "m", "cross_entropy", "accuracy", "a task")

        def wrong():
            return 42

        not_callable = 42

        def needs_args(x):
            return as_dict()

        def raises_type_error():
            return len(5)

        def returns_none():
            return None

        def returns_strings():
            return nn.Linear(3, 2), "x", "y", "x", "y", "cross_entropy"

        def returns_five():
            x, y = data(10)
            return nn.Linear(3, 2), x, y, x, y
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_tasks"
    sys.modules.pop("my_tasks", None)


def test_user_task_from_a_dict(user_module):
    task = T.get(f"{user_module}:as_dict", n=30)
    assert task.name == "toy from None" and task.loss == "cross_entropy" and task.metric == "accuracy"
    assert task.x_train.shape == (30, 3) and task.x_train.dtype == torch.float32
    assert task.y_train.dtype == torch.int64
    assert set(task.evaluate(task.make_model())) == {"loss", "accuracy"}
    assert T.get(f"{user_module}:as_dict", data_dir="here").name == "toy from here"
    with pytest.raises(ValueError, match="unknown keys \\['metrik'\\]"):
        T.get(f"{user_module}:as_dict", data_dir="typo")


def test_user_task_from_a_tuple_copies_the_module(user_module):
    task = T.get(f"{user_module}:as_tuple")
    assert task.loss == "mse" and task.metric == "loss" and task.y_train.dtype == torch.float32
    first, second = task.make_model(), task.make_model()
    assert first is not second and torch.equal(first.weight, second.weight)
    assert set(task.evaluate(first)) == {"loss"}


def test_a_user_tasks_given_weights_are_part_of_its_sweeps_identity(user_module):
    """A task returning a model instance starts every run from those weights: other weights
    are another sweep, not the stored runs of the first (``bench`` said "nothing trained"
    and showed the first weights' results)."""
    from optimlab.bench.sweep import model_digest

    torch.manual_seed(0)
    first = model_digest(T.get(f"{user_module}:as_tuple"))
    torch.manual_seed(0)
    assert model_digest(T.get(f"{user_module}:as_tuple")) == first  # the same weights
    torch.manual_seed(1)
    assert model_digest(T.get(f"{user_module}:as_tuple")) != first


def test_user_task_returning_a_task(user_module):
    assert T.get(f"{user_module}:as_task").name == "mine"


def test_user_task_errors(user_module):
    with pytest.raises(ValueError, match="cannot import task module 'no_such_module_xyz'"):
        T.get("no_such_module_xyz:make")
    with pytest.raises(ValueError, match="has no function 'missing'"):
        T.get(f"{user_module}:missing")
    with pytest.raises(ValueError, match="must return a Task, a dict or a tuple"):
        T.get(f"{user_module}:wrong")


EXPECTED = "expected a function returning a Task, a dict or a tuple"


@pytest.mark.parametrize("function, match", [
    ("not_callable", r"my_tasks:not_callable is not a function \(it is the int 42\); " + EXPECTED),
    ("needs_args", r"my_tasks:needs_args cannot be called with no arguments \(.*'x'.*\); "
                   + EXPECTED),
    ("raises_type_error", r"my_tasks:raises_type_error raised TypeError: .*len.*; " + EXPECTED),
    ("returns_none", r"my_tasks:returns_none must return a Task, a dict or a tuple .*; "
                     r"got NoneType"),
    ("returns_strings", r"my_tasks:returns_strings: x_train is not an array of numbers .*"
                        r"expected NumPy arrays or tensors"),
    ("missing", r"module 'my_tasks' has no function 'missing' .*; " + EXPECTED),
    ("returns_five", r"^my_tasks:returns_five must return a Task, a dict or a tuple of 6 items "
                     r"\(model, x_train, y_train, x_test, y_test, loss\); got a tuple of 5$"),
])
def test_a_function_that_is_no_task_is_one_line(user_module, function, match):
    """Whatever the named function is (not callable, wrong signature, a TypeError inside,
    something that is no task back), get() raises one ValueError line naming it and saying
    what was expected, never the TypeError or torch's error itself."""
    with pytest.raises(ValueError, match=match) as err:
        T.get(f"{user_module}:{function}")
    assert "\n" not in str(err.value)


def test_task_modules_that_fail_to_import_and_bad_specs_are_one_line(user_module, tmp_path):
    (tmp_path / "broken_tasks.py").write_text("def make(:\n    pass\n")
    (tmp_path / "raising_tasks.py").write_text("raise RuntimeError('first line\\nsecond line')\n")
    try:
        cases = [("broken_tasks:make", r"cannot import task module 'broken_tasks' .*SyntaxError"),
                 ("raising_tasks:make", r"cannot import task module 'raising_tasks' .*"
                                        r"RuntimeError: first line second line"),
                 (":make", r"task ':make' is not 'package.module:function'"),
                 (f"{user_module}:", r"is not 'package.module:function'"),
                 (f"{user_module}:as_dict:x", r"is not 'package.module:function'")]
        for spec, match in cases:
            with pytest.raises(ValueError, match=match) as err:
                T.get(spec)
            assert "\n" not in str(err.value), spec
    finally:
        for name in ("broken_tasks", "raising_tasks"):
            sys.modules.pop(name, None)


# --------------------------------------------------------------------------------------
# The data are checked once, where the Task is built
# --------------------------------------------------------------------------------------

def _fields(**changes):
    """A small valid cross-entropy task's fields (3 features, 3 classes), with ``changes``."""
    x = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    fields = dict(name="t", x_train=x, y_train=y, x_test=x[:4].clone(), y_test=y[:4].clone(),
                  models={"m": lambda: nn.Linear(3, 3)}, default_model="m",
                  loss="cross_entropy", metric="accuracy", description="")
    return {**fields, **changes}


def _user_task(monkeypatch, **changes):
    """``get("byo_data:make")`` for a module whose ``make`` returns ``_fields`` as NumPy arrays
    in the user dict (``changes`` override its entries)."""
    import types

    fields = _fields()
    task = {"model": fields["models"]["m"],
            **{key: fields[key].numpy() for key in ("x_train", "y_train", "x_test", "y_test")},
            **changes}
    module = types.ModuleType("byo_data")
    module.make = lambda: task
    monkeypatch.setitem(sys.modules, "byo_data", module)
    return T.get("byo_data:make")


def _refused(match, build, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as err:
        build(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_float_labels_must_be_whole_numbers(monkeypatch):
    """``.long()`` used to truncate 0.7 to 0 silently; whole-valued floats still convert."""
    y = np.array([0.7, 1.7, 2.7, 0.7, 1.7, 2.7], dtype=np.float32)
    _refused(r"^task 'byo_data:make': y_train holds 0.7 at row 0: class labels must be whole "
             r"numbers$", _user_task, monkeypatch, y_train=y)
    _refused("y_test holds 1.5 at row 2", _user_task, monkeypatch,
             y_test=np.array([0.0, 1.0, 1.5, 2.0]))
    _refused("y_train holds NaN at row 1", _user_task, monkeypatch,
             y_train=np.array([0.0, np.nan, 1, 2, 0, 1]))
    task = _user_task(monkeypatch, y_train=np.array([0.0, 1, 2, 0, 1, 2]))
    assert task.y_train.dtype == torch.int64 and task.y_train.tolist() == [0, 1, 2, 0, 1, 2]


def test_class_labels_must_be_one_per_example(monkeypatch):
    """Labels [N, 1] broadcast against [N] predictions (an accuracy of 13.6 was reported)."""
    y = _fields()["y_train"]
    _refused(r"^task 't': y_train has shape \[6, 1\]: class labels must be \[N\], one per "
             r"example .*y.ravel\(\)$", T.Task, **_fields(y_train=y[:, None]))
    _refused(r"y_test has shape \[4, 1\]", T.Task,
             **_fields(y_test=y[:4, None], loss=lambda out, target: out.sum()))  # accuracy
    _refused(r"y_train has shape \[6, 3\].*look one-hot: pass y.argmax\(1\)", _user_task,
             monkeypatch, y_train=np.eye(3, dtype=np.float32)[y.numpy()])
    # one label per position, as char-rnn has: [N, T] labels for [N, T] token ids
    tokens = torch.randint(0, 5, (6, 7))
    T.Task(**_fields(x_train=tokens, y_train=tokens, x_test=tokens, y_test=tokens))
    features = torch.randn(6, 7, 3)  # [N, T, F] inputs, [N, T] labels
    T.Task(**_fields(x_train=features, y_train=tokens, x_test=features, y_test=tokens))
    # but float features [N, F] take no [N, F] labels, even when F is the number of classes
    _refused(r"y_train has shape \[6, 3\]", T.Task, **_fields(y_train=torch.eye(3).long()[y]))


def test_negative_class_labels_are_refused(monkeypatch):
    y = np.array([0, 1, 2, -1, 1, 2])
    _refused(r"^task 'byo_data:make': y_train holds -1 at row 3: class labels must be 0 or "
             r"more$", _user_task, monkeypatch, y_train=y)
    _refused("y_test holds -100 at row 0", T.Task,
             **_fields(y_test=torch.tensor([-100, 0, 1, 2])))


@pytest.mark.parametrize("key, value, word", [
    ("x_train", float("nan"), "NaN"), ("x_test", float("inf"), "Inf"),
    ("y_train", float("-inf"), "-Inf"), ("y_test", float("nan"), "NaN")])
def test_nan_or_inf_data_is_refused_naming_the_array_and_row(key, value, word):
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    arrays = {"x_train": x, "y_train": y, "x_test": x[:4].clone(), "y_test": y[:4].clone()}
    arrays[key][2, 1] = value
    _refused(rf"^task 't': {key} holds {word} at row 2: the data must be finite$", T.Task,
             **_fields(**arrays, loss="mse", metric="loss"))


def test_large_finite_data_whose_sum_overflows_is_accepted():
    x = torch.full((6, 3), 3e38)  # finite, though its sum is inf (the check's fast path)
    T.Task(**_fields(x_train=x, y_train=x, x_test=x, y_test=x, loss="mse", metric="loss"))


def test_nan_inputs_of_a_user_task_are_refused(monkeypatch):
    x = np.random.default_rng(0).normal(size=(6, 3))
    x[5, 2] = np.nan
    _refused("x_train holds NaN at row 5", _user_task, monkeypatch, x_train=x)


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_set_is_refused(monkeypatch, split):
    fields = _fields()
    empty = {f"x_{split}": fields[f"x_{split}"][:0], f"y_{split}": fields[f"y_{split}"][:0]}
    _refused(rf"^task 't': x_{split} and y_{split} are empty", T.Task, **_fields(**empty))
    _refused(rf"x_{split} and y_{split} are empty", _user_task, monkeypatch,
             **{key: value.numpy() for key, value in empty.items()})


def test_inputs_no_model_takes_are_refused_and_token_ids_kept(monkeypatch):
    """uint8 images (or bool features) reach no model: nn.Linear needs floats, nn.Embedding
    int64; int64 (and int16/int32) inputs stay token ids, as char-rnn's."""
    images = np.random.default_rng(0).integers(0, 256, (6, 3)).astype(np.uint8)
    _refused(r"^task 'byo_data:make': x_train is integer \(uint8\), which no model takes; "
             r"pass floats", _user_task, monkeypatch, x_train=images)
    _refused(r"x_test is bool", T.Task, **_fields(x_test=torch.ones(4, 3, dtype=torch.bool)))
    task = _user_task(monkeypatch, x_train=images.astype(np.int32),
                      x_test=images[:4].astype(np.int16))
    assert task.x_train.dtype == task.x_test.dtype == torch.int64


def test_the_data_checks_cost_little(cheap_tasks):
    """The checks read each array once, whole, and copy nothing: of the torch calls made on
    the four arrays (recorded, not timed), all but one reduction per array are metadata
    (shape, dtype, length); a pass per row, a copy or a second pass shows up as a call."""
    from torch.overrides import TorchFunctionMode

    task = cheap_tasks["sparse-logreg"]  # 4000 x 1000 float inputs, int64 labels
    fields = {key: getattr(task, key) for key in ("name", "x_train", "y_train", "x_test",
                                                  "y_test", "models", "default_model", "loss",
                                                  "metric", "description")}
    arrays = {id(fields[key]): key for key in ("x_train", "y_train", "x_test", "y_test")}
    metadata = {"__get__", "__len__", "is_floating_point", "numel"}  # read no element
    calls = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            on = [arrays[id(a)] for a in args if id(a) in arrays]
            calls.append((getattr(func, "__name__", repr(func)), on))
            return func(*args, **(kwargs or {}))

    with Record():
        made = T.Task(**fields)
    assert all(getattr(made, key) is fields[key] for key in arrays.values())  # no copies
    reads = sorted((name, key) for name, on in calls if name not in metadata for key in on)
    # the finiteness check's one sum of each float array, the labels' one min (>= 0)
    assert reads == [("min", "y_test"), ("min", "y_train"), ("sum", "x_test"),
                     ("sum", "x_train")], reads
    assert len(calls) < 100, calls  # and a constant number of calls, not one per row


def test_a_task_module_in_the_current_folder_is_found_without_it_on_the_path(
        tmp_path, monkeypatch):
    """The `optimlab` console script's sys.path starts with its own folder, not the current
    one (as `python -m` has it): a task module beside the user is found all the same, and
    the path is left as it was."""
    (tmp_path / "here_tasks.py").write_text(textwrap.dedent("""
        import numpy as np
        from torch import nn

        def task():
            x = np.random.default_rng(0).normal(size=(12, 3))
            y = (x[:, 0] > 0).astype(np.int64)
            return {"model": lambda: nn.Linear(3, 2), "x_train": x, "y_train": y,
                    "x_test": x[:4], "y_test": y[:4]}
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "here_tasks", raising=False)
    before = list(sys.path)
    assert len(T.get("here_tasks:task").x_train) == 12
    assert sys.path == before


# --------------------------------------------------------------------------------------
# Train and test must fit one model; user tasks' losses and arrays
# --------------------------------------------------------------------------------------

def test_train_and_test_examples_of_different_shape_or_dtype_are_refused(monkeypatch):
    """x_test of 7 features against x_train's 8 failed every run later, in a matmul."""
    x = torch.randn(6, 8)
    _refused(r"^task 't': x_train has shape \[6, 8\] but x_test \[4, 7\]: train and test "
             r"examples must have the same shape", T.Task, **_fields(x_train=x, x_test=x[:4, :7]))
    _refused(r"^task 't': x_train is float32 but x_test is float64: train and test must have "
             r"the same dtype$", T.Task, **_fields(x_test=torch.randn(4, 3, dtype=torch.float64)))
    # for mse the targets too; for class labels their shape follows from the inputs'
    y = torch.randn(6, 2)
    _refused(r"y_train has shape \[6, 2\] but y_test \[4, 3\]", T.Task,
             **_fields(y_train=y, y_test=torch.randn(4, 3), loss="mse", metric="loss"))
    _refused(r"y_train is float32 but y_test is float64", T.Task,
             **_fields(y_train=y, y_test=y[:4].double(), loss="mse", metric="loss"))
    T.Task(**_fields(y_train=y, y_test=y[:4], loss="mse", metric="loss"))
    # a user task's arrays, converted first (float64 and float32 both become float32)
    x = np.random.default_rng(0).normal(size=(6, 8))
    _refused(r"^task 'byo_data:make': x_train has shape \[6, 8\] but x_test \[4, 7\]",
             _user_task, monkeypatch, x_train=x, x_test=x[:4, :7].astype(np.float32))
    assert _user_task(monkeypatch, x_train=x[:, :3],
                      x_test=x[:4, :3].astype(np.float32)).x_test.dtype == torch.float32


def test_a_user_dict_or_tuple_takes_a_loss_function(monkeypatch):
    """Task takes a function as its loss; the dict (and tuple) of a task module now too."""
    import torch.nn.functional as F

    task = _user_task(monkeypatch, loss=F.cross_entropy)
    assert task.loss is F.cross_entropy and task.metric == "loss"
    assert task.y_train.dtype == torch.int64  # integer targets stay class labels
    assert set(task.evaluate(task.make_model())) == {"loss"}
    task = _user_task(monkeypatch, loss=F.cross_entropy, metric="accuracy")
    assert set(task.evaluate(task.make_model())) == {"loss", "accuracy"}
    fields = _fields()
    x = fields["x_train"].numpy()
    huber = functools.partial(F.huber_loss, delta=0.5)
    module = types.ModuleType("byo_tuple")
    module.make = lambda: (lambda: nn.Linear(3, 2), x, x[:, :2], x[:4], x[:4, :2], huber)
    monkeypatch.setitem(sys.modules, "byo_tuple", module)
    task = T.get("byo_tuple:make")
    assert task.loss is huber and task.y_train.dtype == torch.float32
    assert math.isfinite(task.evaluate(task.make_model())["loss"])
    _refused(r"^task 'byo_data:make': loss must be one of", _user_task, monkeypatch, loss="hinge")
    _refused(r"^byo_data:make: loss must be a name such as 'cross_entropy' or 'mse', or a "
             r"function \(output, target\) -> mean loss; got int$", _user_task, monkeypatch, loss=3)


def test_numpy_views_and_read_only_arrays_are_copied(monkeypatch):
    """Negative strides (x[::-1], np.flip) were refused as "not an array of numbers"; a
    read-only array gave torch's "not writable" warning, and the task shared the memory of
    the caller's arrays."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    task = _user_task(monkeypatch, x_train=x[::-1], y_train=y[::-1], x_test=np.flip(x[:4], 1))
    assert torch.equal(task.x_train, torch.tensor(x[::-1].copy()))
    assert task.y_train.tolist() == [2, 1, 0, 2, 1, 0]
    assert torch.equal(task.x_test, torch.tensor(x[:4, ::-1].copy()))
    frozen = x.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task = _user_task(monkeypatch, x_train=frozen, x_test=frozen[:4])
    assert torch.equal(task.x_train, torch.tensor(x))
    mine = x.copy()
    task = _user_task(monkeypatch, x_train=mine, y_train=y.copy())
    mine[:] = 0  # the caller reuses its arrays: the task keeps the data it was given
    assert torch.equal(task.x_train, torch.tensor(x)) and task.x_train.abs().sum() > 0
    assert not np.shares_memory(task.x_train.numpy(), mine)


# --------------------------------------------------------------------------------------
# MNIST-1D's arguments and description
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_samples, match", [
    (5, r"got 5$"),
    (205, r"got 205 \(it would make 200\): pass 200 or 210$"),
    ("100", r"got '100'$"),
    (True, r"got True$"),
])
def test_mnist1d_num_samples_that_do_not_make_that_many_are_refused(num_samples, match):
    """mnist1d makes num_samples // 10 signals per digit: 5 failed in numpy ("need at least
    one array to stack"), 205 made 200 while the description said 205."""
    pytest.importorskip("mnist1d")
    _refused(r"^task 'mnist1d': num_samples must be a whole multiple of 10, at least 10 .*"
             + match, T.get, "mnist1d", disk_cache=False, num_samples=num_samples)


def test_mnist1d_description_says_what_was_made(mnist1d):
    """The description's length, sizes and parameter counts are the data's and models'
    (they said length 40 and 40-100-100-10 for any final_seq_length), and it says the data
    are standardised over all samples before the split, as mnist1d's make_dataset does."""
    short = T.get("mnist1d", disk_cache=False, num_samples=100, final_seq_length=20)
    for task, length in [(mnist1d, 40), (short, 20)]:
        text = task.description
        assert f"length {length} " in text and f"mlp {length}-100-100-10 " in text
        assert f"logreg {length}-10 " in text and f"{length}x12 outputs" in text
        assert f"{len(task.x_train)} train / {len(task.x_test)} test" in text
        for name in task.models:
            assert f"({n_params(task.make_model(name)):,}" in text, (length, name)
        assert "over all samples, train and test together, before the split" in text
        every = torch.cat([task.x_train, task.x_test])  # what that sentence says
        assert abs(every.mean().item()) < 1e-4 and abs(every.std(correction=0).item() - 1) < 1e-4
    assert "Linear(125,10)" in mnist1d.description and "Linear(480,10)" in mnist1d.description
    assert "Linear(75,10)" in short.description and "Linear(240,10)" in short.description
    assert "(100 samples: 80 train / 20 test" in short.description


# --------------------------------------------------------------------------------------
# IDX files: which file is wrong, gzip under a plain name, two copies of one file
# --------------------------------------------------------------------------------------

def _write_idx_folder(folder, train=(28, 28), test=(28, 28)):
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    for stem, array in [("train-images-idx3-ubyte", rng.integers(0, 256, (20, *train))),
                        ("train-labels-idx1-ubyte", rng.integers(0, 10, 20)),
                        ("t10k-images-idx3-ubyte", rng.integers(0, 256, (10, *test))),
                        ("t10k-labels-idx1-ubyte", rng.integers(0, 10, 10))]:
        (folder / stem).write_bytes(_idx_bytes(array))
    return folder


@pytest.mark.parametrize("train, test, named, match", [
    ((8, 8), (8, 8), "train-images-idx3-ubyte", r"holds 8x8 images: the models need at least "
                                                r"12x12$"),
    ((28, 28), (8, 8), "t10k-images-idx3-ubyte", r"holds 8x8 images"),
    ((28, 28), (20, 20), "t10k-images-idx3-ubyte", r"holds 20x20 images but .*"
                                                   r"train-images-idx3-ubyte 28x28: train and test "
                                                   r"images must be the same size$"),
])
def test_idx_images_of_the_wrong_size_name_the_file(tmp_path, train, test, named, match):
    """8x8 training images were reported against the test file."""
    folder = _write_idx_folder(tmp_path / "idx", train, test)
    message = _refused(match, T.get, "mnist", data_dir=folder)
    assert message.startswith(str(folder / named))


def test_idx_gzip_data_without_gz_suffix_is_read(idx_dir):
    """gzip data named like a plain file gave "expected magic number 0x00000803, found
    0x1f8b0808"; it is read through gzip now."""
    folder, arrays = idx_dir
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(_idx_bytes(arrays["train-images-idx3-ubyte"])))
    np.testing.assert_array_equal(T.read_idx(path, 3), arrays["train-images-idx3-ubyte"])
    task = T.get("mnist", data_dir=folder)
    assert torch.equal(task.x_train[:, 0] * 255, torch.tensor(arrays["train-images-idx3-ubyte"],
                                                              dtype=torch.float32))
    path.write_bytes(gzip.compress(_idx_bytes(arrays["train-images-idx3-ubyte"]))[:-20])
    _refused(r"cannot read IDX file .*train-images-idx3-ubyte: .*damaged or truncated gzip",
             T.read_idx, path, 3)


def test_idx_plain_and_gz_copies_must_agree(idx_dir):
    """Both train-labels-idx1-ubyte and its .gz: the plain one was read silently even when
    they differed (a gunzip -k of another download)."""
    folder, arrays = idx_dir
    labels = arrays["train-labels-idx1-ubyte"]
    plain = folder / "train-labels-idx1-ubyte"
    plain.write_bytes(_idx_bytes(labels))  # the same data as the .gz beside it: fine
    assert T.get("mnist", data_dir=folder).y_train.tolist() == labels.tolist()
    plain.write_bytes(_idx_bytes((labels + 1) % 10))
    _refused(rf"^{folder} holds both train-labels-idx1-ubyte and train-labels-idx1-ubyte.gz, "
             "with different data: remove the one that is not your data set$",
             T.get, "mnist", data_dir=folder)
    # a copy that does not read (a truncated .gz) is passed over where another reads
    plain.write_bytes(_idx_bytes(labels))
    gz = folder / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:20])
    assert T.get("mnist", data_dir=folder).y_train.tolist() == labels.tolist()
    plain.unlink()  # and where none reads, its error is said
    _refused(r"train-labels-idx1-ubyte.gz", T.get, "mnist", data_dir=folder)


def test_data_dir_with_a_tilde_is_expanded(idx_dir, tmp_path, monkeypatch, user_module):
    folder, arrays = idx_dir
    monkeypatch.setenv("HOME", str(folder.parent))
    task = T.get("mnist", data_dir=f"~/{folder.name}")
    assert task.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert str(folder) in task.description and "~" not in task.description
    assert T.get(f"{user_module}:as_dict", data_dir="~/here").name == f"toy from {folder.parent}/here"


def test_mnist1d_cache_folder_with_a_tilde_is_expanded(tmp_path, monkeypatch):
    pytest.importorskip("mnist1d")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    T.get("mnist1d", data_dir="~/cache", num_samples=100, seed=3)
    assert len(list((tmp_path / "cache").glob("mnist1d-*.npz"))) == 1
    assert not (tmp_path / "~").exists()


# --------------------------------------------------------------------------------------
# Optional packages: a missing one says what to install
# --------------------------------------------------------------------------------------

def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    with pytest.raises(ImportError, match=r"^task 'digits' needs scikit-learn: pip install "
                                          r"'optimlab\[bench\]' \(.*sklearn.*\)$") as err:
        T.get("digits")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("known_defaults", [True, False])
def test_mnist1d_without_its_package_says_what_to_install(monkeypatch, known_defaults):
    """Generating the data set (or asking an unknown release for its defaults) imports
    mnist1d.data; without it, the error says which extra installs it."""
    for name in ("mnist1d", "mnist1d.data", "mnist1d.utils", "mnist1d.transform"):
        monkeypatch.setitem(sys.modules, name, None)
    if not known_defaults:
        monkeypatch.setattr(T, "_MNIST1D_DEFAULT_ARGS", {})
    T._mnist1d_arrays.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"^task 'mnist1d' needs the mnist1d package: pip "
                                              r"install 'optimlab\[bench\]' \(.*mnist1d.*\)$"):
            T.get("mnist1d", disk_cache=False, num_samples=100, seed=11)
    finally:
        T._mnist1d_arrays.cache_clear()


# --------------------------------------------------------------------------------------
# IDX files saved under another name or in a folder; the counts said; builder arguments
# --------------------------------------------------------------------------------------

def test_idx_decompressed_file_still_named_gz_is_read(idx_dir):
    """A decompressed file still named .gz (as browsers save a download) was refused with
    "Not a gzipped file ... fetch the file again": gzip is told by the first two bytes."""
    folder, arrays = idx_dir
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(_idx_bytes(arrays["train-labels-idx1-ubyte"]))
    np.testing.assert_array_equal(T.read_idx(path, 1), arrays["train-labels-idx1-ubyte"])
    assert T.get("mnist", data_dir=folder).y_train.tolist() == \
        arrays["train-labels-idx1-ubyte"].tolist()
    path.write_bytes(b"neither gzip nor IDX")
    message = _refused(r"train-labels-idx1-ubyte.gz is not an IDX file of unsigned bytes with 1 "
                       r"dimension\(s\) \(nor gzip data, whatever its name says\): expected magic",
                       T.read_idx, path, 1)
    assert "fetch the file again" not in message


def test_idx_file_in_a_folder_of_its_name_is_used_or_the_folder_named(idx_dir):
    """Kaggle's MNIST unpacks to train-images-idx3-ubyte/train-images-idx3-ubyte: the
    folder was reported as "missing .../train-images-idx3-ubyte (or .gz)"."""
    folder, arrays = idx_dir
    stem = "train-images-idx3-ubyte"
    data = (folder / stem).read_bytes()
    (folder / stem).unlink()
    (folder / stem).mkdir()
    (folder / stem / stem).write_bytes(data)
    task = T.get("mnist", data_dir=folder)
    assert torch.equal(task.x_train[:, 0] * 255, torch.tensor(arrays[stem], dtype=torch.float32))
    (folder / stem / stem).rename(folder / stem / "readme.txt")
    message = _refused(rf"^{folder / stem} is a folder, not the IDX file, and holds no file named "
                       rf"{stem} \(or .gz\) \(it holds readme.txt\): put the file {stem} "
                       rf"\(optionally gzipped\) in {folder}$", T.get, "mnist", data_dir=folder)
    assert "missing" not in message


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_description_says_the_counts_read(idx_dir, name):
    """The description said 60,000 train / 10,000 test whatever the files held."""
    folder, _ = idx_dir
    text = T.get(name, data_dir=folder).description
    assert "20 train / 10 test" in text and "60,000" not in text and "10,000" not in text


@pytest.mark.parametrize("name, kwargs, match", [
    ("sparse-logreg", {"n_train": -5}, r"n_train must be an integer >= 1, got -5$"),
    ("sparse-logreg", {"n_test": 0}, r"n_test must be an integer >= 1, got 0$"),
    ("sparse-logreg", {"n_rare": 2.5}, r"n_rare must be an integer >= 0, got 2.5$"),
    ("sparse-logreg", {"seed": True}, r"seed must be an integer >= 0, got True$"),
    ("char-rnn", {"seq_len": 0}, r"seq_len must be an integer >= 1, got 0$"),
    ("char-rnn", {"seq_len": -1}, r"seq_len must be an integer >= 1, got -1$"),
    ("char-rnn", {"seq_len": 64.5}, r"seq_len must be an integer >= 1, got 64.5$"),
    ("char-rnn", {"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\), got 1.0$"),
    ("quadratic-deep", {"noise": -1.0}, r"noise must be in \[0, inf\), got -1.0$"),
    ("quadratic-deep", {"noise": math.nan},
     r"noise must be a finite number of magnitude at most 3.403e\+38 \(float32's largest\), "
     r"got nan$"),
    ("quadratic-deep", {"n_samples": 0}, r"n_samples must be an integer >= 1, got 0$"),
    ("quadratic-deep", {"seed": -1}, r"seed must be an integer in \[0, 4294967295\], got -1$"),
    # a whole count built the right split under a description of "-35900%/36000%"
    ("digits", {"test_size": 360}, r"test_size must be in \(0, 1\), got 360$"),
    ("digits", {"test_size": 0}, r"test_size must be in \(0, 1\), got 0$"),
    ("digits", {"test_size": 0.001}, r"test_size=0.001 cannot split the 1797 images with every "
                                     r"class on both sides \(.*\)$"),
])
def test_builder_arguments_out_of_range_are_refused_naming_task_and_argument(name, kwargs, match):
    """n_train=-5 built a wrong split by negative slicing; seq_len 0, -1 and 64.5 raised
    ZeroDivisionError, RuntimeError and TypeError; noise=-1 NumPy's bare "scale < 0"."""
    _refused(rf"^task '{name}': {match}", T.get, name, **kwargs)


def test_builder_arguments_take_numpy_integers():
    """NumPy integers are whole numbers: mnist1d's seed=np.int64(1) raised "Object of type
    int64 is not JSON serializable" and num_samples=np.int64(100) was refused."""
    task = T.get("sparse-logreg", n_train=np.int64(50), n_test=np.int32(20), seed=np.int64(1))
    assert len(task.x_train) == 50 and len(task.x_test) == 20
    assert torch.equal(task.x_train, T.get("sparse-logreg", n_train=50, n_test=20, seed=1).x_train)
    assert T.get("char-rnn", seq_len=np.int64(32), max_chars=5000).x_train.shape[1] == 32
    assert len(T.get("quadratic-deep", n_samples=np.int64(7), noise=np.float32(0.5)).x_train) == 7
    pytest.importorskip("mnist1d")
    task = T.get("mnist1d", disk_cache=False, num_samples=np.int64(100), seed=np.int64(1))
    plain = T.get("mnist1d", disk_cache=False, num_samples=100, seed=1)
    assert torch.equal(task.x_train, plain.x_train) and task.description == plain.description
    _refused(r"^task 'mnist1d': seed must be an integer in \[0, 4294967295\], got -1$",
             T.get, "mnist1d", disk_cache=False, num_samples=100, seed=-1)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_evaluate_refuses_a_batch_size_that_is_not_a_whole_number_above_0(bad):
    """batch_size 0, -1 and 2.5 raised range()'s, ZeroDivisionError and TypeError."""
    task = T.get("digits")
    with pytest.raises((ValueError, TypeError), match=rf"^batch_size must be an integer >= 1, got {bad}$"):
        task.evaluate(task.models["logreg"](), batch_size=bad)
