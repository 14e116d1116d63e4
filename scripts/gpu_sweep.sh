#!/usr/bin/env bash
# The one command to run on a GPU node (H100/H200/B200) from the repository root, with no install:
#
#     OUT=/some/dir bash scripts/gpu_sweep.sh [minutes]     (default 15 minutes of sweep)
#
# It records the environment, runs the GPU tests (bf16 8192^3 throughput, fp8 scaled_mm, Triton paged
# decode vs the torch reference, graph-capture fallback), runs the torch sweep (small grid first, then
# the full grid for the remaining minutes; both resume), summarises it against the imported
# AIConfigurator tables when they are present, and packs the database into $OUT/db.tar.gz.
# Everything it writes is under $OUT (at most 8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_sweep_out}"
MINUTES="${1:-15}"
PY="${PYTHON:-python3}"
export PYTHONPATH=.
mkdir -p "$OUT"
DB="$OUT/db"

{
  date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv 2>&1
  $PY - <<'PY'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("torch", "triton", "pynvml", "pyarrow", "pandas", "typer", "rich", "yaml", "scipy", "ray"):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "ok"))
    except ImportError as exc:
        print(m, "MISSING", exc)
import torch
print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

$PY -m pytest -q -p no:cacheprovider -m gpu tests/collectors 2>&1 | tee "$OUT/gpu_tests.txt" | tail -15

OPS=gemm,attention_prefill,attention_decode,mla_prefill,mla_decode,moe,elementwise
$PY -m servecast.cli collect run --db "$DB" --ops "$OPS" --grid small --quiet --budget-minutes "$MINUTES" 2>&1 | tee "$OUT/sweep.txt"
$PY -m servecast.cli collect run --db "$DB" --ops "$OPS" --grid full --quiet --budget-minutes "$MINUTES" 2>&1 | tee -a "$OUT/sweep.txt"

AIC=/tmp/aic/pkg/aiconfigurator_core
COMPARE=()
if [ -d "$AIC" ]; then
  $PY -m servecast.cli db import-aic "$AIC" --out "$OUT/aicdb" --system h200_sxm --backend trtllm > /dev/null 2>&1 \
    && COMPARE=(--compare "$OUT/aicdb" --compare-system h200_sxm)
fi
$PY scripts/collect_report.py --db "$DB" "${COMPARE[@]}" 2>&1 | tee "$OUT/report.md"
cat "$DB"/failures/*.jsonl 2>/dev/null | head -200 > "$OUT/failures_head.jsonl"
tar czf "$OUT/db.tar.gz" -C "$OUT" db && rm -rf "$OUT/aicdb"
echo "results in $OUT: env.txt gpu_tests.txt sweep.txt report.md failures_head.jsonl db.tar.gz"
