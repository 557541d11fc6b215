"""Sparse steps (``nn.Embedding(sparse=True)``): optimlab against ``torch.optim``, ms per step.

A step with a sparse gradient should cost what the gradient stores, not the table's size:
``torch.optim.SparseAdam`` and ``Adagrad`` add into the touched rows in place. For tables of
``--rows`` rows (dim ``--dim``) and batches touching ``--touched`` random rows, this script
times one ``step()`` of each optimizer, interleaved round-robin in one run so that a noisy
machine hurts both alike, and prints the median over ``--repeats`` samples with the spread
(min..max) and optimlab's ratio to torch. The ratio should stay near 1 as the table grows
(issue 15: it was 3.1x at 10,000 rows and 40x at 100,000 before the engine added sparse
changes in place).

    python benchmarks/sparse_step.py [--rows 10000,100000,1000000] [--dim 64]
        [--touched 256] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch

import optimlab
from optimlab.bench.store.environment import cpu_description
from optimlab.cli import render_table

CASES = [("SparseAdam", {"lr": 1e-3}), ("Adagrad", {"lr": 1e-2})]


def _setup(cls, rows: int, dim: int, hp: dict):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(rows, dim, sparse=True)
    return emb, cls(emb.parameters(), **hp)


def _sample(emb, opt, idx) -> float:
    opt.zero_grad()
    emb(idx).pow(2).sum().backward()
    start = time.perf_counter()
    opt.step()
    return time.perf_counter() - start


def measure(rows: int, dim: int, touched: int, repeats: int) -> list[list[str]]:
    """One table row per optimizer: medians, spreads and the ratio, for one table size."""
    out = []
    for name, hp in CASES:
        runs = {who: _setup(cls, rows, dim, hp) for who, cls in
                (("optimlab", getattr(optimlab, name)), ("torch", getattr(torch.optim, name)))}
        times: dict[str, list[float]] = {who: [] for who in runs}
        gen = torch.Generator().manual_seed(1)
        for i in range(repeats + 3):
            idx = torch.randint(0, rows, (touched,), generator=gen)
            for who, (emb, opt) in runs.items():
                t = _sample(emb, opt, idx)
                if i >= 3:  # warm-up
                    times[who].append(t * 1e3)
        med = {who: statistics.median(ts) for who, ts in times.items()}
        out.append([name, f"{rows:,}",
                    *(f"{med[w]:.3f} ({min(times[w]):.3f}..{max(times[w]):.3f})"
                      for w in ("optimlab", "torch")),
                    f"{med['optimlab'] / med['torch']:.2f}x"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000,100000,1000000",
                        help="table sizes to time, comma-separated")
    parser.add_argument("--dim", type=int, default=64, help="embedding width")
    parser.add_argument("--touched", type=int, default=256, help="rows a batch looks up")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per optimizer")
    args = parser.parse_args(argv)
    print(f"cpu: {cpu_description()}", flush=True)
    # torch.optim.Adagrad's sparse path warns that it skips its own invariant checks
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    try:
        sizes = [int(r) for r in args.rows.split(",")]
    except ValueError:
        parser.error(f"--rows must be whole numbers separated by commas, got {args.rows!r}")
    if any(r < 1 for r in sizes) or args.dim < 1 or args.touched < 1 or args.repeats < 1:
        parser.error("--rows, --dim, --touched and --repeats must be positive")
    rows = []
    for size in sizes:
        rows += measure(size, args.dim, args.touched, args.repeats)
    print(f"sparse step, dim {args.dim}, {args.touched} rows looked up per batch, "
          f"ms per step: median (min..max) of {args.repeats}, torch {torch.__version__}")
    print(render_table(["optimizer", "rows", "optimlab", "torch", "optimlab / torch"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
