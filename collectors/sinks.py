"""Where measured rows and failures go: straight into the database (DbSink, shards written as cases
finish) or into memory (MemorySink, for Ray tasks whose driver writes them)."""
from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pyarrow as pa

from collectors.failures import Failure, FailureLog
from perfdb.schema import SCHEMAS
from perfdb.storage import TableKey, init_db, write_shard
from perfdb.types import Backend, OpKind


def host_name(host: str | None = None) -> str:
    return (host or socket.gethostname()).replace("-", "_")


class DbSink:
    """Buffers rows per table and writes a shard every `rows_per_shard` rows or `max_wait_s` seconds,
    so a killed run loses at most that much work and never leaves a partial shard."""

    def __init__(self, root: Path, system: str, backend: Backend, version: str, rows_per_shard: int = 8,
                 max_wait_s: float = 30.0, host: str | None = None):
        self.root = init_db(Path(root))
        self.system, self.backend, self.version = system, backend, version
        self.rows_per_shard, self.max_wait_s = rows_per_shard, max_wait_s
        self.host = host_name(host)
        self.failures = FailureLog(self.root, self.host)
        self.shards: list[Path] = []
        self._rows: dict[OpKind, list[dict]] = {}
        self._since = time.monotonic()
        self._counter = self._first_free_counter()

    def _first_free_counter(self) -> int:
        """Shard names are part-<host>-<pid>-<n>: a pid recycled from an earlier run must not overwrite its shards."""
        pattern = re.compile(rf"part-{re.escape(self.host)}-{os.getpid()}-(\d+)\.parquet$")
        used = [int(m.group(1)) for p in Path(self.root).rglob(f"part-{self.host}-{os.getpid()}-*.parquet")
                if (m := pattern.search(p.name))]
        return max(used, default=-1) + 1

    def add_row(self, kind: OpKind, row: dict) -> None:
        self._rows.setdefault(kind, []).append(row)
        if len(self._rows[kind]) >= self.rows_per_shard or time.monotonic() - self._since > self.max_wait_s:
            self.flush()

    def add_failure(self, failure: Failure) -> None:
        self.failures.record(failure)

    def flush(self) -> None:
        for kind, rows in self._rows.items():
            if rows:
                table = pa.Table.from_pylist(rows, schema=SCHEMAS[kind])
                key = TableKey(self.system, self.backend, self.version, kind)
                self.shards.append(write_shard(self.root, key, table, self._counter, self.host))
                self._counter += 1
        self._rows = {}
        self._since = time.monotonic()


class MemorySink:
    """Collects rows and failures in memory (a Ray task returns them to the driver)."""

    def __init__(self):
        self.rows: list[tuple[OpKind, dict]] = []
        self.failures: list[Failure] = []

    def add_row(self, kind: OpKind, row: dict) -> None:
        self.rows.append((kind, row))

    def add_failure(self, failure: Failure) -> None:
        self.failures.append(failure)

    def flush(self) -> None:
        pass


class NullSink(MemorySink):
    """Ranks other than 0 of a communication run: rank 0 writes the rows."""

    def add_row(self, kind: OpKind, row: dict) -> None:
        pass

    def add_failure(self, failure: Failure) -> None:
        pass
