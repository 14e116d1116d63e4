#!/usr/bin/env bash
# The one command to run on a GPU node (H100/H200/B200) from the repository root, with no install:
#
#     OUT=/some/dir bash scripts/gpu_sweep.sh [minutes]      (default 5.5 minutes of wall time, all stages)
#
# Runs scripts/gpu_sweep.py: the GPU tests, the chain check's kernels and model steps, a model-driven kernel
# sweep and SGLang's Triton kernels (when its wheel is carried in .whl/), inside the budget, writing at most
# 8 files under $OUT as it goes (a run cut short still returns what it measured). Compare afterwards, on any
# machine: scripts/chain_check.py and scripts/collect_report.py (see docs/collectors.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_sweep_out}"
PYTHONPATH=. PYTHONUNBUFFERED=1 exec "${PYTHON:-python3}" scripts/gpu_sweep.py --out "$OUT" --minutes "${1:-5.5}"
