#!/usr/bin/env bash
# GPU acceptance in one go, under 8 minutes on one GPU: the `cuda` tests and ResNet-50 throughput, as one JSON
# document on stdout (progress on stderr).
#
#   bash benchmarks/gpu_check.sh                 # from the repository root; PYTHON=... picks the interpreter
#   GPU_CHECK_BUDGET_S=420 bash benchmarks/gpu_check.sh
#
# Every step runs in its own process under `timeout` with its own budget, and none may outlast the overall
# budget: a step that fails, hangs or crashes the CUDA context costs only itself. The JSON is printed whatever
# happened (steps that did not run say why). Measurements: benchmarks/gpu_bench.py.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BUDGET=${GPU_CHECK_BUDGET_S:-450}   # seconds for all steps; collecting the JSON takes a few more
OUT=$(mktemp -d "${TMPDIR:-/tmp}/clsctl-gpu-check.XXXXXX")
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
START=$SECONDS

step() {  # step NAME MAX_SECONDS COMMAND...
    local name=$1 max=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START)))
    if ((left < 20)); then
        echo "rc=-1 skipped=out_of_budget" >"$OUT/$name.status"
        echo "[gpu_check] $name: skipped (budget spent)" >&2
        return
    fi
    local limit=$((max < left ? max : left))
    local began=$SECONDS
    echo "[gpu_check] $name (up to ${limit}s) ..." >&2
    timeout -k 10 "$limit" "$@" >"$OUT/$name.jsonl" 2>"$OUT/$name.log"
    local rc=$?
    echo "rc=$rc seconds=$((SECONDS - began)) limit=$limit" >"$OUT/$name.status"
    echo "[gpu_check] $name: rc=$rc in $((SECONDS - began))s" >&2
}

# Quick, most informative first; the slow ones (tests with torch.compile, compiled training) later.
step train_synthetic 100 "$PY" benchmarks/gpu_bench.py synthetic --configs bf16_cl,bf16,fp32 --steps 20 --warmup 5
step timm 60 "$PY" benchmarks/gpu_bench.py timm --steps 20 --warmup 5
step infer 60 "$PY" benchmarks/gpu_bench.py infer --steps 30 --warmup 10
step jpeg_cpu 80 "$PY" benchmarks/gpu_bench.py jpeg --decode cpu
step pytest 170 "$PY" -m pytest -m cuda tests -q -p no:cacheprovider -o addopts="" -rfEs \
    --junitxml="$OUT/pytest.xml"
step train_synthetic_compile 120 "$PY" benchmarks/gpu_bench.py synthetic --configs bf16_cl_compile --steps 20 \
    --warmup 5
step jpeg_gpu 80 "$PY" benchmarks/gpu_bench.py jpeg --decode gpu

"$PY" benchmarks/gpu_bench.py collect "$OUT" || {
    # even without a working Python the caller gets JSON
    printf '{"error": "collect failed", "folder": "%s"}\n' "$OUT"
}
echo "[gpu_check] done in $((SECONDS - START))s; raw files in $OUT" >&2
