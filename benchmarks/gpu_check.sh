#!/usr/bin/env bash
# The prepared GPU run, for a session lent a GPU machine (the device tool): the Triton backend on real kernels,
# then the speed benchmarks, everything written under $OUT. The machine's image has torch and triton but not
# lark, and reaches no registry: carry lark's wheel in .whl/ (made here with
#   pip download --no-deps -d .whl "lark==1.3.1"
# ) and run, with carry [".whl"]:
#   bash benchmarks/gpu_check.sh            (about 6–8 minutes on an H200; QUICK=1 for the correctness part only)
set -uo pipefail
OUT=${OUT:-/tmp/geo-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps .whl/lark-*.whl 2>&1 | tail -1
# The repository root is the `geo` package (pyproject's package-dir): import it through a link named geo.
mkdir -p /tmp/geo-pkg && ln -sfn "$PWD" /tmp/geo-pkg/geo
export PYTHONPATH=/tmp/geo-pkg GEO_CACHE_DIR=/tmp/geo-cache
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, triton, geo; print('torch', torch.__version__, 'triton', triton.__version__, 'geo', geo.__version__)"
} | tee "$OUT/machine.txt"

# 1. Correctness: every stdlib optimizer, compiled Triton kernels against the reference backend on CUDA tensors
#    (the awkward shapes of tests/triton/test_triton_agreement.py), and the golden kernels compiled for this GPU.
GEO_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/triton/test_triton_agreement.py \
  2>&1 | tee "$OUT/agreement.txt" | tail -3
[[ ${QUICK:-0} == 1 ]] && exit 0

# 2. Speed, as ratios measured in one run (benchmarks/RESULTS.md takes these tables).
python3 benchmarks/bench_step.py --device cuda --backend triton --preset small --steps 20 --markdown \
  --json "$OUT/small.json" 2>"$OUT/small.log" | tee "$OUT/small.md"
python3 benchmarks/bench_step.py --device cuda --backend triton --preset medium --steps 20 --specs adamw muon \
  --markdown --json "$OUT/medium.json" 2>"$OUT/medium.log" | tee "$OUT/medium.md"
