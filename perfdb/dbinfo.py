"""What a database holds, read from Parquet footers (no row data): `servecast db info` and `db ls`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from perfdb.errors import DataError
from perfdb.storage import MARKER, TableKey, list_tables, read_meta, require_db, shard_paths


@dataclass(frozen=True)
class TableInfo:
    key: TableKey
    rows: int
    shards: int
    bytes: int


@dataclass(frozen=True)
class DbInfo:
    root: Path
    format_version: int
    tables: tuple[TableInfo, ...]
    stray_temp_files: tuple[Path, ...]   # `.tmp-*` left by writers killed mid-shard (ignored by readers)
    has_efficiency_curves: bool
    meta: tuple[tuple[str, str, str, dict], ...]   # (system, backend, version, meta.yaml contents)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def shard_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"corrupt Parquet shard {path}: {exc}") from None


def table_info(root: Path, key: TableKey) -> TableInfo:
    paths = shard_paths(root, key)
    return TableInfo(key, sum(shard_rows(p) for p in paths), len(paths), sum(p.stat().st_size for p in paths))


def list_table_infos(root: Path, system: str | None = None, backend: str | None = None,
                     version: str | None = None, op: str | None = None) -> list[TableInfo]:
    """Tables under root, optionally filtered by exact system / backend / version / op family."""
    out = []
    for key in list_tables(root):
        if (system and key.system != system) or (backend and key.backend.value != backend) \
                or (version and key.version != version) or (op and key.op.value != op):
            continue
        out.append(table_info(root, key))
    return out


def db_info(root: Path) -> DbInfo:
    root = require_db(root)
    try:
        marker = yaml.safe_load((root / MARKER).read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"unreadable {root / MARKER}: {exc}") from None
    tables = list_table_infos(root)
    metas = sorted({(t.key.system, t.key.backend, t.key.version) for t in tables},
                   key=lambda k: (k[0], k[1].value, k[2]))
    meta = tuple((s, b.value, v, read_meta(root, s, b, v)) for s, b, v in metas)
    return DbInfo(root=root, format_version=int(marker.get("format_version", 0)), tables=tuple(tables),
                  stray_temp_files=tuple(sorted(root.glob("*/*/*/*/.tmp-*"))),
                  has_efficiency_curves=(root / "efficiency.parquet").is_file(), meta=meta)
