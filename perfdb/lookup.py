"""The lookup ladder: db.view(system, backend, version).latency(case) -> Latency(ms, source).

Rungs, best first: exact hit (measured) -> interpolation in utilisation space (interpolated) ->
boundary utilisation held outside the data (extrapolated) -> roofline x per-(GPU, op family, dtype)
efficiency (roofline). Never a silent zero, never a fabricated exact hit.

Vectorised: a case's numeric fields are arrays; one call answers all of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfdb.ops import OpCase
from perfdb.roofline import sol_ms
from perfdb.specs import SystemSpec, load_system
from perfdb.types import Backend, Source


@dataclass(frozen=True)
class Latency:
    ms: np.ndarray       # float64, the case's shape
    source: np.ndarray   # int8 codes of Source (Source.from_code), the case's shape

    def worst_source(self) -> Source:
        return Source.from_code(int(self.source.max())) if self.source.size else Source.MEASURED


# Placeholder efficiency until the bundled curves land (perfdb issue, item 8).
_DEFAULT_UTIL = 0.6


class DbView:
    """The tables of one (system, backend, version) and the ladder over them."""

    def __init__(self, db: "PerfDB", system: SystemSpec, backend: Backend, version: str | None):
        self.db, self.system, self.backend, self.version = db, system, backend, version

    def latency(self, case: OpCase) -> Latency:
        ms = sol_ms(case, self.system) / _DEFAULT_UTIL
        return Latency(ms=ms, source=np.full(ms.shape, Source.ROOFLINE.code, dtype=np.int8))


class PerfDB:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else None

    def view(self, system: str, backend: Backend, version: str | None = None) -> DbView:
        return DbView(self, load_system(system), backend, version)
