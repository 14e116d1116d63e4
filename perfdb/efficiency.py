"""Efficiency curves: achieved utilisation (sol_ms / latency_ms) as a function of problem size,
per (system, op family, dtype). They power the `roofline` rung of the lookup ladder, and the bundled
default database is made of them.

INTERFACE (owned by the bundled-database work; the lookup ladder only calls `util`):
    curves = EfficiencyCurves.load(db_root)        # reads <db_root>/efficiency.parquet if present
    curves.util(system, kind, dtype, sol_ms) -> np.ndarray in (0, 1]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from perfdb.types import Dtype, OpKind

DEFAULT_UTIL = 0.6  # used when no curve covers (system, op, dtype); deliberately modest


class EfficiencyCurves:
    def __init__(self, curves: dict | None = None):
        self._curves = curves or {}

    @classmethod
    def load(cls, root: Path | None) -> "EfficiencyCurves":
        return cls()

    def util(self, system: str, kind: OpKind, dtype: Dtype, sol_ms: np.ndarray) -> np.ndarray:
        return np.full(np.shape(sol_ms), DEFAULT_UTIL)
