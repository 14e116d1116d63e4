"""Efficiency curves: achieved utilisation (sol_ms / latency_ms) as a function of problem size,
per (system, op family, dtype), optionally per backend and per comm group. They power the `roofline`
rung of the lookup ladder, and the bundled default database is made of them.

    curves = EfficiencyCurves.load(db_root)        # reads <db_root>/efficiency.parquet if present
    curves.util(system, kind, dtype, sol_ms) -> np.ndarray in [UTIL_FLOOR, UTIL_CEIL]
    curves.util_for(system, case, sol_ms, backend, intensity)
        # also uses the backend, for comm the op/num_gpus/transport, else the roofline regime

A curve is a list of knots (log10 sol_ms, util), non-decreasing in util (bigger problems use the GPU
better). Between knots: linear in log10(sol_ms). Above the last knot the util is held. Below the
first knot the *latency* is held (util scales with sol_ms): small kernels and small messages are
launch/latency-bound, so a 1 KiB all-reduce costs the floor latency, not 1 KiB / link bandwidth.

Fallbacks, most specific first: (backend, comm group) -> backend-agnostic ('*') -> pooled comm group
('') -> related dtype on the same system (fp8_block -> fp8 -> bf16, ...) -> the related family's curves
(KIND_FALLBACK, for families with none of their own) -> DEFAULT_UTIL.
Curves for a system that had no measurement of a family/dtype are copied at build time from the
closest system, and meta.yaml says so.
"""
from __future__ import annotations

import math
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
# Curve groups of compute ops by roofline regime (comm curves use "<op>/<num_gpus>/<transport>"); ""
# is the curve pooled over both regimes, the fallback for databases fitted before the split.
MEMORY_GROUP, COMPUTE_GROUP = "mem", "compute"
RIDGE_BLEND_DECADES = 1.0   # log10(compute/memory time) span around the ridge over which the two blend
FILENAME = "efficiency.parquet"

CURVE_SCHEMA = pa.schema([
    pa.field("system", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),           # OpKind value
    pa.field("dtype", pa.string(), nullable=False),          # Dtype value
    pa.field("backend", pa.string(), nullable=False),        # Backend value or "*"
    pa.field("group", pa.string(), nullable=False),          # comm: "<op>/<num_gpus>/<transport>"; else "mem" / "compute"; "" = pooled
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
    Dtype.INT4: (Dtype.MXFP4, Dtype.BF16),
    Dtype.W4A8_MXFP4: (Dtype.MXFP4, Dtype.NVFP4, Dtype.FP8),
}
# Where an op family has no curve at all (new families before any collection), the curve of the family
# whose kernels stress the GPU alike: chunked linear-attention scans are tiled attention-like kernels,
# the recurrent decode update streams a per-request state as paged decode streams KV, and sparse
# attention (alone or as a whole DSA module) is MLA-style attention over the selected tokens (a whole
# MSA module, a DeepSeek-V4 module: GQA attention over them); mHC streams its residual streams as the elementwise ops
# do. The rung stays labelled `roofline`.
KIND_FALLBACK: dict[OpKind, OpKind] = {
    OpKind.LINEAR_PREFILL: OpKind.ATTENTION_PREFILL,
    OpKind.LINEAR_DECODE: OpKind.ATTENTION_DECODE,
    OpKind.SPARSE_PREFILL: OpKind.MLA_PREFILL,
    OpKind.SPARSE_DECODE: OpKind.MLA_DECODE,
    OpKind.DSA_MODULE_PREFILL: OpKind.MLA_PREFILL,
    OpKind.DSA_MODULE_DECODE: OpKind.MLA_DECODE,
    OpKind.MSA_MODULE_PREFILL: OpKind.ATTENTION_PREFILL,
    OpKind.MSA_MODULE_DECODE: OpKind.ATTENTION_DECODE,
    OpKind.DSV4_MODULE_PREFILL: OpKind.ATTENTION_PREFILL,
    OpKind.DSV4_MODULE_DECODE: OpKind.ATTENTION_DECODE,
    OpKind.MHC_MODULE: OpKind.ELEMENTWISE,   # bandwidth-bound stream mixing (its GEMM is n = 24 wide)
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


def _codes(name: str, column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """(per-row integer code, distinct values) of a string column, through its dictionary encoding.
    Not to_numpy on the chunked column: that imports pandas (~1 s of CLI start-up)."""
    if column.null_count:
        raise DataError(f"efficiency curves: column {name} has empty values; every knot needs all of {', '.join(CURVE_SCHEMA.names)}")
    distinct: dict[str, int] = {}
    parts = []
    for chunk in column.chunks:
        enc = chunk if pa.types.is_dictionary(chunk.type) else chunk.dictionary_encode()
        local = np.array([distinct.setdefault(v, len(distinct)) for v in enc.dictionary.to_pylist()], dtype=np.int64)
        idx = np.frombuffer(enc.indices.buffers()[1], dtype=_INDEX_DTYPES[enc.indices.type.bit_width],
                            count=len(enc.indices),
                            offset=enc.indices.offset * enc.indices.type.bit_width // 8)
        parts.append(local[idx] if len(local) else idx.astype(np.int64))
    codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return codes, list(distinct)


def _floats(name: str, column: pa.ChunkedArray) -> np.ndarray:
    if column.null_count or column.type != pa.float64():
        raise DataError(f"efficiency curves: column {name} must be non-empty float64, got {column.type}")
    parts = [np.frombuffer(c.buffers()[1], dtype=np.float64, count=len(c), offset=c.offset * 8) for c in column.chunks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


_INDEX_DTYPES = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}


class EfficiencyCurves:
    def __init__(self, curves: dict[CurveKey, tuple[np.ndarray, np.ndarray]] | None = None):
        self._curves = curves or {}
        self._sizes: dict[tuple[str, str, str, str], tuple[str, ...]] = {}   # _other_sizes, memoised

    @classmethod
    def from_table(cls, table: pa.Table) -> "EfficiencyCurves":
        """Group the knot rows by curve key, each curve sorted by log10_sol_ms (ties in row order),
        curves in order of first appearance. Vectorised: one integer code per row and one stable
        sort, not a Python loop over the ~30k rows (~0.05 s of every CLI start)."""
        names = ("system", "kind", "dtype", "backend", "group")
        n = table.num_rows
        codes, values = [], []
        for name in names:
            c, v = _codes(name, table.column(name))
            codes.append(c)
            values.append(v)
        composite = np.zeros(n, dtype=np.int64)
        for c, v in zip(codes, values, strict=True):
            composite = composite * max(len(v), 1) + c
        xs = _floats("log10_sol_ms", table.column("log10_sol_ms"))
        us = _floats("util", table.column("util"))
        if n == 0:
            return cls({})
        _, first, group = np.unique(composite, return_index=True, return_inverse=True)
        order = np.lexsort((xs, group))            # stable: ties keep their row order
        bounds = np.flatnonzero(np.diff(group[order])) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [n]))
        out = {}
        for g in np.argsort(first, kind="stable"):  # curves in order of first appearance
            idx = order[starts[g]:ends[g]]
            r = int(idx[0])
            key = tuple(v[int(c[r])] for c, v in zip(codes, values, strict=True))
            out[key] = (xs[idx], us[idx])
        return cls(out)

    @classmethod
    def load(cls, root: Path | None) -> "EfficiencyCurves":
        """Curves of the database at root (<root>/efficiency.parquet); empty (DEFAULT_UTIL) when absent."""
        if root is None or not (Path(root) / FILENAME).is_file():
            return cls()
        path = Path(root) / FILENAME
        try:
            # not read_table: the dataset layer costs ~1 s to import; keys as dictionaries (from_table)
            table = pq.ParquetFile(path, read_dictionary=("system", "kind", "dtype", "backend", "group")).read()
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
        kinds = [kind] + ([KIND_FALLBACK[kind]] if kind in KIND_FALLBACK else [])
        for k in kinds:
            for d in (dtype, *DTYPE_FALLBACK.get(dtype, ())):
                groups = [group, *self._other_sizes(system, k.value, d.value, group), ""] if group else [""]
                for g in groups:
                    for b in backends:
                        key = (system, k.value, d.value, b, g)
                        if key in self._curves:
                            return key, self._curves[key]
        return None

    def _other_sizes(self, system: str, kind: str, dtype: str, group: str) -> tuple[str, ...]:
        """A comm group's ("op/num_gpus/transport") stored curves at other GPU counts of the same collective
        and transport, nearest count first (log scale; the larger on a tie): the same collective measured
        at 4 GPUs says more about 48 (DeepEP's fixed latency, NCCL's algorithm) than the pooled curve of
        every collective, which the all-reduces' microsecond latencies dominate."""
        memo, key = self._sizes, (system, kind, dtype, group)
        if key not in memo:
            parts = group.split("/")
            found: list[tuple[float, int, str]] = []
            if len(parts) == 3 and parts[1].isdigit():
                n = int(parts[1])
                for s, k, d, _, g in self._curves:
                    q = g.split("/")
                    if (s, k, d) == (system, kind, dtype) and len(q) == 3 and q[1].isdigit() and g != group \
                            and (q[0], q[2]) == (parts[0], parts[2]):
                        found.append((abs(math.log2(int(q[1]) / n)), -int(q[1]), g))
            memo[key] = tuple(dict.fromkeys(g for *_, g in sorted(found)))
        return memo[key]

    def util(self, system: str, kind: OpKind, dtype: Dtype, sol_ms: np.ndarray) -> np.ndarray:
        found = self.curve(system, kind, dtype)
        if found is None:
            return np.full(np.shape(sol_ms), DEFAULT_UTIL)
        return evaluate(*found[1], sol_ms)

    def util_for(self, system: str, case: OpCase, sol_ms: np.ndarray, backend: Backend | None = None,
                 intensity: np.ndarray | None = None) -> np.ndarray:
        """As util(), but backend-specific where the backends differ, per comm op/num_gpus/transport, and
        per roofline regime where `intensity` (perfdb.roofline.intensity_ratio) is given and the database
        has regime curves (groups MEMORY_GROUP / COMPUTE_GROUP; else the pooled curve). Within
        RIDGE_BLEND_DECADES of the ridge point the two curves are blended geometrically, so latency stays
        continuous as a shape crosses from one regime to the other."""
        if isinstance(case, CommCase) or intensity is None:
            return self._util_group(system, case, sol_ms, backend, comm_group(case) if isinstance(case, CommCase) else "")
        w = np.clip(np.asarray(intensity, dtype=np.float64) / RIDGE_BLEND_DECADES + 0.5, 0.0, 1.0)  # compute share
        w = np.broadcast_to(np.nan_to_num(w, nan=0.0), np.shape(sol_ms))
        if not w.any():
            return self._util_group(system, case, sol_ms, backend, MEMORY_GROUP)
        if (w == 1.0).all():
            return self._util_group(system, case, sol_ms, backend, COMPUTE_GROUP)
        mem = self._util_group(system, case, sol_ms, backend, MEMORY_GROUP)
        comp = self._util_group(system, case, sol_ms, backend, COMPUTE_GROUP)
        blend = np.exp((1.0 - w) * np.log(mem) + w * np.log(comp))
        return np.where(w == 0.0, mem, np.where(w == 1.0, comp, blend))   # exact outside the blend band

    def _util_group(self, system: str, case: OpCase, sol_ms: np.ndarray, backend: Backend | None, group: str) -> np.ndarray:
        found = self.curve(system, case.KIND, case.dtype, backend, group)
        if found is None:
            return np.full(np.shape(sol_ms), DEFAULT_UTIL)
        return evaluate(*found[1], sol_ms)
