"""How many parity runs are bit-identical to torch.optim (the contract is only 1e-10/1e-5).

    python -m tests.optim.bit_identity [--default-path]

Runs every case of every optimizer whose reference is a ``torch.optim`` class, 300 steps in
float64 and float32 exactly as ``test_parity_torch.py`` does, and prints how many end with
parameters ``torch.equal`` to torch's, then the worst relative difference of any that do not.
The README quotes its count. The parity runs take the plain path (``fused=False``);
``--default-path`` runs optimlab's default instead (the generated C loop on a CPU, where the
rule fuses), which rounds a few operations differently from torch's kernels.
"""

from __future__ import annotations

import argparse
import warnings

import torch

from optimlab.optim.catalog import TABLE
from tests.optim.test_parity_torch import STEPS, TORCH_CASES, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default-path", action="store_true",
                        help="run optimlab's default path (fused on a CPU) instead of fused=False")
    args = parser.parse_args(argv)
    total, same, differ = 0, 0, []
    classes = [info for info in TABLE if info.reference.startswith("torch.optim.")]
    for param in TORCH_CASES:
        case, reference = param.values
        for dtype in (torch.float64, torch.float32):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # fused=None may say it took the plain path
                ours, theirs = runs(case, reference, dtype, args.default_path)
            total += 1
            if all(torch.equal(a, b) for a, b in zip(ours, theirs)):
                same += 1
            else:
                differ.append((case.id, str(dtype), max(
                    float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, theirs))))
    path = "the default path" if args.default_path else "the plain path"
    print(f"{same}/{total} parity runs bit-identical to torch.optim on {path}, "
          f"{len(classes)} classes, {STEPS} steps, torch {torch.__version__}")
    for case_id, dtype, worst in differ:
        print(f"  {case_id} {dtype}: worst relative difference {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
