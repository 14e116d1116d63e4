"""Efficiency curves: achieved utilisation (sol_ms / latency_ms) as a function of problem size,
per (system, op family, dtype), optionally per backend and per comm group. They power the `roofline`
rung of the lookup ladder, and the bundled default database is made of them.

    curves = EfficiencyCurves.load(db_root)        # reads <db_root>/efficiency.parquet if present
    curves.util(system, kind, dtype, sol_ms) -> np.ndarray in [UTIL_FLOOR, UTIL_CEIL]
    curves.util_for(system, case, sol_ms, backend) # also uses the backend and, for comm, op/num_gpus/transport

A curve is a list of knots (log10 sol_ms, util), non-decreasing in util (bigger problems use the GPU
better). Between knots: linear in log10(sol_ms). Above the last knot the util is held. Below the
first knot the *latency* is held (util scales with sol_ms): small kernels and small messages are
launch/latency-bound, so a 1 KiB all-reduce costs the floor latency, not 1 KiB / link bandwidth.

Fallbacks, most specific first: (backend, comm group) -> backend-agnostic ('*') -> pooled comm group
('') -> related dtype on the same system (fp8_block -> fp8 -> bf16, ...) -> DEFAULT_UTIL.
Curves for a system that had no measurement of a family/dtype are copied at build time from the
closest system, and meta.yaml says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from perfdb.errors import DataError
from perfdb.ops import CommCase, OpCase
from perfdb.types import Backend, Dtype, OpKind

DEFAULT_UTIL = 0.6   # used when no curve covers (system, op, dtype); deliberately modest
UTIL_CEIL = 0.95     # no roofline estimate claims more than 95% of the datasheet peak
UTIL_FLOOR = 1e-6    # tiny ops reach << 1% of peak (launch/latency-bound): a 0.01 floor would make them 100x too fast
ANY_BACKEND = "*"
FILENAME = "efficiency.parquet"

CURVE_SCHEMA = pa.schema([
    pa.field("system", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),           # OpKind value
    pa.field("dtype", pa.string(), nullable=False),          # Dtype value
    pa.field("backend", pa.string(), nullable=False),        # Backend value or "*"
    pa.field("group", pa.string(), nullable=False),          # comm: "<op>/<num_gpus>/<transport>"; "" = pooled
    pa.field("log10_sol_ms", pa.float64(), nullable=False),  # knot position, increasing within a curve
    pa.field("util", pa.float64(), nullable=False),          # knot utilisation, non-decreasing within a curve
])

# Where a dtype has no curve on a system, the closest format whose kernels behave alike.
DTYPE_FALLBACK: dict[Dtype, tuple[Dtype, ...]] = {
    Dtype.FP8_BLOCK: (Dtype.FP8, Dtype.BF16),
    Dtype.FP8: (Dtype.FP8_BLOCK, Dtype.BF16),
    Dtype.NVFP4: (Dtype.FP8, Dtype.BF16),
    Dtype.MXFP4: (Dtype.NVFP4, Dtype.BF16),
    Dtype.FP16: (Dtype.BF16,),
    Dtype.BF16: (Dtype.FP16,),
    Dtype.INT8: (Dtype.FP8, Dtype.BF16),
    Dtype.FP32: (Dtype.BF16,),
}

CurveKey = tuple[str, str, str, str, str]   # system, kind, dtype, backend, group


def comm_group(case: CommCase) -> str:
    return f"{case.op.value}/{case.num_gpus}/{case.transport.value}"


def evaluate(xs: np.ndarray, us: np.ndarray, sol_ms: np.ndarray) -> np.ndarray:
    """Utilisation at sol_ms on the curve (xs = log10 sol_ms knots, us = util knots), clamped."""
    sol = np.asarray(sol_ms, dtype=np.float64)
    x = np.log10(np.maximum(sol, 1e-12))
    u = np.interp(x, xs, us)
    below = x < xs[0]
    if below.any():
        u = np.where(below, us[0] * np.power(10.0, x - xs[0]), u)   # latency held at the first knot's
    return np.clip(u, UTIL_FLOOR, UTIL_CEIL)


class EfficiencyCurves:
    def __init__(self, curves: dict[CurveKey, tuple[np.ndarray, np.ndarray]] | None = None):
        self._curves = curves or {}

    @classmethod
    def from_table(cls, table: pa.Table) -> "EfficiencyCurves":
        names = ("system", "kind", "dtype", "backend", "group")
        keys = list(zip(*(table.column(n).to_pylist() for n in names), strict=True))
        # to_pylist, not to_numpy: ChunkedArray.to_numpy imports pandas (~1 s of CLI start-up)
        xs = np.asarray(table.column("log10_sol_ms").to_pylist(), dtype=np.float64)
        us = np.asarray(table.column("util").to_pylist(), dtype=np.float64)
        rows: dict[CurveKey, list[int]] = {}
        for i, key in enumerate(keys):
            rows.setdefault(key, []).append(i)
        out = {}
        for key, idx in rows.items():
            idx = np.asarray(idx)[np.argsort(xs[idx], kind="stable")]
            out[key] = (xs[idx], us[idx])
        return cls(out)

    @classmethod
    def load(cls, root: Path | None) -> "EfficiencyCurves":
        """Curves of the database at root (<root>/efficiency.parquet); empty (DEFAULT_UTIL) when absent."""
        if root is None or not (Path(root) / FILENAME).is_file():
            return cls()
        path = Path(root) / FILENAME
        try:
            table = pq.ParquetFile(path).read()   # not read_table: the dataset layer costs ~1 s to import
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"corrupt efficiency curves {path}: {exc}") from None
        missing = [n for n in CURVE_SCHEMA.names if n not in table.column_names]
        if missing:
            raise DataError(f"efficiency curves {path} lack column(s) {', '.join(missing)}; expected {', '.join(CURVE_SCHEMA.names)}")
        return cls.from_table(table)

    def keys(self) -> tuple[CurveKey, ...]:
        return tuple(self._curves)

    def curve(self, system: str, kind: OpKind, dtype: Dtype, backend: Backend | None = None,
              group: str = "") -> tuple[CurveKey, tuple[np.ndarray, np.ndarray]] | None:
        """The most specific stored curve for the request, following the fallbacks; None if none."""
        backends = ([backend.value] if backend is not None else []) + [ANY_BACKEND]
        groups = [group, ""] if group else [""]
        for d in (dtype, *DTYPE_FALLBACK.get(dtype, ())):
            for g in groups:
                for b in backends:
                    key = (system, kind.value, d.value, b, g)
                    if key in self._curves:
                        return key, self._curves[key]
        return None

    def util(self, system: str, kind: OpKind, dtype: Dtype, sol_ms: np.ndarray) -> np.ndarray:
        found = self.curve(system, kind, dtype)
        if found is None:
            return np.full(np.shape(sol_ms), DEFAULT_UTIL)
        return evaluate(*found[1], sol_ms)

    def util_for(self, system: str, case: OpCase, sol_ms: np.ndarray, backend: Backend | None = None) -> np.ndarray:
        """As util(), but backend-specific where the backends differ, and per comm op/num_gpus/transport."""
        group = comm_group(case) if isinstance(case, CommCase) else ""
        found = self.curve(system, case.KIND, case.dtype, backend, group)
        if found is None:
            return np.full(np.shape(sol_ms), DEFAULT_UTIL)
        return evaluate(*found[1], sol_ms)
