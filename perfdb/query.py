"""Filtered reads of a database (`servecast db query`) and atomic export of the result.

Filters are `column OP value` with OP one of = != >= <= > <; `=` takes a comma list (`dtype=fp8,bf16`).
`op=<family>` (a perfdb.types.OpKind value) selects op families; comm and elementwise tables also
have an `op` column (all_reduce, rmsnorm, ...), which the same filter matches by value.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from perfdb.errors import InputError
from perfdb.schema import SCHEMAS
from perfdb.storage import list_tables, read_table
from perfdb.types import OpKind
from perfdb.userfiles import check_out_file

_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|==|=|>|<)\s*(.*?)\s*$")
_OPS = {"=": pc.equal, "==": pc.equal, "!=": pc.not_equal, ">=": pc.greater_equal, "<=": pc.less_equal,
        ">": pc.greater, "<": pc.less}
FAMILY_COLUMN = "family"


class Format(str, Enum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str

    @staticmethod
    def parse(text: str) -> "Filter":
        match = _FILTER.match(text)
        if not match or not match.group(3):
            raise InputError(f"bad filter {text!r}; write COLUMN OP VALUE with OP one of = != >= <= > < "
                             "(e.g. m>=128, dtype=fp8,bf16)")
        return Filter(*match.groups())


def _families(filters: list[Filter], op: OpKind | None) -> tuple[set[OpKind], list[Filter]]:
    names = {k.value for k in OpKind}
    families = {op} if op else set(OpKind)
    rest = []
    for f in filters:
        values = set(f.value.split(","))
        if f.column == "op" and f.op in ("=", "==") and values <= names:
            families &= {OpKind(v) for v in values}
        else:
            rest.append(f)
    return families, rest


def _mask(table: pa.Table, f: Filter) -> pa.ChunkedArray:
    column = table.column(f.column)
    typ = column.type
    values = f.value.split(",") if f.op in ("=", "==") else [f.value]
    try:
        if pa.types.is_integer(typ) or pa.types.is_floating(typ):
            scalars = [float(v) for v in values]
        elif pa.types.is_timestamp(typ):
            scalars = [pa.scalar(np.datetime64(v.replace("Z", ""), "us"), pa.timestamp("us")).cast(typ) for v in values]
        else:
            scalars = values
    except ValueError:
        raise InputError(f"filter {f.column}{f.op}{f.value}: {f.value!r} is not a valid {typ} value") from None
    if len(scalars) > 1:
        return pc.is_in(column, value_set=pa.array(scalars).cast(typ))
    return _OPS[f.op](column, pa.scalar(scalars[0]).cast(typ) if not isinstance(scalars[0], pa.Scalar) else scalars[0])


def query(root: Path, filters: list[Filter], op: OpKind | None = None, columns: list[str] | None = None,
          limit: int | None = None) -> pa.Table:
    """Rows of the matching tables, a `family` column first; columns missing from a family are null."""
    families, filters = _families(filters, op)
    known = {FAMILY_COLUMN} | {name for k in families for name in SCHEMAS[k].names}
    for name in [f.column for f in filters] + list(columns or []):
        if name not in known:
            raise InputError(f"unknown column {name!r}; columns: {', '.join(sorted(known))}")
    parts = []
    for key in list_tables(root):
        if key.op not in families:
            continue
        table = read_table(root, key)
        table = table.add_column(0, FAMILY_COLUMN, pa.array([key.op.value] * table.num_rows, pa.string()))
        for f in filters:
            if f.column in table.column_names:
                table = table.filter(_mask(table, f))
            else:  # the column belongs to another family: no row of this one matches
                table = table.slice(0, 0)
        parts.append(table)
    if not parts:
        return pa.table({FAMILY_COLUMN: pa.array([], pa.string())})
    out = pa.concat_tables(parts, promote_options="default")
    if columns:
        out = out.select([FAMILY_COLUMN] + [c for c in columns if c != FAMILY_COLUMN])
    return out.slice(0, limit) if limit is not None else out


def write_result(table: pa.Table, fmt: Format, path: Path) -> Path:
    """Write the result in one of the file formats, atomically (temp file + rename)."""
    path = check_out_file(path, "--out")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: directory {path.parent} does not exist")
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(render_bytes(table, fmt))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def render_bytes(table: pa.Table, fmt: Format) -> bytes:
    import io
    import json

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    if fmt == Format.CSV:
        pacsv.write_csv(table, buf)
    elif fmt == Format.JSON:
        buf.write(json.dumps(table.to_pylist(), default=str, indent=1).encode() + b"\n")
    elif fmt == Format.PARQUET:
        pq.write_table(table, buf)
    else:
        raise InputError(f"format {fmt.value!r} is for the terminal; files take csv, json or parquet")
    return buf.getvalue()
