"""Step throughput: milliseconds per ``optimizer.step()`` against the memory-bandwidth floor.

An optimizer step is memory-bound: each step streams the parameters, the gradients and the
state through the memory system and does a few flops per element. Its floor is therefore
the bytes it must move divided by the machine's memory bandwidth. For each model size this
script, in one run:

1. builds a model-shaped parameter list: transformer blocks of width ``d`` (qkv ``(3d, d)`` +
   ``(3d,)``, output projection ``(d, d)`` + ``(d,)``, MLP ``(4d, d)`` + ``(4d,)`` and
   ``(d, 4d)`` + ``(d,)``, two layer norms ``(d,)`` x 2 each: 12 tensors, ``12d^2 + 13d``
   parameters), stacked until the nominal size (``d = 128``: 5 blocks, ~1M parameters;
   ``d = 512``: 3 blocks, ~9.5M), with fixed random gradients;
2. measures the copy bandwidth ``dst.copy_(src)`` on float32 buffers as large as the model
   (``2 x 4 x N`` bytes a copy), as one more candidate in each optimizer's round-robin, so
   that the floor and the steps it divides see the same machine. It also measures, the same
   way, an in-place stream ``a.add_(b)`` (read a, b, write a: ``3 x 4 x N`` bytes), the
   access pattern of an optimizer step, and prints both. They differ: a copy writes to a
   buffer it has not read, which most CPUs first read into the cache (write-allocate), so
   it really moves ~12 bytes per element where 8 are counted, and the copy bandwidth comes
   out ~1.5x lower than what an in-place step can reach: the copy floor is lenient and a
   good fused step may beat it (ratio < 1). ``--bandwidth inplace`` divides by the
   in-place figure instead (a stricter floor); the default follows issue 6 (the copy).
   At ~1M parameters the buffers (8 MB for the copy, 12 to 40 MB for a step) may sit in
   the last-level cache: that floor is a cache-bandwidth one;
3. for each optimizer, its floor: the bytes it must move per float32 parameter (stated
   and justified in the table, counted from the state its ``init()`` keeps: every tensor
   it reads, every tensor it writes back) x ``N`` / that bandwidth;
4. times, interleaved round-robin so that a noisy shared machine hurts every candidate
   alike, the step of: optimlab fused (``fused=True``) and plain (``fused=False``),
   ``torch.optim`` fused and foreach (where torch has the algorithm and the flag), and
   ``pytorch-optimizer`` for LAMB, Lion and AdaBelief (``pip install -r
   benchmarks/requirements.txt``; its cells say n/a without it). The first step of each
   is timed on its own (it allocates the state and, for the fused path, compiles the
   kernel); the figure is the median (``--stat min``: the best) of the timed samples
   after a warm-up, each sample a run of consecutive steps lasting ~20 ms. Gradients are
   never zeroed: every step sees the same gradients. On a busy machine the script says so
   (load average, the spread of the copy bandwidth between rounds, figures below their
   floor): rerun on an idle one before trusting a ratio.

It prints one table per size (ms per step and its ratio to the floor), the acceptance
checks of issue 6 (every fused step within 1.3x of its floor at 10M parameters; optimlab
Adam not slower than ``torch.optim.Adam(fused=True)``), and writes every figure to a CSV
(one row per size, optimizer and implementation).

    pip install -r benchmarks/requirements.txt   # optional: the pytorch-optimizer column
    python benchmarks/step_throughput.py [--sizes 1e6,1e7] [--repeats 10] [--stat median]
        [--bandwidth copy] [--optimizers adam,lamb] [--threads 2]
        [--csv benchmarks/results/step_throughput.csv]

The default run (both sizes, all 16 optimizers) takes a few minutes on a 2-core machine,
plus whatever the fused path spends compiling its kernels on first use.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.metadata
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

import optimlab
from optimlab._table import text_table
from optimlab.bench.store.environment import cpu_description

try:
    import pytorch_optimizer
except ImportError:  # a benchmark-only dependency: its cells say n/a without it
    pytorch_optimizer = None

PTO_MISSING = "n/a (pip install -r benchmarks/requirements.txt)"
DEFAULT_CSV = Path(__file__).resolve().parent / "results" / "step_throughput.csv"
#: a timed sample runs enough consecutive steps to last about this long
SAMPLE_SECONDS = 0.02
ACCEPT_RATIO = 1.3
#: copy bandwidths further apart than this between rounds mean a busy machine
NOISY_SPREAD = 1.5


@dataclass(frozen=True)
class Spec:
    """One optimizer: its optimlab registry name and hyperparameters, the bytes one step
    must move per float32 parameter (and why), and its counterparts elsewhere."""

    name: str
    hp: dict
    bytes_per_param: int
    why: str
    torch_cls: str | None = None
    torch_hp: dict = field(default_factory=dict)
    torch_fused: bool = False
    pto_cls: str | None = None
    pto_hp: dict = field(default_factory=dict)


# Bytes per float32 parameter = 4 x (tensors read + tensors written), from each algorithm's
# init() state (src/optimlab/optim/*.py): p the parameter, g its gradient. Scalars (step
# counters, NAdam's mu_product, schedule-free's group weights) are negligible.
#
# pytorch-optimizer (4.1) is configured to run the same algorithm as optimlab:
# * Lion: identical with these arguments (lerp-form momentum, sign update; no weight decay).
# * AdaBelief: rectify=False, ams_bound=False, eps=1e-16 as optimlab: the same update
#   (eps inside s_t and in the denominator, bias corrections on both moments; its
#   weight_decouple=True matches optimlab's decoupled decay, and the decay is 0 here).
# * Lamb: pre_norm=False (no global gradient-norm pass), rectify=False, adam=False,
#   grad_averaging=True, eps=1e-6. The same memory traffic and two passes, but its rule
#   differs in details that cost nothing here: no bias correction of v, the step divided by
#   (1 - beta1^t) *after* the trust ratio (optimlab's trust ratio cancels any scale of u),
#   ||w|| clamped at 10 and eps added to ||u|| in the ratio.
SPECS = [
    Spec("sgd", {"lr": 0.01}, 12, "read p,g; write p",
         "SGD", {"lr": 0.01}, torch_fused=True),
    Spec("momentum", {"lr": 0.01}, 20, "read p,g,buf; write p,buf",
         "SGD", {"lr": 0.01, "momentum": 0.9}, torch_fused=True),
    Spec("nag", {"lr": 0.01}, 20, "read p,g,buf; write p,buf",
         "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}, torch_fused=True),
    Spec("adagrad", {"lr": 0.01}, 20, "read p,g,sum; write p,sum",
         "Adagrad", {"lr": 0.01}, torch_fused=True),
    Spec("adadelta", {"lr": 1.0}, 28, "read p,g,square_avg,acc_delta; write p,square_avg,acc_delta",
         "Adadelta", {"lr": 1.0}),
    Spec("rmsprop", {"lr": 0.01}, 20, "read p,g,square_avg; write p,square_avg",
         "RMSprop", {"lr": 0.01}),
    Spec("adam", {"lr": 1e-3}, 28, "read p,g,m,v; write p,m,v",
         "Adam", {"lr": 1e-3}, torch_fused=True),
    Spec("adamw", {"lr": 1e-3, "weight_decay": 1e-2}, 28, "read p,g,m,v; write p,m,v",
         "AdamW", {"lr": 1e-3, "weight_decay": 1e-2}, torch_fused=True),
    Spec("amsgrad", {"lr": 1e-3}, 36, "read p,g,m,v,v_max; write p,m,v,v_max",
         "Adam", {"lr": 1e-3, "amsgrad": True}, torch_fused=True),
    Spec("adamax", {"lr": 2e-3}, 28, "read p,g,m,u; write p,m,u",
         "Adamax", {"lr": 2e-3}),
    Spec("nadam", {"lr": 2e-3}, 28, "read p,g,m,v; write p,m,v",
         "NAdam", {"lr": 2e-3}),
    Spec("radam", {"lr": 1e-3}, 28, "read p,g,m,v; write p,m,v",
         "RAdam", {"lr": 1e-3}),
    Spec("lion", {"lr": 1e-4}, 20, "read p,g,m; write p,m",
         pto_cls="Lion", pto_hp={"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0}),
    Spec("adabelief", {"lr": 1e-3}, 28, "read p,g,m,s; write p,m,s",
         pto_cls="AdaBelief", pto_hp={"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-16,
                                      "weight_decay": 0.0, "rectify": False, "ams_bound": False}),
    Spec("schedulefreeadamw", {"lr": 2.5e-3}, 28, "read y,g,z,v; write y,z,v (p holds y)"),
    Spec("lamb", {"lr": 1e-3}, 40,
         "two passes, the trust ratio needs ||p|| and ||u|| of the whole tensor first: "
         "1) read p,g,m,v; write m,v (24) 2) read p,m,v; write p (16)",
         pto_cls="Lamb", pto_hp={"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6,
                                 "weight_decay": 0.0, "pre_norm": False, "rectify": False,
                                 "adam": False, "grad_averaging": True}),
]
IMPLS = ["optimlab fused", "optimlab plain", "torch fused", "torch foreach", "pytorch-optimizer"]


# -- the model -------------------------------------------------------------------------------
def block_shapes(d: int) -> list[tuple[int, ...]]:
    """The parameter shapes of one transformer block of width ``d`` (12 tensors)."""
    return [(3 * d, d), (3 * d,),          # fused q, k, v projection
            (d, d), (d,),                  # output projection
            (4 * d, d), (4 * d,),          # MLP up
            (d, 4 * d), (d,),              # MLP down
            (d,), (d,), (d,), (d,)]        # two layer norms (weight, bias)


def model_shapes(size: float) -> tuple[list[tuple[int, ...]], int, int]:
    """Blocks of the widest power-of-two ``d`` (>= 64) that still gives about 3 or more
    blocks, stacked to the nearest count: ``(shapes, d, blocks)``."""
    d = 64
    while 12 * (2 * d) ** 2 * 3 <= size:
        d *= 2
    per_block = sum(math.prod(s) for s in block_shapes(d))
    blocks = max(1, round(size / per_block))
    return block_shapes(d) * blocks, d, blocks


# -- timing ----------------------------------------------------------------------------------
def sample_times(fns: list[Callable[[], object]], repeats: int, inners: list[int]) -> list[list[float]]:
    """Seconds per call of each function, ``repeats`` samples each, measured round-robin
    (alternating the order, so no candidate always follows the same one)."""
    samples: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for r in range(repeats):
        for i in (order if r % 2 == 0 else order[::-1]):
            fn, inner = fns[i], inners[i]
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[i].append((time.perf_counter() - start) / inner)
    return samples


def inner_count(fn: Callable[[], object]) -> int:
    """How many consecutive calls make a sample of about SAMPLE_SECONDS (after 2 warm-ups)."""
    start = time.perf_counter()
    for _ in range(2):
        fn()
    per_call = (time.perf_counter() - start) / 2
    return max(1, min(200, round(SAMPLE_SECONDS / max(per_call, 1e-7))))


def copy_step(n: int) -> Callable[[], object]:
    """One ``dst.copy_(src)`` of ``n`` float32 values: ``2 x 4 x n`` bytes counted."""
    src = torch.randn(n)
    dst = torch.empty(n)
    return lambda: dst.copy_(src)


def inplace_step(n: int) -> Callable[[], object]:
    """One ``a.add_(b)`` of ``n`` float32 values: ``3 x 4 x n`` bytes (read a, b; write a)."""
    a = torch.randn(n)
    b = torch.randn(n)
    return lambda: a.add_(b, alpha=1e-6)


#: the bandwidth references: (what is timed, its bytes per element, how to make it)
REFERENCES = {
    "copy": ("dst.copy_(src)", 8, copy_step),
    "inplace": ("a.add_(b)", 12, inplace_step),
}


# -- candidates ------------------------------------------------------------------------------
@dataclass
class Candidate:
    impl: str
    step: Callable[[], object] | None = None
    note: str = ""           # why there is no figure ("—", "n/a ...")
    first_s: float = math.nan
    ms: float = math.nan


def fresh_params(base: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """A private copy of the parameters with a private copy of the gradients (some
    implementations write into ``p.grad``)."""
    params = []
    for b, g in zip(base, grads):
        p = b.clone().requires_grad_(True)
        p.grad = g.clone()
        params.append(p)
    return params


def build(spec: Spec, impl: str, base, grads) -> Candidate:
    """The candidate ``impl`` of ``spec``: its step function, or a note saying why not."""
    if impl == "optimlab fused":
        factory = lambda ps: optimlab.create(spec.name, ps, fused=True, **spec.hp)  # noqa: E731
    elif impl == "optimlab plain":
        def factory(ps):
            try:
                return optimlab.create(spec.name, ps, fused=False, **spec.hp)
            except TypeError:  # an optimlab without the fused flag: its only path is the plain one
                return optimlab.create(spec.name, ps, **spec.hp)
    elif impl in ("torch fused", "torch foreach"):
        fused = impl == "torch fused"
        if spec.torch_cls is None or (fused and not spec.torch_fused):
            return Candidate(impl, note="—")
        cls = getattr(torch.optim, spec.torch_cls)
        flag = {"fused": True} if fused else {"foreach": True}
        factory = lambda ps: cls(ps, **spec.torch_hp, **flag)  # noqa: E731
    else:
        if spec.pto_cls is None:
            return Candidate(impl, note="—")
        if pytorch_optimizer is None:
            return Candidate(impl, note=PTO_MISSING)
        cls = getattr(pytorch_optimizer, spec.pto_cls)
        factory = lambda ps: cls(ps, **spec.pto_hp)  # noqa: E731
    try:
        opt = factory(fresh_params(base, grads))
    except Exception as error:  # noqa: BLE001 (any failure makes the cell n/a, with the reason)
        _log_na(spec, impl, error)
        return Candidate(impl, note="n/a")
    return Candidate(impl, step=opt.step)


_REPORTED: set[tuple[str, str]] = set()


def _log_na(spec: Spec, impl: str, error: Exception) -> None:
    """Say (on stderr, once per optimizer and implementation) why a cell is n/a."""
    if (spec.name, impl) not in _REPORTED:
        _REPORTED.add((spec.name, impl))
        reason = (str(error).splitlines() or [""])[0][:100]
        print(f"\n    {spec.name} / {impl}: n/a ({type(error).__name__}: {reason})", file=sys.stderr)


def measure(spec: Spec, n: int, base, grads, repeats: int,
            stat: Callable) -> tuple[list[Candidate], dict[str, float]]:
    """Build every candidate of ``spec``, time its first step, then time the candidates
    round-robin together with the bandwidth references (a copy and an in-place stream of
    the model's size): ``(candidates, {reference: bytes per second})``, the bandwidths
    measured under the same conditions as the steps."""
    cands = [build(spec, impl, base, grads) for impl in IMPLS]
    live = []
    for c in cands:
        if c.step is None:
            continue
        start = time.perf_counter()
        try:
            c.step()
        except Exception as error:  # noqa: BLE001 (any failure makes the cell n/a, with the reason)
            _log_na(spec, c.impl, error)
            c.step, c.note = None, "n/a"
            continue
        c.first_s = time.perf_counter() - start
        live.append(c)
    refs = list(REFERENCES.values())
    fns = [make(n) for _, _, make in refs] + [c.step for c in live]
    samples = sample_times(fns, repeats, [inner_count(fn) for fn in fns])
    for c, times in zip(live, samples[len(refs):]):
        c.ms = 1e3 * stat(times)
        c.step = None  # drop the optimizer (and its state) before the next one
    bandwidths = {name: nbytes * n / stat(times)
                  for (name, (_, nbytes, _)), times in zip(REFERENCES.items(), samples)}
    return cands, bandwidths


# -- reporting -------------------------------------------------------------------------------
def cell(c: Candidate, floor_ms: float) -> str:
    if math.isnan(c.ms):
        return c.note or "n/a"
    return f"{c.ms:.3g} ({c.ms / floor_ms:.2f}x)"


def fmt_ms(ms: float) -> str:
    return "n/a" if math.isnan(ms) else f"{ms:.3g}"


def run_size(size: float, specs: list[Spec], repeats: int, stat: Callable, reference: str,
             rows: list[dict]) -> dict:
    shapes, d, blocks = model_shapes(size)
    n = sum(math.prod(s) for s in shapes)
    gen = torch.Generator().manual_seed(0)
    base = [0.02 * torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    print(f"\n== {size:.0e} nominal: {n:,} float32 parameters in {len(shapes)} tensors "
          f"({blocks} transformer blocks, d_model {d}) ==", flush=True)

    load_before = os.getloadavg()[0]
    results = {}
    for spec in specs:
        started = time.perf_counter()
        print(f"  {spec.name} ...", end="", file=sys.stderr, flush=True)
        results[spec.name] = measure(spec, n, base, grads, repeats, stat)
        gc.collect()
        print(f" {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    for name, (what, nbytes, _) in REFERENCES.items():
        bws = [bw[name] for _, bw in results.values()]
        used = " (the floor's)" if name == reference else ""
        print(f"{name} bandwidth{used}: {what}, {nbytes} B/element counted, measured in each optimizer's "
              f"round: median {statistics.median(bws) / 1e9:.2f} GB/s, range {min(bws) / 1e9:.2f}-"
              f"{max(bws) / 1e9:.2f} GB/s")
    bandwidths = [bw[reference] for _, bw in results.values()]
    load = max(load_before, os.getloadavg()[0])
    if max(bandwidths) > NOISY_SPREAD * min(bandwidths) or load > (os.cpu_count() or 1) + 0.5:
        print(f"WARNING: a busy machine (load average {load:.1f} on {os.cpu_count()} CPUs; the "
              f"{reference} bandwidth varied {max(bandwidths) / min(bandwidths):.1f}x between rounds): "
              "these figures are unreliable, rerun on an idle machine"
              + ("" if stat is min else " (or try --stat min)"))
    print(f"floor ms = bytes/param x {n:,} / the {reference} bandwidth of that optimizer's round "
          f"(torch threads {torch.get_num_threads()}); cells: ms per step (its ratio to the floor); "
          "—: no such implementation")

    table = []
    summary = {"n": n, "size": size, "reference": reference, "missing": [], "below": [], "adam": None,
               "over": {name: [] for name in REFERENCES}}
    for spec in specs:
        cands, bandwidths = results[spec.name]
        bandwidth = bandwidths[reference]
        floor_ms = 1e3 * spec.bytes_per_param * n / bandwidth
        by_impl = {c.impl: c for c in cands}
        fused = by_impl["optimlab fused"]
        table.append([spec.name, f"{spec.bytes_per_param}: {spec.why}", f"{bandwidth / 1e9:.1f}",
                      fmt_ms(floor_ms)]
                     + [cell(c, floor_ms) for c in cands]
                     + ["n/a" if math.isnan(fused.first_s) else f"{fused.first_s:.2f}"])
        rows.append(dict(size=n, optimizer=spec.name, implementation="floor", ms=floor_ms,
                         floor_ms=floor_ms, ratio=1.0, bytes_per_param=spec.bytes_per_param))
        for c in cands:
            if c.ms < floor_ms:
                summary["below"].append(f"{spec.name}/{c.impl}")
            if not math.isnan(c.ms):
                rows.append(dict(size=n, optimizer=spec.name, implementation=c.impl, ms=c.ms,
                                 floor_ms=floor_ms, ratio=c.ms / floor_ms,
                                 bytes_per_param=spec.bytes_per_param))
        if math.isnan(fused.ms):
            summary["missing"].append(spec.name)
        for name, bw in bandwidths.items():  # the acceptance under either floor
            ratio = fused.ms / (1e3 * spec.bytes_per_param * n / bw)
            if ratio > ACCEPT_RATIO:
                summary["over"][name].append(f"{spec.name} {ratio:.2f}x")
        if spec.name == "adam":
            summary["adam"] = (fused.ms, by_impl["torch fused"].ms)
    headers = ["optimizer", "bytes/param: moved per step", f"{reference} GB/s", "floor ms"] + IMPLS + [
        "first fused step s"]
    widths = [None, 32, None, None, None, None, None, None,
              30 if pytorch_optimizer is None else None, None]
    print(text_table(headers, table, widths))
    if summary["below"]:
        why = ("the copy undercounts its write-allocate traffic (see --bandwidth inplace) or "
               if reference == "copy" else "")
        print(f"below the floor (< 1.00x): {why}that round's reference was disturbed: "
              f"{', '.join(summary['below'])}")
    return summary


def acceptance(summaries: list[dict], n_specs: int) -> None:
    print("\nacceptance (issue 6):")
    target = [s for s in summaries if abs(math.log10(s["size"]) - 7) < 0.5]
    if not target:
        print(f"  fused within {ACCEPT_RATIO}x of floor at 10M: not measured (add 1e7 to --sizes)")
    for s in target:
        missing = f"; no fused figure: {', '.join(s['missing'])}" if s["missing"] else ""
        # the floor of the table first, then the other reference's for comparison
        for name in sorted(REFERENCES, key=lambda name: name != s["reference"]):
            over = s["over"][name]
            ok = n_specs - len(over) - len(s["missing"])
            label = (f"fused within {ACCEPT_RATIO}x of floor at 10M ({s['n']:,} parameters)"
                     if name == s["reference"] else f"  the same against the {name} floor")
            print(f"  {label}: {ok}/{n_specs} optimizers (over: {', '.join(over) or 'none'}{missing})")
    for s in summaries:
        if s["adam"] is None:
            continue
        ours, theirs = s["adam"]
        verdict = ("n/a" if math.isnan(ours) or math.isnan(theirs)
                   else "not slower: OK" if ours <= theirs else f"slower by {ours / theirs:.2f}x")
        print(f"  optimlab Adam fused vs torch Adam fused at {s['n']:,} parameters: "
              f"{fmt_ms(ours)} ms vs {fmt_ms(theirs)} ms ({verdict})")


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # benchmarks/results/ is git-ignored
    fields = ["size", "optimizer", "implementation", "ms", "floor_ms", "ratio", "bytes_per_param"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7",
                        help="nominal parameter counts, comma-separated (default: 1e6,1e7)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed samples per implementation (default: 10)")
    parser.add_argument("--optimizers", default=None,
                        help="comma-separated subset of: " + ",".join(s.name for s in SPECS))
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="how the samples of a step (and of the copy) are summarized: the median "
                             "(default), or the best sample, which resists a busy machine better")
    parser.add_argument("--bandwidth", choices=list(REFERENCES), default="copy",
                        help="the floor's bandwidth: the copy dst.copy_(src) at 8 B/element (default, "
                             "as issue 6 asks) or the in-place stream a.add_(b) at 12 B/element, "
                             "which has no write-allocate traffic uncounted (a stricter floor)")
    parser.add_argument("--cold-cache", action="store_true",
                        help="build the fused kernels in a fresh temporary OPTIMLAB_CACHE, so that "
                             "'first fused step s' includes compiling them (default: the usual cache, "
                             "where an earlier run may have left them)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's default)")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV,
                        help="where to write the figures (default: benchmarks/results/step_throughput.csv)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    print(f"cpu: {cpu_description()}", flush=True)

    specs = SPECS
    if args.optimizers:
        wanted = [name.strip() for name in args.optimizers.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {s.name for s in SPECS})
        if unknown:
            parser.error(f"unknown optimizers {unknown}; choose from {[s.name for s in SPECS]}")
        specs = [s for s in SPECS if s.name in wanted]
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cold = tempfile.TemporaryDirectory(prefix="optimlab-cache-") if args.cold_cache else None
    if cold is not None:
        os.environ["OPTIMLAB_CACHE"] = cold.name  # read by optimlab.optim.kernels on each build
    sizes = [float(x) for x in args.sizes.split(",") if x.strip()]

    version = importlib.metadata.version("pytorch-optimizer") if pytorch_optimizer else "missing"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"pytorch-optimizer {version}; the {args.stat} of {args.repeats} samples each, interleaved")
    stat = statistics.median if args.stat == "median" else min
    print("first fused step s: the first optimlab fused step (state allocation, and the kernel build "
          + ("in a fresh cache, --cold-cache)" if args.cold_cache else
             "unless an earlier run cached it: --cold-cache to include it)"))
    rows: list[dict] = []
    summaries = []
    with torch.no_grad():
        for size in sizes:
            summaries.append(run_size(size, specs, args.repeats, stat, args.bandwidth, rows))
    if cold is not None:
        cold.cleanup()
    acceptance(summaries, len(specs))
    write_csv(args.csv, rows)
    print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
