"""Calibration error under three held-out protocols, before and after, from one predictions file.

    servecast estimate --from-runs ../shared/data/e2e_train_silicon.csv --db /tmp/aicdb_all --out pred.csv
    python scripts/bench_calibration.py ../shared/data/e2e_train_silicon.csv pred.csv [--residual gbm|none] [--clip 0.69]

Protocols (each row is corrected by a fit that never saw it):
  deployment  5-fold CV grouped by deployment (the issue's target protocol; what `calibrate fit` reports)
  model       leave one model out: how a model the calibration never saw is served
  system      leave one GPU system out
Prints median |error| % for TTFT and TPOT, overall and by mode, for the uncalibrated predictions and
for each protocol. About 40 s on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate.fit import METRICS, FitOptions, cv_logs, log_ratio, usable  # noqa: E402
from calibrate.ingest import read_results  # noqa: E402
from calibrate.predict import from_predictions_file  # noqa: E402
from calibrate.train import unseen  # noqa: E402


def scored_frame(runs: Path, predictions: Path):
    """The measured runs of a run table joined to a predictions CSV, usable rows only (as `calibrate fit`)."""
    return usable(from_predictions_file(read_results([runs], None), predictions))


def medians(frame, logs) -> dict[str, tuple[float, float, float]]:
    out = {}
    agg = (frame["mode"] == "agg").to_numpy()
    for m in METRICS:
        err = np.abs(np.exp(logs[m] - log_ratio(frame, m)) - 1.0) * 100   # |calibrated / measured - 1|
        out[m] = (float(np.median(err)), float(np.median(err[agg])), float(np.median(err[~agg])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("predictions", type=Path)
    ap.add_argument("--residual", default="gbm")
    ap.add_argument("--clip", type=float, default=FitOptions.clip, help="FitOptions.clip (0 = no limit)")
    args = ap.parse_args()
    frame = scored_frame(args.runs, args.predictions)
    base = replace(FitOptions(), residual=args.residual, clip=args.clip)
    served = unseen(frame, base, "estimate")   # as `calibrate fit` decides
    opts = replace(base, unseen_model_factor=served.model_factor, unseen_system_factor=served.system_factor)
    rows = {"uncalibrated": {m: np.zeros(len(frame)) for m in METRICS},
            "deployment 5-fold": cv_logs(frame, opts, "estimate"),
            "leave one model out": served.logs["lomo"],
            "leave one system out": served.logs["loso"]}
    print(f"{len(frame)} rows, {frame['deployment_key'].nunique()} deployments, "
          f"{frame['model_key'].nunique()} models, {frame['system'].nunique()} systems; median |error| %")
    print(f"per-mode factor applied to an unseen model for: {', '.join(served.model_factor) or 'none'}; "
          f"to a seen model on an unseen system for: {', '.join(served.system_factor) or 'none'}")
    print("| protocol | TTFT | TTFT agg | TTFT disagg | TPOT | TPOT agg | TPOT disagg |")
    print("|---|---|---|---|---|---|---|")
    for name, logs in rows.items():
        r = medians(frame, logs)
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for m in METRICS for v in r[m]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
