"""The chain check, compare half: model steps timed on a GPU (scripts/gpu_sweep.py -> chain.jsonl) against
the estimator's step times from the kernels collected in the same run (backend torch, the same truncated
configs, TP 1).

    python scripts/chain_check.py --chain OUT/chain.jsonl --db DB [--system h200_sxm] [--csv out.csv]

The estimator's side is the sum of its op times without the per-step host overhead (the measured steps are
CUDA-graph replays: no host time in them). Prints per family and phase the number of points, the median
|error| and its p90, the median predicted/measured ratio, and how the ops were answered (measured /
interpolated / ...), then the worst points.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimator.engine import EngineConfig  # noqa: E402
from estimator.models.hf_config import parse_config  # noqa: E402
from estimator.parallel import ParallelConfig  # noqa: E402
from estimator.steps import StepModel  # noqa: E402
from perfdb.lookup import PerfDB  # noqa: E402
from perfdb.specs import load_system  # noqa: E402
from perfdb.types import Backend, Phase  # noqa: E402


def estimate(records: list[dict], db: Path, system: str) -> pd.DataFrame:
    view = PerfDB(db).view(system, Backend.TORCH)
    spec_system = load_system(system)
    steps: dict[str, StepModel] = {}
    rows = []
    for rec in records:
        if "ms" not in rec:
            continue
        key = json.dumps(rec["config"], sort_keys=True)
        if key not in steps:
            spec = parse_config(rec["config"], rec["model"])
            steps[key] = StepModel.build(spec, spec_system, ParallelConfig(tp=1), EngineConfig(Backend.TORCH), view)
        step = steps[key]
        if rec["phase"] == "prefill":
            result = step.step(Phase.PREFILL, rec["batch"], rec["seq"], 0, 0, 0)
        else:
            result = step.step(Phase.DECODE, 0, 0, 0, rec["batch"], rec["seq"])
        ops = [o for o in result.ops if o.name != "step_overhead"]
        predicted = float(sum(float(np.ravel(o.ms)[0]) for o in ops))
        worst = max((o.source for o in ops), key=lambda s: s.code)
        top = sorted(ops, key=lambda o: -float(np.ravel(o.ms)[0]))[:3]
        rows.append({"family": rec["family"], "model": rec["model"], "phase": rec["phase"], "batch": rec["batch"],
                     "seq": rec["seq"], "measured_ms": rec["ms"], "predicted_ms": predicted,
                     "ratio": predicted / rec["ms"], "source": worst.value,
                     "top_ops": ", ".join(f"{o.name} {float(np.ravel(o.ms)[0]):.3f}" for o in top)})
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(abs_err=(df.ratio - 1).abs() * 100)
    return df.groupby(["family", "phase"]).agg(
        points=("ratio", "size"), median_abs_err_pct=("abs_err", "median"),
        p90_abs_err_pct=("abs_err", lambda x: float(np.quantile(x, 0.9))),
        median_ratio=("ratio", "median"), sources=("source", lambda s: ",".join(sorted(set(s))))).round(3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chain", type=Path, required=True)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--system", default="h200_sxm")
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args()
    records = [json.loads(line) for line in args.chain.read_text().splitlines() if line.strip()]
    failed = [r for r in records if "ms" not in r]
    df = estimate(records, args.db, args.system)
    if args.csv:
        df.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    print(summary(df).to_string())
    print(f"\n{len(df)} points compared, {len(failed)} steps that failed to run")
    worst = df.assign(err=(df.ratio - 1).abs()).nlargest(8, "err")
    print(worst[["model", "phase", "batch", "seq", "measured_ms", "predicted_ms", "ratio", "top_ops"]].to_string(index=False))


if __name__ == "__main__":
    main()
