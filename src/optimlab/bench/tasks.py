"""Training tasks: a data set, the models that learn it, a loss and a test metric.

``get(name)`` builds a :class:`Task`; nothing is downloaded. The built-in tasks:

================  ==========================================  ==============  ================
name              data                                        models          metric
================  ==========================================  ==============  ================
digits            scikit-learn's 8x8 digits (bundled), 80/20  mlp*, logreg    accuracy
mnist1d           MNIST-1D generated locally (4000/1000)      mlp*, logreg,   accuracy
                                                              cnn, gru
sparse-logreg     synthetic: 1000 binary features, some rare  logreg*         accuracy
char-rnn          Python's own pydoc topics text              gru*            bits_per_char
quadratic-deep    DeepOBS's noisy 100-D quadratic             theta*          loss
mnist             your IDX files (``data_dir``)               mlp*, cnn       accuracy
fashion-mnist     your IDX files (``data_dir``)               mlp*, cnn       accuracy
================  ==========================================  ==============  ================

(* the default model.) ``get("pkg.module:function")`` loads your own task; see
:func:`get`. Models are built by factories, so the caller seeds the initialisation::

    task = get("sparse-logreg")
    torch.manual_seed(0)
    model = task.make_model()
    loss = task.loss_fn(model(task.x_train[:100]), task.y_train[:100])
    task.evaluate(model)            # {"loss": ..., "accuracy": ...}

Every model runs under ``torch.func.vmap`` over stacked parameters (population training),
which is why the GRUs are written out in :class:`GRU` rather than taken from ``nn.GRU``.

scikit-learn (``digits``) and ``mnist1d`` are imported only when their task is built, and
``mnist1d.data`` (which imports SciPy and Matplotlib, 1.5 s) only when MNIST-1D is generated
rather than read from the cache; when one is missing, the ``ImportError`` says to
``pip install 'optimlab[bench]'``.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import gzip
import hashlib
import inspect
import json
import math
import numbers
import os
import struct
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._files import write_atomically
from .._table import one_line
from .._userfunc import user_function
from ..optim.base import ArgumentTypeError, check_int, check_range

__all__ = ["Task", "GRU", "get", "names", "catalog_name", "read_idx", "CacheWarning"]

#: the attribute, set to True on a task's model factory, that says each build copies given
#: weights (the same values whatever the seed), so :func:`~.sweep.model_digest` digests them
#: too (a user task returning a model instance; :func:`optimlab.advise` on your model)
GIVEN_WEIGHTS = "given_weights"

LOSSES = ("cross_entropy", "mse")
METRICS = ("accuracy", "bits_per_char", "loss")


# --------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False, repr=False)
class Task:
    """A supervised problem: train/test tensors, model factories, a loss and a metric.

    Attributes:
        name: the task's name (what :func:`get` was given).
        x_train, y_train, x_test, y_test: inputs are float32 (int64 token ids for
            ``char-rnn``); targets are int64 class labels for ``cross_entropy`` and float32
            for ``mse``. The first axis indexes examples.
        models: model name -> factory returning a fresh ``nn.Module``; seed with
            ``torch.manual_seed`` before calling it to fix the initialisation.
        default_model: the model :meth:`make_model` builds when given no name.
        loss: ``"cross_entropy"`` (outputs are logits ``[..., C]``, targets ``[...]``),
            ``"mse"`` (outputs and targets of the same shape), or any function
            ``(output, target) -> mean loss`` (the population engine maps it with
            ``torch.vmap``; see :func:`optimlab.bench.advisor.advise`).
        metric: ``"accuracy"``, ``"bits_per_char"`` (cross entropy in bits) or ``"loss"``.
        description: where the data comes from and the choices made, with references.

    The data are checked once, here, and refused with one ``ValueError`` line naming the
    array: an empty train or test set, NaN or Inf (with the first bad row), uint8, int8 or
    bool inputs (no model takes them), and class labels (``cross_entropy`` or ``accuracy``)
    that are negative or not of shape ``[N]`` (or ``[N, T]``, one label per position of a
    sequence), and train and test inputs whose examples differ in shape (all axes but the
    first) or dtype (for ``mse``, targets too). Labels beyond the model's classes and
    regression targets of the wrong shape need the model's output: the trainer checks them
    before it trains (:func:`optimlab.bench.trainer.check_output`).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    models: dict[str, Callable[[], nn.Module]]
    default_model: str
    loss: str
    metric: str
    description: str

    def __post_init__(self) -> None:
        if not (self.loss in LOSSES or callable(self.loss)):
            raise ValueError(f"task {self.name!r}: loss must be one of {LOSSES} or a function "
                             f"(output, target) -> mean loss, got {self.loss!r}")
        if self.metric not in METRICS:
            raise ValueError(f"task {self.name!r}: metric must be one of {METRICS}, got {self.metric!r}")
        if self.metric == "bits_per_char" and self.loss != "cross_entropy" or \
                self.metric == "accuracy" and self.loss == "mse":
            raise ValueError(f"task {self.name!r}: metric {self.metric!r} needs loss 'cross_entropy'"
                             + (" (or a loss function of class labels)"
                                if self.metric == "accuracy" else ""))
        if self.default_model not in self.models:
            raise ValueError(f"task {self.name!r}: default_model {self.default_model!r} is not one "
                             f"of its models {sorted(self.models)}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
                raise ValueError(f"task {self.name!r}: x_{split} and y_{split} must be tensors")
            if x.ndim == 0 or y.ndim == 0:
                raise ValueError(f"task {self.name!r}: x_{split} and y_{split} need a first axis "
                                 f"of examples, got shapes {list(x.shape)} and {list(y.shape)}")
            if len(x) != len(y):
                raise ValueError(f"task {self.name!r}: x_{split} has {len(x)} examples but "
                                 f"y_{split} has {len(y)}")
            if self.loss == "cross_entropy" and y.dtype != torch.int64:
                raise ValueError(f"task {self.name!r}: cross_entropy needs int64 labels in "
                                 f"y_{split}, got {y.dtype}")
            if len(x) == 0:
                raise ValueError(f"task {self.name!r}: x_{split} and y_{split} are empty; a task "
                                 f"needs at least one {split} example")
        prefix = f"task {self.name!r}: "
        for key in ("x_train", "y_train", "x_test", "y_test"):
            _check_finite(prefix, key, getattr(self, key))
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype in (torch.uint8, torch.int8, torch.bool):
                kind = "bool" if x.dtype == torch.bool else f"integer ({str(x.dtype)[6:]})"
                raise ValueError(f"{prefix}x_{split} is {kind}, which no model takes; pass floats "
                                 "(e.g. pixels / 255), or int64 token ids")
            if self.loss == "cross_entropy" or self.metric == "accuracy":
                _check_labels(prefix, f"y_{split}", y, x)
        # a model built for the training examples must take the test ones (a test set of 7
        # features against 8 failed every run later, in a matmul)
        for key in ("x", "y") if self.loss == "mse" else ("x",):
            train, test = getattr(self, f"{key}_train"), getattr(self, f"{key}_test")
            if train.shape[1:] != test.shape[1:]:
                raise ValueError(f"{prefix}{key}_train has shape {list(train.shape)} but {key}_test "
                                 f"{list(test.shape)}: train and test examples must have the same "
                                 "shape (all axes but the first)")
            if train.dtype != test.dtype:
                raise ValueError(f"{prefix}{key}_train is {str(train.dtype)[6:]} but {key}_test is "
                                 f"{str(test.dtype)[6:]}: train and test must have the same dtype")

    def __repr__(self) -> str:
        return (f"Task({self.name!r}, train {tuple(self.x_train.shape)}, test "
                f"{tuple(self.x_test.shape)}, models {sorted(self.models)}, loss {self.loss!r}, "
                f"metric {self.metric!r})")

    def make_model(self, name: str | None = None) -> nn.Module:
        """A freshly initialised model (``name`` defaults to :attr:`default_model`)."""
        name = self.default_model if name is None else name
        if name not in self.models:
            raise ValueError(f"task {self.name!r} has no model {name!r}; its models: "
                             f"{', '.join(sorted(self.models))}")
        return self.models[name]()

    def loss_fn(self, output: Tensor, target: Tensor) -> Tensor:
        """The mean loss over every example (and every position, for sequences)."""
        if callable(self.loss):
            return self.loss(output, target)
        if self.loss == "cross_entropy":
            return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
        return F.mse_loss(output, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch_size: int = 1000) -> dict[str, float]:
        """Test-set ``{"loss": ..., metric: ...}`` (just ``{"loss": ...}`` if the metric is the loss).

        Runs in eval mode without gradients, in batches, on the model's device; the model's
        train/eval mode is restored afterwards.
        """
        check_int("batch_size", batch_size, 1)
        device = next(model.parameters(), torch.empty(0)).device
        was_training = model.training
        model.eval()
        try:
            total_loss, correct, count = 0.0, 0, 0
            for start in range(0, len(self.x_test), batch_size):
                x = self.x_test[start:start + batch_size].to(device)
                y = self.y_test[start:start + batch_size].to(device)
                out = model(x)
                total_loss += self.loss_fn(out, y).item() * len(x)
                if self.metric == "accuracy":
                    correct += (out.argmax(-1) == y).sum().item()
                    count += y.numel()
        finally:
            model.train(was_training)
        loss = total_loss / len(self.x_test)
        result = {"loss": loss}
        if self.metric == "accuracy":
            result["accuracy"] = correct / count
        elif self.metric == "bits_per_char":
            result["bits_per_char"] = loss / math.log(2)
        return result


def _first_row(mask: Tensor) -> int:
    """The first index on ``mask``'s first axis where it is true anywhere."""
    return int(mask.reshape(len(mask), -1).any(1).nonzero()[0, 0])


def _check_finite(prefix: str, key: str, t: Tensor) -> None:
    """Refuse NaN or infinite values in ``t``, naming ``key`` and the first bad row."""
    # one pass: the sum of finite numbers is finite unless it overflows (then look closer)
    if not t.is_floating_point() or torch.isfinite(t.sum()) or torch.isfinite(t).all():
        return
    bad = ~torch.isfinite(t)
    row = _first_row(bad)
    value = t[row][bad[row]][0].item()
    word = "NaN" if math.isnan(value) else "Inf" if value > 0 else "-Inf"
    raise ValueError(f"{prefix}{key} holds {word} at row {row}: the data must be finite")


def _check_whole(prefix: str, key: str, y: Tensor) -> None:
    """Refuse float class labels that are not whole numbers (``.long()`` would truncate them)."""
    if not y.is_floating_point():
        return
    _check_finite(prefix, key, y)
    fractional = y != y.round()
    if fractional.any():
        row = _first_row(fractional)
        value = y[row][fractional[row]][0].item()
        raise ValueError(f"{prefix}{key} holds {value:g} at row {row}: class labels must be "
                         "whole numbers")


def _check_labels(prefix: str, key: str, y: Tensor, x: Tensor) -> None:
    """Class labels: whole numbers, 0 or more, of shape ``[N]``, or one label per position of
    a sequence: ``x``'s shape for token ids (char-rnn's ``[N, T]``), its leading axes for
    float inputs (``[N, T]`` for ``[N, T, F]``). A last axis of 1 is refused either way."""
    _check_whole(prefix, key, y)
    per_position = y.shape == x.shape[:y.ndim] and (y.ndim < x.ndim or not x.is_floating_point())
    if y.ndim > 1 and (y.shape[-1] == 1 or not per_position):
        hint = ""
        if y.ndim == 2 and y.shape[-1] == 1:
            hint = "; flatten a column of labels with y.ravel()"
        elif y.ndim == 2 and bool(((y == 0) | (y == 1)).all() and (y.sum(1) == 1).all()):
            hint = "; these look one-hot: pass y.argmax(1)"
        raise ValueError(f"{prefix}{key} has shape {list(y.shape)}: class labels must be [N], one "
                         "per example (or [N, T] for one label per position of sequences [N, T] "
                         f"of token ids or [N, T, F] of features){hint}")
    if y.numel() and y.min() < 0:
        negative = y < 0
        row = _first_row(negative)
        value = y[row][negative[row]][0].item()
        raise ValueError(f"{prefix}{key} holds {value:g} at row {row}: class labels must be 0 "
                         "or more")


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

class GRU(nn.Module):
    """One ``batch_first`` GRU layer with ``nn.GRU``'s equations, parameter names and init.

    ``nn.GRU`` has no ``torch.func.vmap`` batching rule, so population training could not
    map it over stacked parameters; this loop over time steps can. With the same seed it
    draws the same initial weights as ``nn.GRU`` and its state dict loads into one (the
    tests check that both give the same outputs). Input ``[B, T, I]``, output
    ``[B, T, H]`` (``[B, T, 2H]`` bidirectional: forward then reverse features).
    """

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        bound = 1 / math.sqrt(hidden_size)
        shapes = {"weight_ih_l0": (3 * hidden_size, input_size),
                  "weight_hh_l0": (3 * hidden_size, hidden_size),
                  "bias_ih_l0": (3 * hidden_size,), "bias_hh_l0": (3 * hidden_size,)}
        for suffix in ("", "_reverse") if bidirectional else ("",):
            for name, shape in shapes.items():  # nn.GRU's order, so the same draws
                self.register_parameter(name + suffix,
                                        nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, x: Tensor) -> Tensor:
        out = self._direction(x, "")
        if self.bidirectional:
            out = torch.cat([out, self._direction(x.flip(-2), "_reverse").flip(-2)], dim=-1)
        return out

    def _direction(self, x: Tensor, suffix: str) -> Tensor:
        w_ih, w_hh, b_ih, b_hh = (getattr(self, name + suffix) for name in
                                  ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
        h = x.new_zeros(x.shape[:-2] + (self.hidden_size,), dtype=w_hh.dtype)
        outputs = []
        # one tensor per time step: unbind's backward stacks the T gradients once, where
        # indexing x[..., t, :] made every step's backward fill a zero tensor of the whole
        # sequence (quadratic in T: for 39 members x 100 sequences of 64, 14 s a step, now 3 s)
        # F.linear, not x @ w.T: on stacked members the population engine runs it as one
        # batched product (trainer._StackedLinear) instead of mapping the loop with vmap
        for x_t in F.linear(x, w_ih, b_ih).unbind(-2):
            # r, z, n: reset gate, update gate, candidate, in nn.GRU's order
            x_r, x_z, x_n = x_t.chunk(3, dim=-1)
            h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            h = (1 - z) * n + z * h
            outputs.append(h)
        return torch.stack(outputs, dim=-2)


def _mlp(*sizes: int) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` through ``sizes`` (input first)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------
# The builders' arguments
# --------------------------------------------------------------------------------------

def _whole(task: str, name: str, value, minimum: int, maximum: int = 2**63 - 1) -> int:
    """``value``, the builder argument ``name`` of ``task``, as an ``int``, checked as
    :func:`~optimlab.optim.base.check_int` checks (any integer, NumPy's included, not a
    bool, from ``minimum`` to ``maximum``); its ``ValueError`` names the task."""
    try:
        check_int(name, value, minimum, maximum)
    except ValueError as err:
        raise type(err)(f"task {task!r}: {err}") from None
    return int(value)


def _real(task: str, name: str, value, low: float, high: float | None = None, *,
          low_open: bool = False) -> float:
    """``value``, the builder argument ``name`` of ``task``, as a ``float``, checked as
    :func:`~optimlab.optim.base.check_range` checks (a finite real number, NumPy's
    included, not a bool, in ``[low, high)``, or ``(low, high)`` with ``low_open``); its
    ``ValueError`` names the task."""
    try:
        check_range(name, value, low, high, low_open=low_open)
    except ValueError as err:
        raise type(err)(f"task {task!r}: {err}") from None
    return float(value)


def _plain(value):
    """A NumPy scalar or array as Python numbers or lists (what ``json`` writes)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a number, string or list")


# --------------------------------------------------------------------------------------
# digits (scikit-learn)
# --------------------------------------------------------------------------------------

@contextlib.contextmanager
def _needs(task: str, what: str):
    """Re-raise an ``ImportError`` of the optional packages a task imports (scikit-learn,
    mnist1d and the SciPy and Matplotlib it imports) with the extra that installs them."""
    try:
        yield
    except ImportError as err:
        raise ImportError(f"task {task!r} needs {what}: pip install 'optimlab[bench]' "
                          f"({one_line(err, 120)})") from err


def _sklearn_init(model: nn.Module) -> nn.Module:
    """scikit-learn's MLPClassifier init: weights and biases ~ U(+-sqrt(6 / (fan_in + fan_out)))."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            bound = math.sqrt(6 / (layer.in_features + layer.out_features))
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)
    return model


def _digits(*, test_size: float = 0.2) -> Task:
    with _needs("digits", "scikit-learn"):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

    # a fraction of the 1797 images (scikit-learn's whole counts are not taken: the
    # description gives the split in percent)
    test_size = _real("digits", "test_size", test_size, 0.0, 1.0, low_open=True)
    x, y = load_digits(return_X_y=True)
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_size, stratify=y, random_state=0)
    except ValueError as err:  # too few of a class on one side to stratify
        raise ValueError(f"task 'digits': test_size={test_size:g} cannot split the 1797 "
                         f"images with every class on both sides ({err})") from None
    low, high = x_train.min(0), x_train.max(0)
    scale = np.where(high > low, high - low, 1.0)
    x_train, x_test = (x_train - low) / scale, np.clip((x_test - low) / scale, 0.0, 1.0)
    return Task(
        name="digits",
        x_train=torch.tensor(x_train, dtype=torch.float32),
        y_train=torch.tensor(y_train, dtype=torch.int64),
        x_test=torch.tensor(x_test, dtype=torch.float32),
        y_test=torch.tensor(y_test, dtype=torch.int64),
        models={"mlp": lambda: _sklearn_init(_mlp(64, 100, 10)),
                "logreg": lambda: _sklearn_init(_mlp(64, 10))},
        default_model="mlp", loss="cross_entropy", metric="accuracy",
        description=(
            "scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes, 64 "
            f"pixels 0..16), split {1 - test_size:.0%}/{test_size:.0%} by "
            "train_test_split(stratify=y, random_state=0); min-max scaled per pixel to [0, 1] "
            "with the training set's range (test values clipped to it), as in scikit-learn's "
            "'Compare stochastic learning strategies for MLPClassifier'. mlp is 64-100-10 ReLU "
            "(MLPClassifier's default hidden layer; 7,510 parameters) with MLPClassifier's "
            "Glorot-uniform init; logreg is 64-10 (650). That example trains with batch 200 "
            "and L2 alpha 1e-4."),
    )


# --------------------------------------------------------------------------------------
# MNIST-1D (Greydanus 2020)
# --------------------------------------------------------------------------------------

class CacheWarning(UserWarning):
    """A task's data cache could not be written: the data were made, and will be again."""


def _cache_root(data_dir) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    # optimlab's cache folder (optimlab._env.cache_root, ~ expanded), the kernels' and step
    # costs' too, with the kernels' temporary folder where there is no home
    from ..optim.kernels.build import cache_root

    return cache_root()


def _cached_arrays(path: Path, keys: tuple[str, ...],
                   build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load ``keys`` from the ``.npz`` at ``path``, or build them and write the file.

    The file is written to a temporary name in the same folder and renamed into place, so
    a killed process or a concurrent writer never leaves a half-written cache; an
    unreadable file is rebuilt, and a folder we cannot write to only costs the cache.
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            if set(stored.files) == set(keys):
                return {key: stored[key] for key in keys}
    except FileNotFoundError:
        pass
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # corrupt: rebuild below
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: np.savez(f, **arrays))
    except OSError as err:
        warnings.warn(f"could not write the cache file {path}: {err}", CacheWarning, stacklevel=3)
    return arrays


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(args_json: str, cache_dir: str | None) -> dict[str, np.ndarray]:
    """Generate MNIST-1D with these arguments (once per process; on disk if ``cache_dir``)."""
    import random
    from importlib.metadata import version

    args = json.loads(args_json)

    def build() -> dict[str, np.ndarray]:
        with _needs("mnist1d", "the mnist1d package"):
            from mnist1d.data import make_dataset
            from mnist1d.utils import ObjectView

        # make_dataset seeds the global `random` and NumPy generators; leave them as found
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            data = make_dataset(ObjectView(dict(args)))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return {key: np.asarray(data[key]) for key in ("x", "y", "x_test", "y_test")}

    if cache_dir is None:
        return build()
    key = hashlib.sha256(f"{args_json} mnist1d=={version('mnist1d')}".encode()).hexdigest()[:16]
    return _cached_arrays(Path(cache_dir) / f"mnist1d-{key}.npz", ("x", "y", "x_test", "y_test"),
                          build)


class _MNIST1DResMLP(nn.Module):
    """The paper's MLPBase: 40-100-100-10 ReLU (``n_in``, 40 by default, first) with a skip
    around the middle layer."""

    def __init__(self, n_in: int = 40, hidden: int = 100, n_out: int = 10) -> None:
        super().__init__()
        self.linear1 = nn.Linear(n_in, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, n_out)

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear1(x).relu()
        h = h + self.linear2(h).relu()
        return self.linear3(h)


def _mnist1d_conv_length(length: int) -> int:
    """The length left after _MNIST1DCNN's three strided convolutions (40 -> 19 -> 10 -> 5)."""
    for kernel in (5, 3, 3):
        length = (length + 2 - kernel) // 2 + 1
    return length


class _MNIST1DCNN(nn.Module):
    """The paper's ConvBase: three strided Conv1d (length 40 -> 19 -> 10 -> 5 by default), then
    linear."""

    def __init__(self, channels: int = 25, length: int = 40, n_out: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(channels * _mnist1d_conv_length(length), n_out)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x.unsqueeze(-2)).relu()
        h = self.conv2(h).relu()
        h = self.conv3(h).relu()
        return self.linear(h.flatten(-2))


class _MNIST1DGRU(nn.Module):
    """The paper's GRUBase: a bidirectional GRU (hidden 6) over the ``length`` (40) steps, all
    outputs -> linear."""

    def __init__(self, hidden: int = 6, length: int = 40, n_out: int = 10) -> None:
        super().__init__()
        self.gru = GRU(1, hidden, bidirectional=True)
        self.linear = nn.Linear(2 * hidden * length, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.gru(x.unsqueeze(-1)).flatten(-2))


#: ``mnist1d.data.get_dataset_args(as_dict=True)`` per mnist1d release, so that a data set
#: already in the cache is read without importing ``mnist1d.data`` (it imports SciPy and
#: Matplotlib: 1.5 s of a 14 s ``optimlab bench``); another release is asked
#: (``tests/bench/test_eval_subset.py`` checks the copy against the installed release)
_MNIST1D_DEFAULT_ARGS = {
    "0.0.2.post1": {
        "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
        "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25,
        "iid_noise_scale": 2e-2, "shear_scale": 0.75, "shuffle_seq": False,
        "final_seq_length": 40, "seed": 42,
        "url": "https://github.com/greydanus/mnist1d/raw/master/mnist1d_data.pkl"},
}


def _mnist1d_default_args() -> dict:
    """``mnist1d.data.get_dataset_args(as_dict=True)``, from :data:`_MNIST1D_DEFAULT_ARGS`
    where it holds the installed release."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        known = _MNIST1D_DEFAULT_ARGS.get(version("mnist1d"))
    except PackageNotFoundError:  # the import below says what is missing
        known = None
    if known is not None:
        return copy.deepcopy(known)
    with _needs("mnist1d", "the mnist1d package"):
        from mnist1d.data import get_dataset_args

    return get_dataset_args(as_dict=True)


def _mnist1d_parameters(length: int) -> dict[str, int]:
    """The parameter counts of the MNIST-1D models for signals of ``length`` (the paper's:
    410, 15,210, 5,210 and 5,134 at 40), counted without building them (building draws
    from the caller's seeded generator)."""
    return {"logreg": 10 * length + 10,
            "mlp": (100 * length + 100) + (100 * 100 + 100) + (100 * 10 + 10),
            "cnn": (25 * 5 + 25) + 2 * (25 * 25 * 3 + 25)
            + (25 * _mnist1d_conv_length(length) * 10 + 10),
            "gru": 2 * (3 * 6 * (1 + 6) + 2 * 3 * 6) + (12 * length * 10 + 10)}


def _mnist1d(*, data_dir=None, disk_cache: bool = True, **dataset_args) -> Task:
    """MNIST-1D, generated by ``mnist1d.data.make_dataset`` with ``dataset_args`` over its
    defaults (read from the cache in ``data_dir`` when made before).

    As in make_dataset (and so in the published data set), the signals are standardised to
    mean 0 and standard deviation 1 over all samples, train and test together, before the
    split; the data are kept exactly as make_dataset makes them. It makes
    ``num_samples // 10`` signals per digit, so ``num_samples`` must be a multiple of 10.
    NumPy numbers are taken as Python's (``seed=np.int64(1)``); ``seed`` must be a whole
    number from 0 to 2**32 - 1, as NumPy's seeding takes.
    """
    args = _mnist1d_default_args()
    args.pop("url", None)  # we never download
    unknown = set(dataset_args) - set(args)
    if unknown:
        raise ValueError(f"unknown mnist1d dataset arguments {sorted(unknown)}; known: "
                         f"{', '.join(sorted(args))}")
    args.update({key: _plain(value) if isinstance(value, (np.ndarray, np.generic)) else value
                 for key, value in dataset_args.items()})
    n = args["num_samples"]
    if isinstance(n, numbers.Integral) and not isinstance(n, bool):
        n = args["num_samples"] = int(n)
    # make_dataset makes n // 10 per digit: 5 made none (numpy's "need at least one array
    # to stack"), 205 quietly made 200
    if isinstance(n, bool) or not isinstance(n, int) or n < 10 or n % 10:
        near = f" (it would make {n - n % 10}): pass {n - n % 10} or {n - n % 10 + 10}" \
            if isinstance(n, int) and n > 10 and n % 10 else ""
        raise ValueError(f"task 'mnist1d': num_samples must be a whole multiple of 10, at least "
                         f"10 (mnist1d makes num_samples // 10 signals of each digit), got "
                         f"{n!r}{near}")
    if "seed" in args:
        args["seed"] = _whole("mnist1d", "seed", args["seed"], 0, 2**32 - 1)
    cache_dir = str(_cache_root(data_dir)) if disk_cache else None
    try:
        args_json = json.dumps(args, sort_keys=True, default=_plain)
    except TypeError as err:  # e.g. a tensor as an argument
        raise ValueError(f"task 'mnist1d': its dataset arguments must be numbers, strings or "
                         f"lists of them: {one_line(err)}") from err
    arrays = _mnist1d_arrays(args_json, cache_dir)
    length = int(args["final_seq_length"])
    count = _mnist1d_parameters(length)
    return Task(
        name="mnist1d",
        x_train=torch.tensor(arrays["x"], dtype=torch.float32),
        y_train=torch.tensor(arrays["y"], dtype=torch.int64),
        x_test=torch.tensor(arrays["x_test"], dtype=torch.float32),
        y_test=torch.tensor(arrays["y_test"], dtype=torch.int64),
        models={"logreg": lambda: nn.Linear(length, 10),
                "mlp": lambda: _MNIST1DResMLP(length),
                "cnn": lambda: _MNIST1DCNN(length=length),
                "gru": lambda: _MNIST1DGRU(length=length)},
        default_model="mlp", loss="cross_entropy", metric="accuracy",
        description=(
            f"MNIST-1D (Greydanus 2020, 'Scaling down deep learning'): 1-D signals of length "
            f"{length} made from 10 digit templates by padding, shear, translation and noise, "
            "generated locally with mnist1d.data.make_dataset(get_dataset_args()) and the given "
            f"overrides ({args['num_samples']} samples: {len(arrays['x'])} train / "
            f"{len(arrays['x_test'])} test, train split {args['train_split']}, seed "
            f"{args['seed']}); as make_dataset does (and the published data set has it), the "
            "signals are standardised to mean 0 and standard deviation 1 over all samples, "
            "train and test together, before the split. Models as in the paper's "
            f"notebooks/models.py: logreg {length}-10 ({count['logreg']:,} parameters); mlp "
            f"{length}-100-100-10 ReLU with a skip connection around the middle layer "
            f"({count['mlp']:,}); cnn Conv1d(1,25,5,s2,p1)-Conv1d(25,25,3,s2,p1)-"
            f"Conv1d(25,25,3,s2,p1)-Linear({25 * _mnist1d_conv_length(length)},10), ReLUs between "
            f"({count['cnn']:,}); gru a bidirectional GRU with hidden 6 whose {length}x12 "
            f"outputs feed Linear({12 * length},10) ({count['gru']:,}). Published test accuracy "
            "(default data set) with Adam lr 1e-2, batch 100, 6000 steps: 31.5/65.1/92.3/89.1% "
            "(logreg/mlp/cnn/gru)."),
    )


# --------------------------------------------------------------------------------------
# sparse-logreg (synthetic)
# --------------------------------------------------------------------------------------

def _sparse_logreg(*, n_features: int = 1000, n_frequent: int = 10, n_rare: int = 40,
                   n_train: int = 4000, n_test: int = 1000, seed: int = 0) -> Task:
    name = "sparse-logreg"
    n_features, n_train, n_test = (_whole(name, key, value, 1) for key, value in
                                   (("n_features", n_features), ("n_train", n_train),
                                    ("n_test", n_test)))
    n_frequent, n_rare, seed = (_whole(name, key, value, 0) for key, value in
                                (("n_frequent", n_frequent), ("n_rare", n_rare), ("seed", seed)))
    if not 0 < n_frequent + n_rare <= n_features:
        raise ValueError(f"task 'sparse-logreg': need 0 < n_frequent + n_rare <= n_features, "
                         f"got {n_frequent} + {n_rare} and {n_features}")
    rng = np.random.default_rng(seed)
    n_noise = n_features - n_frequent - n_rare
    frequency = np.concatenate([rng.uniform(0.3, 0.5, n_frequent),
                                rng.uniform(0.01, 0.02, n_rare),
                                np.exp(rng.uniform(np.log(0.005), np.log(0.2), n_noise))])
    sign = rng.choice([-1.0, 1.0], n_frequent + n_rare)
    weight = np.concatenate([sign[:n_frequent] * rng.uniform(0.5, 1.5, n_frequent),
                             sign[n_frequent:] * rng.uniform(3.0, 5.0, n_rare),
                             np.zeros(n_noise)])
    bias = -frequency @ weight  # centre the logits so the classes are balanced
    x = (rng.random((n_train + n_test, n_features)) < frequency).astype(np.float32)
    p = 1 / (1 + np.exp(-(x @ weight + bias)))
    y = (rng.random(len(x)) < p).astype(np.int64)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return Task(
        name="sparse-logreg",
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        models={"logreg": lambda: nn.Linear(n_features, 2)},
        default_model="logreg", loss="cross_entropy", metric="accuracy",
        description=(
            f"Synthetic sparse binary classification (seed {seed}): {n_features} binary "
            f"features, in this column order: {n_frequent} frequent informative ones (present "
            f"in 30-50% of examples, weights +-0.5..1.5), {n_rare} rare informative ones "
            f"(present in 1-2%, weights +-3..5) and {n_noise} noise features (frequency "
            "log-uniform in 0.5-20%, weight 0). Labels are drawn from the logistic model "
            "sigmoid(w.x + b), b centring the logits. The rare features carry much of the "
            "signal but rarely get a gradient: the setting where per-coordinate step sizes "
            "(AdaGrad, Duchi et al. 2011) help. Model: 2-class logistic regression "
            f"(Linear({n_features}, 2), cross entropy); {n_train} train / {n_test} test."),
    )


# --------------------------------------------------------------------------------------
# char-rnn (pydoc_data)
# --------------------------------------------------------------------------------------

_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                             "\u2013": "-", "\u2014": "-", "\u2026": "...", "\t": "    "})


def _pydoc_corpus(max_chars: int) -> str:
    """The pydoc topics, sorted by key, joined, made ASCII (+ newline), cut to ``max_chars``."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[key] for key in sorted(topics))[:max_chars]
    text = text.translate(_TYPOGRAPHY)
    return "".join(c if c == "\n" or " " <= c <= "~" else "?" for c in text)


class _CharRNN(nn.Module):
    """Embedding -> GRU -> linear to the vocabulary: ``[B, T]`` ids -> ``[B, T, V]`` logits."""

    def __init__(self, vocab: int, embedding: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding)
        self.gru = GRU(embedding, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.gru(self.embed(x)))


def _windows(ids: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
    """Non-overlapping windows: inputs ``ids[i:i+T]`` and next-character targets."""
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1: n * seq_len + 1].reshape(n, seq_len)
    return x, y


def _char_rnn(*, seq_len: int = 64, max_chars: int = 2**18, test_fraction: float = 0.1) -> Task:
    seq_len = _whole("char-rnn", "seq_len", seq_len, 1)
    max_chars = _whole("char-rnn", "max_chars", max_chars, 1)
    test_fraction = _real("char-rnn", "test_fraction", test_fraction, 0, 1, low_open=True)
    text = _pydoc_corpus(max_chars)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
    split = int(len(ids) * (1 - test_fraction))
    x_train, y_train = _windows(ids[:split], seq_len)
    x_test, y_test = _windows(ids[split:], seq_len)
    if len(x_test) == 0:
        raise ValueError(f"char-rnn: the test part ({len(ids) - split} characters) is shorter "
                         f"than one sequence of {seq_len}")
    v = len(vocab)
    return Task(
        name="char-rnn",
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        models={"gru": lambda: _CharRNN(v)},
        default_model="gru", loss="cross_entropy", metric="bits_per_char",
        description=(
            "Character-level language model on text that ships with Python: the pydoc topics "
            "(pydoc_data.topics.topics) sorted by key, joined by newlines and cut to the first "
            f"{max_chars} characters; typographic quotes and dashes become ASCII, any other "
            f"non-ASCII character '?', giving {v} symbols (Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: the text changes between "
            "Python versions, so compare numbers within one). Non-overlapping sequences of "
            f"{seq_len} with next-character targets; the last {test_fraction:.0%} of the text "
            f"is the test set. Model gru: embedding 32, GRU hidden 128, linear to the {v} "
            "symbols; loss: cross entropy over all positions; metric: test bits per "
            "character (untrained: about log2 V). DeepOBS's tolstoi_char_rnn is the larger "
            "cousin of this task."),
    )


# --------------------------------------------------------------------------------------
# quadratic-deep (DeepOBS)
# --------------------------------------------------------------------------------------

class _NoisyQuadratic(nn.Module):
    """A parameter vector ``theta``; maps noise samples ``x`` to ``sqrt(d/2) (theta - x) H^(1/2)``.

    The mean square of that output is ``0.5 (theta - x)^T H (theta - x)`` per sample, so the
    task's ``mse`` against zeros is DeepOBS's quadratic_deep loss.
    """

    def __init__(self, root: Tensor, start: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(start.clone())
        self.register_buffer("root", root)

    def forward(self, x: Tensor) -> Tensor:
        return (self.theta - x) @ self.root


def _quadratic_deep(*, seed: int = 42, noise: float = 0.6, n_samples: int = 1000) -> Task:
    from optimlab import landscapes

    seed = _whole("quadratic-deep", "seed", seed, 0, 2**32 - 1)
    noise = _real("quadratic-deep", "noise", noise, 0)
    n_samples = _whole("quadratic-deep", "n_samples", n_samples, 1)

    landscape = landscapes.get("quadratic_deep", seed=seed)
    dim = landscape.dim
    hessian = torch.autograd.functional.hessian(
        lambda v: landscape(v), torch.zeros(dim, dtype=torch.float64))
    eigenvalues, q = torch.linalg.eigh(0.5 * (hessian + hessian.T))
    root = (q * eigenvalues.clamp(min=0).sqrt()) @ q.T * math.sqrt(dim / 2)
    root = root.to(torch.float32)
    start = torch.tensor(landscape.start, dtype=torch.float32)
    # DeepOBS draws its train and test "data" with RandomState(42) and RandomState(43)
    x_train = np.random.RandomState(42).normal(0.0, noise, (n_samples, dim))
    x_test = np.random.RandomState(43).normal(0.0, noise, (n_samples, dim))
    return Task(
        name="quadratic-deep",
        x_train=torch.tensor(x_train, dtype=torch.float32),
        y_train=torch.zeros(n_samples, dim),
        x_test=torch.tensor(x_test, dtype=torch.float32),
        y_test=torch.zeros(n_samples, dim),
        models={"theta": lambda: _NoisyQuadratic(root, start)},
        default_model="theta", loss="mse", metric="loss",
        description=(
            "DeepOBS's quadratic_deep (Schneider et al. 2019) as a training task: per sample "
            "the loss 0.5 (theta - x)^T H (theta - x), with H the Hessian of "
            f"optimlab.landscapes.get('quadratic_deep', seed={seed}) (90 eigenvalues in (0, 1), "
            "10 in (30, 60), randomly rotated) and 'data' x ~ N(0, "
            f"{noise}^2 I): {n_samples} train samples from RandomState(42) and {n_samples} test "
            "samples from RandomState(43), as DeepOBS draws them. theta starts at all ones "
            "(DeepOBS); a mini-batch (DeepOBS: 128) gives a noisy gradient H (theta - mean x). "
            "The model outputs sqrt(d/2) (theta - x) H^(1/2), so mse against zero targets is "
            "exactly that loss; the optimum of the expected loss is theta = 0. Metric: test loss."),
    )


# --------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST from IDX files
# --------------------------------------------------------------------------------------

_IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
              "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def read_idx(path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions, gzipped or not: gzip is told
    by the data's first two bytes (1f 8b, with which no IDX file starts), not by the name, so
    gzip data under a plain name and a decompressed file still named ``.gz`` (as browsers
    save a download) are both read.

    The IDX format (LeCun et al.'s MNIST files): magic ``0x0000 08 nd`` (``08``: unsigned
    bytes, ``nd``: number of dimensions), ``nd`` big-endian uint32 sizes, then the data.
    Raises ``ValueError`` with one line naming the file for a file that cannot be read or
    decompressed (a damaged or truncated ``.gz``), a wrong magic number, a truncated file,
    trailing bytes, or a file that holds no items (a size of 0 in its header).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        gzipped = raw[:2] == b"\x1f\x8b"  # whatever the name (an IDX magic starts 00 00)
        if gzipped:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        damaged = isinstance(err, (EOFError, zlib.error, gzip.BadGzipFile))
        hint = " (damaged or truncated gzip data: fetch the file again)" if damaged else ""
        raise ValueError(f"cannot read IDX file {path}: {one_line(err)}{hint}") from err
    magic = 0x0800 | ndim
    if len(raw) < 4 or struct.unpack(">I", raw[:4])[0] != magic:
        found = f"0x{struct.unpack('>I', raw[:4])[0]:08x}" if len(raw) >= 4 else "no header"
        named = " (nor gzip data, whatever its name says)" if path.suffix == ".gz" and not \
            gzipped else ""
        raise ValueError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s)"
                         f"{named}: expected magic number 0x{magic:08x}, found {found}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header needs {header} bytes, it has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if 0 in shape:
        raise ValueError(f"{path} holds no items: its header gives the shape {shape}; an IDX "
                         f"file of the training lab needs at least one item of nonzero size")
    size = math.prod(shape)
    if len(raw) - header != size:
        problem = "truncated" if len(raw) - header < size else "longer than its header says"
        raise ValueError(f"{path} is {problem}: shape {shape} needs {size} data bytes, "
                         f"it has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(data_dir: Path, stem: str) -> list[Path]:
    """The files of ``stem`` in ``data_dir``: plain, ``.gz``, or a mirror's dotted name.

    Where there is none, but a folder of one of those names (Kaggle's MNIST unpacks to
    ``train-images-idx3-ubyte/train-images-idx3-ubyte``), the files of those names inside
    it are used (copies that disagree are refused by :func:`_read_one_idx`); a folder that
    holds none is named in the error, with what it holds.
    """
    dotted = stem.replace("-idx", ".idx")  # some mirrors unpack to train-images.idx3-ubyte
    names = (stem, stem + ".gz", dotted, dotted + ".gz")
    found = [data_dir / name for name in names if (data_dir / name).is_file()]
    if found:
        return found
    folders = [data_dir / name for name in names if (data_dir / name).is_dir()]
    found = [folder / name for folder in folders for name in names if (folder / name).is_file()]
    if found:
        return found
    if folders:
        held = sorted(p.name for p in folders[0].iterdir())
        listing = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "") if held else "nothing"
        raise ValueError(f"{folders[0]} is a folder, not the IDX file, and holds no file named "
                         f"{stem} (or .gz) (it holds {listing}): put the file {stem} (optionally "
                         f"gzipped) in {data_dir}")
    raise ValueError(f"missing {data_dir / stem} (or {stem}.gz): expected the four IDX files "
                     f"{', '.join(_IDX_FILES.values())} (optionally gzipped) in {data_dir}")


def _read_one_idx(paths: list[Path], ndim: int) -> tuple[Path, np.ndarray]:
    """The array of the first of ``paths`` that reads, and which it was. A folder with both
    ``x`` and ``x.gz`` (``gunzip -k``) is read only if the copies that read agree; one that
    does not read (a truncated download beside a good copy) is passed over, and where none
    reads, the first one's error is raised."""
    first_error, chosen, array = None, None, None
    for path in paths:
        try:
            data = read_idx(path, ndim)
        except ValueError as err:
            first_error = first_error or err
            continue
        if chosen is None:
            chosen, array = path, data
        elif not np.array_equal(data, array):
            both = f"{path.parent} holds both {chosen.name} and {path.name}" \
                if path.parent == chosen.parent else f"{chosen} and {path} hold"
            raise ValueError(f"{both}, with different data: remove the one that is not your "
                             "data set")
    if chosen is None:
        raise first_error
    return chosen, array


def _lenet(height: int, width: int) -> nn.Sequential:
    """LeNet-5 style: conv5(6, pad 2)-pool-conv5(16)-pool-120-84-10, ReLU (61,706 params at 28x28)."""
    h, w = (height // 2 - 4) // 2, (width // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * h * w, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def _idx_task(name: str, data_dir, source: str) -> Task:
    if data_dir is None:
        raise ValueError(f"task {name!r} reads your IDX files: pass data_dir= (--data-dir on the "
                         f"command line), the folder holding {', '.join(_IDX_FILES.values())} "
                         "(optionally .gz); nothing is downloaded")
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise ValueError(f"task {name!r}: data_dir {data_dir} is not a folder")
    found = {key: _find_idx(data_dir, stem) for key, stem in _IDX_FILES.items()}
    paths, arrays = {}, {}
    for key, candidates in found.items():
        paths[key], arrays[key] = _read_one_idx(candidates, 3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise ValueError(f"{paths[f'{split}_images']} holds {len(images)} images but "
                             f"{paths[f'{split}_labels']} holds {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{paths[f'{split}_labels']} has label {labels.max()}; expected 0..9")
    for key in ("train_images", "test_images"):  # name the file that is too small
        h, w = arrays[key].shape[1:]
        if min(h, w) < 12:
            raise ValueError(f"{paths[key]} holds {h}x{w} images: the models need at least 12x12")
    height, width = arrays["train_images"].shape[1:]
    if arrays["test_images"].shape[1:] != (height, width):
        h, w = arrays["test_images"].shape[1:]
        raise ValueError(f"{paths['test_images']} holds {h}x{w} images but "
                         f"{paths['train_images']} {height}x{width}: train and test images must "
                         "be the same size")

    def images(key: str) -> Tensor:
        return torch.tensor(arrays[key], dtype=torch.float32).div_(255).unsqueeze(1)

    def labels(key: str) -> Tensor:
        return torch.tensor(arrays[key], dtype=torch.int64)

    return Task(
        name=name,
        x_train=images("train_images"), y_train=labels("train_labels"),
        x_test=images("test_images"), y_test=labels("test_labels"),
        models={"mlp": lambda: _mlp(height * width, 100, 10), "cnn": lambda: _lenet(height, width)},
        default_model="mlp", loss="cross_entropy", metric="accuracy",
        description=(
            f"{source}, {len(arrays['train_images']):,} train / {len(arrays['test_images']):,} "
            f"test, read from the IDX files in {data_dir} (images [N, 1, {height}, {width}] "
            f"scaled to [0, 1]). mlp is {height * width}-100-10 ReLU; cnn is LeNet-5 style: "
            "Conv2d(1,6,5,pad 2)-ReLU-MaxPool2-Conv2d(6,16,5)-ReLU-MaxPool2-120-84-10 with ReLUs "
            "(61,706 parameters at 28x28)."),
    )


def _mnist(*, data_dir=None) -> Task:
    return _idx_task("mnist", data_dir, "MNIST (LeCun et al. 1998)")


def _fashion_mnist(*, data_dir=None) -> Task:
    return _idx_task("fashion-mnist", data_dir, "Fashion-MNIST (Xiao et al. 2017)")


# --------------------------------------------------------------------------------------
# Bring your own: "module:function"
# --------------------------------------------------------------------------------------

_BYO_KEYS = ("model", "x_train", "y_train", "x_test", "y_test", "loss")


_INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _as_tensor(tensor: Tensor, what: str, loss, prefix: str) -> Tensor:
    """``x``: float32, or int64 for int16..int64 token ids (uint8 and bool stay, for
    :class:`Task` to refuse); ``y``: int64 whole-number labels for cross entropy, float32 for
    mse, and for a loss function int64 for integer targets (class labels), else float32."""
    if what.startswith("x"):
        if tensor.is_floating_point():
            return tensor.float()
        return tensor.long() if tensor.dtype in (torch.int16, torch.int32, torch.int64) else tensor
    if loss == "cross_entropy":
        _check_whole(prefix, what, tensor)  # before .long() truncates 0.7 to 0
        return tensor.long()
    if callable(loss) and tensor.dtype in _INTEGERS:
        return tensor.long()
    return tensor.float()


def _tensor_of(value, float32: bool) -> Tensor:
    """``value`` as a tensor. A NumPy array is copied (with floats made float32 in the same
    copy when ``float32``): the task never shares the caller's memory, a read-only array
    gives no warning, and a view with negative strides (``x[::-1]``, ``np.flip``), which
    torch cannot wrap, is read all the same. Other values go to ``torch.as_tensor``."""
    if isinstance(value, np.ndarray):
        array = np.asarray(value, order="C")  # copies only a view that is not C-contiguous
        dtype = torch.float32 if float32 and array.dtype.kind == "f" else None
        return torch.tensor(array, dtype=dtype)  # always a copy
    return torch.as_tensor(value)


_EXPECTED = ("a function returning a Task, a dict or a tuple "
             f"({', '.join(_BYO_KEYS)})")


def _user_task(spec: str, data_dir, kwargs: dict) -> Task:
    if data_dir is not None:  # "~/data" expanded, a str or a Path kept as given
        data_dir = data_dir.expanduser() if isinstance(data_dir, Path) else \
            os.path.expanduser(data_dir) if isinstance(data_dir, str) else data_dir
        kwargs = {**kwargs, "data_dir": data_dir}
    function = user_function(spec, "task", _EXPECTED, kwargs, " (and data_dir when given)")
    try:
        result = function(**kwargs)
    except TypeError as err:
        raise ValueError(f"{spec} raised TypeError: {one_line(err)}; expected "
                         f"{_EXPECTED}") from err
    if isinstance(result, Task):
        return result
    if isinstance(result, Mapping):
        fields = dict(result)
        unknown = set(fields) - set(_BYO_KEYS) - {"metric", "name", "description"}
        missing_keys = set(_BYO_KEYS) - {"loss"} - set(fields)
        if unknown or missing_keys:
            raise ValueError(f"{spec} returned a dict with unknown keys {sorted(unknown)} and "
                             f"missing keys {sorted(missing_keys)}; expected "
                             f"{', '.join(_BYO_KEYS)} (loss optional), and optionally metric, "
                             "name, description")
    elif isinstance(result, (tuple, list)) and len(result) == len(_BYO_KEYS):
        fields = dict(zip(_BYO_KEYS, result))
    else:
        got = type(result).__name__
        if isinstance(result, (tuple, list)):
            got = f"a {got} of {len(result)}"
        raise ValueError(f"{spec} must return a Task, a dict or a tuple of {len(_BYO_KEYS)} "
                         f"items ({', '.join(_BYO_KEYS)}); got {got}")
    loss = fields.get("loss", "cross_entropy")
    model = fields["model"]
    if isinstance(model, nn.Module):  # an instance: every model starts from these weights
        factory = functools.partial(copy.deepcopy, model)
        # ... so they are part of its sweeps' identity (other weights: another sweep)
        setattr(factory, GIVEN_WEIGHTS, True)
    elif callable(model):
        factory = model
    else:
        raise ValueError(f"{spec}: model must be an nn.Module or a callable returning one")
    if not (isinstance(loss, str) or callable(loss)):  # a function: as Task takes it
        raise ValueError(f"{spec}: loss must be a name such as 'cross_entropy' or 'mse', or a "
                         f"function (output, target) -> mean loss; got {type(loss).__name__}")
    arrays = {}
    for key in _BYO_KEYS[1:5]:
        try:  # float32 unless these are labels whose fractions cross entropy must see
            tensor = _tensor_of(fields[key], key.startswith("x") or loss != "cross_entropy")
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{spec}: {key} is not an array of numbers "
                             f"({type(fields[key]).__name__}: {one_line(err, 120)}); "
                             f"expected NumPy arrays or tensors") from err
        arrays[key] = _as_tensor(tensor, key, loss, f"task {fields.get('name', spec)!r}: ")
    return Task(
        name=fields.get("name", spec),
        **arrays,
        models={"model": factory}, default_model="model", loss=loss,
        metric=fields.get("metric", "accuracy" if loss == "cross_entropy" else "loss"),
        description=fields.get("description", f"user task from {spec}"),
    )


# --------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------

_CATALOG: dict[str, Callable[..., Task]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
    "sparse-logreg": _sparse_logreg,
    "char-rnn": _char_rnn,
    "quadratic-deep": _quadratic_deep,
    "mnist": _mnist,
    "fashion-mnist": _fashion_mnist,
}


def names() -> list[str]:
    """The built-in task names."""
    return list(_CATALOG)


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def catalog_name(name: str) -> str | None:
    """The built-in task ``name`` is, as :func:`get` reads it (case-insensitive; ``_`` and
    spaces read as ``-``): ``"Fashion_MNIST"`` is ``"fashion-mnist"``; None for any other
    name (a ``module:function`` of yours, or an unknown one)."""
    if not isinstance(name, str) or ":" in name:
        return None
    key = _key(name)
    return key if key in _CATALOG else None


def get(name: str, data_dir=None, **kwargs) -> Task:
    """Build the task ``name`` (case-insensitive; ``_`` and spaces read as ``-``).

    ``data_dir`` is the folder of the IDX files for ``mnist`` and ``fashion-mnist`` (needed
    there; a folder holding both ``x`` and ``x.gz`` is read only if they hold the same
    data), the cache folder for ``mnist1d`` (default ``$OPTIMLAB_CACHE``, else an
    absolute ``$XDG_CACHE_HOME``'s ``optimlab``, else ``~/.cache/optimlab``), and ignored
    by the tasks that read no files; a leading ``~`` is expanded. ``kwargs`` go to the
    task's builder: e.g. ``get("sparse-logreg", seed=1)``, ``get("char-rnn", seq_len=128)``,
    ``get("mnist1d", disk_cache=False, seed=0)`` (any of mnist1d's dataset arguments;
    ``num_samples`` a multiple of 10).

    A name with a colon, ``"package.module:function"``, imports ``function`` and calls it
    with ``kwargs``, and with ``data_dir=`` when ``data_dir`` is given (``~`` expanded, a
    ``str`` or ``Path`` as given). It returns a :class:`Task`, or:

    * a dict with keys ``model``, ``x_train``, ``y_train``, ``x_test``, ``y_test``, and
      optionally ``loss`` (default ``"cross_entropy"``), ``metric`` (default ``"accuracy"``
      for cross entropy, else ``"loss"``), ``name`` and ``description``; or
    * a tuple of 6 items ``(model, x_train, y_train, x_test, y_test, loss)``.

    ``loss``, in either form, is ``"cross_entropy"``, ``"mse"`` or, as :class:`Task` takes
    it, a function ``(output, target) -> mean loss``. ``model`` is a factory returning a
    fresh ``nn.Module`` (a class or function; seeded by the caller), or an ``nn.Module``
    whose copies every run then starts from. Arrays may be NumPy (copied, so the task never
    shares your array's memory; views such as ``x[::-1]`` are fine) or tensors: float
    inputs become float32 (int16 to int64 inputs int64, e.g. token ids; uint8 and bool
    inputs are refused: pass floats); targets become int64 for cross entropy (float labels
    must be whole numbers), float32 for mse, and for a loss function int64 if they are
    integers (class labels), else float32. The data are then checked as :class:`Task` says
    (no NaN or Inf, no empty set, labels ``[N]`` and 0 or more, train and test examples of
    the same shape and dtype).

    Raises ``ValueError``, with one line, for an unknown name (with the known names and
    close matches), arguments the task does not take or values it cannot take (naming the
    task and the argument: e.g. sizes and ``seq_len`` must be whole numbers > 0, NumPy's
    integers included, and ``noise`` a number >= 0), IDX files that cannot be read (see
    :func:`read_idx`), and a ``module:function`` that is no task: a module that cannot be
    imported (or fails while importing), a missing or non-callable attribute, a function
    that cannot take the arguments or raises ``TypeError``, a result that is not a task, or
    data that :class:`Task` refuses. Raises ``ImportError``, with the extra to install, when
    a task's optional package (scikit-learn for ``digits``, mnist1d) is missing.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"task name must be a string, got {name!r}")
    if ":" in name:
        return _user_task(name, data_dir, kwargs)
    key = _key(name)
    if key not in _CATALOG:
        close = difflib.get_close_matches(key, list(_CATALOG), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown task {name!r}{hint} (known: {', '.join(_CATALOG)}; or "
                         "'package.module:function' for your own)")
    builder = _CATALOG[key]
    accepted = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in kwargs if k not in accepted and not takes_any]
    if unknown:
        options = [p for p in accepted if p != "data_dir" and accepted[p].kind is not
                   inspect.Parameter.VAR_KEYWORD]
        raise ValueError(f"task {key!r} takes no argument {', '.join(map(repr, unknown))}; it "
                         f"takes {', '.join(options) or 'none'}")
    if "data_dir" in accepted:
        kwargs["data_dir"] = data_dir
    return builder(**kwargs)
