"""The pyarrow schema of every op family's table, declared here and nowhere else.

A row = the case's categorical and numeric key columns (from the case dataclass in perfdb.ops)
+ statistics + provenance. The case key (what `compact` de-duplicates on) is the key columns plus
system, backend, backend_version and kernel_source.
"""
from __future__ import annotations

import sys
import typing
from enum import Enum

import numpy as np
import pyarrow as pa

from perfdb.errors import DataError
from perfdb.ops import OP_CASES, OpCase
from perfdb.ops.base import table_fields
from perfdb.types import OpKind

STAT_COLUMNS: tuple[pa.Field, ...] = (
    pa.field("latency_ms", pa.float64(), nullable=False),   # median over repetitions
    pa.field("p10_ms", pa.float64()),
    pa.field("p90_ms", pa.float64()),
    pa.field("n_samples", pa.int64()),
    pa.field("timing_method", pa.string()),                  # perfdb.types.TimingMethod
    pa.field("sol_ms", pa.float64(), nullable=False),       # perfdb.roofline.sol_ms on `system`
)
PROVENANCE_COLUMNS: tuple[pa.Field, ...] = (
    pa.field("system", pa.string(), nullable=False),
    pa.field("gpu_name", pa.string()),
    pa.field("backend", pa.string(), nullable=False),
    pa.field("backend_version", pa.string(), nullable=False),
    pa.field("kernel_source", pa.string(), nullable=False),
    pa.field("driver", pa.string()),
    pa.field("sm_clock_mhz", pa.float64()),
    pa.field("collector_version", pa.string()),
    pa.field("host", pa.string()),
    pa.field("collected_at", pa.timestamp("us", tz="UTC")),
    pa.field("flags", pa.string()),                          # e.g. "throttled,shared_gpu"; "" when clean
)
PROVENANCE_KEY = ("system", "backend", "backend_version", "kernel_source")


def _arrow_type(hint: object) -> pa.DataType:
    if isinstance(hint, type) and issubclass(hint, Enum) or hint is str:
        return pa.string()
    if hint is int:
        return pa.int64()
    if hint is np.ndarray:
        return pa.int64()  # shape axes are integers (tokens, bytes, features)
    raise TypeError(f"no arrow type for case field annotation {hint!r}")


def key_columns(kind: OpKind) -> tuple[str, ...]:
    cls = OP_CASES[kind]
    return cls.categorical_fields() + cls.NUMERIC


def case_key(kind: OpKind) -> tuple[str, ...]:
    return key_columns(kind) + PROVENANCE_KEY


def _build(kind: OpKind, cls: type[OpCase]) -> pa.Schema:
    hints = typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]))
    keys = [pa.field(f.name, _arrow_type(hints[f.name]), nullable=False) for f in table_fields(cls)]
    return pa.schema(keys + list(STAT_COLUMNS) + list(PROVENANCE_COLUMNS), metadata={"op": kind.value})


SCHEMAS: dict[OpKind, pa.Schema] = {kind: _build(kind, cls) for kind, cls in OP_CASES.items()}


def conform(kind: OpKind, table: pa.Table) -> pa.Table:
    """Cast a table to its family's schema (column order and types), or raise DataError naming the problem."""
    schema = SCHEMAS[kind]
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise DataError(f"{kind.value} rows lack column(s) {', '.join(missing)}; schema: {', '.join(schema.names)}")
    extra = sorted(set(table.column_names) - set(schema.names))
    if extra:
        raise DataError(f"{kind.value} rows have unknown column(s) {', '.join(extra)}; schema: {', '.join(schema.names)}")
    try:
        out = table.select(schema.names).cast(schema)
    except (ValueError, pa.ArrowNotImplementedError) as exc:  # ArrowInvalid is a ValueError; so is a null in a required column
        raise DataError(f"{kind.value} rows do not match the schema: {exc}") from None
    for field in schema:
        if not field.nullable and out.column(field.name).null_count:
            raise DataError(f"{kind.value} column {field.name} has null values; it is required")
    return out
