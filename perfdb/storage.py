"""Database directory layout and atomic shard writes.

    <root>/<system>/<backend>/<version>/<op>/part-<host>-<pid>-<n>.parquet
    <root>/<system>/<backend>/<version>/meta.yaml

Each shard is written to a hidden temp file in the same directory, fsynced, then renamed: a reader
sees a whole shard or none, and a writer killed mid-shard leaves only a `.tmp-*` file that readers
ignore. One writer per shard name (host + pid + counter), never a shared file with a lock.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from perfdb.errors import DataError, InputError, NotFoundError
from perfdb.schema import conform
from perfdb.types import Backend, OpKind
from perfdb.userfiles import check_out_file

MARKER = "servecast-db.yaml"  # at the root: says "this directory is a servecast database"


@dataclass(frozen=True)
class TableKey:
    system: str
    backend: Backend
    version: str
    op: OpKind

    def dir(self, root: Path) -> Path:
        return Path(root) / self.system / self.backend.value / self.version / self.op.value


def init_db(root: Path) -> Path:
    root = Path(root)
    marker = root / MARKER
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            atomic_write_bytes(marker, yaml.safe_dump({"format": "servecast-perfdb", "format_version": 1}).encode())
    except OSError as exc:   # unwritable or impossible path: say so before any case is measured
        raise InputError(f"cannot create a database at {root}: {exc.strerror or exc}; pass a writable --db directory") from None
    return root


def require_db(root: Path) -> Path:
    root = Path(root)
    if not (root / MARKER).is_file():
        raise DataError(f"{root} is not a servecast database (no {MARKER}); create one with `servecast collect run --db {root}` "
                        "or `servecast db import-aic`")
    return root


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = check_out_file(path, "output")
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_shard(root: Path, key: TableKey, table: pa.Table, counter: int, host: str | None = None) -> Path:
    """Validate `table` against the op's schema and write it as one new shard, atomically."""
    table = conform(key.op, table)
    directory = key.dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    host = (host or socket.gethostname()).replace("-", "_")
    path = directory / f"part-{host}-{os.getpid()}-{counter}.parquet"
    tmp = directory / f".tmp-{path.name}"
    pq.write_table(table, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def shard_paths(root: Path, key: TableKey) -> list[Path]:
    directory = key.dir(root)
    return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


def read_table(root: Path, key: TableKey, columns: list[str] | None = None) -> pa.Table:
    """All shards of one table, conformed to the schema; a corrupt shard is a DataError naming it.

    `columns` reads only those columns (the lookup needs keys and latency, not provenance).
    ParquetFile.read, not pq.read_table: the latter imports pyarrow.dataset and with it pandas
    (0.5-3 s), which the lookup on the `servecast plan` path must not pay.
    """
    paths = shard_paths(root, key)
    if not paths:
        raise NotFoundError(f"no {key.op.value} table for {key.system}/{key.backend.value}/{key.version} in {root}")
    parts = []
    for path in paths:
        try:
            shard = pq.ParquetFile(path)
            if columns is None:
                parts.append(conform(key.op, shard.read()))
            else:
                parts.append(_conform_columns(key.op, shard, columns, path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"corrupt Parquet shard {path}: {exc}") from None
    return pa.concat_tables(parts)


def _conform_columns(kind: OpKind, shard: pq.ParquetFile, columns: list[str], path: Path) -> pa.Table:
    from perfdb.schema import SCHEMAS

    missing = [c for c in columns if c not in shard.schema_arrow.names]
    if missing:
        raise DataError(f"Parquet shard {path} lacks column(s) {', '.join(missing)}")
    try:
        return shard.read(columns=columns).cast(pa.schema([SCHEMAS[kind].field(c) for c in columns]))
    except (ValueError, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"Parquet shard {path} does not match the {kind.value} schema: {exc}") from None


def list_tables(root: Path) -> list[TableKey]:
    """Every (system, backend, version, op) table present under root."""
    root = require_db(root)
    out = []
    for op_dir in sorted(root.glob("*/*/*/*")):
        if not op_dir.is_dir() or not any(op_dir.glob("part-*.parquet")):
            continue
        system, backend, version, op = op_dir.relative_to(root).parts
        try:
            out.append(TableKey(system, Backend(backend), version, OpKind(op)))
        except ValueError:
            continue  # a foreign directory inside the database is not ours to read
    return out


def meta_path(root: Path, system: str, backend: Backend, version: str) -> Path:
    return Path(root) / system / backend.value / version / "meta.yaml"


def read_meta(root: Path, system: str, backend: Backend, version: str) -> dict:
    path = meta_path(root, system, backend, version)
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def write_meta(root: Path, system: str, backend: Backend, version: str, meta: dict) -> None:
    path = meta_path(root, system, backend, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, yaml.safe_dump(meta, sort_keys=True).encode())
