#!/usr/bin/env bash
# The GPU checks of issue 11 in one command, for a machine with a CUDA device:
#   1. parity: optimlab's engine on CUDA against torch.optim (float64 within 1e-10, float32
#      within the error bound the CPU tests use);
#   2. operations dispatched per step (kernel launches): constant in the number of tensors;
#   3. ms per step, 200 tensors of 5,000 numbers and a 1,000-tensor model, against torch's
#      foreach and fused Adam (and SGD momentum, RMSprop, Adagrad).
# Usage: bash benchmarks/gpu_check.sh   (inside the project's environment, torch with CUDA)
# Each check runs even when one before it failed (a script exits 1 on a missed target); the
# command exits 1 at the end if any did, naming them. Only the CUDA precheck stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
set +e
rc=0
failed=()
check() {
    local label=$1
    shift
    "$PY" "$@" || { rc=1; failed+=("$label"); }
}
check "1. parity (gpu_parity.py)" benchmarks/gpu_parity.py --device cuda
check "2. dispatches per step (dispatch_count.py)" benchmarks/dispatch_count.py --device cuda \
    --optimizers adam,adamw,momentum,rmsprop,adagrad,lamb,lion
check "3. ms per step, 200 x 5,000 (multi_tensor_speed.py)" benchmarks/multi_tensor_speed.py \
    --device cuda --tensors 200 --numel 5000
check "3. ms per step, 1,000 x 20,000 (multi_tensor_speed.py)" benchmarks/multi_tensor_speed.py \
    --device cuda --tensors 1000 --numel 20000
echo
if [ "$rc" -ne 0 ]; then
    echo "FAILED checks (${#failed[@]}):"
    printf '  %s\n' "${failed[@]}"
else
    echo "all GPU checks passed"
fi
exit $rc
