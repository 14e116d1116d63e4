"""Calibrations on disk, and which one a command applies.

    <dir>/calibration.json        one artifact (estimator.calibration.Calibration, plain JSON)
    <db>/calibrations/<id>/       the ones a database carries; the bundled database ships one per base

`resolve` is what estimate / plan / simulate call with their --calibration and --db flags.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from estimator.calibration import ANY, ARTIFACT_FILE, Calibration
from perfdb.errors import InputError
from perfdb.lookup import BUNDLED_ROOT
from perfdb.userfiles import read_text


def save(cal: Calibration, directory: Path) -> Path:
    """Write calibration.json into `directory` (created), atomically; returns the file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ARTIFACT_FILE
    tmp = directory / f".tmp-{ARTIFACT_FILE}-{os.getpid()}"
    tmp.write_text(cal.to_json())
    os.replace(tmp, path)
    return path


def load(path: Path) -> Calibration:
    """A calibration from its directory or its calibration.json."""
    path = Path(path)
    if path.is_dir():
        path = path / ARTIFACT_FILE
    if not path.is_file():
        raise InputError(f"{path}: no calibration here; fit one with `servecast calibrate fit RUNS --out DIR`")
    st = path.stat()
    return _read(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _read(path: str, mtime_ns: int, size: int) -> Calibration:
    """Parse and hash-check once per file version: `find` reads every stored calibration and `resolve`
    the chosen one again, once per backend of a plan. Calibrations are frozen, so sharing is safe."""
    return Calibration.from_json(read_text(path, "--calibration", "a calibration directory or calibration.json from "
                                             "`servecast calibrate fit`"), path)


def find(db_root: Path, system: str, backend: str, base: str | None = None) -> Path | None:
    """The newest calibration stored in a database (<db>/calibrations/<id>/) that covers system/backend;
    with `base` ("estimate" | "simulate"), only calibrations fitted on that prediction are considered."""
    root = Path(db_root) / "calibrations"
    if not root.is_dir():
        return None
    best = None
    for path in sorted(root.glob(f"*/{ARTIFACT_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True):
        cal = load(path)
        if base is not None and cal.base != base:
            continue
        if any(f.scope.system == system and f.scope.backend in (ANY, backend) for f in cal.factors):
            return path.parent
        best = best or path.parent
    return best


def _one_in(path: Path, base: str | None) -> Path:
    """The calibration a --calibration path names: itself, or the one fit inside the folder `calibrate fit --out`
    wrote (<out>/<id>/), or among several there the one fitted on `base`."""
    if not path.is_dir() or (path / ARTIFACT_FILE).exists():
        return path
    found = sorted(path.glob(f"*/{ARTIFACT_FILE}"))
    if len(found) > 1 and base is not None:
        found = [f for f in found if load(f).base == base] or found
    if len(found) > 1:
        raise InputError(f"--calibration {path} holds {len(found)} calibrations "
                         f"({', '.join(f.parent.name for f in found)}); give one of their directories")
    return found[0].parent if found else path


NO_CALIBRATION = "none"   # --calibration none: apply no calibration, not even the database's stored one


def calibration_flag(value: Path | str | None) -> tuple[Path | None, bool]:
    """(explicit directory or None, whether a stored one may apply) from a --calibration flag value."""
    if value is not None and str(value).strip().lower() == NO_CALIBRATION:
        return None, False
    return (Path(value) if value is not None else None), True


def resolve(calibration_dir: Path | None, db_root: Path | None, system: str, backend: str,
            base: str | None = "estimate", stored: bool = True) -> Calibration | None:
    """The calibration a command should apply: the explicit directory (or calibration.json) when given,
    else (`stored`) the newest one stored in the database (<db>/calibrations/; db_root None = the bundled
    database, which ships one per base fitted to its own predictions) covering system/backend, else None.
    estimate / plan / simulate call this with their --calibration and --db flags (`--calibration none`:
    stored False). A stored calibration fitted on another prediction than `base` is passed over, and an
    explicit one is refused (InputError); base None accepts any."""
    if calibration_dir is not None:
        cal = load(_one_in(Path(calibration_dir), base))
        if base is not None and cal.base != base:
            raise InputError(f"{calibration_dir}: calibration {cal.id} was fitted with --base {cal.base}; this "
                             f"command accepts only --base {base} calibrations (refit with `servecast calibrate "
                             f"fit RUNS --base {base}`)")
        return cal
    if not stored:
        return None
    found = find(BUNDLED_ROOT if db_root is None else db_root, system, backend, base)
    return None if found is None else load(found)


def resolve_for_base(calibration_dir: Path | None, db_root: Path | None, system: str, backend: str,
                     base: str, stored: bool = True) -> Calibration | None:
    """For a command that applies one calibration per base (plan: the estimate-base one to the static
    screen, the simulate-base one to the replayed picks): the explicit --calibration serves the base it
    was fitted on, and the other base comes from the database as without the flag. So `calibrate fit`'s
    default (simulate-base) output is accepted by plan instead of refused."""
    if calibration_dir is not None:
        cal = load(_one_in(Path(calibration_dir), base))
        if cal.base == base:
            return cal
    return resolve(None, db_root, system, backend, base, stored)
