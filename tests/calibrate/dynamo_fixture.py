"""A tiny hand-written Dynamo repository (the slurm_jobs layout of its SGLang examples) and an InferenceX
repository whose multi-node launch scripts clone it, both real git histories in a test's tmp dir.

Dynamo commit P (2025-12-10, the one the SGLang launch script pins): submit_disagg.sh, a worker script whose
prefill role runs 4 GPUs with attention DP (max-running-requests 4000 over dp 4) and whose decode role runs 8
GPUs with cuda-graph-max-bs 64, and the vllm profiler (warm-up sweep at 1 and 8 plus the sweep's own
concurrencies, 5 x w prompts each; then 5 x c measured). Commit L (2025-12-20, later on main): the worker
script's decode memory fraction changes (0.8 -> 0.7), which a run pinned to P must not see.
InferenceX (one commit, 2025-12-01): a dynamo-sglang point (1 prefill worker on 1 node, 1 decode worker on 2
nodes, conc 8 and 16) and a dynamo-trt point whose settings name its engine limits and whose launch script
checks out a release branch the Dynamo clone does not hold. Invented values throughout; nothing here is
copied from either real repository.
"""
from __future__ import annotations

from pathlib import Path

from tests.calibrate.inferencex_fixture import HEADER, WORKFLOW, _git

JOBS = "examples/backends/sglang/slurm_jobs"
SUBMIT = """#!/bin/bash
GPUS_PER_NODE=4
PREFILL_NODES=$1
PREFILL_WORKERS=$2
DECODE_NODES=$3
DECODE_WORKERS=$4
CONCURRENCIES=$8
GPU_TYPE=${10}
SCRIPT_VARIANT=${11}
profiler_args="type=vllm; concurrencies=${CONCURRENCIES}"
python3 submit_job_script.py --gpu-type $GPU_TYPE --script-variant $SCRIPT_VARIANT
"""
WORKER = """#!/bin/bash
mode=$1
if [ "$mode" = "prefill" ]; then
    command_suffix=""
    if [[ "${USE_INIT_LOCATIONS,,}" == "true" ]]; then command_suffix="--init-expert-location x.json"; fi
    PYTHONUNBUFFERED=1 \\
    python3 -m dynamo.sglang \\
        --disaggregation-mode prefill \\
        --tp-size "$TOTAL_GPUS" \\
        --dp-size "$TOTAL_GPUS" \\
        --enable-dp-attention \\
        --max-running-requests 4000 \\
        --chunked-prefill-size 16384 \\
        --disable-cuda-graph \\
        --mem-fraction-static 0.85 ${command_suffix}
elif [ "$mode" = "decode" ]; then
    python3 -m dynamo.sglang \\
        --disaggregation-mode decode \\
        --tp-size "$TOTAL_GPUS" \\
        --max-running-requests 256 \\
        --cuda-graph-bs 1 2 4 8 16 32 64 \\
        --cuda-graph-max-bs 64 \\
        --mem-fraction-static MEM
fi
"""
BENCH = """#!/bin/bash
concurrency_list=$7
IFS='x' read -r -a chosen_concurrencies <<< "$concurrency_list"
warmup_concurrency_list=(1 8)
for c in "${chosen_concurrencies[@]}"; do
    warmup_concurrency_list+=("$c")
done
for warmup_concurrency in "${warmup_concurrency_list[@]}"
do
    num_prompts=$((warmup_concurrency * 5))
    python3 -u benchmark_serving.py --num-prompts "$num_prompts" --random-range-ratio 0.8 \\
        --max-concurrency "$warmup_concurrency"
done
for concurrency in "${chosen_concurrencies[@]}"
do
    num_prompts=$((concurrency * 5))
    python3 -u benchmark_serving.py --num-prompts "$num_prompts" --random-range-ratio 0.8 \\
        --max-concurrency "$concurrency" --save-result --result-dir /logs
done
"""
MASTER = """
dsr1-fp8-gb200-dynamo-sglang:
  image: lmsysorg/sglang:v0.5
  model: /models/dsr1
  model-prefix: dsr1
  runner: gb200
  precision: fp8
  framework: dynamo-sglang
  multinode: true
  disagg: true
  seq-len-configs:
  - isl: 1024
    osl: 1024
    search-space:
    - conc-list: [8, 16]
      prefill: { num-worker: 1, tp: 1, ep: 1, dp-attn: true,
                 additional-settings: ["PREFILL_NODES=1", "N_ADDITIONAL_FRONTENDS=1", "SCRIPT_MODE=low"] }
      decode: { num-worker: 1, tp: 1, ep: 1, dp-attn: false, additional-settings: ["DECODE_NODES=2"] }
dsr1-fp4-gb200-dynamo-trt:
  image: nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.5
  model: /models/dsr1-fp4
  model-prefix: dsr1
  runner: gb200
  precision: fp4
  framework: dynamo-trt
  multinode: true
  disagg: true
  seq-len-configs:
  - isl: 1024
    osl: 1024
    search-space:
    - spec-decoding: mtp
      conc-list: [4, 8]
      prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: false,
                 additional-settings: ["PREFILL_MAX_NUM_TOKENS=4608", "PREFILL_MAX_BATCH_SIZE=4"] }
      decode: { num-worker: 2, tp: 8, ep: 8, dp-attn: false,
                additional-settings: ["DECODE_MAX_NUM_TOKENS=128", "DECODE_MAX_BATCH_SIZE=32",
                                      "DECODE_GPU_MEM_FRACTION=0.9", "DECODE_MTP_SIZE=3"] }
"""
RUNNER = """#!/usr/bin/bash
if [[ $FRAMEWORK == "dynamo-sglang" ]]; then
    export SGL_SLURM_JOBS_PATH="dynamo/examples/backends/sglang/slurm_jobs"
fi
bash benchmarks/"${EXP_NAME%%_*}_${PRECISION}_gb200_${FRAMEWORK}_slurm.sh"
"""
SGL_LAUNCH = """#!/bin/bash
git clone https://github.com/ai-dynamo/dynamo.git
cd dynamo && git checkout PINNED && cd ..
cd "$SGL_SLURM_JOBS_PATH"
export GPU_TYPE="gb200-fp8"
bash ./submit_disagg.sh $PREFILL_NODES \\
    $PREFILL_NUM_WORKERS \\
    $DECODE_NODES \\
    $DECODE_NUM_WORKERS \\
    $N_ADDITIONAL_FRONTENDS \\
    $ISL $OSL "${CONC_LIST// /x}" inf \\
    $GPU_TYPE \\
    $SCRIPT_MODE
"""
TRT_LAUNCH = """#!/usr/bin/bash
git clone https://github.com/ai-dynamo/dynamo.git
cd dynamo
git checkout release/0.5.1-rc0.20251105
sbatch benchmark_disagg.slurm ${PREFILL_NUM_WORKERS} ${PREFILL_MAX_BATCH_SIZE} ${DECODE_MAX_BATCH_SIZE}
"""


def _commit(root: Path, files: dict[str, str], date: str, msg: str) -> str:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", msg, date=date)
    return _git(root, "rev-parse", "HEAD")


def make_dynamo(root: Path, other_history: bool = False) -> tuple[Path, list[str]]:
    """The two-commit Dynamo repository; returns (root, [P, L]). `other_history`: the same files after an
    earlier commit, so P and L get other ids (a clone that lacks the pinned commit)."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    if other_history:
        _commit(root, {"README.md": "fork\n"}, "2025-11-01T00:00:00Z", "fork")
    worker = f"{JOBS}/scripts/gb200-fp8/disagg/low.sh"
    p = _commit(root, {"lib/runtime/Cargo.toml": "[package]\n", f"{JOBS}/submit_disagg.sh": SUBMIT,
                       worker: WORKER.replace("MEM", "0.8"), f"{JOBS}/scripts/vllm/bench.sh": BENCH},
                "2025-12-10T00:00:00Z", "sglang slurm jobs")
    later = _commit(root, {worker: WORKER.replace("MEM", "0.7")}, "2025-12-20T00:00:00Z", "tune decode memory")
    return root, [p, later]


def make_inferencex(root: Path, pinned: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    _commit(root, {".github/configs/nvidia-master.yaml": MASTER, ".github/workflows/benchmark-tmpl.yml": WORKFLOW,
                   ".github/workflows/benchmark-multinode-tmpl.yml": WORKFLOW, "runners/launch_gb200-nv.sh": RUNNER,
                   "benchmarks/dsr1_fp8_gb200_dynamo-sglang_slurm.sh": SGL_LAUNCH.replace("PINNED", pinned),
                   "benchmarks/dsr1_fp4_gb200_dynamo-trt_slurm.sh": TRT_LAUNCH},
            "2025-12-01T00:00:00Z", "dynamo-era configs")
    return root


def runs_csv(path: Path, whole_deployment: bool = False) -> Path:
    """An SGLang row at concurrency 16 and a TRT-LLM row at concurrency 8, both measured 2025-12-25 (after
    Dynamo's later commit); `whole_deployment`: a third row, the TRT-LLM point written as the early tables
    wrote some (both tp columns hold the deployment's 20 GPUs, ep 1)."""
    def row(rid: str, backend: str, precision: str, conc: int, image: str, ptp: int, pep: int, dtp: int,
            measured: str = "100,10") -> str:
        src = (f"source_file=2025-12-30.csv; model=DeepSeek-R1; silicon_concurrency={conc}; "
               f"measured=2025-12-25T00:00:00Z; image={image}")
        return (f"{rid},{src},{backend},1.0,deepseek-ai/DeepSeek-R1,gb200,{precision},disagg,1024,1024,fp8,fp8,"
                f",,,,,,,,{ptp},1,1,{ptp // pep},{pep},,,{dtp},1,1,{dtp // pep},{pep},{measured}")
    rows = [row("sgl", "sglang", "fp8", 16, "lmsysorg/sglang:v0.5", 1, 1, 1),
            row("trt", "trtllm", "fp4", 8, "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.5", 4, 4, 8)]
    if whole_deployment:
        # its own measurement: not a twin of "trt"
        rows.append(row("trt-whole", "trtllm", "fp4", 8, "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.5",
                        20, 1, 20, measured="120,12"))
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path
