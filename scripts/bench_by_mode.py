"""Error by backend and mode from calibration artifacts' training rows (what `calibrate fit` stored:
each run's uncalibrated prediction, its grouped-CV calibrated prediction, its leave-one-model-out and
leave-one-system-out predictions, and whether each protocol's nested 80% interval covered the measurement).

    python scripts/bench_by_mode.py perfdb/bundled/calibrations/<estimate-id> perfdb/bundled/calibrations/<simulate-id>

One table per calibration directory: median |error| % of TTFT / TPOT uncalibrated, held out by
deployment (5-fold CV), by model and by system, the interval coverage under each, and the median ratio of
predicted (uncalibrated) to measured TTFT. Rows: backend x mode, then all.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def _err(pred: pd.Series, meas: pd.Series) -> float:
    e = (pred / meas - 1.0).abs()
    return 100.0 * float(e[np.isfinite(e)].median()) if np.isfinite(e).any() else float("nan")


def _line(key: str, g: pd.DataFrame) -> str:
    cells = [key, str(len(g))]
    for col in ("pred", "cv", "lomo", "loso"):
        cells.append(f"{_err(g[f'{col}_ttft'], g.measured_ttft):.1f} / {_err(g[f'{col}_tpot'], g.measured_tpot):.1f}")
    for pre in ("cv_", "lomo_", "loso_"):
        cells.append(f"{100 * g[f'{pre}covered_ttft'].mean():.0f} / {100 * g[f'{pre}covered_tpot'].mean():.0f}")
    cells.append(f"{float((g.pred_ttft / g.measured_ttft).median()):.2f}")
    return "| " + " | ".join(cells) + " |"


def report(directory: Path) -> str:
    prov = yaml.safe_load((directory / "provenance.yaml").read_text())
    d = pd.read_parquet(directory / "training_rows.parquet")
    out = [f"calibration {prov.get('calibration')} (base {prov.get('base')}, servecast {prov.get('servecast_commit')}), "
           f"{len(d)} runs; TTFT / TPOT median |error| %",
           "", "| backend mode | n | uncalibrated | CV by deployment | one model out | one system out | 80% interval "
           "covers: by deployment | one model out | one system out | TTFT pred/meas median |",
           "|---|---:|---|---|---|---|---|---|---|---:|"]
    for (b, m), g in d.groupby(["backend", "mode"]):
        out.append(_line(f"{b} {m}", g))
    out.append(_line("all", d))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("calibrations", type=Path, nargs="+")
    for directory in ap.parse_args().calibrations:
        print(report(directory) + "\n")


if __name__ == "__main__":
    main()
