"""Merge the shards of each table and drop duplicate cases (`servecast db compact`).

Duplicates share perfdb.schema.case_key (shape keys + system, backend, version, kernel_source); the
newest `collected_at` wins (rows without a timestamp lose to rows with one). Order of operations is
what makes it crash-safe: the merged shard is written atomically first, then the old shards are
removed. A crash in between leaves the old rows twice, which the next compact removes; no order
of crash loses a row. Only the shards read at the start are removed, so a collector writing a new
shard meanwhile keeps it.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from perfdb.errors import DataError
from perfdb.schema import case_key, conform
from perfdb.storage import TableKey, list_tables, shard_paths, write_shard


@dataclass(frozen=True)
class CompactResult:
    key: TableKey
    shards_before: int
    rows_before: int
    rows_after: int
    new_shard: Path | None   # None: already compact, nothing rewritten
    stale_temp_removed: int = 0  # `.tmp-part-*` files of this host's dead writers, deleted


def dedupe(table: pa.Table, key: TableKey) -> pa.Table:
    """Keep the newest row of each case key (stable for ties)."""
    n = table.num_rows
    stamps = pc.cast(table.column("collected_at"), pa.int64()).to_numpy(zero_copy_only=False)
    newest_first = np.where(np.isnan(stamps.astype(float)), np.inf, -stamps.astype(float))  # missing stamps last
    order = np.lexsort((np.arange(n), newest_first))
    ranked = table.take(pa.array(order)).append_column("_rank", pa.array(np.arange(n)))
    cols = list(case_key(key.op))
    first = ranked.group_by(cols, use_threads=False).aggregate([("_rank", "min")]).column("_rank_min")
    keep = np.sort(first.to_numpy())
    return ranked.take(pa.array(keep)).drop_columns(["_rank"])


def _free_counter(directory: Path, host: str) -> int:
    counter = 0
    while (directory / f"part-{host}-{os.getpid()}-{counter}.parquet").exists():
        counter += 1
    return counter


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temp(directory: Path, host: str) -> int:
    """Delete `.tmp-part-<host>-<pid>-<n>.parquet` files left by this host's writers that are no longer
    running (killed mid-shard). Another host's temp files, or a live writer's, are never touched:
    from here nobody can tell whether those writers are still going."""
    removed = 0
    for tmp in directory.glob(f".tmp-part-{host}-*-*.parquet"):
        pid = tmp.name[len(f".tmp-part-{host}-"):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def compact_table(root: Path, key: TableKey) -> CompactResult:
    host = socket.gethostname().replace("-", "_")
    stale = remove_stale_temp(key.dir(root), host) if key.dir(root).is_dir() else 0
    paths = shard_paths(root, key)
    parts = []
    for path in paths:
        try:
            parts.append(conform(key.op, pq.ParquetFile(path).read()))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"corrupt Parquet shard {path}: {exc}; move it aside and compact again") from None
    table = pa.concat_tables(parts) if parts else None
    if table is None:
        return CompactResult(key, 0, 0, 0, None, stale)
    merged = dedupe(table, key)
    if len(paths) == 1 and merged.num_rows == table.num_rows:
        return CompactResult(key, 1, table.num_rows, table.num_rows, None, stale)
    new = write_shard(root, key, merged, counter=_free_counter(key.dir(root), host), host=host)
    for path in paths:
        if path != new:
            path.unlink()
    return CompactResult(key, len(paths), table.num_rows, merged.num_rows, new, stale)


def compact_db(root: Path, system: str | None = None, op: str | None = None) -> list[CompactResult]:
    return [compact_table(root, key) for key in list_tables(root)
            if (not system or key.system == system) and (not op or key.op.value == op)]
