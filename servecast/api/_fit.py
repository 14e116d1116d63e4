"""servecast.fit(): fit a calibration to measured runs and store it (what `servecast calibrate fit` does, without
the printing); servecast.predicted_runs(): measured runs joined to their predictions (fit and validate read it)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from calibrate.fit import FitOptions
    from calibrate.train import FitResult
    from estimator.calibration import Calibration


@dataclass(frozen=True)
class Fitted:
    result: FitResult      # calibrate.train.FitResult: the Calibration, the rows with their cross-validated
    #                        predictions (cv_*), the rows left out (with the reason) and the per-fold errors
    path: Path | None      # the artifact directory written, <out>/<calibration id>
    plot: Path | None      # the predicted-vs-measured PNG written

    @property
    def calibration(self) -> Calibration:
        return self.result.calibration


def fit(runs: Path | str, *, out: Path | str | None = None, db: Path | str | None = None,
        predictions: Path | str | None = None, base: str = "simulate", statistic: str = "mean",
        options: FitOptions | None = None, plot: Path | str | None = None, hf_hub: Path | None = None,
        progress: Callable[[int, int], None] | None = None) -> Fitted:
    """Fit per-scope factors and a residual model to `runs` (a Parquet table from `calibrate ingest`, a silicon
    CSV or InferenceX rows) with grouped cross-validation; write the artifact to <out>/<id>/ when `out` is given.

    Predictions come from `predictions` (a CSV from estimate_runs, made on the same `base`) or are computed
    with base "simulate" (the simulator's replay of each run, what `plan` decides on; the default;
    progress(done, total) per run) or "estimate" (the static estimate: seconds, not minutes). statistic:
    the client statistic fitted (mean, p50, p90, p99). options: calibrate.fit.FitOptions (folds, residual model, shrinkage, ...).
    plot: a cross-validated predicted-vs-measured PNG.
    """
    from calibrate import store
    from calibrate.fit import FitOptions
    from calibrate.train import train
    from perfdb.userfiles import check_out_dir, check_out_png

    if out is not None:
        check_out_dir(out, "--out")   # before predicting and fitting: a bad path fails at once
    if plot:
        check_out_png(plot, "--plot")
    opts = options if options is not None else FitOptions()
    result = train(predicted_runs(runs, db=db, predictions=predictions, base=base, statistic=statistic,
                                  hf_hub=hf_hub, progress=progress), opts, base)
    path = store.write(result, Path(out)) if out is not None else None
    if plot:
        from calibrate.plot import predicted_vs_measured

        predicted_vs_measured(result.rows, "cv_", Path(plot), f"calibration {result.calibration.id} (cross-validated)")
    return Fitted(result, path, Path(plot) if plot else None)


def predicted_runs(runs: Path | str, *, db: Path | str | None = None, predictions: Path | str | None = None,
                   base: str = "simulate", statistic: str = "mean", hf_hub: Path | None = None,
                   progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Measured runs joined to predictions (from a predictions CSV, or computed with the estimator or the
    simulator): one row per run, measured_* and pred_* columns, status "ok" or why it cannot be used."""
    from calibrate.predict import Base, from_predictions_file, predict
    from calibrate.runs import Statistic
    from calibrate.table import read_runs, table_to_runs
    from perfdb.lookup import PerfDB
    from perfdb.types import parse_enum

    runs = Path(runs)
    measured = table_to_runs(read_runs(runs)) if runs.suffix == ".parquet" else _parse_any(runs)
    stat = parse_enum(Statistic, statistic, "statistic")
    if predictions is not None:
        return from_predictions_file(measured, Path(predictions), stat, base=parse_enum(Base, base, "base").value,
                                     hf_hub=hf_hub)
    which = parse_enum(Base, base, "base")
    if which is not Base.SIMULATE:
        return predict(measured, PerfDB(db), which, stat, hf_hub=hf_hub)
    return predict(measured, PerfDB(db), which, stat, progress=_ticks(progress) if progress else None)


def _ticks(progress: Callable[[int, int], None]):
    """calibrate.predict's progress protocol (start(n) -> tick()) as progress(done, total) calls."""
    def start(total: int):
        done = [0]

        def tick() -> None:
            done[0] += 1
            progress(done[0], total)

        return tick

    return start


def _parse_any(path: Path):
    """A result file with its deployment inside (silicon CSV, InferenceX) read directly, without ingest."""
    from calibrate.ingest import read_results

    return read_results([path], None)
