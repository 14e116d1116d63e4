"""Benchmark `servecast plan` for the 2026 architectures (issue 16): hybrid linear attention, sparse
attention, DeepSeek-V4 and int4 experts, each on its natural system, as bench_plan.py times its
scenarios (a fresh console-script process per run, --save-dir set; median wall and CPU seconds), and
checks that the written artifacts carry the hybrid engine flags and the KV-cache dtype the plan priced
(TRT-LLM: kv_cache_config.dtype of the engine YAMLs; SGLang / vLLM: --kv-cache-dtype of launch.sh). The
`-sglang` scenarios are the same plans on SGLang, whose FP8 layouts and KV-dtype defaults differ
(estimator/kv_layout.py, estimator/engines/sglang.py).

    python scripts/bench_plan_2026.py --runs 5 [--scenario glm5-fp8-sglang]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_plan import run_once  # noqa: E402  (the one timing harness of the plan benchmarks)

COMMON = ["--total-gpus", "8", "--isl", "4000", "--osl", "500", "--ttft", "3000", "--tpot", "50"]
TRT, SGL = ["--backend", "trtllm"], ["--backend", "sglang"]
SCENARIOS = {
    "qwen3.5-397b": (["--model", "Qwen/Qwen3.5-397B-A17B", "--system", "b200_sxm", *TRT], True),
    "glm5-fp8": (["--model", "zai-org/GLM-5-FP8", "--system", "b200_sxm", *TRT], False),
    "dsv4-pro": (["--model", "deepseek-ai/DeepSeek-V4-Pro", "--system", "b200_sxm", *TRT], False),
    "nemotron3-super": (["--model", "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8", "--system", "h200_sxm", *TRT], True),
    "kimi-k2.5-int4": (["--model", "moonshotai/Kimi-K2.5", "--system", "b200_sxm", *TRT], False),
    "glm5-fp8-sglang": (["--model", "zai-org/GLM-5-FP8", "--system", "b200_sxm", *SGL], False),
    "glm5-fp8-sglang-h200": (["--model", "zai-org/GLM-5-FP8", "--system", "h200_sxm", *SGL], False),
    "dsv4-pro-sglang": (["--model", "deepseek-ai/DeepSeek-V4-Pro", "--system", "b200_sxm", *SGL], False),
}
LIMIT_S = 2.5


def _hybrid_flags(out: Path) -> bool:
    """Every TRT-LLM engine YAML of the top candidates sizes the Mamba state (mamba_ssm_cache_dtype)."""
    yamls = [p for p in (out / "top").rglob("*.yaml") if p.name in ("agg.yaml", "prefill.yaml", "decode.yaml")]
    return bool(yamls) and all("mamba_ssm_cache_dtype" in p.read_text() for p in yamls)


def _launch_kv_flag(launch: Path) -> str:
    """The --kv-cache-dtype value(s) of an SGLang / vLLM launch.sh ("-" where it sets none)."""
    words = launch.read_text().split()
    return "/".join(sorted({words[i + 1] for i, w in enumerate(words[:-1]) if w == "--kv-cache-dtype"})) or "-"


def _kv_flags(out: Path) -> str:
    """`flag=priced` pairs over the top candidates: the KV-cache dtype each engine config sets (TRT-LLM engine
    YAML, else launch.sh) and the one its deployment.yaml says the plan priced (auto=bf16: auto, the
    checkpoint's bf16 or the engine's own choice); MISMATCH where one says fp8 and the other not."""
    seen = set()
    for dep in (out / "top").rglob("deployment.yaml"):
        priced = yaml.safe_load(dep.read_text())["engine"]["kv_cache_dtype"]
        flags = [yaml.safe_load(p.read_text())["kv_cache_config"]["dtype"] for p in dep.parent.glob("*.yaml")
                 if p.name in ("agg.yaml", "prefill.yaml", "decode.yaml")]
        if not flags and (dep.parent / "launch.sh").is_file():
            flags = [_launch_kv_flag(dep.parent / "launch.sh")]
        for flag in flags:
            seen.add(f"{flag}={priced}" if flag.startswith("fp8") == (priced == "fp8") else "MISMATCH")
    return ",".join(sorted(seen)) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    a = ap.parse_args()
    names = list(SCENARIOS) if a.scenario == "all" else [a.scenario]
    print(f"{'scenario':20} {'runs':>4} {'median s':>9} {'cpu s':>6} {'limit':>6} {'points':>7} {'mamba flags':>11} "
          f"{'kv flag':>18}  load")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            args, hybrid = SCENARIOS[name]
            out = Path(tmp) / name
            run_once(args + COMMON, out, False)   # warm the page cache; not counted
            walls, cpus, points = [], [], 0
            for _ in range(a.runs):
                w, c, points = run_once(args + COMMON, out, False)
                walls.append(w)
                cpus.append(c)
            flags = ("yes" if _hybrid_flags(out) else "MISSING") if hybrid else "-"
            print(f"{name:20} {a.runs:4d} {statistics.median(walls):9.3f} {statistics.median(cpus):6.2f} "
                  f"{LIMIT_S:6.1f} {points:7d} {flags:>11} {_kv_flags(out):>18}  {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
