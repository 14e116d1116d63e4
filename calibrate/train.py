"""Fit + the three held-out protocols + their nested interval check in one call: what `servecast calibrate
fit` runs (and `calibrate validate` without a calibration).

Under each protocol (calibrate.heldout: by deployment, one model out, one system out), every row is
predicted by a calibration fitted entirely without it: point fit, reach decisions and intervals, the
last two from inner protocols on that fit's own rows. So the reported errors and interval coverage are
those of a calibration that never saw the row, as new to it as the protocol makes it. The calibration
stored is fitted on all rows, its reach and intervals from the outer protocols' held-out rows.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.fit import METRICS, FitOptions, corrected_logs, fold_ids, log_ratio, usable
from calibrate.heldout import HeldOut, Protocol, finish, fit_full, test_masks
from calibrate.validate import error_stats
from estimator.calibration import Calibration
from perfdb.errors import InputError

# column prefix of each protocol's held-out predictions in FitResult.rows, and its training-summary name
PREFIX = {Protocol.DEPLOYMENT: "cv_", Protocol.MODEL: "lomo_", Protocol.SYSTEM: "loso_"}
SUMMARY = {Protocol.DEPLOYMENT: "cv", Protocol.MODEL: "leave_one_model_out", Protocol.SYSTEM: "leave_one_system_out"}


@dataclass(frozen=True)
class FitResult:
    calibration: Calibration
    rows: pd.DataFrame          # usable rows: fold; per protocol (PREFIX p): <p><metric> calibrated by a fit without
    #                             the row, <p>covered_<metric> 1/0 inside that fit's 80% interval (NaN: not held
    #                             out), <p>novelty how new the row was to that fit
    excluded: pd.DataFrame      # rows not used, with the reason in status
    fold_errors: pd.DataFrame   # per fold and metric: rows, median/mean/p90 abs % error before and after



def _inner_opts(opts: FitOptions, frame: pd.DataFrame) -> FitOptions:
    return replace(opts, folds=max(2, min(opts.inner_folds, frame["deployment_key"].nunique())))


def _covered(cal: Calibration, frame: pd.DataFrame, metric: str, resid: np.ndarray) -> np.ndarray:
    """1.0 where log(measured / calibrated) lies inside the interval `cal` gives the row, else 0.0."""
    cols = [frame[c].astype(str).to_numpy() for c in ("mode", "model_key", "system", "backend")]
    out = np.zeros(len(frame))
    for i, key in enumerate(zip(*cols, strict=True)):
        q = cal.interval(metric, *key)
        out[i] = float(q is not None and q.lo <= resid[i] <= q.hi)
    return out


def _protocol(data: pd.DataFrame, protocol: Protocol, opts: FitOptions, base: str, rows: pd.DataFrame) -> HeldOut:
    """Fill `rows` with the nested predictions of one protocol; returns the outer fits' parts."""
    held = HeldOut.empty(len(data))
    pre = PREFIX[protocol]
    cal_logs = {m: np.full(len(data), np.nan) for m in METRICS}
    covered = {m: np.full(len(data), np.nan) for m in METRICS}
    for i, mask in enumerate(test_masks(data, protocol, opts.folds, opts.seed)):
        tr, te = data[~mask].reset_index(drop=True), data[mask].reset_index(drop=True)
        cal_k = fit_full(tr, _inner_opts(opts, tr), base)
        held.fill(mask, cal_k, te, f"{protocol.value}:{i}")
        for m in METRICS:
            cal_logs[m][mask] = c = corrected_logs(cal_k, te, m)
            covered[m][mask] = _covered(cal_k, te, m, log_ratio(te, m) - c)
    for m in METRICS:
        rows[f"{pre}{m}"] = rows[f"pred_{m}"] * np.exp(cal_logs[m])
        rows[f"{pre}covered_{m}"] = covered[m]
    rows[f"{pre}novelty"] = held.novelty
    return held


def train(frame: pd.DataFrame, opts: FitOptions, base: str) -> FitResult:
    data = usable(frame)
    excluded = frame[frame["status"] != "ok"].reset_index(drop=True)
    if data.empty:
        reasons = excluded["status"].value_counts().head(3).to_dict() if len(excluded) else {}
        raise InputError(f"no run could be predicted and measured; reasons: {reasons or 'no rows'}")
    rows = data.copy()
    rows["fold"] = fold_ids(data, opts.folds, opts.seed)
    helds = [_protocol(data, p, opts, base, rows) for p in Protocol]
    cal = finish(data, helds, opts, base)
    return FitResult(replace(cal, training=_summary(rows, excluded, opts)), rows, excluded, _fold_errors(rows))


def _fold_errors(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for k, g in rows.groupby("fold"):
        for m in METRICS:
            before = error_stats(g[f"measured_{m}"], g[f"pred_{m}"])
            after = error_stats(g[f"measured_{m}"], g[f"cv_{m}"])
            out.append({"fold": int(k), "metric": m, "rows": len(g), "deployments": g["deployment_key"].nunique(),
                        **{f"before_{s}": v for s, v in before.items()}, **{f"after_{s}": v for s, v in after.items()}})
    return pd.DataFrame(out)


def _summary(rows: pd.DataFrame, excluded: pd.DataFrame, opts: FitOptions) -> dict:
    out = {"rows": int(len(rows)), "deployments": int(rows["deployment_key"].nunique()),
           "excluded_rows": int(len(excluded)), "folds": opts.folds, "residual": opts.residual,
           "min_rows": opts.min_rows, "min_deployments": opts.min_deployments,
           "sources": sorted({Path(s).name for s in rows.get("source_file", pd.Series(dtype=str)).dropna().astype(str)})
           or None}
    for m in METRICS:
        out[f"{m}_before"] = error_stats(rows[f"measured_{m}"], rows[f"pred_{m}"])
        for p, name in SUMMARY.items():
            cov = rows[f"{PREFIX[p]}covered_{m}"]
            if cov.notna().any():   # a leave-one-out needs two models / systems
                out[f"{m}_after_{name}"] = error_stats(rows[f"measured_{m}"], rows[f"{PREFIX[p]}{m}"])
                out[f"{m}_interval_coverage_{name}"] = float(cov.mean())
                out[f"{m}_interval_coverage_{name}_by_mode"] = {str(k): float(v) for k, v in
                                                                 cov.groupby(rows["mode"]).mean().dropna().items()}
    return out
