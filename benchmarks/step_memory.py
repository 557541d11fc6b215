"""Peak memory of an optimizer step on one large parameter (an embedding table, say).

Each case runs in a fresh process, one torch thread, glibc told to give freed blocks back
(``MALLOC_MMAP_THRESHOLD_``), so the process's resident memory follows its live tensors: it
reads the resident set before the first step, its high-water mark over the first step, and
over the second step above where the first left it (Linux's ``/proc/self/status``; the mark
is reset by writing 5 to ``/proc/self/clear_refs``). The state's bytes are those of every
storage the optimizer's state holds.

    python benchmarks/step_memory.py                   # 25M numbers (95 MiB of float32)
    python benchmarks/step_memory.py --numel 1000000
    python benchmarks/step_memory.py --plain           # the plain path, 25M numbers in 10 tensors

Cases: optimlab Adam with float32 state (the fused path), bfloat16 and int8 moments
(``state_precision``), SGD with momentum and int8 moments, and torch's Adam (its default
for-loop path) for comparison. With ``--plain``: the multi-tensor plain path
(``fused=False``, the default off the CPU) of ASGD, NAdam, RMSprop and Adam on ``--numel``
numbers split into ``--tensors`` tensors, beside torch's foreach path: the scratch a step
writes above its state (``optimlab.optim.engine.BATCH_BYTES`` bounds it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASES = [
    ("optimlab Adam, float32 state", "optimlab", "Adam", {"lr": 1e-3}),
    ("optimlab Adam, bfloat16 state", "optimlab", "Adam", {"lr": 1e-3, "state_precision": "bfloat16"}),
    ("optimlab Adam, int8 state", "optimlab", "Adam", {"lr": 1e-3, "state_precision": "int8"}),
    ("optimlab SGD momentum, int8 state", "optimlab", "SGD",
     {"lr": 1e-2, "momentum": 0.9, "state_precision": "int8"}),
    ("torch Adam (for-loop)", "torch", "Adam", {"lr": 1e-3, "foreach": False}),
]
PLAIN_CASES = [(f"{who} {name}, {path}", who, name, kwargs)
               for name in ("ASGD", "NAdam", "RMSprop", "Adam")
               for who, path, kwargs in (("optimlab", "plain path", {"fused": False}),
                                         ("torch", "foreach", {"foreach": True}))]
MIB = 1 << 20


def _status() -> dict[str, float]:
    """VmRSS and VmHWM of this process, MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return out


def _reset_mark() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _case(index: int, numel: int, tensors: int = 1, plain: bool = False) -> dict:
    """One case, in this (fresh) process: MiB of state, first-step peak over the start,
    second-step peak over where the first step left it."""
    import torch

    torch.set_num_threads(1)
    _, module, name, kwargs = (PLAIN_CASES if plain else CASES)[index]
    if module == "torch":
        cls = getattr(torch.optim, name)
    else:
        import optimlab

        cls = getattr(optimlab, name)
    params = [torch.randn(size, requires_grad=True)
              for size in [numel // tensors + (i < numel % tensors) for i in range(tensors)]]
    for p in params:
        p.grad = torch.randn(p.shape)
    opt = cls(params, **kwargs)
    start = _status()
    _reset_mark()
    opt.step()
    first = _status()
    _reset_mark()
    opt.step()
    second = _status()
    storages = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes()
                for state in opt.state.values() for v in state.values()
                if isinstance(v, torch.Tensor)}
    return {"state": sum(storages.values()) / MIB, "first": first["VmHWM"] - start["VmRSS"],
            "second": second["VmHWM"] - first["VmRSS"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numel", type=int, default=25_000_000,
                        help="numbers in the one parameter, or with --plain in all the "
                             "tensors (default 25,000,000)")
    parser.add_argument("--plain", action="store_true",
                        help="the plain path's cases (ASGD, NAdam, RMSprop, Adam) against "
                             "torch's foreach, on --tensors tensors")
    parser.add_argument("--tensors", type=int, default=10,
                        help="with --plain: the tensors --numel is split into (default 10)")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # a child's one case
    args = parser.parse_args(argv)
    if args.numel < 1:
        parser.error("--numel takes a whole number >= 1")
    if args.plain and not 1 <= args.tensors <= args.numel:
        parser.error("--tensors takes a whole number from 1 to --numel")
    tensors = args.tensors if args.plain else 1
    if args.case is not None:
        print(json.dumps(_case(args.case, args.numel, tensors, args.plain)))
        return 0
    if not os.path.exists("/proc/self/clear_refs"):
        print("needs Linux's /proc/self/status and clear_refs; nothing measured")
        return 0
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
    what = f"{tensors} parameters of" if tensors > 1 else "one parameter of"
    print(f"{what} {args.numel:,} float32 numbers ({args.numel * 4 / MIB:.0f} MiB), "
          "one thread; MiB")
    print("| case | state | first step, peak over its start | second step, peak over its start |")
    print("|---|---|---|---|")
    for index, (label, *_) in enumerate(PLAIN_CASES if args.plain else CASES):
        run = subprocess.run([sys.executable, __file__, "--numel", str(args.numel), "--case",
                              str(index), "--tensors", str(args.tensors)]
                             + (["--plain"] if args.plain else []),
                             capture_output=True, text=True, env=env, check=False)
        if run.returncode:
            print(f"| {label} | failed: {run.stderr.strip().splitlines()[-1:]} | | |")
            continue
        got = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"| {label} | {got['state']:.0f} | {got['first']:.0f} | {got['second']:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
