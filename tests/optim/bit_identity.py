"""How many parity runs are bit-identical to torch.optim (the contract is only 1e-10/1e-5).

    python -m tests.optim.bit_identity

Runs every case of every optimizer whose reference is a ``torch.optim`` class, 300 steps in
float64 and float32 exactly as ``test_parity_torch.py`` does, and prints how many end with
parameters ``torch.equal`` to torch's, then the worst relative difference of any that do not.
The README quotes its count.
"""

from __future__ import annotations

import torch

from optimlab.optim.catalog import TABLE
from tests.optim.test_parity_torch import STEPS, TORCH_CASES, runs


def main() -> int:
    total, same, differ = 0, 0, []
    classes = [info for info in TABLE if info.reference.startswith("torch.optim.")]
    for param in TORCH_CASES:
        case, reference = param.values
        for dtype in (torch.float64, torch.float32):
            ours, theirs = runs(case, reference, dtype)
            total += 1
            if all(torch.equal(a, b) for a, b in zip(ours, theirs)):
                same += 1
            else:
                differ.append((case.id, str(dtype), max(
                    float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, theirs))))
    print(f"{same}/{total} parity runs bit-identical to torch.optim, {len(classes)} classes, "
          f"{STEPS} steps, torch {torch.__version__}")
    for case_id, dtype, worst in differ:
        print(f"  {case_id} {dtype}: worst relative difference {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
