"""A tiny hand-written repository in the srt-slurm layout (recipes + the sa-bench client), built as a real
git history in a test's tmp dir, for the runs of tests/calibrate/inferencex_fixture.py.

Commit A (2026-01-05, main): the 1k/1k recipe with 2 decode workers and memory fraction 0.85; the 8k/1k
recipes of the point listed with and without MTP (the MTP one does not run concurrency 32).
Commit B (2026-02-01, "Merge sa-submission-q1-2026 into main", as the real branch was squash-merged):
the 1k/1k recipe with 3 decode workers, memory fraction 0.9 and one more concurrency.
The client runs a warm-up of 3 x concurrency prompts, then 12 x concurrency. Invented values throughout;
nothing here is copied from the real repository.
"""
from __future__ import annotations

from pathlib import Path

from tests.calibrate.inferencex_fixture import _git

BENCH = """#!/bin/bash
ENDPOINT=$1
CONCURRENCIES=$4
RANDOM_RANGE_RATIO=${12:-0.8}
for concurrency in $(echo "$CONCURRENCIES" | tr x ' '); do
    num_warmup_prompts=$((concurrency * 3))
    python3 -u "${WORK_DIR}/benchmark_serving.py" --num-prompts "$num_warmup_prompts" \\
        --random-range-ratio "${RANDOM_RANGE_RATIO}" --max-concurrency "$concurrency"
    num_prompts=$((concurrency * 12))
    python3 -u "${WORK_DIR}/benchmark_serving.py" --num-prompts "$num_prompts" \\
        --random-range-ratio "${RANDOM_RANGE_RATIO}" --max-concurrency "$concurrency" --save-result
done
"""
SA_BENCH_PY = "def build_command(b):\n    return [str(b.random_range_ratio)]\n"
TRT_ROLE = """    {role}:
      tensor_parallel_size: 8
      moe_expert_parallel_size: 8
      enable_attention_dp: true
      max_batch_size: {batch}
      max_num_tokens: {tokens}
      kv_cache_config:
        free_gpu_memory_fraction: {mem}
      cuda_graph_config:
        batch_sizes: [1, 2, {batch}]
{spec}"""
MTP = "      speculative_config:\n        decoding_type: MTP\n        num_nextn_predict_layers: 2\n"


def trt_recipe(prefill: int, decode: int, mem: float, concs: str, spec: bool = False, ratio: str = "") -> str:
    roles = "".join(TRT_ROLE.format(role=r, batch=b, tokens=t, mem=mem, spec=MTP if spec else "")
                    for r, b, t in (("prefill", 4, 8448), ("decode", 32, 96)))
    bench = f"  random_range_ratio: {ratio}\n" if ratio else ""
    return (f"name: fixture\nresources:\n  prefill_workers: {prefill}\n  decode_workers: {decode}\n"
            f"backend:\n  type: trtllm\n  decode_environment:\n    TRTLLM_ENABLE_PDL: \"1\"\n    NCCL_DEBUG: WARN\n"
            f"  trtllm_config:\n{roles}"
            f"benchmark:\n  type: sa-bench\n  concurrencies: \"{concs}\"\n{bench}")


def write_srt(root: Path, version: str) -> None:
    one = trt_recipe(1, 2, 0.85, "64x80") if version == "A" else trt_recipe(1, 3, 0.9, "64x80x96")
    files = {"src/srtctl/__init__.py": "", "src/srtctl/benchmarks/scripts/sa-bench/bench.sh": BENCH,
             "src/srtctl/benchmarks/sa_bench.py": SA_BENCH_PY,
             "recipes/h200/ctx1_genN_dep8_batch32_eplb0_mtp0.yaml": one,
             "recipes/h200/8k1k/stp.yaml": trt_recipe(2, 1, 0.8, "32x64", ratio="0.9"),
             "recipes/h200/8k1k/mtp.yaml": trt_recipe(1, 4, 0.8, "8x16", spec=True)}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def make_srt(root: Path) -> tuple[Path, list[str]]:
    """The two-commit srt-slurm repository at root; returns (root, [commit A, commit B])."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    commits = []
    for version, date, msg in (("A", "2026-01-05T00:00:00Z", "recipes"),
                               ("B", "2026-02-01T00:00:00Z", "Merge sa-submission-q1-2026 into main (#9)")):
        write_srt(root, version)
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", msg, date=date)
        commits.append(_git(root, "rev-parse", "HEAD"))
    return root, commits


def disagg_8k_row(row_id: str = "d8k") -> str:
    """A run of the 8k/1k point at concurrency 32 (listed with and without MTP), in runs_csv's layout."""
    src = ("source_file=2026-03-25.csv; model=DeepSeek-R1; silicon_concurrency=32; measured=2026-01-20T10:00:00Z; "
           "image=nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8")
    return (f"{row_id},{src},trtllm,1.0,deepseek-ai/DeepSeek-R1,h200_sxm,fp8,disagg,8192,1024,fp8,fp8,,,,,,,"
            ",,8,1,1,1,8,,,8,1,1,1,8,100,10")
