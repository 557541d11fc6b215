"""What a training step costs, measured so that the machine's load does not change it.

Wall time to a target is the wrong figure to rank optimizers by on a shared machine: two
identical sweeps once ranked Adam and then RMSprop first, and three optimizers that reached
a target in the same 132 steps were timed at 4.7 s, 24.1 s and 27.8 s. The training lab
therefore counts the way to a target in **steps** and **gradient evaluations** (deterministic
for a seed; SAM counts two per step, LBFGS as many as its inner iterations and line search
take: the mean number of closure calls over exactly the steps whose time is measured, stored
with the cost) and turns steps into seconds with each optimizer's **step cost**, measured
here:

- training steps of the task's model as training takes them: each step on the next
  mini-batch of shuffled epochs (:func:`~optimlab.bench.trainer.batch_stream` for seed 0,
  training's own draw; the whole set each step at full batch), forward, backward and optimizer step (the
  closure twice for SAM, as often as LBFGS calls it), timed in the CPU time of the
  measuring thread with torch on one thread, so other processes competing for the cores do
  not count. Stepping one fixed batch over and over would time something else: LBFGS
  converges on it, and its later steps take one closure call where a real mini-batch step
  takes ``max_iter`` (20), a cost 20 times too small;
- every optimizer of the sweep in turn, round after round (interleaved: a slow moment of
  the machine slows every optimizer's round, not one optimizer's), each timing long enough
  for the clock (a block of steps), the median over rounds. The ``spread`` of the rounds
  (interquartile range over the median) and their number say how far to trust it: the
  median's standard error is about 1.2533 x (IQR / 1.349) / sqrt(rounds), and profiles tie
  two costs within a 95% Student's t bound on their difference (about 2.2 of its standard
  errors at 15 rounds each: :func:`~optimlab.bench.analysis.costs_tie`,
  :func:`~optimlab.bench.analysis.cost_bound`; each run's summary stores ``cost_spread`` and
  ``cost_rounds``). Above :data:`SPREAD_LIMIT` the rounds do not time one thing, and the cost
  is flagged :attr:`StepCost.noisy` (in each run's summary too, ``cost_noisy``): profiles do
  not rank by it (:func:`~optimlab.bench.profile.build_profile` compares gradient
  evaluations there, with a note).

A step cost is a property of the machine and the model, not of one sweep, so it is
measured once and kept in a small cache (``step-costs`` in ``$OPTIMLAB_CACHE``, else in
an absolute ``$XDG_CACHE_HOME``'s ``optimlab`` or ``~/.cache/optimlab``: :func:`cache_dir`,
:func:`optimlab._env.cache_root`, beside the fused
kernels' cache; key: the machine, the torch version, a digest of the code a measured step
runs (:func:`code_fingerprint`), the task, model, batch size and the optimizer with its
hyperparameters other than the learning rate): every later sweep on this machine reuses it,
and the same sweep gets the same costs, ranking and profile however busy the machine is when it runs.
``recalibrate=True`` (``optimlab bench --recalibrate``) measures again. The cost each run
used is stored in its summary (``seconds_per_step``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .._files import write_atomically
from ..optim.base import check_int
from ..optim.kernels.build import cache_root
from ..optim.registry import available, create, resolve
from .store.environment import cpu_model

__all__ = ["StepCost", "step_costs", "cache_dir", "code_fingerprint", "ROUNDS", "SPREAD_LIMIT"]

#: rounds of the interleaved measurement (each optimizer is timed once per round)
ROUNDS = 15
#: the CPU time one timing aims at: a block of steps at least this long
BLOCK_SECONDS = 0.004
#: the largest ``spread`` (interquartile range of the rounds over their median) of a step cost
#: that is ranked by: a quiet machine measures 0.02-0.1, a thread competing for the core up to
#: about 0.3; LBFGS stepping one fixed batch (converged: one closure call in some steps, 20
#: in others) measured 70. Beyond it the cost is :attr:`StepCost.noisy`: rounds that spread
#: that far do not scatter around one cost (a bimodal count of closure calls, a machine busy
#: in bursts), so neither their median nor the standard error that ties costs
#: (:func:`~.analysis.costs_tie`, which assumes they do) can be trusted.
SPREAD_LIMIT = 0.5
#: of the cache entries' format; a change to the code they time changes their key by itself
#: (:func:`code_fingerprint`)
_VERSION = 4
#: ``src/optimlab``: the package whose code :func:`code_fingerprint` reads
_PACKAGE = Path(__file__).resolve().parents[1]
#: the training lab's files a measured step runs, besides the whole optimizer library
_LAB_FILES = ("bench/tasks.py", "bench/trainer.py", "bench/cost.py")


@dataclass(frozen=True)
class StepCost:
    """One optimizer's training step on one model: ``seconds`` per step (median over
    rounds of single-thread CPU time), ``spread`` (the interquartile range of the rounds,
    as a share of the median), ``gradients`` evaluated per step (the mean number of closure
    calls over exactly the steps timed: 1.0 for most, 2.0 for SAM, LBFGS's own count), the
    ``rounds`` measured, and whether it came from the cache."""

    optimizer: str
    seconds: float
    spread: float
    gradients: float
    rounds: int
    cached: bool = False

    @property
    def noisy(self) -> bool:
        """Whether the rounds spread too far (beyond :data:`SPREAD_LIMIT`) to rank by it."""
        return not self.spread <= SPREAD_LIMIT


def cache_dir() -> Path:
    """Where measured step costs are kept (see the module's docstring): ``step-costs`` in the
    folder the fused kernels' cache uses (:func:`~optimlab.optim.kernels.build.cache_root`,
    which falls back to a temporary folder where there is no home folder)."""
    return cache_root() / "step-costs"


@functools.cache
def code_fingerprint(package: Path = _PACKAGE) -> str:
    """A digest of the code a measured step runs: every file of the optimizer library
    (``optim/``: the rules, the engine, the kernels' generator) and the training lab's task
    models, trainer and this module, by path and content.

    It keys the step-cost cache in place of the package's version, which does not move
    when the code does: a change to the engine or an optimizer measures again by itself
    (when ``fused=None`` began fusing small models, every cached cost of a small model was
    stale, its optimizer step timed on the plain path, 3-6x slower than the kernel, and only
    a hand-raised cache version noticed). A task from the user's own module is keyed by its
    name alone.
    """
    files = sorted(p for p in (package / "optim").rglob("*") if p.is_file()
                   and "__pycache__" not in p.parts and p.suffix != ".pyc")
    files += [package / name for name in _LAB_FILES if (package / name).is_file()]
    digest = hashlib.sha256()
    try:
        for path in files:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    except OSError:  # an unreadable install: one key for all its code (measure with --recalibrate)
        return "unreadable"
    return digest.hexdigest()[:20]


def _shapes(task, model: str | None) -> list:
    """What a step's cost depends on besides the names: the model's parameter shapes and
    dtypes and one example's (an edited task module keeps its name and changes these)."""
    with torch.random.fork_rng(devices=[]):  # the caller's random state left as it was
        built = task.make_model(model)
    return [[list(p.shape), str(p.dtype)] for p in built.parameters()] + [
        [list(task.x_train.shape[1:]), str(task.x_train.dtype)]]


def _key(task, model: str | None, batch_size: int | None, optimizer: str,
         hparams: Mapping, shapes: list | None = None) -> str:
    fixed = {k: v for k, v in sorted(hparams.items()) if k != "lr"}
    text = json.dumps({"v": _VERSION, "machine": platform.machine(), "cpu": cpu_model(),
                       "cores": os.cpu_count(), "torch": torch.__version__,
                       "code": code_fingerprint(),
                       "task": task.name, "model": model, "batch": batch_size,
                       "shapes": shapes if shapes is not None else _shapes(task, model),
                       "optimizer": _identity(optimizer), "hparams": fixed},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _identity(optimizer: str):
    """What names ``optimizer`` in a cost's key: a built-in's registry name (its code is in
    :func:`code_fingerprint`); for one registered in this process (``optimlab.register``),
    its class's path and a hash of its source and its rule's, so that another class under
    the same name, or the class edited, is measured again instead of read from the cache."""
    entry = resolve(optimizer)
    if any(e.name == entry.name for e in available(user=False)):
        return entry.name
    cls = entry.cls
    texts = []
    for part in (cls, getattr(cls, "init", None), getattr(cls, "update", None)):
        try:
            texts.append(inspect.getsource(part))
        except (OSError, TypeError):  # defined in an interactive session, or a builtin
            texts.append(repr(part))
    source = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    return {"name": entry.name, "class": f"{cls.__module__}.{cls.__qualname__}",
            "source": source}


def _load(key: str) -> StepCost | None:
    try:
        data = json.loads((cache_dir() / f"step-cost-{key}.json").read_text(encoding="utf-8"))
        cost = StepCost(**{**data, "cached": True})
    except (OSError, ValueError, TypeError):
        return None  # absent, unreadable or damaged: measure again
    ok = isinstance(cost.seconds, float) and cost.seconds > 0 and \
        isinstance(cost.gradients, (int, float)) and not isinstance(cost.gradients, bool) \
        and cost.gradients > 0 and isinstance(cost.spread, (int, float)) \
        and isinstance(cost.rounds, int) and not isinstance(cost.rounds, bool) and cost.rounds > 0
    return cost if ok else None


def _save(key: str, cost: StepCost) -> None:
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / f"step-cost-{key}.json",
                         json.dumps({**asdict(cost), "cached": False}),
                         prefix=f".step-cost-{key}.")
    except OSError:
        pass  # an unwritable cache only means measuring again next time


class _Stepper:
    """One optimizer training one copy of the model as training does: each step on the next
    mini-batch of shuffled epochs (:func:`~optimlab.bench.trainer.batch_stream` for seed 0),
    so that each step timed is a real step."""

    def __init__(self, task, model: str | None, batch_size: int | None, optimizer: str,
                 hparams: Mapping) -> None:
        from .trainer import _init_model, batch_stream

        with torch.random.fork_rng(devices=[]):  # _init_model seeds torch's generator
            self.model = _init_model(task, model, 0)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.x_train, self.y_train = task.x_train, task.y_train
        self.batches = batch_stream(len(task.x_train), batch_size, 0)
        self.loss_fn = task.loss_fn
        self.opt = create(optimizer, self.params, **hparams)
        self.closure_needed = resolve(optimizer).info.needs_closure
        self.calls = 0  # closure calls: the gradient evaluations

    def step(self) -> None:
        idx = next(self.batches)

        def closure():
            self.calls += 1
            with torch.enable_grad():
                loss = self.loss_fn(self.model(self.x_train[idx]), self.y_train[idx])
                # None for a parameter the forward never uses (its grad stays None)
                grads = torch.autograd.grad(loss, self.params, allow_unused=True)
            for p, g in zip(self.params, grads):
                p.grad = g
            return loss.detach()

        if self.closure_needed:
            self.opt.step(closure)
        else:
            closure()
            self.opt.step()

    def timed(self, block: int) -> tuple[float, int]:
        """Seconds per step over ``block`` steps, and the closure calls they made."""
        calls = self.calls
        start = time.thread_time()
        for _ in range(block):
            self.step()
        return (time.thread_time() - start) / block, self.calls - calls


def _measure(task, model, batch_size, entries: Sequence[tuple[str, Mapping]],
             rounds: int) -> dict[str, StepCost]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # all the work on this thread: its CPU time is the cost
    try:
        steppers, blocks = {}, {}
        for name, hp in entries:  # warm up (state, kernels), size the blocks
            try:
                stepper = _Stepper(task, model, batch_size, name, hp)
                stepper.timed(2)
            except Exception:  # noqa: BLE001 (Muon on a bias, SparseAdam on dense gradients)
                continue  # this optimizer cannot step the model: no cost, the others keep theirs
            steppers[name] = stepper
            blocks[name] = max(1, min(1000, round(BLOCK_SECONDS / max(stepper.timed(1)[0],
                                                                      1e-7))))
        times: dict[str, list[float]] = {name: [] for name in steppers}
        calls = dict.fromkeys(steppers, 0)  # in exactly the steps timed
        for _ in range(rounds):
            for name, stepper in steppers.items():
                seconds, made = stepper.timed(blocks[name])
                times[name].append(seconds)
                calls[name] += made
    finally:
        torch.set_num_threads(threads)
    out = {}
    for name, values in times.items():
        median = statistics.median(values)
        # "inclusive": the sample's own quartiles (numpy's), which the IQR / 1.349 estimate of
        # sigma assumes; the default "exclusive" reaches past the data (1 and 2: 0.75, 2.25)
        q = statistics.quantiles(values, n=4, method="inclusive") if len(values) >= 2 \
            else [median] * 3
        out[name] = StepCost(name, float(median), float((q[2] - q[0]) / median),
                             calls[name] / (rounds * blocks[name]), rounds)
    return out


def step_costs(task, model: str | None, batch_size: int | None,
               optimizers: Mapping[str, Mapping], recalibrate: bool = False,
               rounds: int = ROUNDS) -> dict[str, StepCost]:
    """The step cost of each optimizer (name -> hyperparameters) on ``task``'s ``model`` at
    ``batch_size``: from the cache, or measured (all missing ones together, interleaved)
    and cached. ``recalibrate`` measures every one again. An optimizer that cannot step
    the model (Muon on a bias, SparseAdam on dense gradients) is left out of the result;
    the others keep their costs. A cached cost of fewer than ``rounds`` rounds is measured
    again (its spread's standard error would be wider than asked)."""
    if not optimizers:
        return {}
    check_int("rounds", rounds, 1)
    if batch_size is not None:  # else every optimizer fails to step and is left out
        check_int("batch_size", batch_size, 1)
    rounds = int(rounds)  # NumPy's as Python's: the cache is JSON
    shapes = _shapes(task, model)
    keys = {name: _key(task, model, batch_size, name, hp, shapes)
            for name, hp in optimizers.items()}
    out = {} if recalibrate else {n: c for n, k in keys.items()
                                  if (c := _load(k)) is not None and c.rounds >= rounds}
    missing = [(n, optimizers[n]) for n in optimizers if n not in out]
    if missing:
        from .trainer import _LAB_LOCK

        # one calibration at a time (trainer.one_at_a_time): it seeds the process-wide
        # generator and sets the process's thread count to 1 while it measures
        with _LAB_LOCK, torch.random.fork_rng(devices=[]):  # the caller's random state kept
            torch.manual_seed(0)  # (an optimizer drawing random numbers: the same each time)
            measured = _measure(task, model, batch_size, missing, rounds)
        for name, cost in measured.items():
            _save(keys[name], cost)
        out.update(measured)
    return {name: out[name] for name in optimizers if name in out}
