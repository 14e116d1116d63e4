"""Strict SLA filtering: a point counts only if it fits in memory and meets every target.

When nothing does, `diagnose` finds the points closest to the targets (smallest worst ratio of
predicted / target over the constraints) and names the constraint that binds: the one the closest
point misses by most, or memory when nothing fits at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.points import PointTable
from search.types import Constraint, Sla


def ratios(points: PointTable, sla: Sla) -> dict[Constraint, np.ndarray]:
    """Predicted / target per constraint (<= 1 meets it)."""
    out = {
        Constraint.TTFT: points["ttft_ms"] / sla.ttft_ms,
        Constraint.TPOT: points["tpot_ms"] / sla.tpot_ms,
    }
    if sla.request_latency_ms is not None:
        out[Constraint.REQUEST_LATENCY] = points["request_latency_ms"] / sla.request_latency_ms
    return out


def meets(points: PointTable, sla: Sla) -> np.ndarray:
    """Boolean mask: feasible in memory and every ratio <= 1 (NaN never meets)."""
    ok = points["feasible"].astype(bool).copy()
    for r in ratios(points, sla).values():
        ok &= r <= 1.0
    return ok


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
