"""Strict SLA filtering: a point counts only if it fits in memory and meets every target.

When nothing does, `diagnose` finds the points closest to the targets (smallest worst ratio of
predicted / target over the constraints) and names the constraint that binds: the one the closest
point misses by most, or memory when nothing fits at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.points import PointTable
from search.types import Constraint, Sla, SlaAt


def checked(ttft, tpot, latency, ttft_hi, tpot_hi, sla: Sla):
    """The (TTFT, TPOT, request latency) the targets are checked on: the prediction, or with
    `--sla-at upper` the upper ends of its intervals (latency = TTFT + (OSL - 1) x TPOT at those ends).
    Arrays or floats."""
    if sla.at == SlaAt.MEDIAN:
        return ttft, tpot, latency
    with np.errstate(invalid="ignore", divide="ignore"):
        return ttft_hi, tpot_hi, ttft_hi + (latency - ttft) * tpot_hi / tpot


def target_ratios(ttft, tpot, latency, sla: Sla) -> dict[Constraint, object]:
    """Checked value / target per constraint (<= 1 meets it), from values `checked` returned. Arrays or floats."""
    out = {Constraint.TTFT: ttft / sla.ttft_ms, Constraint.TPOT: tpot / sla.tpot_ms}
    if sla.request_latency_ms is not None:
        out[Constraint.REQUEST_LATENCY] = latency / sla.request_latency_ms
    return out


def within(ttft, tpot, latency, sla: Sla):
    """Whether values `checked` returned meet every target (arrays or floats; NaN never meets): the one
    SLA test of the static points, the estimator's re-check and the simulator's replays."""
    ok = (ttft <= sla.ttft_ms) & (tpot <= sla.tpot_ms)
    if sla.request_latency_ms is not None:
        ok = ok & (latency <= sla.request_latency_ms)
    return ok


def _checked_points(points: PointTable, sla: Sla):
    hi = (None, None) if sla.at == SlaAt.MEDIAN else (points["ttft_hi_ms"], points["tpot_hi_ms"])
    return checked(points["ttft_ms"], points["tpot_ms"], points["request_latency_ms"], *hi, sla)


def ratios(points: PointTable, sla: Sla) -> dict[Constraint, np.ndarray]:
    """Checked value / target per constraint of every point (<= 1 meets it)."""
    return target_ratios(*_checked_points(points, sla), sla)


def meets(points: PointTable, sla: Sla) -> np.ndarray:
    """Boolean mask: feasible in memory and every target met (NaN never meets)."""
    return points["feasible"].astype(bool) & within(*_checked_points(points, sla), sla)


@dataclass(frozen=True)
class Diagnosis:
    binding: Constraint                  # the constraint that rules out the closest points
    closest_rows: tuple[int, ...]        # best first
    meeting_each: dict                   # Constraint -> number of feasible points meeting it alone
    feasible_points: int


def diagnose(points: PointTable, sla: Sla, n: int = 5) -> Diagnosis:
    feasible = points["feasible"].astype(bool)
    rs = ratios(points, sla)
    meeting = {c: int(np.count_nonzero(feasible & (r <= 1.0))) for c, r in rs.items()}
    if not feasible.any():
        return Diagnosis(Constraint.MEMORY, (), meeting, 0)
    stacked = np.vstack([np.nan_to_num(r, nan=np.inf) for r in rs.values()])
    worst = stacked.max(axis=0)
    worst = np.where(feasible, worst, np.inf)
    order = np.argsort(worst, kind="stable")[:n]
    order = order[np.isfinite(worst[order])]
    if not len(order):
        return Diagnosis(Constraint.MEMORY, (), meeting, int(feasible.sum()))
    names = list(rs)
    binding = names[int(np.argmax(stacked[:, order[0]]))]
    return Diagnosis(binding, tuple(int(i) for i in order), meeting, int(feasible.sum()))
