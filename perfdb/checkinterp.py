"""Leave-one-out accuracy of the lookup ladder over stored rows (`servecast db check-interp`).

Each sampled row is predicted from the others with the same ladder the estimator uses: its own node
is removed from its combination's grid (other kernels measured at the same shape stay), the exact-hit
rung is disabled, and interpolation / extrapolation / categorical substitution answer as they would
for an unseen shape. Relative error = |predicted - measured| / measured. Large tables are sampled
(seeded), so the run time is bounded by the sample size, not the table size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdb.errors import InputError, NotFoundError
from perfdb.family import FamilyTable, make_case
from perfdb.lookup import DbView
from perfdb.types import OpKind, Source


@dataclass(frozen=True)
class InterpAccuracy:
    op: OpKind
    dtype: str            # "all" for the family as a whole
    rows: int             # rows predicted
    median_rel_err: float
    p90_rel_err: float
    sources: tuple[tuple[Source, int], ...]   # how the predictions were answered


@dataclass(frozen=True)
class CheckInterpReport:
    system: str
    backend: str
    version: str          # the family's table version (a view may read older versions per family)
    op: OpKind
    table_rows: int
    sampled: int          # rows predicted (<= table_rows)
    seed: int
    results: tuple[InterpAccuracy, ...]


def _row_combos(fam: FamilyTable) -> list[tuple]:
    combo_of = [()] * fam.num_rows
    for combo, rows in fam.groups.items():
        for r in rows:
            combo_of[r] = combo
    return combo_of


def loo_predict(view: DbView, fam: FamilyTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted latency (ms) and Source code of each table row, with that row left out."""
    combo_of = _row_combos(fam)
    pred, code = np.full(len(rows), np.nan), np.full(len(rows), Source.ROOFLINE.code, dtype=np.int8)
    for i, r in enumerate(rows):
        combo = combo_of[r]
        gi = fam.interp(combo)
        if gi is None:
            continue
        local = np.flatnonzero(gi.table_rows == r)
        if local.size == 0:   # an unusable row (non-positive latency or roofline) is never predicted
            continue
        reduced = gi.without_node_of(int(local[0]))
        sol = fam.sol_of_rows(combo, np.array([r]))
        ms, c = view.table_rungs(fam, combo, fam.raw[r:r + 1], sol, interp=reduced)
        if np.isnan(ms[0]):
            ms = view.roofline_ms(_case_for_row(fam, combo, r), sol)
        pred[i], code[i] = ms[0], c[0]
    return pred, code


def _case_for_row(fam: FamilyTable, combo: tuple, r: int):
    return make_case(fam.kind, combo, {a: fam.raw[r:r + 1, j] for j, a in enumerate(fam.axes)})


def _accuracy(op: OpKind, dtype: str, err: np.ndarray, code: np.ndarray) -> InterpAccuracy:
    sources = tuple((s, int(np.sum(code == s.code))) for s in Source if np.any(code == s.code))
    return InterpAccuracy(op, dtype, int(err.size), float(np.median(err)), float(np.percentile(err, 90)), sources)


def check_interp(view: DbView, op: OpKind, sample: int = 2000, seed: int = 0) -> CheckInterpReport:
    """Leave-one-out over up to `sample` rows of one op family of a view."""
    if sample < 1:
        raise InputError(f"--sample {sample}: must be >= 1 rows (e.g. 2000)")
    if seed < 0:
        raise InputError(f"--seed {seed}: must be >= 0")
    fam = view.family(op)
    if fam is None:
        raise NotFoundError(f"no {op.value} rows for {view.system.name}/{view.backend.value}"
                            f"{'/' + view.version if view.version else ''}; nothing to check")
    rng = np.random.default_rng(seed)
    n = fam.num_rows
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False)) if sample < n else np.arange(n)
    pred, code = loo_predict(view, fam, rows)
    ok = np.isfinite(pred)
    rows, pred, code = rows[ok], pred[ok], code[ok]
    meas = fam.latency[rows]
    err = np.abs(pred - meas) / meas
    dtype_col = fam.cat_fields.index("dtype")
    dtypes = np.array([c[dtype_col] for c in _row_combos(fam)], dtype=object)[rows]
    results = [_accuracy(op, "all", err, code)]
    for dt in sorted(set(dtypes)):
        sel = dtypes == dt
        results.append(_accuracy(op, str(dt), err[sel], code[sel]))
    return CheckInterpReport(view.system.name, view.backend.value, fam.version, op, n, int(rows.size), seed,
                             tuple(results))
