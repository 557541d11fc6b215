"""Train many members of one task at once (population engine) or one by one (sequential).

A *member* is one training run: an optimizer with its hyperparameters and a seed. Members
that share an optimizer and a model train together as one batched model: their parameters
are stacked along a leading member axis, the model runs under ``torch.func.vmap`` with
``functional_call``, each member sees its own mini-batches, and
:class:`optimlab.optim.population.Population` applies the optimizer's rule to all of them
in one call. The sequential engine runs the same members with an ordinary model and
optimizer; both engines draw the same initial weights and the same mini-batches from the
member's seed, so they produce the same curves (``tests/bench/test_trainer.py``).

Evaluation: each run is evaluated at step 0, every ``eval_every`` steps and at the end. The
last evaluation reads the whole train and test sets, so final metrics are exact; the others
read a fixed subset of each (``TrainConfig.eval_subset`` examples, drawn once by
:func:`eval_indices`, the same for every member, engine and evaluation), so that evaluating
does not cost as much as training: for 64 MNIST-1D MLPs, 300 steps and 21 evaluations
(``optimlab bench``'s default), full evaluations took about as long as the training steps
or longer; on the subset (1000 of the 4000 train examples, the 1000 test examples whole)
they take about half as long as the training steps. ``RunResult.full_eval`` says which
points are exact.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import operator
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from .._table import describe_error, one_line
from ..optim.base import ArgumentTypeError, argument_error, check_callable, check_int, is_real
from ..optim.population import Population, has_eval_mode
from ..optim.registry import checked_defaults, create, resolve
from .allocator import keep_freed_memory

__all__ = ["TrainConfig", "Member", "RunResult", "schedule_factor", "batch_indices", "batch_stream",
           "check_output", "check_task", "TASK_ATTRIBUTES",
           "new_model", "eval_indices", "population_refusal", "check_model", "train_population",
           "train_sequential", "SCHEDULES", "full_batch"]

SCHEDULES = ("constant", "step", "cosine", "onecycle", "warmup-cosine")
#: the population engine evaluates at most this many (member, position) rows at once (a
#: position: one target; a sequence example of length T has T): the activations of all K
#: members on a whole data set do not fit in cache (64 MNIST-1D MLPs on 4000 samples make
#: 100 MB per layer). Counting examples instead of positions made one evaluation of 39
#: char-rnn GRUs (1000 sequences of 64) hold gigabytes of activations: minutes per
#: evaluation, mostly page faults. 8192 rather than 32768: one evaluation of 64 members on
#: 1000 MNIST-1D examples took 20.6 ms instead of 39.5 (MLP) and 193 instead of 376 (CNN),
#: the GRU's the same (100 against 106 ms); 4096 was 8% faster again for the MLP and the
#: CNN but 20% slower for the GRU
EVAL_ROWS = 8192
#: ... but a chunk holds at least this many examples: a recurrent model's forward is
#: hundreds of small operations whatever the chunk, so chunks of one or two sequences
#: (39 char-rnn members x 64 positions fill 8192 rows with 3) would multiply them. Chunks
#: are whole numbers of these blocks of examples, and a cross-entropy evaluation adds up the
#: blocks' sums (:func:`_cross_entropy_sums`), not the chunks': a member's numbers are then
#: the same however many members are evaluated with it
EVAL_MIN_EXAMPLES = 16
#: the seed of the evaluation subset (:func:`eval_indices`): fixed, so that every member,
#: engine, evaluation and sweep reads the same examples
EVAL_SUBSET_SEED = 0


@dataclass(frozen=True)
class TrainConfig:
    """How every member of a sweep trains.

    ``batch_size`` None is full-batch gradient descent, 1 is stochastic gradient descent,
    anything between is mini-batch. ``schedule`` multiplies each member's learning rate by
    :func:`schedule_factor`. ``clip_norm`` clips each member's global gradient norm (as
    ``torch.nn.utils.clip_grad_norm_``), ``clip_value`` each gradient entry.

    ``eval_subset``: the evaluations before the last one (step 0 and every ``eval_every``
    steps) read only this many examples of the train set and as many of the test set, the
    same ones each time (:func:`eval_indices`); their points are estimates on that subset.
    The last evaluation (step ``steps``) always reads both whole sets, so final metrics are
    exact. A set no larger than ``eval_subset`` is read whole (at the default 1000: every
    test set of the built-in tasks but MNIST's), and None reads every set whole at every
    evaluation.

    Attributes:
        steps: training steps of every member.
        batch_size: examples per step (None: the full batch).
        eval_every: steps between evaluations (step 0 and the last are always evaluated).
        schedule: the learning-rate schedule, one of :data:`SCHEDULES` (``constant``,
            ``step``, ``cosine``, ``onecycle``, ``warmup-cosine``).
        warmup_steps: steps of linear warm-up of the ``warmup-cosine`` schedule.
        clip_norm, clip_value: gradient clipping (None: none).
        model: the task's model by name (None: the task's default).
        divergence_factor: a run whose train loss ends above this multiple of its initial
            loss (more than factor - 1 times its size above it, for a loss that starts
            below zero), or becomes non-finite, is recorded as diverged.
        averaging: weight averaging for evaluation: None, ``"ema"`` (``ema_decay``) or
            ``"swa"`` (the plain mean of the iterates from ``swa_start`` x steps on).
        ema_decay, swa_start: the averages' parameters.
        eval_subset: examples of each set read by the evaluations before the last (None:
            all of them).
    """

    steps: int = 1000
    batch_size: int | None = 100
    eval_every: int = 100
    schedule: str = "constant"
    warmup_steps: int = 0
    clip_norm: float | None = None
    clip_value: float | None = None
    model: str | None = None
    #: a run whose train loss ends above this multiple of its initial loss (more than
    #: factor - 1 times its size above it, for a loss that starts below zero), or becomes
    #: non-finite, is recorded as diverged
    divergence_factor: float = 10.0
    #: weight averaging for evaluation: None, "ema" (exponential, ``ema_decay``) or "swa"
    #: (the plain mean of the iterates from ``swa_start`` x steps on)
    averaging: str | None = None
    ema_decay: float = 0.99
    swa_start: float = 0.75
    #: examples of each set read by the evaluations before the last (None: all of them)
    eval_subset: int | None = 1000

    def __post_init__(self) -> None:
        for name, none in (("steps", ""), ("batch_size", " (or None: the full batch)"),
                           ("eval_every", ""), ("eval_subset", " (or None: every example)")):
            value = getattr(self, name)
            if none and value is None:
                continue
            try:
                check_int(name, value, 1)
            except ValueError as err:  # ArgumentTypeError stays one (a TypeError too)
                raise type(err)(f"{err}{none}") from None
            # NumPy's integers as Python's: the config is stored as JSON and compared
            object.__setattr__(self, name, int(value))
        check_int("warmup_steps", self.warmup_steps, 0)
        object.__setattr__(self, "warmup_steps", int(self.warmup_steps))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.model is not None and not isinstance(self.model, str):
            raise ArgumentTypeError(
                f"model must be None (the task's default) or one of the task's "
                f"model names, got {self.model!r}")
        if self.averaging not in (None, "ema", "swa"):
            raise ValueError(f"averaging must be None, 'ema' or 'swa', got {self.averaging!r}")
        for name, holds, interval in (("ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
                                      ("swa_start", lambda v: 0 <= v < 1, "in [0, 1)"),
                                      ("divergence_factor", lambda v: 1 <= v < math.inf,
                                       ">= 1 (and finite)"),
                                      ("clip_norm", lambda v: v > 0, "> 0"),
                                      ("clip_value", lambda v: v > 0, "> 0")):
            value = getattr(self, name)
            if value is None and name.startswith("clip"):
                continue  # no clipping
            if not is_real(value) or not holds(value):
                raise argument_error(is_real(value))(
                    f"{name} must be a number {interval}, got {value!r}")
            if not isinstance(value, (int, float)):  # a Fraction, NumPy's integers: tensors
                object.__setattr__(self, name, float(value))  # refuse them mid-run
        if self.warmup_steps and self.schedule != "warmup-cosine":
            raise ValueError(f"warmup_steps applies to schedule='warmup-cosine' only, got "
                             f"warmup_steps={self.warmup_steps} with schedule={self.schedule!r}")
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps must be below steps ({self.steps}), got "
                             f"{self.warmup_steps}: the warm-up would never reach the peak rate")


@dataclass(frozen=True)
class Member:
    """One run of a sweep: a registry optimizer name, its hyperparameters and a seed."""

    optimizer: str
    hparams: dict
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, str):
            raise TypeError(f"Member: optimizer must be a registry name (str), got "
                            f"{self.optimizer!r}")
        if not isinstance(self.hparams, Mapping) or \
                not all(isinstance(key, str) for key in self.hparams):
            raise TypeError(f"Member: hparams must be a dict of hyperparameter name -> value, "
                            f"e.g. {{'lr': 1e-3}}, got {self.hparams!r}")
        if isinstance(self.seed, bool) or not hasattr(type(self.seed), "__index__"):
            raise TypeError(f"Member: seed must be a whole number, got {self.seed!r}")
        # what torch.manual_seed takes (a negative seed is wrapped): a larger one would fail
        # as "Overflow when unpacking long long" once the member's model is drawn
        check_int("Member: seed", operator.index(self.seed), -2**63, 2**64 - 1)

    @property
    def label(self) -> str:
        """``"adam(lr=0.001) seed 0"``: the member's optimizer, hyperparameters and seed."""
        hp = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in self.hparams.items())
        return f"{self.optimizer}({hp}) seed {self.seed}"


@dataclass
class RunResult:
    """What one member produced: the curves at each evaluation, and whether it diverged.

    ``full_eval[i]`` is True where point ``i`` read every train and test example (always
    the last point), False where it is an estimate on the evaluation subset
    (:attr:`TrainConfig.eval_subset`). ``wall_time[i]`` is the training time before point
    ``i``, in seconds: the steps alone, without the evaluations (whose cost is the lab's,
    not the optimizer's) and, in the population engine, after an untimed forward and
    backward that pays the process's one-time costs, which would otherwise be charged to
    whichever optimizer trains first.
    """

    member: Member
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_metric: list[float] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    diverged: bool = False
    full_eval: list[bool] = field(default_factory=list)
    #: the error a member's training raised (``train_sequential(..., isolate=True)``), or None
    error: str | None = None
    #: with averaging (:attr:`TrainConfig.averaging`), the final train loss of the iterates
    #: themselves, on which divergence is judged (the curves hold the average's, which can
    #: stay small while the iterates blow up); None without averaging
    iterate_loss: float | None = None
    #: the engine that trained it: ``"population"`` (:func:`train_population`) or
    #: ``"sequential"`` (:func:`train_sequential`); the two agree to rounding, not bit for bit
    engine: str | None = None


def schedule_factor(config: TrainConfig, step: int) -> float:
    """The learning-rate multiplier at ``step`` (0-based) for the configured schedule.

    ``constant``: 1. ``step``: divided by 10 at 50% and again at 75% of the budget (the
    step decay of ResNet training). ``cosine``: half a cosine from 1 to 0. ``onecycle``:
    linear from 0.04 up to 1 over the first 30%, then a cosine down to 1e-4 at the last
    step (the shape of Smith's one-cycle policy; torch's ``OneCycleLR`` warms up along a
    cosine and ends at 4e-6 instead). ``warmup-cosine``: linear warm-up over
    ``warmup_steps`` (default a twentieth of the budget), then a cosine to 0.
    """
    total = config.steps
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "step":  # a tenth at 50%, a hundredth at 75% of the budget
        return 0.1 ** (int(step >= total // 2) + int(step >= 3 * total // 4))
    if config.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / total))
    if config.schedule == "onecycle":  # linear up for 30%, cosine down to 1/10000 of peak
        peak = max(1, int(0.3 * total))
        if step < peak:
            return 0.04 + 0.96 * step / peak
        # the last step (total - 1) at the floor, as the docstring says
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (step - peak)
                                                        / max(1, total - 1 - peak)))
    warmup = config.warmup_steps or max(1, total // 20)  # warmup-cosine
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _epoch(n: int, batch_size: int, gen: torch.Generator) -> Tensor:
    """One shuffled epoch's whole batches, ``[n // batch_size, batch_size]`` (the rest of the
    epoch is left out), drawn from ``gen``."""
    per_epoch = n // batch_size
    return torch.randperm(n, generator=gen)[:per_epoch * batch_size].reshape(per_epoch, batch_size)


def full_batch(batch_size: int | None, n: int) -> bool:
    """Whether every step reads all ``n`` training examples: ``batch_size`` None, or at
    least ``n`` (what trains then, and what a sweep stores and reports, is the full batch)."""
    return batch_size is None or batch_size >= n


def batch_stream(n: int, batch_size: int | None, seed: int) -> Iterator[Tensor]:
    """The training examples of each step, one step after another without end: the steps
    of :func:`batch_indices` for that seed, drawn an epoch at a time (every example at full
    batch). What the step-cost calibration steps through (:mod:`optimlab.bench.cost`)."""
    if full_batch(batch_size, n):
        rows = torch.arange(n)
        while True:
            yield rows
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield from _epoch(n, batch_size, gen)


def batch_indices(n: int, batch_size: int | None, seed: int, steps: int) -> Tensor:
    """The training examples of each step, shape ``[steps, B]``: shuffled epochs per seed
    (:func:`_epoch`; at full batch one row of every example, expanded, not copied)."""
    if full_batch(batch_size, n):
        return torch.arange(n).expand(steps, n)
    gen = torch.Generator().manual_seed(seed)
    epochs = -(-steps // (n // batch_size))
    return torch.cat([_epoch(n, batch_size, gen) for _ in range(epochs)])[:steps]


def _population_batches(n: int, batch_size: int | None,
                        seeds: Sequence[int]) -> Iterator[Tensor]:
    """The training examples of each step for members of these ``seeds``, ``[K, B]`` a step,
    one step after another without end: member k's are its seed's :func:`batch_stream`
    (the steps of :func:`batch_indices`, drawn an epoch at a time as the steps need them).
    Every step's indices made up front were ``[steps, K, B]`` int64: 64 members x batch 100
    x 10,000 steps, 488 MiB (at full batch one row of every example, expanded, not copied)."""
    if full_batch(batch_size, n):
        rows = torch.arange(n).expand(len(seeds), n)
        while True:
            yield rows
    streams = [batch_stream(n, batch_size, seed) for seed in seeds]
    while True:
        yield torch.stack([next(stream) for stream in streams])


def _rows(data: Tensor, idx: Tensor) -> Tensor:
    """``data[idx]`` for an integer tensor ``idx`` of any shape, through one ``index_select``:
    the same tensor, gathered 3.3x faster for a step of 64 MNIST-1D members (63 against 208
    us for the inputs and targets of ``[64, 100]`` indices)."""
    return data.index_select(0, idx.reshape(-1)).view(*idx.shape, *data.shape[1:])


def eval_indices(n: int, size: int | None) -> Tensor | None:
    """The examples (sorted indices) that an evaluation before the last reads of a set of
    ``n``: ``size`` of them drawn with the fixed seed :data:`EVAL_SUBSET_SEED`, or None
    (every example) where ``size`` is None or at least ``n``. The same for every member,
    engine and evaluation of a set of that size."""
    if size is None or size >= n:
        return None
    gen = torch.Generator().manual_seed(EVAL_SUBSET_SEED)
    return torch.randperm(n, generator=gen)[:size].sort().values


class _EvalSets:
    """The ``(x, y)`` train and test pairs the last evaluation reads (``full``) and those the
    others read (``subset``), with whether the subset is in fact every example."""

    def __init__(self, task, config: TrainConfig) -> None:
        self.full = ((task.x_train, task.y_train), (task.x_test, task.y_test))
        subset = []
        for x, y in self.full:
            idx = eval_indices(len(x), config.eval_subset)
            subset.append((x, y) if idx is None else (x[idx], y[idx]))
        self.subset = tuple(subset)
        self.subset_is_full = all(a[0] is b[0] for a, b in zip(self.subset, self.full))
        self.steps = config.steps

    def at(self, step: int) -> tuple[tuple, bool]:
        """The sets evaluation at ``step`` reads, and whether they are the whole sets."""
        if step == self.steps or self.subset_is_full:
            return self.full, True
        return self.subset, False


def _metric(task, output: Tensor, target: Tensor, loss: Tensor) -> Tensor:
    if task.metric == "accuracy":
        return (output.argmax(-1) == target).float().mean()
    if task.metric == "bits_per_char":
        return loss / math.log(2)
    return loss


def _where(task, model_name: str | None) -> str:
    """``"task 'T', model 'M': "``, the start of an error about ``task``'s model."""
    name = model_name or getattr(task, "default_model", None)
    return f"task {getattr(task, 'name', type(task).__name__)!r}, model {name!r}: "


def new_model(task, model_name: str | None = None) -> nn.Module:
    """``task.make_model(model_name)``, refused with one ``ValueError`` line (naming the
    task, the model and what the factory returned) where it is not an ``nn.Module``: a
    bring-your-own factory returning a string or a function would otherwise fail later as
    an ``AttributeError`` deep in the trainer or in :func:`optimlab.bench.sweep.model_digest`."""
    model = task.make_model(model_name)
    if not isinstance(model, nn.Module):
        raise ValueError(f"{_where(task, model_name)}the model factory returned "
                         f"{type(model).__name__} {one_line(repr(model), 60)}, not a "
                         "torch.nn.Module; a model is a class or function returning a fresh "
                         "nn.Module")
    return model


def gradient_layouts(model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    """``model``'s trained parameters (``requires_grad``) split by the gradients they get:
    ``(sparse, dense)``, the sparse ones those of a module built with ``sparse=True``
    (``nn.Embedding``, ``nn.EmbeddingBag``), whose parameters are its own."""
    embedded = {id(p) for m in model.modules() if getattr(m, "sparse", False) is True
                for p in m.parameters(recurse=False)}
    trained = [p for p in model.parameters() if p.requires_grad]
    return ([p for p in trained if id(p) in embedded],
            [p for p in trained if id(p) not in embedded])


def _init_model(task, model_name: str | None, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return new_model(task, model_name)


def _describe(tensor: Tensor) -> str:
    return f"{list(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


def _check_accuracy_output(where: str, out: Any, y: Tensor) -> None:
    """Refuse an output the ``accuracy`` metric cannot read under a loss of the task's own:
    it takes the predicted class as the argmax of logits ``[..., C]`` (C >= 2) over the
    labels' shape; one logit per example (a binary model under
    ``binary_cross_entropy_with_logits``) read as class 0 everywhere, or as the argmax over
    the batch, and the table reported an accuracy of 0."""
    if isinstance(out, Tensor) and out.ndim == y.ndim + 1 and out.shape[:-1] == y.shape \
            and out.shape[-1] >= 2:
        return
    got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
    raise ValueError(f"{where}metric 'accuracy' reads the class as the argmax of logits "
                     f"[..., classes >= 2] over the labels' shape; two examples gave {got} for "
                     f"labels {list(y.shape)} (one logit per example: give the model two "
                     "outputs and cross_entropy, or use metric='loss')")


@torch.no_grad()
def check_output(task, model: nn.Module, model_name: str | None = None) -> None:
    """Refuse a model whose output does not fit the task's targets, before any training.

    The task checks its data alone (:class:`~optimlab.bench.tasks.Task`); what needs the
    model is checked here, on two training examples in eval mode: for ``cross_entropy``,
    logits ``[..., C]`` over the labels' shape and every label below ``C`` (torch would stop
    mid-run with "Target 12 is out of bounds"); for ``mse``, an output of the targets' exact
    shape (``F.mse_loss`` would broadcast ``[N, 1]`` against ``[N]`` into an ``[N, N]``
    loss, with only a warning). A loss function of the task's own is not checked, but
    with the ``accuracy`` metric its output must be such logits too. Whatever
    the loss, a model that fails on the two examples (a layer of the wrong size, parameters
    of another dtype or device than the data) is refused with one ``ValueError`` line giving
    the input's shape and dtype, the parameters' dtypes and the model's error: a user
    error, where torch's ``RuntimeError`` read as the trainer's own.
    """
    where = _where(task, model_name)
    x = task.x_train[:2]
    was_training = model.training
    model.eval()
    try:
        out = model(x)
    except Exception as err:  # a shape or dtype the data do not have: the user's model
        kinds = {(str(p.dtype).removeprefix("torch."), p.device) for p in model.parameters()}
        params = ", ".join(sorted(d if device == x.device else f"{d} on {device}"
                                  for d, device in kinds)) or "none"
        raise ValueError(f"{where}the model fails on 2 training examples (input "
                         f"{_describe(x)}; parameters {params}): {type(err).__name__}: "
                         f"{one_line(err)}") from err
    finally:
        model.train(was_training)
    loss = getattr(task, "loss", None)
    if loss not in ("cross_entropy", "mse"):
        if getattr(task, "metric", None) == "accuracy":
            _check_accuracy_output(where, out, task.y_train[:2])
        return
    if not isinstance(out, Tensor):
        raise ValueError(f"{where}the model returned {type(out).__name__} on 2 training "
                         f"examples; {loss} needs a tensor")
    y = task.y_train[:2]
    if loss == "mse":
        if out.shape != y.shape:
            hint = ""
            if out.shape == (*y.shape, 1):
                hint = "; give the targets a last axis of 1 (y.unsqueeze(-1)) or squeeze the output"
            raise ValueError(f"{where}the output of two examples has shape {list(out.shape)} "
                             f"but their targets {list(y.shape)}; mse needs the same shape{hint}")
        return
    if out.ndim != y.ndim + 1 or out.shape[:-1] != y.shape:
        raise ValueError(f"{where}cross_entropy needs logits [..., classes] over the labels' "
                         f"shape; two examples gave logits {list(out.shape)} for labels "
                         f"{list(y.shape)}")
    classes = out.shape[-1]
    for split in ("train", "test"):
        labels = getattr(task, f"y_{split}")
        top = int(labels.max())
        if top >= classes:
            raise ValueError(f"{where}y_{split} holds the label {top} but the model has "
                             f"{classes} outputs (labels 0..{classes - 1})")


def _stacked_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear`` of K stacked members: ``weight`` ``[K, out, in]``, ``x`` ``[K, ..., in]``,
    as one ``baddbmm`` (the bias added in the same pass), computed transposed; axes between
    the first and the last (a sequence's time steps, say) are flattened into the batch of
    the product."""
    flat = x.dim() > 3  # [K, B, T, in] -> [K, B * T, in]
    # (W x^T)^T rather than x W^T: the weight's gradient comes out contiguous (the fused
    # step needs no copy), and the activations stay in the transposed layout the next
    # layer's product reads fastest
    x_t = (x.flatten(1, -2) if flat else x).transpose(1, 2)
    out = torch.bmm(weight, x_t) if bias is None else torch.baddbmm(bias.unsqueeze(2), weight, x_t)
    out = out.transpose(1, 2)
    return out.unflatten(1, x.shape[1:-1]) if flat else out


class _StackedLinear(TorchFunctionMode):
    """Inside this mode ``F.linear`` with a stacked ``[K, out, in]`` weight and a ``[K, ...,
    in]`` input is :func:`_stacked_linear`: for models that call ``F.linear`` on their own
    parameters (the MNIST-1D GRU)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if weight.dim() == 3 and x.dim() >= 3:
                return _stacked_linear(x, weight, bias)
        return func(*args, **kwargs)


class _BoundStackedLinear(nn.Module):
    """An ``nn.Linear`` of K stacked members, its ``weight`` ``[K, out, in]`` and ``bias``
    ``[K, out]`` (plain tensors) bound before each call."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        return _stacked_linear(x, self.weight, self.bias)


def _swapped_linears(template: nn.Module, names: list[str]) -> Callable | None:
    """``forward(p_list, x)`` on a copy of ``template`` whose ``nn.Linear`` layers are
    :class:`_BoundStackedLinear`, the stacked parameters bound to them on each call; None
    where a parameter is not exactly one ``nn.Linear``'s weight or bias.

    Against ``functional_call`` under :class:`_StackedLinear` it leaves out the
    reparametrization and the mode's Python around every operation: a forward and
    backward of the MNIST-1D MLP's 64 members took 5.99-6.92 ms against 6.40-7.48 ms
    (medians of 300 calls in shuffled order, three runs)."""
    if isinstance(template, nn.Linear):
        return None
    model = copy.deepcopy(template)
    slots: dict[str, tuple[nn.Module, str]] = {}
    for name, module in list(model.named_modules()):
        if type(module) is nn.Linear:
            parent, _, child = name.rpartition(".")
            stacked = _BoundStackedLinear()
            setattr(model.get_submodule(parent), child, stacked)
            slots[f"{name}.weight"] = (stacked, "weight")
            if module.bias is not None:
                slots[f"{name}.bias"] = (stacked, "bias")
    if sorted(slots) != sorted(names):
        return None  # a parameter outside a Linear, or one shared with another module
    order = [slots[n] for n in names]

    def forward(p_list: Sequence[Tensor], inputs: Tensor) -> Tensor:
        for (module, attr), p in zip(order, p_list):
            module.__dict__[attr] = p
        return model(inputs)
    return forward


def _stacked_forward(template: nn.Module, names: list[str], params: Sequence[Tensor],
                     x: Tensor, reference: Callable) -> Callable | None:
    """A forward of K stacked members without vmap, where it gives vmap's answer.

    The model runs once on inputs ``[K, batch, ...]`` with its parameters stacked, every
    linear layer as one ``baddbmm`` (:func:`_stacked_linear`): its ``nn.Linear`` modules
    swapped for stacked ones where they hold every parameter (:func:`_swapped_linears`),
    else through ``functional_call`` with ``F.linear`` caught by :class:`_StackedLinear`.
    That holds for models whose other operations broadcast over a leading axis (MLPs,
    residual MLPs); it is checked on ``x`` against ``reference`` (the vmapped forward) and
    None is returned where it fails or differs, so the caller keeps vmap. For the MNIST-1D
    MLP the batched products made a training step about 1.4x faster than vmap, whose linear
    adds the bias in a second pass and whose backward transposes more.
    """
    def through_mode(p_list: Sequence[Tensor], inputs: Tensor) -> Tensor:
        with _StackedLinear():
            return functional_call(template, dict(zip(names, p_list)), (inputs,))

    for forward in (_swapped_linears(template, names), through_mode):
        if forward is None:
            continue
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a model not meant for it may warn on the probe
                got, want = forward(params, x), reference(params, x)
        except Exception:  # an operation that does not broadcast over the member axis
            continue
        tol = 1e-10 if want.dtype == torch.float64 else 1e-4
        if got.shape == want.shape and torch.allclose(got, want, rtol=tol, atol=tol):
            return forward
    return None


def _population_forwards(task, template: nn.Module,
                         params: Sequence[Tensor]) -> tuple[Callable, Callable]:
    """The forwards of K stacked members (``params``: the template's parameters, each with
    a leading member axis): ``batched(p_list, x)`` with inputs ``[K, batch, ...]`` and
    ``shared(p_list, x)`` with one input batch for every member. Each ``Linear`` is one
    batched product where the model allows it (:func:`_stacked_forward`), else vmap."""
    names = [name for name, _ in template.named_parameters()]
    buffers = dict(template.named_buffers())
    k = params[0].shape[0]

    def forward(p_list, x):
        return functional_call(template, {**buffers, **dict(zip(names, p_list))}, (x,))

    batched_forward = torch.vmap(forward, in_dims=(0, 0))
    shared_forward = torch.vmap(forward, in_dims=(0, None))
    probe = task.x_train[:8].expand(k, *task.x_train[:8].shape)
    stacked = None if buffers else _stacked_forward(template, names, params, probe,
                                                    batched_forward)
    if stacked is not None:  # one batched matrix product per linear layer
        batched_forward = stacked

        def shared_forward(p_list, x):
            return stacked(p_list, x.expand(p_list[0].shape[0], *x.shape))
    return batched_forward, shared_forward


def population_scores(task, template: nn.Module, weights: Sequence[Tensor], x: Tensor,
                      y: Tensor) -> tuple[Tensor, Tensor]:
    """The mean loss and metric on ``(x, y)`` of K weight sets at once, shape ``[K]`` each:
    ``weights`` are ``template``'s parameters in order, each with a leading axis of K.

    What the population engine evaluates its members with (batched products, chunks of at
    most :data:`EVAL_ROWS` rows), for any stack of weights: the points of a loss
    landscape's grid, say. As in training, the process's freed memory is kept for the next
    chunk (:mod:`optimlab.bench.allocator`): a 41 x 41 slice of the MNIST-1D MLP over 1000
    examples, 256 points at a time, took 1.21-1.29 s without it and 0.57-0.72 s with it
    (medians of 9, two processes each way), its megabyte activations otherwise faulted back
    in page by page."""
    if not weights or any(w.shape[0] != weights[0].shape[0] for w in weights):
        raise ValueError("weights need one leading axis of the same length K")
    keep_freed_memory()
    _, shared = _population_forwards(task, template, weights)
    with torch.no_grad():
        return _population_scores(task, shared, weights, x, y, weights[0].shape[0])


def _cross_entropy_per_member(output: Tensor, target: Tensor) -> Tensor:
    """A built-in task's loss (mean cross entropy over every position) for each member.

    The same numbers as ``vmap(task.loss_fn)``, with the classes on axis 1 where
    ``F.cross_entropy`` is fastest: 0.45 ms against 1.9 ms forward and backward for 64
    members x 100 samples x 10 classes.
    """
    k, classes = output.shape[0], output.shape[-1]
    logits = output.reshape(k, -1, classes).transpose(1, 2)
    return F.cross_entropy(logits, target.reshape(k, -1), reduction="none").mean(1)


def _base_rates(pop: Population, members: Sequence[Member]) -> list | None:
    """Each member's learning rate before a schedule scales it: the one it sets, else its
    optimizer's default (as the sequential engine reads ``param_groups[0]["lr"]``); None
    for an optimizer without one. A schedule left the defaults unscaled here before."""
    if pop.mode == "member":
        groups = [pop.member_optimizer(k).param_groups[0] for k in range(pop.members)]
        return [group["lr"] for group in groups] if "lr" in groups[0] else None
    rates = [checked_defaults(m.optimizer, **m.hparams).get("lr") for m in members]
    return None if rates[0] is None else rates


def _gradients(loss: Tensor, trained: Sequence[Tensor]) -> list[Tensor | None]:
    """``d loss / d p`` for each of ``trained``, None for a parameter the loss does not depend
    on (a head the forward never calls): its ``grad`` stays None and the optimizer skips it,
    as torch's optimizers do after ``loss.backward()``. Without ``allow_unused`` such a model
    raised "appears to not have been used in the graph" on every run."""
    return list(torch.autograd.grad(loss, trained, allow_unused=True))


def _clip(grads: list[Tensor | None], config: TrainConfig,
          batched: bool) -> list[Tensor | None]:
    """``grads`` clipped by value and then by their total norm (per member where
    ``batched``), as ``torch.nn.utils.clip_grad_value_`` and ``clip_grad_norm_`` would; a
    None (an unused parameter's) stays None and adds nothing to the norm."""
    if config.clip_value is not None:
        grads = [None if g is None else g.clamp(-config.clip_value, config.clip_value)
                 for g in grads]
    present = [g for g in grads if g is not None]
    if config.clip_norm is not None and present:
        dims = (lambda g: tuple(range(1, g.dim()))) if batched else (lambda g: None)
        total = sum((g.double() ** 2).sum(dim=dims(g)) for g in present).sqrt()
        # as torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6), at most 1
        coef = (config.clip_norm / (total + 1e-6)).clamp(max=1.0)
        grads = [None if g is None else
                 g * (coef.reshape((-1,) + (1,) * (g.dim() - 1)) if batched else coef).to(g)
                 for g in grads]
    return grads


def _evaluation_switch(optimizers: Sequence) -> contextlib.AbstractContextManager:
    """A context in which the optimizers that evaluate at another point than where they
    take gradients (the schedule-free ones: their average :math:`x`, not the gradient point
    :math:`y`; their ``eval()`` and ``train()``) hold the parameters at that point, as the
    README asks of their users; the others are left alone."""
    switching = [opt for opt in optimizers if has_eval_mode(opt)]
    if not switching:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def switched():
        for opt in switching:
            opt.eval()
        try:
            yield
        finally:
            for opt in switching:
                opt.train()
    return switched()


class _Average:
    """EMA or SWA of the iterates, as evaluation weights (the same arithmetic in both engines).

    EMA: ``a <- a + (1 - decay) (w - a)`` after every step, from the initial weights.
    SWA: the running mean ``a <- a + (w - a) / n`` of the iterates from the one after
    ``swa_start * steps`` steps (rounded up) on; before that the evaluation uses the current
    weights.
    """

    def __init__(self, config: TrainConfig, params: Sequence[Tensor]) -> None:
        self.config = config
        self.count = 0
        # the first iterate averaged: after this many steps (0.29 * 100 is 28.999...96)
        self.start = math.ceil(config.swa_start * config.steps - 1e-9)
        self.values = [p.detach().clone() for p in params] if config.averaging else None

    @torch.no_grad()
    def update(self, step: int, params: Sequence[Tensor]) -> None:
        if self.values is None:
            return
        if self.config.averaging == "ema":
            for a, p in zip(self.values, params):
                a.lerp_(p, 1 - self.config.ema_decay)
        elif step + 1 >= self.start:  # the iterate after step + 1 steps
            self.count += 1
            for a, p in zip(self.values, params):
                a.add_((p - a) / self.count)

    def weights(self, params: Sequence[Tensor]) -> Sequence[Tensor]:
        if self.values is None or (self.config.averaging == "swa" and self.count == 0):
            return params
        return self.values


class _TrainingClock:
    """Seconds of training: a wall clock that stops while the run is evaluated."""

    def __init__(self) -> None:
        self.spent = 0.0
        self.since = time.perf_counter()

    def pause(self) -> float:
        """Stop the clock; the training time so far."""
        self.spent += time.perf_counter() - self.since
        return self.spent

    def resume(self) -> None:
        self.since = time.perf_counter()


#: held by the training lab's entry points (:func:`one_at_a_time`), re-entrant
_LAB_LOCK = threading.RLock()
_P = ParamSpec("_P")
_R = TypeVar("_R")


def one_at_a_time(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` run by one thread of the process at a time (the others wait for it).

    The training lab seeds torch's process-wide random generator for each run (its initial
    weights: ``torch.manual_seed(seed)``, then the model's constructor draws from it) and
    restores it around probes (``torch.random.fork_rng``). Two sweeps started from two
    threads of one process drew from each other's streams: in 2 of 3 tries one of them
    stored other numbers than it did alone, silently. Work in parallel belongs in separate
    processes (``--executor ray``, or two commands); in one process the lab's training
    calls, sweeps, calibrations, slices and advisors take turns (re-entrant: a sweep's own
    training calls go on)."""
    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _LAB_LOCK:
            return fn(*args, **kwargs)
    return run


#: what the trainer reads of a task (:class:`~optimlab.bench.tasks.Task` has them all; so
#: may any object of yours)
TASK_ATTRIBUTES = ("make_model", "loss_fn", "x_train", "y_train", "x_test", "y_test")


def check_task(task) -> None:
    """TypeError (one line) unless ``task`` has what the trainer reads of a task
    (:data:`TASK_ATTRIBUTES`): a task name, a config or a model given in its place fails
    here rather than as an ``AttributeError`` deep in the first member's training."""
    if isinstance(task, str):
        raise TypeError(f"task must be a Task, not the name {task!r}: build it with "
                        f"optimlab.bench.tasks.get({task!r})")
    lacking = [name for name in TASK_ATTRIBUTES if not hasattr(task, name)]
    if lacking:
        raise TypeError(f"task must be a Task (optimlab.bench.tasks.get(name) builds one), "
                        f"got {type(task).__name__} {one_line(repr(task), 60)}, which has no "
                        f"{', '.join(lacking)}")


def _check_training(task, config, members, progress) -> list[Member]:
    """The arguments of :func:`train_population` and :func:`train_sequential`, checked
    before anything is built or trained; ``members`` as a list."""
    check_task(task)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__} "
                        f"{one_line(repr(config), 60)}")
    if isinstance(members, (Member, str, bytes, Mapping)) or not isinstance(members, Iterable):
        raise TypeError(f"members must be a list of Member, got {type(members).__name__} "
                        f"{one_line(repr(members), 60)}"
                        + (" (a single member: pass [member])"
                           if isinstance(members, Member) else ""))
    members = list(members)
    for k, member in enumerate(members):
        if not isinstance(member, Member):
            raise TypeError(f"members[{k}] must be a Member, got {type(member).__name__} "
                            f"{one_line(repr(member), 60)}")
    check_callable("progress", progress, "called with 1 after each step")
    return members


@one_at_a_time
def train_population(task, config: TrainConfig, members: Sequence[Member],
                     progress: Callable[[int], None] | None = None) -> list[RunResult]:
    """Train ``members`` (one optimizer, one model) as one batched model.

    Every member must use the same optimizer name; hyperparameter values may differ. Only
    the parameters that require grad train; a frozen one (``requires_grad=False``) keeps its
    initial value in every member, as :func:`train_sequential` keeps it.
    The process's freed memory is kept for the next step (:mod:`optimlab.bench.allocator`).

    Raises TypeError, before anything trains, for a ``task`` that is no task
    (:func:`check_task`), a ``config`` that is no :class:`TrainConfig`, ``members`` that are
    not a sequence of :class:`Member` (one member alone included), or a ``progress`` that
    cannot be called.
    """
    members = _check_training(task, config, members, progress)
    keep_freed_memory()
    if not members or len({m.optimizer for m in members}) != 1:
        raise ValueError("a population trains members of one optimizer (at least one)")
    models = [_init_model(task, config.model, m.seed) for m in members]
    template = models[0]
    check_output(task, template, config.model)
    # Buffers (a fixed Hessian, say) are shared by every member; ones that differ between
    # members or change in training (BatchNorm statistics) have no batched form here.
    buffers = dict(template.named_buffers())
    if any(not torch.equal(b, buffers[n]) for model in models[1:] for n, b in model.named_buffers()):
        raise ValueError("the population engine needs buffers that are the same for "
                         "every member; use the sequential engine for this model")
    # every parameter is stacked (the forward reads them all), but only those that require
    # grad train: a frozen one (``requires_grad=False``) stays its initial value, outside the
    # optimizer and the gradient; where none is frozen ``trained`` is ``params`` itself
    names = [name for name, _ in template.named_parameters()]
    frozen = {name for name, p in template.named_parameters() if not p.requires_grad}
    params = [torch.stack([dict(m.named_parameters())[name].detach() for m in models])
              .requires_grad_(name not in frozen) for name in names]
    # the members' own modules are let go (the template stays, for the forwards): kept,
    # they held a second copy of every member's parameters through the whole run
    del models
    trained = [p for p in params if p.requires_grad] if frozen else params
    if not trained:
        raise ValueError(f"{_where(task, config.model)}the model has no trainable parameters "
                         "(every one has requires_grad=False)")
    keys = sorted(members[0].hparams)
    if any(sorted(m.hparams) != keys for m in members):
        raise ValueError("members of a population must set the same hyperparameters")
    hparams = {k: [m.hparams[k] for m in members] for k in keys}
    pop = Population(members[0].optimizer, trained, hparams)
    base_lr = _base_rates(pop, members)
    needs_closure = pop.entry.info.needs_closure

    batched_forward, shared_forward = _population_forwards(task, template, params)
    loss_per_member = _cross_entropy_per_member if getattr(task, "loss", None) == \
        "cross_entropy" else torch.vmap(task.loss_fn)
    # each step's [K, B] examples, drawn an epoch at a time as needed (not every step's up
    # front: 64 members x batch 100 x 10,000 steps were 488 MiB of indices)
    batches = _population_batches(len(task.x_train), config.batch_size,
                                  [m.seed for m in members])
    first = next(batches)
    results = [RunResult(m, engine="population") for m in members]
    diverged = torch.zeros(len(members), dtype=torch.bool)
    eval_sets = _EvalSets(task, config)
    # a forward and backward thrown away before the clock starts (the random state kept):
    # a process's first one sets up autograd's and vmap's machinery and the allocator's
    # blocks, about 0.04-0.25 s that the wall time would charge to the first optimizer
    with torch.random.fork_rng(devices=[]):
        _gradients(loss_per_member(batched_forward(
            params, _rows(task.x_train, first)), _rows(task.y_train, first)).sum(), trained)
    clock = _TrainingClock()

    def evaluate(step: int) -> None:
        elapsed = clock.pause()
        sets, full = eval_sets.at(step)
        # schedule-free members at their average x (Population.eval; a no-op for the rest)
        with torch.no_grad(), _evaluation_switch([pop]):
            weights = average.weights(params)
            (train, test) = sets
            # the curves keep the train loss and the test loss and metric: no train metric
            train_loss, _ = _population_scores(task, shared_forward, weights, *train,
                                               len(members), metric=False)
            test_loss, test_metric = _population_scores(task, shared_forward, weights, *test,
                                                        len(members))
            rows = [train_loss, test_loss, test_metric]
            if weights is not params and step == config.steps:  # the iterates' own, too
                rows.append(_population_scores(task, shared_forward, params, *train,
                                               len(members), metric=False)[0])
            # one conversion for every member and curve: [3 or 4, K] -> nested lists
            table = torch.stack(rows).tolist()
        for k, result in enumerate(results):
            result.steps.append(step)
            result.train_loss.append(table[0][k])
            result.test_loss.append(table[1][k])
            result.test_metric.append(table[2][k])
            result.wall_time.append(elapsed)
            result.full_eval.append(full)
            if len(table) > 3:
                result.iterate_loss = table[3][k]
        clock.resume()

    average = _Average(config, params)
    evaluate(0)
    for step in range(config.steps):
        if base_lr is not None and config.schedule != "constant":
            factor = schedule_factor(config, step)
            pop.set_hparam("lr", [lr * factor for lr in base_lr])
        idx = first if step == 0 else next(batches)
        x, y = _rows(task.x_train, idx), _rows(task.y_train, idx)

        def closure(x=x, y=y):
            loss = loss_per_member(batched_forward(params, x), y)
            grads = _gradients(loss.sum(), trained)
            for p, g in zip(trained, _clip(grads, config, batched=True)):
                p.grad = g
            return loss.detach()

        if needs_closure:  # SAM evaluates the gradient twice per step
            loss = pop.step(closure)
        else:
            loss = closure()
            pop.step()
        diverged |= ~torch.isfinite(loss)
        average.update(step, params)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            evaluate(step + 1)
        if progress:
            progress(1)
    for k, result in enumerate(results):
        result.diverged = bool(diverged[k]) or _blew_up(result, config)
    return results


def _wide(values: Tensor) -> Tensor:
    """``values`` in float32 where they are in a half type (bfloat16, float16), else as they
    are: an evaluation's loss and metric are means over many examples, which a half type
    rounds to 8 or 11 bits (a bfloat16 model's accuracy on 1,000 examples came in steps of
    1/256, and a loss summed in blocks lost its last digits). Training keeps the model's
    dtype; only the scores are taken wider."""
    return values.float() if values.dtype in (torch.bfloat16, torch.float16) else values


def _eval_chunk(k: int, y: Tensor) -> int:
    """Examples per forward when evaluating ``k`` members on targets ``y``: at most
    :data:`EVAL_ROWS` (member, position) rows, at least :data:`EVAL_MIN_EXAMPLES` examples,
    and a whole number of :data:`EVAL_MIN_EXAMPLES` (the blocks whose sums
    :func:`_cross_entropy_sums` adds up: so that a block never straddles two chunks)."""
    per_example = max(1, y[:1].numel())  # targets per example: T for a sequence
    block = EVAL_MIN_EXAMPLES
    return max(block, EVAL_ROWS // (k * per_example) // block * block)


def _cross_entropy_sums(output: Tensor, target: Tensor, k: int,
                        accuracy: bool) -> tuple[Tensor, Tensor | None]:
    """The summed cross entropy of each block of :data:`EVAL_MIN_EXAMPLES` examples (the
    last one shorter where the chunk ends the set), ``[k, blocks]``, and the number of
    correct predictions, ``[k]`` (None unless ``accuracy``), of ``k`` members' ``output``
    ``[k, examples, ..., classes]`` on ``target`` ``[examples, ...]``.

    Sums of fixed blocks, not of the chunk: a chunk's size depends on how many members are
    evaluated together (:func:`_eval_chunk`), and so did the order of the additions of a
    chunk's sum: one member's loss stored on a 1-rate and on a 3-rate grid, or with
    ``--seeds 1`` and ``--seeds 2``, differed by an ulp. A block's sum, and the sum of the
    blocks in order, are the same whatever the chunk (both engines add them so)."""
    classes = output.shape[-1]
    # members x classes x positions: the layout the stacked model's product wrote
    logits = _wide(output).reshape(k, -1, classes).transpose(1, 2)
    target = target.reshape(1, -1).expand(k, -1)
    losses = F.cross_entropy(logits, target, reduction="none")
    width = EVAL_MIN_EXAMPLES * (losses.shape[1] // len(output[0]))  # positions a block
    whole = losses.shape[1] // width * width
    sums = losses[:, :whole].reshape(k, -1, width).sum(2)
    if whole < losses.shape[1]:  # the set's last, shorter block
        sums = torch.cat([sums, losses[:, whole:].reshape(k, 1, -1).sum(2)], dim=1)
    if not accuracy:
        return sums, None
    # the predicted class as ``max(1).indices`` over the classes' axis (the first of equal
    # maxima, as ``argmax``): 46 us for 64 members x 128 examples x 10 classes where
    # ``argmax`` over the same axis took 1.36 ms and a copy to contiguous rows then
    # ``argmax`` 84 us
    return sums, (logits.max(1).indices == target).sum(1)


def _cross_entropy_scores(task, chunks: Iterable[tuple[Tensor, Tensor]], k: int,
                          positions: int, metric: bool) -> tuple[Tensor, Tensor | None]:
    """The mean cross entropy and metric, ``[k]`` each, of ``k`` members' outputs on the
    ``(output, target)`` chunks of a set of ``positions`` targets, from the sums of its
    blocks (:func:`_cross_entropy_sums`) added up in order: the same numbers however the
    set was chunked and however many members were evaluated with each."""
    accuracy = metric and task.metric == "accuracy"
    sums, correct = [], 0
    for output, target in chunks:
        block_sums, right = _cross_entropy_sums(output, target, k, accuracy)
        sums.append(block_sums)
        if accuracy:
            correct = correct + right
    loss = torch.cat(sums, dim=1).sum(1) / positions
    if not metric:
        return loss, None
    if accuracy:  # float32, as ``_metric``'s ``.float().mean()``
        return loss, (correct.float() / positions).to(loss.dtype)
    return loss, _metric(task, None, None, loss)


def _sequential_scores(task, forward: Callable[[Tensor], Tensor], x: Tensor, y: Tensor,
                       metric: bool = True) -> tuple[float, float | None]:
    """One model's mean loss and metric on ``(x, y)`` (the metric None where ``metric`` is
    False, as :func:`_population_scores`'s), its forward run in chunks of
    :func:`_eval_chunk` examples (as a population of one), not on the whole set at once:
    60,000 MNIST images through the CNN in one pass peaked at 4.4 GB.

    ``cross_entropy`` adds up the sums of fixed blocks of examples (and the correct
    predictions) and divides by the number of targets, as the population engine does
    (:func:`_cross_entropy_scores`): the one-pass mean up to the order of the sums, and
    the population's numbers where the forwards agree. Outputs in a half type are scored in
    float32 (:func:`_wide`), as the population's. Another loss (``mse``, or a
    function of the task's own, which need not be a mean of per-example terms) reads the
    chunks' outputs joined (small beside the activations), as the population engine's.
    """
    chunk = _eval_chunk(1, y)
    if getattr(task, "loss", None) == "cross_entropy":
        chunks = ((forward(x[i:i + chunk]).unsqueeze(0), y[i:i + chunk])
                  for i in range(0, len(x), chunk))
        loss, value = _cross_entropy_scores(task, chunks, 1, y.numel(), metric)
        return float(loss[0]), None if value is None else float(value[0])
    out = _wide(torch.cat([forward(x[i:i + chunk]) for i in range(0, len(x), chunk)]))
    y = _wide(y)
    loss = task.loss_fn(out, y)
    return float(loss), float(_metric(task, out, y, loss)) if metric else None


def _population_scores(task, shared_forward: Callable, weights: Sequence[Tensor], x: Tensor,
                       y: Tensor, k: int, metric: bool = True) -> tuple[Tensor, Tensor | None]:
    """Every member's mean loss and metric on ``(x, y)``, shape ``[K]`` each (the metric
    None where ``metric`` is False: the train set's curve keeps its loss alone).

    The forward runs in chunks of at most :data:`EVAL_ROWS` (member, position) rows, and at
    least :data:`EVAL_MIN_EXAMPLES` examples (:func:`_eval_chunk`). A cross-entropy task
    reduces each chunk at once, with the classes on the axis ``F.cross_entropy`` reads
    fastest, to the sums of fixed blocks of examples, added up in order at the end
    (:func:`_cross_entropy_scores`). Other losses read the whole output, member by member
    (``task.loss_fn`` and the metric on each, as the sequential engine calls them: a
    ``vmap`` over the members reduced each member's loss in another order for one member
    than for several). Either way a member's numbers do not depend on how many members
    are evaluated with it, nor which: its forward's outputs are the same whatever the
    chunk's size (the matrix products' rows, checked for the MNIST-1D MLP, CNN and GRU),
    and the chunk's size alone depended on them.
    """
    chunk = _eval_chunk(k, y)
    if getattr(task, "loss", None) == "cross_entropy":
        chunks = ((shared_forward(weights, x[i:i + chunk]), y[i:i + chunk])
                  for i in range(0, len(x), chunk))
        return _cross_entropy_scores(task, chunks, k, y.numel(), metric)
    out = _wide(torch.cat([shared_forward(weights, x[i:i + chunk])
                           for i in range(0, len(x), chunk)], dim=1))
    y = _wide(y)
    losses = [task.loss_fn(member_out, y) for member_out in out]
    loss = torch.stack(losses)
    if not metric:
        return loss, None
    return loss, torch.stack([_metric(task, member_out, y, member_loss)
                              for member_out, member_loss in zip(out, losses)])


@one_at_a_time
def check_model(task, model_name: str | None = None) -> None:
    """``ValueError`` where no engine can train ``task``'s model: its factory returns no
    module (:func:`new_model`), or the model (seed 0) fails on two training examples or
    gives an output that does not fit the targets (:func:`check_output`). In a fraction of
    a second, before a sweep stores runs that would all fail with it."""
    check_output(task, _init_model(task, model_name, 0), model_name)


@one_at_a_time
def population_refusal(task, model_name: str | None = None) -> str | None:
    """Why the population engine cannot train ``task``'s model, or None where it can.

    Two members (seeds 0 and 1) take one population step on two examples: what BatchNorm's
    running statistics, dropout's random masks, buffers that differ between seeds or a
    module ``torch.vmap`` has no rule for break, they break here, in a fraction of a second
    rather than after a group's worth of work. The answer is the error's first line. A
    factory that returns no module (:func:`new_model`), a model that fails on two training
    examples or whose output does not fit the targets (:func:`check_output`) raises that
    ``ValueError`` instead, before the probe: no engine can train it.
    """
    check_model(task, model_name)
    members = [Member("sgd", {"lr": 1e-3}, seed) for seed in (0, 1)]
    config = TrainConfig(steps=1, batch_size=min(2, len(task.x_train)), eval_every=1,
                         model=model_name)
    try:
        train_population(task, config, members)
    except Exception as err:  # whatever breaks batching: train the members one by one
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def _blew_up(result: RunResult, config: TrainConfig) -> bool:
    """Whether the run's final train loss (of its iterates, not their average: an average
    of oscillating iterates can stay small while they blow up) is non-finite or more than
    ``divergence_factor`` times its first, or its final test loss is non-finite.

    "More than k times its first" is a rise of more than (k - 1) times the first's size
    above it, which is the same for a positive first loss and also holds for a task's loss
    that starts below zero (-100 may rise to 800 with k = 10, not to 900); a first loss of
    exactly 0 gives no size to measure a rise by, so such a run diverges only where a loss
    is not finite."""
    first = result.train_loss[0]
    last = result.train_loss[-1] if result.iterate_loss is None else result.iterate_loss
    if not (math.isfinite(last) and math.isfinite(result.test_loss[-1])):
        return True
    return first != 0 and last - first > (config.divergence_factor - 1) * abs(first)


@one_at_a_time
def train_sequential(task, config: TrainConfig, members: Sequence[Member],
                     progress: Callable[[int], None] | None = None,
                     observe: Callable[[int, int, list[Tensor]], None] | None = None,
                     isolate: bool = False) -> list[RunResult]:
    """Train ``members`` one at a time with an ordinary model and optimizer.

    A member whose training raises (its optimizer refuses its settings, the task's loss
    raises on what it computed, ...) raises here, or with ``isolate`` comes back with
    :attr:`RunResult.error` set while the others train on (what a sweep stores); an error
    in the model itself (:func:`check_output`, on the first member's model) is raised
    either way, since every member would meet it.

    ``observe(member_index, step, params)``, if given, sees each member's parameters at
    step 0 and after every step (to record a path through weight space, say; it must not
    change them). Freed memory is kept as in :func:`train_population`, so the two engines
    run under the same allocator. Its arguments are checked as :func:`train_population`'s
    (and ``observe`` as ``progress``), before anything trains."""
    members = _check_training(task, config, members, progress)
    check_callable("observe", observe, "with the member index, step and params")
    keep_freed_memory()
    results = []
    eval_sets = _EvalSets(task, config)
    for k, member in enumerate(members):
        model = _init_model(task, config.model, member.seed)
        if k == 0:
            check_output(task, model, config.model)
        result = RunResult(member, engine="sequential")
        done = [0]  # steps ticked, so a member that fails still moves the bar to its end

        def tick(n: int) -> None:
            done[0] += n
            if progress:
                progress(n)

        try:
            _train_member(task, config, model, member, result, eval_sets, tick,
                          None if observe is None else functools.partial(observe, k))
        except Exception as err:
            if not isolate:
                raise
            result.error = describe_error(err)
            if progress and config.steps > done[0]:
                progress(config.steps - done[0])
        results.append(result)
    return results


def _train_member(task, config: TrainConfig, model: nn.Module, member: Member,
                  result: RunResult, eval_sets: _EvalSets, tick: Callable[[int], None],
                  observe: Callable[[int, list[Tensor]], None] | None) -> None:
    """One member of :func:`train_sequential`, its curves written into ``result``. Only the
    parameters that require grad train (the optimizer and the gradient see them alone); a
    frozen one keeps its initial value, as in :func:`train_population`."""
    params = list(model.parameters())
    trained = [p for p in params if p.requires_grad]
    if not trained:
        raise ValueError(f"{_where(task, config.model)}the model has no trainable parameters "
                         "(every one has requires_grad=False)")
    opt = create(member.optimizer, trained, **member.hparams)
    needs_closure = resolve(member.optimizer).info.needs_closure
    base_lrs = [group["lr"] for group in opt.param_groups] if "lr" in opt.param_groups[0] \
        else None
    # the steps of batch_indices, an epoch at a time (not [steps, B] up front)
    batches = batch_stream(len(task.x_train), config.batch_size, member.seed)
    clock = _TrainingClock()

    def evaluate(step: int) -> None:
        elapsed = clock.pause()
        sets, full = eval_sets.at(step)
        model.eval()  # dropout off, BatchNorm on its running statistics (Task.evaluate's)
        try:
            # a schedule-free optimizer's parameters at its average x while evaluated
            with torch.no_grad(), _evaluation_switch([opt]):
                averaged = average.weights(params)
                weights = dict(zip(names, averaged))

                def forward(inputs: Tensor) -> Tensor:
                    return functional_call(model, weights, (inputs,))

                (x, y), (x_test, y_test) = sets
                train_loss, _ = _sequential_scores(task, forward, x, y, metric=False)
                test_loss, test_metric = _sequential_scores(task, forward, x_test, y_test)
                # the iterates' own, where an average was evaluated (as the population does)
                if averaged is not params and step == config.steps:
                    result.iterate_loss, _ = _sequential_scores(task, model, x, y, metric=False)
        finally:
            model.train()
        result.steps.append(step)
        result.train_loss.append(train_loss)
        result.test_loss.append(test_loss)
        result.test_metric.append(test_metric)
        result.wall_time.append(elapsed)
        result.full_eval.append(full)
        clock.resume()

    names = [name for name, _ in model.named_parameters()]
    average = _Average(config, params)
    evaluate(0)
    if observe is not None:
        observe(0, params)
    for step in range(config.steps):
        if base_lrs is not None and config.schedule != "constant":
            factor = schedule_factor(config, step)
            for group, lr in zip(opt.param_groups, base_lrs):
                group["lr"] = lr * factor
        idx = next(batches)

        def closure(idx=idx):
            loss = task.loss_fn(model(task.x_train[idx]), task.y_train[idx])
            grads = _gradients(loss, trained)
            for p, g in zip(trained, _clip(grads, config, batched=False)):
                p.grad = g
            return loss.detach()

        if needs_closure:
            loss = opt.step(closure)
        else:
            loss = closure()
            opt.step()
        result.diverged |= not bool(torch.isfinite(loss))
        if observe is not None:
            observe(step + 1, params)
        average.update(step, params)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            evaluate(step + 1)
        tick(1)
    result.diverged |= _blew_up(result, config)
