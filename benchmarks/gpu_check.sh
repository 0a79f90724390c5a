#!/usr/bin/env bash
# The GPU check, in one command: the CUDA tests, the program corpus and the examples' loops
# on CUDA, and the GPU benchmarks (the cost of weak NumPy constants included), on the first GPU.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; prints a summary at the end
#
# Installs diffkit in editable mode (offline, no dependencies) when its entry points are
# missing: the backends are found through them. Exits non-zero if any step failed, but
# always runs every step so one run gives every figure.
set -uo pipefail
cd "$(dirname "$0")/.."

python - <<'PY' || exit 1
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA GPU (torch %s, CUDA build %s)"
             % (torch.__version__, torch.version.cuda))
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__,
      "| CUDA", torch.version.cuda)
PY

if ! python -c "import importlib.metadata as m, sys; sys.exit(not any(
        e.name == 'torch' for e in m.entry_points(group='diffkit')))"; then
    echo "gpu_check: installing diffkit (editable, offline)"
    pip install --no-deps --no-build-isolation -q -e . || exit 1
fi

status=0
step() {  # step NAME COMMAND...: run, record failure, keep going
    local name=$1; shift
    echo; echo "== $name: $*"
    if "$@"; then echo "== $name: ok"; else echo "== $name: FAILED"; status=1; fi
}

step "cuda tests" python -m pytest -m cuda -q -rs -p no:cacheprovider tests/
step "torch-cpu tests" python -m pytest -q -p no:cacheprovider \
    tests/test_torch_backend.py tests/test_torch_bridge.py
step "program corpus on cuda" python -m pytest -q -rs -p no:cacheprovider -k torch-cuda \
    tests/test_program_corpus.py tests/test_weak_constants.py tests/test_default_backend.py \
    tests/test_indexing.py
for ex in heat_inverse burgers_viscosity lorenz96; do  # checkpointed loops, state on the GPU
    step "$ex on cuda" python examples/$ex.py --backend torch --device cuda --steps 2000 \
        --budget 64MiB --iters 3 --no-plot
done
step "weak constants on cuda" python benchmarks/bench_weak_constants.py --device cuda
step "gpu benchmark" python benchmarks/bench_torch.py --device cuda
step "cpu benchmark" python benchmarks/bench_torch.py --device cpu

echo
if [ $status -eq 0 ]; then echo "gpu_check: all steps passed"; else echo "gpu_check: some step FAILED"; fi
exit $status
