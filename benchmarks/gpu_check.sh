#!/usr/bin/env bash
# The prepared GPU run, for a session lent a GPU machine (the device tool), under ~8 minutes on an H200:
#   1. correctness: every stdlib optimizer on the Triton backend and on the inductor backend (Inductor's own
#      Triton kernels), compiled, on CUDA tensors, against the reference backend (the awkward shapes and dtypes
#      of tests/triton/test_triton_agreement.py and tests/inductor/test_inductor_agreement.py);
#   2. speed: GPT-2 small (and medium for adamw/muon), geo on the triton AND the inductor backend in the same
#      interleaved run, against torch.optim (AdamW fused and foreach, Muon), ratios baseline/geo.
# Everything is printed, and written under $OUT (at most 8 files: machine.txt, tests.txt, small.md,
# small.json, medium.md, medium.json, log.txt, summary.json).
#
# The machine's image has torch and triton but not lark, and reaches no registry: carry lark's wheel in .whl/
# (made here with
#   pip download --no-deps -d .whl "lark==1.3.1"
# ) and run, with carry [".whl"]:
#   bash benchmarks/gpu_check.sh            (QUICK=1: the correctness part only)
# Each part has its own time limit (PART_S, default 110 s), so one slow part cannot eat the others' time.
set -uo pipefail
OUT=${OUT:-/tmp/geo-gpu}
PART_S=${PART_S:-110}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps .whl/lark-*.whl 2>&1 | tail -1
# The repository root is the `geo` package (pyproject's package-dir): import it through a link named geo.
mkdir -p /tmp/geo-pkg && ln -sfn "$PWD" /tmp/geo-pkg/geo
export PYTHONPATH=/tmp/geo-pkg GEO_CACHE_DIR=/tmp/geo-cache TORCHINDUCTOR_CACHE_DIR=/tmp/geo-inductor-cache
start=$(date +%s)
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  python3 -c "import torch, triton, geo; print('torch', torch.__version__, 'triton', triton.__version__, 'geo', geo.__version__)"
  git log --oneline -1 2>/dev/null || true
} 2>&1 | tee "$OUT/machine.txt"

# 1. Correctness (compiled kernels on CUDA tensors against the reference backend).
: > "$OUT/tests.txt"
for t in tests/triton/test_triton_agreement.py tests/inductor/test_inductor_agreement.py; do
  echo "== $t (GEO_TEST_DEVICE=cuda, limit ${PART_S}s)" | tee -a "$OUT/tests.txt"
  GEO_TEST_DEVICE=cuda timeout "$PART_S" python3 -m pytest -q -p no:cacheprovider -p no:logging "$t" \
    --durations=5 2>&1 | grep -v '^\(DEBUG\|INFO\) ' | tee -a "$OUT/tests.txt" | tail -15
  echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/tests.txt"
done
if [[ ${QUICK:-0} != 1 ]]; then
  # 2. Speed, ratios measured in one run; both geo backends interleaved with torch.optim.
  : > "$OUT/log.txt"
  echo "== GPT-2 small: adamw lion sgd muon, backends triton,inductor" | tee -a "$OUT/log.txt"
  timeout $((PART_S + 40)) python3 benchmarks/bench_step.py --device cuda --backend triton,inductor --preset small \
    --specs adamw lion sgd muon --interleave --warmup 3 --steps 20 --no-peers --no-compiled-adamw --no-compile-time \
    --markdown --json "$OUT/small.json" 2>>"$OUT/log.txt" | tee "$OUT/small.md"
  echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/log.txt"
  echo "== GPT-2 medium: adamw muon, backends triton,inductor" | tee -a "$OUT/log.txt"
  timeout $((PART_S + 10)) python3 benchmarks/bench_step.py --device cuda --backend triton,inductor --preset medium \
    --specs adamw muon --interleave --warmup 3 --steps 10 --no-peers --no-compiled-adamw --no-compile-time \
    --markdown --json "$OUT/medium.json" 2>>"$OUT/log.txt" | tee "$OUT/medium.md"
  echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/log.txt"
  tail -40 "$OUT/log.txt"
fi
python3 - "$OUT" "$start" <<'EOF'
import json, os, re, sys, time
out, start = sys.argv[1], int(sys.argv[2])
summary = {"seconds": round(time.time() - start), "tests": {}, "comparisons": {}}
text = open(os.path.join(out, "tests.txt")).read()
for block in text.split("== ")[1:]:
    name = block.split()[0]
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", block))
    summary["tests"][name] = counts or block.strip().splitlines()[-1]
for part in ("small", "medium"):
    path = os.path.join(out, f"{part}.json")
    if os.path.exists(path):
        result = json.load(open(path))
        rows = {r["key"]: r for r in result["measurements"]}
        summary["comparisons"][part] = [
            {"geo": rows[c["geo"]]["label"], "baseline": rows[c["baseline"]]["label"], "ratio": round(c["ratio"], 3),
             "geo_gbps": round(rows[c["geo"]]["gbps"], 1), "peak_fraction": rows[c["geo"]].get("peak_fraction")}
            for c in result["comparisons"]]
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps(summary, indent=1))
EOF
