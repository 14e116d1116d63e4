"""A calibrated plan: the calibration's correction applied to every evaluated point before the SLA filter.

`servecast plan --calibration DIR` (or a calibration stored in <db>/calibrations/) must check the
targets on the calibrated prediction, so the correction is applied to the whole point table, one
`Calibration.correct_log` call per (backend, mode) scope over arrays, and the derived columns follow:
request latency = TTFT + (OSL - 1) x TPOT, tokens/s/user = 1000 / TPOT, and tokens/s/GPU scaled by
raw latency / calibrated latency (closed loop at fixed concurrency), as estimator.calibration does
for one Estimate. The prediction intervals are the calibrated value times exp(cross-validated log
residual quantiles) of the point's mode, written as ttft_lo_ms/ttft_hi_ms/tpot_lo_ms/tpot_hi_ms.

Only calibrations fitted with `--base estimate` apply: the search composes the analytic estimator's
numbers, and a `--base simulate` calibration corrects the simulator's queueing-aware output instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from estimator.calibration import Calibration, context_for, model_key
from perfdb.types import Source
from search.points import BACKENDS, MODES, OPTIONAL_COLUMNS, PointTable
from search.types import Mode

BASE = "estimate"                     # the prediction the search's numbers are
INTERVAL_COLUMNS = OPTIONAL_COLUMNS     # ttft_lo_ms, ttft_hi_ms, tpot_lo_ms, tpot_hi_ms


@dataclass(frozen=True)
class PointInterval:
    ttft_ms: tuple[float, float]
    tpot_ms: tuple[float, float]
    coverage: float


def instance_gpus(points: PointTable, rows: np.ndarray) -> np.ndarray:
    """GPUs of one engine instance (agg replica / decode worker), the fit's `gpus` feature."""
    return (points["d_tp"][rows] * points["d_pp"][rows] * points["d_dp"][rows]).astype(np.float64)


def unit_concurrency(points: PointTable, rows: np.ndarray) -> np.ndarray:
    """Requests in flight per agg replica or per xPyD group (the fit's concurrency feature): the same
    replica shape gets the same correction at any total GPU count."""
    agg = points["mode"][rows] == MODES.index(Mode.AGG)
    units = np.where(agg, points["d_workers"][rows], points["replicas"][rows]).astype(np.float64)
    return points["concurrency"][rows] / np.maximum(units, 1.0)


def calibrate_points(points: PointTable, calibrations: dict, system: str, versions: dict, isl: int,
                     osl: int, model=None) -> PointTable:
    """The table with calibrated TTFT/TPOT and what follows from them, source CALIBRATED and interval
    columns, for the rows of every backend in `calibrations` (Backend -> Calibration)."""
    cols = {c: np.array(points[c], copy=True) for c in ("ttft_ms", "tpot_ms", "request_latency_ms",
                                                        "tokens_per_s_per_gpu", "tokens_per_s_per_user", "source")}
    bounds = {c: np.full(len(points), np.nan) for c in INTERVAL_COLUMNS}
    for backend, cal in calibrations.items():
        for mode in MODES:
            rows = np.flatnonzero((points["backend"] == BACKENDS.index(backend)) & (points["mode"] == MODES.index(mode))
                                  & points["feasible"])   # rows that do not fit never meet the targets
            if len(rows):
                _scope(points, rows, cal, context_for(system, backend.value, versions.get(backend), mode.value,
                                                      isl, osl, None, model=model), osl, cols, bounds)
    out = points
    for name, values in (*cols.items(), *bounds.items()):
        out = out.with_column(name, values)
    return out


def _scope(points: PointTable, rows: np.ndarray, cal: Calibration, ctx, osl: int, cols: dict, bounds: dict) -> None:
    """Correct `rows` (one backend and mode) in place in `cols`/`bounds`."""
    raw_ttft, raw_tpot = points["ttft_ms"][rows], points["tpot_ms"][rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = ctx.features(unit_concurrency(points, rows), raw_ttft, raw_tpot, instance_gpus(points, rows))
        key = ctx.key
        ttft = raw_ttft * np.exp(cal.correct_log("ttft", key, x))
        tpot = raw_tpot * np.exp(cal.correct_log("tpot", key, x))
        latency = ttft + (osl - 1.0) * tpot
        cols["tokens_per_s_per_gpu"][rows] = points["tokens_per_s_per_gpu"][rows] * \
            points["request_latency_ms"][rows] / latency
        cols["tokens_per_s_per_user"][rows] = 1e3 / tpot
    cols["ttft_ms"][rows], cols["tpot_ms"][rows], cols["request_latency_ms"][rows] = ttft, tpot, latency
    cols["source"][rows] = Source.CALIBRATED.code
    for metric, value in (("ttft", ttft), ("tpot", tpot)):
        q = cal.interval(metric, ctx.mode, ctx.model, ctx.system, ctx.backend)
        if q is not None:
            bounds[f"{metric}_lo_ms"][rows] = value * math.exp(q.lo)
            bounds[f"{metric}_hi_ms"][rows] = value * math.exp(q.hi)


def interval(cal: Calibration | None, mode: Mode, ttft_ms: float, tpot_ms: float,
             model: str | None = None, system: str | None = None) -> PointInterval | None:
    """The prediction intervals of one (calibrated) candidate of `model` (HF id or path) on `system`
    (wider when the calibration never saw that pair), or None without a calibration."""
    if cal is None:
        return None
    key = model_key(model) if model else None
    qt, qp = cal.interval("ttft", mode.value, key, system), cal.interval("tpot", mode.value, key, system)
    if qt is None or qp is None:
        return None
    return PointInterval((ttft_ms * math.exp(qt.lo), ttft_ms * math.exp(qt.hi)),
                         (tpot_ms * math.exp(qp.lo), tpot_ms * math.exp(qp.hi)), qt.coverage)
