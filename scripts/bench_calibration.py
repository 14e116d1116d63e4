"""Calibration error and interval coverage under three held-out protocols, from one predictions file.

    servecast estimate --from-runs ../shared/data/e2e_train_silicon.csv --out pred.csv     # bundled db, simulator
    python scripts/bench_calibration.py ../shared/data/e2e_train_silicon.csv pred.csv [--residual gbm|none]
    servecast estimate --from-runs ../shared/data/e2e_train_silicon.csv --base estimate --out pred_static.csv
    python scripts/bench_calibration.py ../shared/data/e2e_train_silicon.csv pred_static.csv --base estimate
    python scripts/bench_calibration.py ../shared/data/e2e_train_silicon.csv pred.csv --seed 1   # other folds

Protocols (each row is corrected by a calibration fitted without it, its reach decisions and intervals
from inner protocols on that fit's own rows: calibrate.train):
  deployment  5-fold CV grouped by deployment
  model       leave one model out: how a model the calibration never saw is served
  system      leave one GPU system out
Prints median |error| % and nested 80% interval coverage for TTFT and TPOT, overall and by mode, and the
reach decisions of the calibration fitted on all rows. About 1-2 min on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate.fit import FitOptions, usable  # noqa: E402
from calibrate.ingest import read_results  # noqa: E402
from calibrate.predict import from_predictions_file  # noqa: E402
from calibrate.train import train  # noqa: E402
from calibrate.validate import coverage_table, error_stats  # noqa: E402


def scored_frame(runs: Path, predictions: Path):
    """The measured runs of a run table joined to a predictions CSV, usable rows only (as `calibrate fit`);
    also read by bench_ceiling.py."""
    return usable(from_predictions_file(read_results([runs], None), predictions))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("predictions", type=Path)
    ap.add_argument("--residual", default="gbm")
    ap.add_argument("--seed", type=int, default=FitOptions().seed,
                    help="shuffle of the deployment folds and the residual trees' row sampling (default: what "
                         "`calibrate fit` uses); another seed shows how far the figures move with those alone")
    ap.add_argument("--base", default="simulate", choices=("simulate", "estimate"),
                    help="what the predictions file holds (`estimate --from-runs --base`; simulate by default)")
    args = ap.parse_args()
    frame = from_predictions_file(read_results([args.runs], None), args.predictions)
    res = train(frame, replace(FitOptions(), residual=args.residual, seed=args.seed), args.base)
    rows = res.rows
    print(f"{len(rows)} rows, {rows['deployment_key'].nunique()} deployments, {rows['model_key'].nunique()} models, "
          f"{rows['system'].nunique()} systems; calibration {res.calibration.id}")
    before = {m: error_stats(rows[f"measured_{m}"], rows[f"pred_{m}"])["median_abs_pct"] for m in ("ttft", "tpot")}
    print(f"uncalibrated median |error| TTFT {before['ttft']:.1f}%, TPOT {before['tpot']:.1f}%")
    table = coverage_table(rows)
    print("| protocol | mode | TTFT median abs % | TPOT median abs % | TTFT 80% interval covers | TPOT covers |")
    print("|---|---|---|---|---|---|")
    for (proto, mode), g in table.groupby(["protocol", "mode"], sort=False):
        t, p = g.set_index("metric").loc["ttft"], g.set_index("metric").loc["tpot"]
        print(f"| {proto} | {mode} | {t.median_abs_pct:.1f} | {p.median_abs_pct:.1f} | {100 * t.coverage:.1f} | "
              f"{100 * p.coverage:.1f} |")
    for r in res.calibration.reach:
        print(f"reach: {r.metric} {r.part} -> unseen {r.novelty}: {'applied' if r.applied else 'withheld'} "
              f"({r.with_pct} with / {r.without_pct} without, {r.n_rows} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
