"""A fitted calibration on disk: `<out>/<id>/` with the artifact and everything it rests on.

    calibration.json       the artifact (estimator.calibration.Calibration; JSON, no code)
    training_rows.parquet  the rows it was fitted on: measurements, predictions, fold, cross-validated
                           calibrated predictions (cv_ttft, cv_tpot) and interval coverage flags
    excluded_rows.parquet  rows that could not be used, with the reason (status)
    fold_errors.csv        per fold and metric: median/mean/p90 absolute % error before and after
The directory name is the artifact's content hash, so two fits that predict the same share a name.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from calibrate.train import FitResult
from estimator.calibration import ARTIFACT_FILE, Calibration
from estimator.calibration_files import load, save
from perfdb.errors import InputError
from perfdb.userfiles import check_out_dir


def write(result: FitResult, out: Path) -> Path:
    """Write the artifact directory atomically (built beside, then renamed); returns it."""
    out = check_out_dir(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    final = out / result.calibration.id
    tmp = out / f".tmp-{result.calibration.id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save(result.calibration, tmp)
    result.rows.to_parquet(tmp / "training_rows.parquet", index=False)
    result.excluded.to_parquet(tmp / "excluded_rows.parquet", index=False)
    result.fold_errors.to_csv(tmp / "fold_errors.csv", index=False)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def read_all(path: Path) -> list[tuple[Calibration, Path]]:
    """Every calibration (with its directory) a path names: the directory or JSON file of one, or a
    folder of them (calibrations/), by id."""
    path = Path(path)
    if path.is_dir() and not (path / ARTIFACT_FILE).exists():
        found = sorted(path.glob(f"*/{ARTIFACT_FILE}"))
        if found:
            return [(load(f.parent), f.parent) for f in found]
    return [(load(path), path if path.is_dir() else path.parent)]


def read(path: Path) -> tuple[Calibration, Path]:
    """The calibration and its directory, from the directory, its parent holding one fit, or the JSON file.
    A folder of several is ambiguous: InputError naming their ids."""
    found = read_all(path)
    if len(found) > 1:
        ids = ", ".join(f"{cal.id} (--base {cal.base})" for cal, _ in found)
        raise InputError(f"{path} holds {len(found)} calibrations ({ids}); give one of their directories")
    return found[0]
