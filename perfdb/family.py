"""One op family's measured rows for one (system, backend, version), grouped by categorical fields.

Read once from Parquet; interpolators are built lazily per categorical combination and cached, so a
search that asks for thousands of shapes pays for the Parquet read and the grid build once.

Categorical substitution (a case whose combination is not in the table): string fields (dtypes, comm
op, transport, MoE routing distribution) and the attention `window` must match exactly, because they
change the kernel or the meaning of the shape. Integer fields (head counts, head_dim, hidden, inter,
topk, num_experts, moe_tp/ep, num_gpus, MLA ranks) may differ: the nearest stored combination in
sum-of-|log| distance lends its utilisation, and every answer from it is labelled `extrapolated`.
Utilisation is relative to the asked case's own roofline, so holding it across a head count change
keeps the right scaling, which a bare efficiency curve would not.
"""
from __future__ import annotations

import sys
import typing
from enum import Enum
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from perfdb.interp import GridInterp
from perfdb.ops import OP_CASES, OpCase
from perfdb.roofline import sol_ms
from perfdb.specs import SystemSpec
from perfdb.types import OpKind

_EXACT_INT_FIELDS = {"window"}  # 0 means "full attention": not a size to be near to

# Integer categoricals that are interpolation axes of the lookup (not part of the group key): query
# head count changes util smoothly (decode is bound by the KV read, which GQA shares across query
# heads; prefill compute scales with heads, which sol_ms already carries), and the measured head
# counts are dense, so they are better neighbours than the next batch or sequence length.
PROMOTED: dict[OpKind, tuple[str, ...]] = {
    OpKind.ATTENTION_PREFILL: ("num_heads",),
    OpKind.ATTENTION_DECODE: ("num_heads",),
    OpKind.MLA_PREFILL: ("num_heads",),
    OpKind.MLA_DECODE: ("num_heads",),
    # MoE: the tensor- and expert-parallel split set the per-GPU share of the same model's experts;
    # neighbouring splits are close in utilisation (AIC h200 trtllm leave-one-out: 3.2% -> 2.2% median).
    OpKind.MOE: ("moe_tp", "moe_ep"),
    # linear attention: the per-GPU value / key head counts (tensor-parallel slices of one model's
    # mixer) set the state size smoothly (AIC h200 vllm 0.24.0 decode leave-one-out: 3.95% / 21.2% ->
    # 0.65% / 6.4% median / p90 with both promoted)
    OpKind.LINEAR_PREFILL: ("num_v_heads", "num_k_heads"),
    OpKind.LINEAR_DECODE: ("num_v_heads", "num_k_heads"),
    # sparse-attention modules: the per-GPU query heads are tensor-parallel slices of one model's attention
    # (MSA's KV heads stay a group key: 1 for every slice of 16 query heads or fewer)
    OpKind.DSA_MODULE_PREFILL: ("num_heads",),
    OpKind.DSA_MODULE_DECODE: ("num_heads",),
    OpKind.MSA_MODULE_PREFILL: ("num_heads",),
    OpKind.MSA_MODULE_DECODE: ("num_heads",),
}


def key_fields(kind: OpKind) -> tuple[str, ...]:
    """Categorical fields that select a group (must match, or be substituted)."""
    promoted = PROMOTED.get(kind, ())
    return tuple(f for f in OP_CASES[kind].categorical_fields() if f not in promoted)


def lookup_axes(kind: OpKind) -> tuple[str, ...]:
    """Interpolation axes of a group: the case's numeric fields, then the promoted categoricals."""
    return OP_CASES[kind].NUMERIC + PROMOTED.get(kind, ())


@cache
def _field_types(kind: OpKind) -> dict[str, object]:
    cls = OP_CASES[kind]
    return typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]))


def case_from_stored(kind: OpKind, categoricals: dict[str, object], numeric: dict[str, np.ndarray]) -> OpCase:
    """Build a case from stored categorical values (enum strings, ints) and numeric arrays."""
    hints = _field_types(kind)
    kwargs = {name: hints[name](value) if isinstance(hints[name], type) and issubclass(hints[name], Enum) else value
              for name, value in categoricals.items()}
    return OP_CASES[kind](**kwargs, **numeric)


def make_case(kind: OpKind, combo: tuple, numeric: dict[str, np.ndarray]) -> OpCase:
    """Build a case from a group key and lookup-axis arrays (promoted categoricals arrive as arrays;
    flops()/bytes() broadcast over them)."""
    return case_from_stored(kind, dict(zip(key_fields(kind), combo, strict=True)), numeric)


def column_array(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 numpy, straight from the Arrow buffers.

    pyarrow's to_numpy() imports pandas (0.5-3 s), which the lookup on the `servecast plan` path
    must not pay; required shape/latency columns have no nulls, so the data buffer is the array.
    """
    column = table.column(name)
    parts = []
    for chunk in column.chunks:
        if chunk.null_count or not (pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type)):
            parts.append(np.asarray(chunk.to_pylist(), dtype=np.float64))
            continue
        data = np.frombuffer(chunk.buffers()[1], dtype=np.dtype(chunk.type.to_pandas_dtype()),
                             count=len(chunk) + chunk.offset)
        parts.append(data[chunk.offset:].astype(np.float64))
    return np.concatenate(parts) if parts else np.empty(0)


def group_rows(table: pa.Table, fields: tuple[str, ...]) -> dict[tuple, np.ndarray]:
    """Row indices of each distinct combination of `fields` (stored values as keys), pandas-free."""
    n = table.num_rows
    if n == 0:
        return {}
    codes, levels = [], []
    for name in fields:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            encoded = column.combine_chunks().dictionary_encode()   # Array method: no pyarrow.compute import
            ind = encoded.indices
            codes.append(np.frombuffer(ind.buffers()[1], dtype=np.int32, count=len(ind) + ind.offset)[ind.offset:])
            levels.append(encoded.dictionary.to_pylist())
        else:
            values, inverse = np.unique(column_array(table, name).astype(np.int64), return_inverse=True)
            codes.append(inverse)
            levels.append([int(v) for v in values])
    if not codes:
        return {(): np.arange(n)}
    # One int64 key per row (mixed radix over the per-field codes): 1-D unique is ~50x faster than axis=0.
    key = np.zeros(n, np.int64)
    for code, level in zip(codes, levels, strict=True):
        key = key * len(level) + code.astype(np.int64)
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    return {tuple(levels[j][codes[j][first[g]]] for j in range(len(fields))): order[bounds[g]:bounds[g + 1]]
            for g in range(len(uniq))}


# A combination whose measured shapes cover at most this share of its level grid (the product of
# each axis' measured values) was sampled sparsely (collect run --adaptive measures single points):
# GridInterp would fill most nodes from far away, so perfdb.scatter.CompletionInterp serves it. Every
# combination of the imported AIConfigurator tables covers >= 0.26 (vLLM MoE; GEMM ~0.99, attention
# >= 0.68), so they keep GridInterp and their check-interp figures.
SPARSE_FILL = 0.2
_SPARSE_MIN_ROWS = 20


def sparse_grid(raw: np.ndarray) -> bool:
    """True when the rows (n, d) fill at most SPARSE_FILL of their level grid (and are enough to fit)."""
    if len(raw) < _SPARSE_MIN_ROWS:
        return False
    nodes = float(np.prod([len(np.unique(raw[:, j])) for j in range(raw.shape[1])]))
    return len(np.unique(raw, axis=0)) <= SPARSE_FILL * nodes


class FamilyTable:
    """Rows of one op family, grouped by their categorical combination."""

    def __init__(self, kind: OpKind, table: pa.Table, system: SystemSpec, version: str, prior: tuple = (),
                 completions: Path | None = None):
        """prior: perfdb.prior.PriorSource(s) that serve this family's sparse combinations (none: empty);
        completions: where the fits of sparse combinations are memoised (perfdb.completion_store)."""
        self.kind, self.system, self.version, self.prior = kind, system, version, tuple(prior)
        self.completions = completions
        self.cat_fields, self.axes = key_fields(kind), lookup_axes(kind)
        self.latency = column_array(table, "latency_ms")
        self.raw = np.stack([column_array(table, a) for a in self.axes], axis=1).reshape(table.num_rows, len(self.axes))
        self.groups: dict[tuple, np.ndarray] = group_rows(table, self.cat_fields)
        self._interps: dict[tuple, GridInterp | None] = {}
        self._nearest: dict[tuple, tuple | None] = {}

    @staticmethod
    def columns(kind: OpKind) -> list[str]:
        """The stored columns a FamilyTable reads."""
        return list(key_fields(kind) + lookup_axes(kind)) + ["latency_ms"]

    @property
    def num_rows(self) -> int:
        return len(self.latency)

    def group_rows(self, combo: tuple) -> np.ndarray:
        """Usable rows of a combination: positive latency and positive roofline (util defined)."""
        return self.groups.get(combo, np.empty(0, np.int64))

    def sol_of_rows(self, combo: tuple, rows: np.ndarray) -> np.ndarray:
        numeric = {a: self.raw[rows, j] for j, a in enumerate(self.axes)}
        return sol_ms(make_case(self.kind, combo, numeric), self.system)

    def interp(self, combo: tuple) -> GridInterp | None:
        """The cached interpolator of a stored combination (None when no row has a usable util)."""
        if combo not in self._interps:
            self._interps[combo] = self._build(combo)
        return self._interps[combo]

    def _build(self, combo: tuple) -> GridInterp | None:
        rows = self.group_rows(combo)
        if rows.size == 0:
            return None
        sol, lat = self.sol_of_rows(combo, rows), self.latency[rows]
        ok = (sol > 0) & (lat > 0) & np.isfinite(lat)
        if not ok.any():
            return None
        raw = self.raw[rows[ok]]
        if sparse_grid(raw):
            from perfdb.scatter import CompletionInterp

            def sol_fn(x: np.ndarray, combo=combo) -> np.ndarray:
                return sol_ms(make_case(self.kind, combo, {a: x[:, j] for j, a in enumerate(self.axes)}), self.system)

            from perfdb.completion_store import stored_completions

            with stored_completions(self.completions):
                if self.prior:   # collected with prior tables (collect run --adaptive --prior-db)
                    from perfdb.prior import PriorInterp, prior_latency
                    from perfdb.prior_blend import PriorBlend

                    fns = [prior_latency(p, self.kind, combo) for p in self.prior]
                    gi = PriorInterp(self.kind, self.axes, raw, lat[ok], fns[0], sol_fn) if len(fns) == 1 else \
                        PriorBlend(self.kind, self.axes, raw, lat[ok], fns, sol_fn)
                else:
                    gi = CompletionInterp(self.kind, self.axes, raw, sol[ok] / lat[ok], lat[ok], sol_fn=sol_fn)
        else:
            gi = GridInterp(self.kind, self.axes, raw, sol[ok] / lat[ok], lat[ok])
        gi.table_rows = rows[ok]  # table row of each interpolator row (leave-one-out maps through it)
        return gi

    def nearest(self, combo: tuple, exclude: tuple | None = None) -> tuple | None:
        """Nearest stored combination for a missing one (see module docstring), or None."""
        key = (combo, exclude)
        if key not in self._nearest:
            self._nearest[key] = self._find_nearest(combo, exclude)
        return self._nearest[key]

    def _find_nearest(self, combo: tuple, exclude: tuple | None) -> tuple | None:
        best, best_d = None, np.inf
        for cand in self.groups:
            if cand == exclude or cand == combo:
                continue
            d = 0.0
            for name, a, b in zip(self.cat_fields, combo, cand, strict=True):
                if isinstance(a, str) or name in _EXACT_INT_FIELDS:
                    if a != b:
                        d = np.inf
                        break
                else:
                    d += abs(np.log1p(float(a)) - np.log1p(float(b)))
            if d < best_d and self.interp(cand) is not None:
                best, best_d = cand, d
        return best


def case_combo(case: OpCase) -> tuple:
    """A case's group key in stored form (key_fields order)."""
    values = case.categoricals()
    return tuple(values[f] for f in key_fields(case.KIND))


def case_numeric(case: OpCase) -> np.ndarray:
    """(n, d) lookup-axis values of a case (promoted categoricals broadcast), flattened."""
    shape = case.shape
    return np.stack([np.ravel(np.broadcast_to(np.asarray(getattr(case, a), dtype=np.float64), shape))
                     for a in lookup_axes(case.KIND)], axis=1)
