"""Rebuild the calibrations shipped in the bundled database (perfdb/bundled/calibrations/<id>/).

    python scripts/build_bundled_calibration.py                         # ../shared/data/e2e_train_silicon.csv, ~5 min
    python scripts/build_bundled_calibration.py --runs RUNS.csv        # or another measured-run table

What it does: applies the committed enrichment facts (calibrate/data/e2e_train_enrichment.csv.gz:
worker counts, attention DP, speculative decoding, engine flags, client protocol, recovered from the
public InferenceX configs) to the training table, predicts every run of it on the bundled database (roofline +
efficiency curves; no --db) twice, with the static estimator and with the discrete-event simulator
at the run's concurrency (~4 min of the time), fits the default calibration to each with 5-fold
cross-validation grouped by deployment (`servecast calibrate fit --base estimate|simulate`), and
replaces whatever was in perfdb/bundled/calibrations/ with the two artifacts, each with
provenance.yaml (the training table's sha256, the servecast commit, the cross-validated errors).
Deterministic: same estimator, same table, same bytes.

Why they ship: uncalibrated, the bundled curves over-predict TPOT by about a quarter (median |error|
28.8% on the training runs) and the simulator's TTFT is off by 68%; calibrated, the held-out errors
are about 28% / 14% (estimate) and 33% / 14% (simulate), and every plan/estimate/simulate gets an
80% interval. `estimate` and `plan` apply the estimate-base one, `simulate` the simulate-base one.
They are fitted to *this* database's predictions, so they apply only when no --db is given; a
database you import or collect carries its own calibrations/ (or none).

Rebuild whenever the estimator's or the simulator's predictions change:
tests/calibrate/test_bundled_calibration.py re-predicts a sample of the training rows with each base
and fails when they drift from the stored ones.
Only e2e_train_silicon.csv (or runs you measured) may be used: never a reference tool's end-to-end data.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibrate import store  # noqa: E402
from calibrate.enrich import TRAINING_FACTS, enriched_copy  # noqa: E402
from calibrate.fit import FitOptions  # noqa: E402
from calibrate.ingest import read_results  # noqa: E402
from calibrate.predict import Base, predict  # noqa: E402
from calibrate.train import train  # noqa: E402
from perfdb.lookup import BUNDLED_ROOT, PerfDB  # noqa: E402
from perfdb.storage import atomic_write_bytes  # noqa: E402

DEFAULT_RUNS = ROOT.parent / "shared" / "data" / "e2e_train_silicon.csv"
TARGET = BUNDLED_ROOT / "calibrations"


def commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="measured-run table (silicon CSV format)")
    ap.add_argument("--out", type=Path, default=TARGET, help="calibrations directory to replace")
    ap.add_argument("--facts", type=Path, default=TRAINING_FACTS,
                    help="enrichment facts applied to the table first (`calibrate enrich --columns-only`)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = read_results([enriched_copy(args.runs, args.facts, Path(tmp))], None)
    staging = args.out.parent / f".{args.out.name}-staging"
    shutil.rmtree(staging, ignore_errors=True)
    for base, what in ((Base.ESTIMATE, "servecast estimator"),
                       (Base.SIMULATE, "servecast simulator (closed loop at each run's concurrency)")):
        t0 = time.perf_counter()
        result = train(predict(runs, PerfDB(None), base), FitOptions(), base.value)
        path = store.write(result, staging)
        tr = result.calibration.training
        provenance = {
            "calibration": result.calibration.id,
            "base": base.value,
            "fitted_on": {"file": args.runs.name, "sha256": hashlib.sha256(args.runs.read_bytes()).hexdigest(),
                          "rows_used": tr["rows"], "deployments": tr["deployments"],
                          "enrichment": {"file": args.facts.name,
                                         "sha256": hashlib.sha256(args.facts.read_bytes()).hexdigest()}},
            "predictions": f"{what} on the bundled database (no --db)",
            "servecast_commit": commit(),
            "options": "servecast calibrate fit defaults (5 folds grouped by deployment, shrunk scope factors, "
                       "gbm residual)",
            "cv_median_abs_error_pct": {m: {"before": round(tr[f"{m}_before"]["median_abs_pct"], 1),
                                            "after": round(tr[f"{m}_after_cv"]["median_abs_pct"], 1)}
                                        for m in ("ttft", "tpot")},
            "interval_coverage_nested": {name: {m: round(tr[f"{m}_interval_coverage_{name}"], 3) for m in ("ttft", "tpot")}
                                         for name in ("cv", "leave_one_model_out", "leave_one_system_out")},
        }
        atomic_write_bytes(path / "provenance.yaml", yaml.safe_dump(provenance, sort_keys=False).encode())
        print(f"{base.value}: calibration {result.calibration.id} ({time.perf_counter() - t0:.0f} s); "
              f"CV median |error| TTFT {provenance['cv_median_abs_error_pct']['ttft']}, "
              f"TPOT {provenance['cv_median_abs_error_pct']['tpot']}", flush=True)
    if args.out.exists():
        shutil.rmtree(args.out)
    staging.rename(args.out)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
