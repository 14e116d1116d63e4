"""Benchmark `servecast plan` end to end (process start to exit, artifacts and PNG written).

Runs each scenario N times as a user would (the console script in a fresh process, --save-dir set),
reports the median / min / max wall time, the CPU seconds the command and its helper used, and the
points evaluated (from plan.json). Also prints the reference tool's (AIConfigurator) point count for
the same scenario, as an upper bound computed from its public enumeration rules (see
aic_reference_points and docs/bench/search.md).

    python scripts/bench_plan.py              # both scenarios, 7 runs each
    python scripts/bench_plan.py --runs 15 --scenario qwen32b
    python scripts/bench_plan.py --priority   # on a shared machine: see below

CPU seconds (user + sys of the command and anything it starts) are the figure to trust on a loaded
machine: wall time there is mostly waiting for a core. --priority (Linux, root) runs each command in
its own session whose scheduler autogroup gets nice -20, so that other sessions' jobs yield the
CPU to it: the closest this script can get to an idle machine without one. It changes nothing in
the command itself; say so when quoting its figures.

Before timing, the repository's modules are byte-compiled once (python -m compileall), as pip does
for an installed package: this checkout sets PYTHONDONTWRITEBYTECODE=1, which would otherwise make
every run recompile every module.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCENARIOS = {
    "qwen32b": dict(args=["--model", "Qwen/Qwen3-32B-FP8", "--system", "h200_sxm", "--backend", "trtllm",
                          "--total-gpus", "8", "--isl", "4000", "--osl", "500", "--ttft", "600", "--tpot", "16.67"],
                    limit_s=1.0, aic=dict(isl=4000, osl=500, gpus=8, moe=False)),
    "dsr1_64": dict(args=["--model", "deepseek-ai/DeepSeek-R1", "--moe-quant", "nvfp4", "--system", "b200_sxm",
                          "--backend", "trtllm", "--total-gpus", "64", "--isl", "15000", "--osl", "500",
                          "--ttft", "1000", "--tpot", "15"],
                    limit_s=2.0, aic=dict(isl=15000, osl=500, gpus=64, moe=True)),
    # issue 15: the same with every engine searched (and each mode's picks replayed in the simulator)
    "dsr1_64_all": dict(args=["--model", "deepseek-ai/DeepSeek-R1", "--moe-quant", "nvfp4", "--system", "b200_sxm",
                              "--backend", "all", "--total-gpus", "64", "--isl", "15000", "--osl", "500",
                              "--ttft", "1000", "--tpot", "15"],
                        limit_s=2.5, aic=dict(isl=15000, osl=500, gpus=64, moe=True)),
}


# ---- the reference tool's point count (an upper bound) -------------------------------------------
AIC_AGG_BATCHES = [*range(1, 16), *range(16, 32, 4), *range(32, 64, 8), *range(64, 256, 16), *range(256, 512, 32), 512]
AIC_DECODE_BATCHES = [*range(1, 16), *range(16, 32, 2), *range(32, 128, 4), *range(128, 512, 8), 512]


def _aic_ctx_tokens(isl: int) -> list[int]:
    """Context-token steps of its agg sweep without chunked prefill: multiples of the ISL up to
    max(8192, 2 ISL), strides growing past 8192 tokens."""
    top = max(8192, 2 * isl)
    stride = max(isl, 512)
    large = math.ceil(max(1024, top // 8) / isl) * isl
    out, c = [], 0
    while True:
        c += stride if c < 8192 else large
        if c > top:
            break
        out.append(c)
    return sorted(set(out) | {isl, 2 * isl})


def _aic_agg_per_shape(isl: int, osl: int) -> int:
    n, capped = 0, set()
    for b in AIC_AGG_BATCHES:
        for c in _aic_ctx_tokens(isl):
            ctx_reqs = math.ceil(c / isl)
            if b - ctx_reqs < 0 or (b > 1 and b - ctx_reqs < 1):
                break
            balance = isl * b / c / osl
            if balance > 1:
                gen = b // balance
                if gen > 1 and gen in capped:
                    continue
                capped.add(gen)
            n += 1
    return n


def _aic_shapes(gpus: int, moe: bool) -> tuple[list, list, list]:
    """(agg, prefill, decode) shapes as (gpus per worker) from its default lists: dense tp in
    {1,2,4,8}; MoE agg the union of its fused lists and its TRT-LLM wide-EP ladder, disagg the base
    lists {1,2,4,8,16} (prefill tp = moe_ep = GPUs; decode tp x dp = moe_ep = GPUs)."""
    if not moe:
        s = [g for g in (1, 2, 4, 8) if g <= gpus]
        return s, s, s
    agg = set()
    for g in (1, 2, 4, 8, 16, 32, 64):
        for tp in (1, 2, 4, 8, 16):
            for dp in (1, 2, 4, 8, 16, 32, 64):
                if tp * dp != g or g > gpus:
                    continue
                for mtp in (1, 2, 4, 8, 16):
                    for mep in (1, 2, 4, 8, 16, 32, 64):
                        if mtp * mep == g:
                            agg.add((tp, dp, mtp, mep))
    agg_g = [tp * dp for tp, dp, _, _ in agg]
    base = [g for g in (1, 2, 4, 8, 16) if g <= gpus]
    decode = [tp * dp for tp in base for dp in base if tp * dp in base]
    return agg_g, base, decode


def aic_reference_points(isl: int, osl: int, gpus: int, moe: bool) -> dict:
    """Points AIConfigurator's default `cli default` search evaluates for a scenario, counted as an
    upper bound: no shape runs out of memory, and every decode candidate passes its TPOT filter."""
    agg_s, pre_s, dec_s = _aic_shapes(gpus, moe)
    agg = len(agg_s) * _aic_agg_per_shape(isl, osl)
    prefill, decode = len(pre_s), len(dec_s) * len(AIC_DECODE_BATCHES)
    replica_sizes = {g for g in [1, 2, 4, 8, *range(16, 129, 8)] if g <= gpus}
    compositions = 0
    categories = {}
    for g in dec_s:
        categories[g] = categories.get(g, 0) + 1
    for gd, n_cat in categories.items():
        for gp in pre_s:
            per_pair = sum(1 for x in range(1, 33) for y in range(1, 33) if x * gp + y * gd in replica_sizes)
            # top 16 decode workers per decode shape, every prefill candidate, every worker count pair
            compositions += n_cat * min(16, len(AIC_DECODE_BATCHES)) * per_pair
    return {"agg": agg, "prefill_workers": prefill, "decode_workers": decode, "disagg_compositions": compositions,
            "total": agg + prefill + decode + compositions}


# ---- timing --------------------------------------------------------------------------------------
def _servecast() -> list[str]:
    exe = shutil.which("servecast", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "servecast.cli"]


def _high_priority() -> None:
    """In the child before exec: a new session (its own autogroup) at nice -20."""
    os.setsid()
    with open(f"/proc/{os.getpid()}/autogroup", "w") as fh:
        fh.write("-20")
    os.nice(-20)


def run_once(args: list[str], out: Path, priority: bool = False) -> tuple[float, float, int]:
    if out.exists():
        shutil.rmtree(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([*_servecast(), "plan", *args, "--save-dir", str(out)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, preexec_fn=_high_priority if priority else None)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"servecast plan failed: {proc.stderr.strip()}")
    for f in ("points.parquet", "points.csv", "pareto.png", "plan.json"):
        if not (out / f).is_file():
            raise SystemExit(f"servecast plan did not write {f}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads((out / "plan.json").read_text())["points_evaluated"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--no-compile", action="store_true", help="skip byte-compiling the repository first")
    ap.add_argument("--priority", action="store_true",
                    help="run each command at scheduler priority nice -20 in its own autogroup (Linux, root)")
    a = ap.parse_args()
    if not a.no_compile:
        subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / p) for p in
                        ("servecast", "search", "estimator", "perfdb", "calibrate", "collectors"))], check=True)
    names = list(SCENARIOS) if a.scenario == "all" else [a.scenario]
    print(f"{'scenario':10} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>6} {'limit':>6} "
          f"{'points':>8} {'AIC<=':>8}  load (start-end){'  priority' if a.priority else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            sc = SCENARIOS[name]
            run_once(sc["args"], Path(tmp) / name, a.priority)   # warm the page cache; not counted
            walls, cpus, points = [], [], 0
            load0 = os.getloadavg()[0]
            for _ in range(a.runs):
                w, c, points = run_once(sc["args"], Path(tmp) / name, a.priority)
                walls.append(w)
                cpus.append(c)
            aic = aic_reference_points(**sc["aic"])
            print(f"{name:10} {a.runs:4d} {statistics.median(walls):9.3f} {min(walls):7.3f} {max(walls):7.3f} "
                  f"{statistics.median(cpus):6.2f} {sc['limit_s']:6.1f} {points:8d} {aic['total']:8d}  "
                  f"{load0:.2f}-{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
