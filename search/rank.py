"""Ranking: the best SLA-meeting points per mode, one per deployment shape, and the winner.

A shape is everything but the batch limit and token budget (mode, backend, parallelism, worker
counts): the table shows each shape at its best load instead of the same shape ten times.
Order: tokens/s/GPU descending, then tokens/s/user descending, then fewer GPUs used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.points import MODES, PointTable
from search.types import Mode

_SHAPE = ("mode", "backend", "replicas", "p_tp", "p_pp", "p_dp", "p_moe_tp", "p_moe_ep", "p_workers",
          "d_tp", "d_pp", "d_dp", "d_moe_tp", "d_moe_ep", "d_workers")


def ranked(points: PointTable, mask: np.ndarray) -> np.ndarray:
    """Rows of `mask`, best first."""
    idx = np.flatnonzero(mask)
    order = np.lexsort((points["gpus_used"][idx], -points["tokens_per_s_per_user"][idx],
                        -points["tokens_per_s_per_gpu"][idx]))
    return idx[order]


def top_shapes(points: PointTable, mask: np.ndarray, n: int) -> tuple[int, ...]:
    """The best row of each of the n best shapes among `mask` (walks the ranking until n shapes)."""
    rows = ranked(points, mask)
    cols = [points[c] for c in _SHAPE]
    seen, out = set(), []
    for r in rows:
        key = tuple(int(c[r]) for c in cols)
        if key not in seen:
            seen.add(key)
            out.append(int(r))
            if len(out) == n:
                break
    return tuple(out)


@dataclass(frozen=True)
class Ranking:
    top: dict                 # Mode -> tuple of rows (best first), SLA-meeting only
    winner: int | None        # best SLA-meeting row over all modes
    winner_mode: Mode | None
    speedup: float | None     # winner tokens/s/GPU over the other mode's best (None if it has none)


def rank(points: PointTable, ok: np.ndarray, modes: tuple[Mode, ...], n: int) -> Ranking:
    top = {}
    for mode in modes:
        top[mode] = top_shapes(points, ok & (points["mode"] == MODES.index(mode)), n)
    best = {m: rows[0] for m, rows in top.items() if rows}
    if not best:
        return Ranking(top, None, None, None)
    gpu_tps = points["tokens_per_s_per_gpu"]
    winner_mode = max(best, key=lambda m: (gpu_tps[best[m]], m == Mode.AGG))
    winner = best[winner_mode]
    others = [gpu_tps[r] for m, r in best.items() if m != winner_mode]
    speedup = float(gpu_tps[winner] / max(others)) if others and max(others) > 0 else None
    return Ranking(top, winner, winner_mode, speedup)
