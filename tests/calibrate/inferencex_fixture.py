"""A tiny hand-written repository in the InferenceX layout, built as a real git history in a test's tmp dir.

Commit 1 (2026-01-10): a master config with an aggregated TRT-LLM entry swept without and with MTP
(conc 4-16 and 4-8: conc 4 and 8 are listed both ways) and a multi-node disaggregated entry (1 prefill
+ 2 decode workers), two launch scripts, the client library and the two workflow templates.
Commit 2 (2026-02-10): the disaggregated entry moves to 3 decode workers and adds concurrency 96.
Both commits also list an 8k/1k disaggregated point at concurrency 32 with and without MTP (each with its
own worker counts and srt-slurm recipe), and a runner script that clones srt-slurm at a branch
(tests/calibrate/srtslurm_fixture.py holds the recipes).
Invented values throughout; nothing here is copied from the real repository.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

MASTER = """
dsr1-fp8-h200-trt:
  image: nvcr.io/nvidia/tensorrt-llm/release:1.0
  model: deepseek-ai/DeepSeek-R1-0528
  model-prefix: dsr1
  runner: h200
  precision: fp8
  framework: trt
  multinode: false
  seq-len-configs:
  - isl: 1024
    osl: 1024
    search-space:
    - { tp: 8, ep: 8, conc-start: 4, conc-end: 16 }
    - { tp: 8, ep: 8, spec-decoding: mtp, conc-start: 4, conc-end: 8 }
dsr1-fp8-h200-dynamo-trt:
  image: nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8
  model: deepseek-ai/DeepSeek-R1-0528
  model-prefix: dsr1
  runner: h200-multinode
  precision: fp8
  framework: dynamo-trt
  multinode: true
  disagg: true
  seq-len-configs:
  - isl: 1024
    osl: 1024
    search-space:
    - conc-list: [64CONC2]
      prefill:
        num-worker: 1
        tp: 8
        ep: 8
        dp-attn: true
        additional-settings:
        - "CONFIG_FILE=recipes/h200/ctx1_genN_dep8_batch32_eplb0_mtp0.yaml"
      decode:
        num-worker: DECODE_WORKERS
        tp: 8
        ep: 8
        dp-attn: true
  - isl: 8192
    osl: 1024
    search-space:
    - conc-list: [32]
      prefill: { num-worker: 2, tp: 8, ep: 8, dp-attn: true,
                 additional-settings: ["CONFIG_FILE=recipes/h200/8k1k/stp.yaml"] }
      decode: { num-worker: 1, tp: 8, ep: 8, dp-attn: true }
    - conc-list: [32]
      spec-decoding: mtp
      prefill: { num-worker: 1, tp: 8, ep: 8, dp-attn: true,
                 additional-settings: ["CONFIG_FILE=recipes/h200/8k1k/mtp.yaml"] }
      decode: { num-worker: 4, tp: 8, ep: 8, dp-attn: true }
"""
TRT = """#!/usr/bin/env bash
source "$(dirname "$0")/../benchmark_lib.sh"
# a comment with --max_batch_size=1
export TRTLLM_ENABLE_PDL=1
if [[ $CONC -ge 16 ]]; then
  MAX_BATCH=$CONC
elif [[ "$DP_ATTENTION" == "true" ]]; then
  MAX_BATCH=$(( CONC < 4 ? CONC : CONC / 4 ))
else
  MAX_BATCH=8
fi
cat > cfg.yml << EOF
kv_cache_config:
  dtype: fp8
  free_gpu_memory_fraction: 0.85
cuda_graph_config:
  max_batch_size: $MAX_BATCH
EOF
trtllm-serve $MODEL --tp_size=$TP --ep_size=$EP_SIZE \\
    --max_batch_size=$MAX_BATCH --max_num_tokens 8192 > log 2>&1 &
run_benchmark_serving --model "$MODEL" \\
    --random-range-ratio "$RANDOM_RANGE_RATIO" \\
    --num-prompts "$((CONC * 10))" --max-concurrency "$CONC"
"""
MTP = TRT.replace("  max_batch_size: $MAX_BATCH\nEOF", "  max_batch_size: $MAX_BATCH\n"
                  "speculative_config:\n  decoding_type: MTP\n  num_nextn_predict_layers: 3\nEOF")
LIB = """run_benchmark_serving() {
    python3 utils/bench_serving/benchmark_serving.py "$@" \\
        --num-warmups "$((2 * max_concurrency))" \\
        --save-result
}
"""
RUNNER = """#!/usr/bin/env bash
SRT_REPO_DIR="srt-slurm"
git clone https://github.com/ishandhanani/srt-slurm.git "$SRT_REPO_DIR"
cd "$SRT_REPO_DIR"
git checkout sa-submission-q1-2026
srtctl apply -f "$CONFIG_FILE"
"""
WORKFLOW = "name: Template - Benchmark\nenv:\n  RANDOM_RANGE_RATIO: 0.8\n"
HEADER = ("id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,"
          "gemm_quant_mode,moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,moe_ep_size,"
          "prefill_batch_size,prefill_num_workers,prefill_tp_size,prefill_pp_size,prefill_attention_dp_size,"
          "prefill_moe_tp_size,prefill_moe_ep_size,decode_batch_size,decode_num_workers,decode_tp_size,"
          "decode_pp_size,decode_attention_dp_size,decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,"
          "silicon_tpot_ms")


def _git(repo: Path, *args: str, date: str = "") -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, check=True,
                          text=True).stdout.strip()


def write_tree(root: Path, decode_workers: int) -> None:
    master = MASTER.replace("DECODE_WORKERS", str(decode_workers)).replace("CONC2", ", 96" if decode_workers == 3 else "")
    files = {".github/configs/nvidia-master.yaml": master,
             ".github/workflows/benchmark-tmpl.yml": WORKFLOW,
             ".github/workflows/benchmark-multinode-tmpl.yml": WORKFLOW,
             "benchmarks/benchmark_lib.sh": LIB,
             "runners/launch_h200-nv.sh": RUNNER,
             "benchmarks/single_node/dsr1_fp8_h200_trt.sh": TRT,
             "benchmarks/single_node/dsr1_fp8_h200_trt_mtp.sh": MTP}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def make_repo(root: Path) -> tuple[Path, list[str]]:
    """The two-commit repository at root; returns (root, [commit1, commit2])."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    commits = []
    for workers, date in ((2, "2026-01-10T00:00:00Z"), (3, "2026-02-10T00:00:00Z")):
        write_tree(root, workers)
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", f"{workers} decode workers", date=date)
        commits.append(_git(root, "rev-parse", "HEAD"))
    return root, commits


def _src(measured: str, conc: int, image: str, source: str = "2026-03-25.csv") -> str:
    return f"source_file={source}; model=DeepSeek-R1; silicon_concurrency={conc}; measured={measured}; image={image}"


def runs_csv(path: Path) -> Path:
    """Seven rows: agg off (conc 16), agg ambiguous (conc 4), disagg before/after the second commit, a disagg
    row run before the commit that added its concurrency, a row of another harness, and one measured before
    the repository existed."""
    agg_img, dis_img = "nvcr.io#nvidia/tensorrt-llm/release:1.0", "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8"
    # each row its own measurement (TTFT 100 + i): rows with the same measurement are one run (calibrate.twins)
    agg = "trtllm,1.0,deepseek-ai/DeepSeek-R1,h200_sxm,fp8,agg,1024,1024,fp8,fp8,{c},8,1,1,1,8" + "," * 14 + ",{t},10"
    dis = ("trtllm,1.0,deepseek-ai/DeepSeek-R1,h200_sxm,fp8,disagg,1024,1024,fp8,fp8,,,,,,,"
           ",,8,1,1,1,8,,,8,1,1,1,8,{t},10")
    rows = [f"a16,{_src('2026-01-20T10:00:00Z', 16, agg_img)},{agg.format(c=16, t=100)}",
            f"a4,{_src('2026-01-20T10:00:00Z', 4, agg_img)},{agg.format(c=4, t=101)}",
            f"d1,{_src('2026-01-20T10:00:00Z', 64, dis_img)},{dis.format(t=102)}",
            f"d2,{_src('2026-02-20T10:00:00Z', 64, dis_img)},{dis.format(t=103)}",
            f"d3,{_src('2026-01-20T10:00:00Z', 96, dis_img)},{dis.format(t=104)}",
            f"x1,{_src('2026-01-20', 16, '', '/data/aic-auto-gap-analysis/h200.csv')},{agg.format(c=16, t=105)}",
            f"old,{_src('2025-01-01T00:00:00Z', 16, agg_img)},{agg.format(c=16, t=106)}"]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path
