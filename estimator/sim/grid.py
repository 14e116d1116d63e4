"""Multilinear interpolation on a rectilinear grid, in plain Python for scalar queries in the event loop.

The step model is cheap per point but not per call (a few ms of op composition), so the simulator
evaluates it once on a grid with one vectorised call and interpolates scalars from that grid.
Queries outside the grid clamp to its edge (grids are built to cover every reachable step).
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import product

import numpy as np


def log_axis(lo: float, hi: float, points: int) -> np.ndarray:
    """Distinct integers from lo to hi, geometrically spaced (dense where step times bend)."""
    hi = max(hi, lo)
    return np.unique(np.rint(np.geomspace(max(lo, 1), max(hi, 1), points)))


class Grid:
    def __init__(self, axes: tuple[np.ndarray, ...], values: np.ndarray):
        self.axes = [np.asarray(a, dtype=np.float64).tolist() for a in axes]
        self.values = np.asarray(values, dtype=np.float64)
        self._flat = self.values.ravel().tolist()
        self._strides = [s // 8 for s in self.values.strides]

    @staticmethod
    def evaluate(fn, axes: tuple[np.ndarray, ...]) -> "Grid":
        """Grid of fn(*mesh) with one broadcast call."""
        n = len(axes)
        mesh = [np.asarray(a, dtype=np.float64).reshape([-1 if i == j else 1 for j in range(n)]) for i, a in enumerate(axes)]
        shape = tuple(len(a) for a in axes)
        vals = np.broadcast_to(np.asarray(fn(*mesh), dtype=np.float64), shape)
        return Grid(axes, np.ascontiguousarray(vals))

    def __call__(self, *x: float) -> float:
        idx, frac = [], []
        for axis, v in zip(self.axes, x, strict=True):
            if len(axis) == 1 or v <= axis[0]:
                idx.append(0)
                frac.append(0.0)
                continue
            if v >= axis[-1]:
                idx.append(len(axis) - 2)
                frac.append(1.0)
                continue
            i = bisect_right(axis, v) - 1
            idx.append(i)
            frac.append((v - axis[i]) / (axis[i + 1] - axis[i]))
        total = 0.0
        flat, strides = self._flat, self._strides
        for corner in product((0, 1), repeat=len(idx)):
            w, off = 1.0, 0
            for c, i, f, s in zip(corner, idx, frac, strides, strict=True):
                if c:
                    if f == 0.0:
                        w = 0.0
                        break
                    w *= f
                    off += (i + 1) * s
                else:
                    w *= 1.0 - f
                    off += i * s
            if w:
                total += w * flat[off]
        return total
