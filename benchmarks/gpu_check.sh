#!/usr/bin/env bash
# The GPU checks of issue 11 in one command, for a machine with a CUDA device:
#   1. parity: optimlab's engine on CUDA against torch.optim (float64 within 1e-10, float32
#      within the error bound the CPU tests use);
#   2. operations dispatched per step (kernel launches): constant in the number of tensors;
#   3. ms per step, 200 tensors of 5,000 numbers and a 1,000-tensor model, against torch's
#      foreach and fused Adam (and SGD momentum, RMSprop, Adagrad).
# Usage: bash benchmarks/gpu_check.sh   (inside the project's environment, torch with CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PY" benchmarks/gpu_parity.py --device cuda
"$PY" benchmarks/dispatch_count.py --device cuda --optimizers adam,adamw,momentum,rmsprop,adagrad,lamb,lion
"$PY" benchmarks/multi_tensor_speed.py --device cuda --tensors 200 --numel 5000
"$PY" benchmarks/multi_tensor_speed.py --device cuda --tensors 1000 --numel 20000
