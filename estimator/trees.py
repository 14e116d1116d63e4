"""Gradient-boosted regression trees stored as plain arrays (a calibration's residual model).

Data, not code: a calibration artifact carries them as JSON number lists, so loading someone else's
calibration executes nothing (no pickle); `predict` evaluates them with numpy alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trees:
    """Gradient-boosted regression trees as arrays (sklearn tree_ layout): prediction =
    init + learning_rate * sum over trees of value[leaf]. Leaf nodes have left == -1."""

    init: float
    learning_rate: float
    left: tuple[tuple[int, ...], ...]
    right: tuple[tuple[int, ...], ...]
    feature: tuple[tuple[int, ...], ...]
    threshold: tuple[tuple[float, ...], ...]
    value: tuple[tuple[float, ...], ...]

    def predict(self, x: np.ndarray) -> np.ndarray:
        # Each (shallow) tree as nested np.where over whole feature columns: a handful of vectorised calls
        # per tree instead of per-row index walking; a plan applies the trees to ~10^4-10^5 points.
        cols = np.ascontiguousarray(np.asarray(x, dtype=np.float64).T)
        out = np.full(x.shape[0], self.init, dtype=np.float64)
        for left, right, feat, thr, val in zip(self.left, self.right, self.feature, self.threshold, self.value,
                                               strict=True):
            out += self.learning_rate * _tree_value(0, left, right, feat, thr, val, cols)
        return out


def _tree_value(node, left, right, feat, thr, val, cols):
    """Value of the subtree at `node` for every column entry (a scalar where the subtree is a leaf)."""
    if left[node] < 0:
        return val[node]
    return np.where(cols[feat[node]] <= thr[node], _tree_value(left[node], left, right, feat, thr, val, cols),
                    _tree_value(right[node], left, right, feat, thr, val, cols))
