"""Pareto frontier over (tokens/s/user, tokens/s/GPU): both are maximised.

A point is on the frontier when no other point is at least as good on both axes and better on one.
O(n log n): sort by user speed descending, keep points whose GPU throughput beats every faster one.
"""
from __future__ import annotations

import numpy as np


def frontier(user_tps: np.ndarray, gpu_tps: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Row indices on the frontier, ordered by tokens/s/user ascending (ready to draw as a line)."""
    x = np.asarray(user_tps, dtype=np.float64)
    y = np.asarray(gpu_tps, dtype=np.float64)
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y) & (mask if mask is not None else True))
    if not len(idx):
        return idx
    # Descending x; among equal x, descending y so the best of a tie comes first.
    order = idx[np.lexsort((-y[idx], -x[idx]))]
    ys = y[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(ys)[:-1]))
    keep = order[ys > best_before]
    return keep[::-1]
