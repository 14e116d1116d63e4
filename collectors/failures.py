"""Failed cases (OOM, unsupported dtype or shape) recorded beside the database, one JSON line each.

    <root>/failures/failures-<host>-<pid>-<n>.jsonl

One file per writing process (no shared file, no lock); each line is flushed and fsynced as it is
written, so a killed run keeps every failure it recorded. A torn last line is ignored on read.
A re-run skips recorded failures unless asked to retry them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from perfdb.types import OpKind

DIRNAME = "failures"


@dataclass(frozen=True)
class Failure:
    op: OpKind
    key: tuple
    system: str
    backend: str
    backend_version: str
    error: str       # exception class, e.g. "Unsupported", "OutOfMemoryError"
    reason: str      # first line of the message


class FailureLog:
    def __init__(self, root: Path, host: str):
        self.dir = Path(root) / DIRNAME
        self.host = host
        self._path: Path | None = None

    def _open_path(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        n = 0
        while (path := self.dir / f"failures-{self.host}-{os.getpid()}-{n}.jsonl").exists():
            n += 1  # a recycled pid from an earlier run: never append to another run's file
        return path

    def record(self, failure: Failure) -> None:
        if self._path is None:
            self._path = self._open_path()
        line = json.dumps({"op": failure.op.value, "key": list(failure.key), "system": failure.system,
                           "backend": failure.backend, "backend_version": failure.backend_version,
                           "error": failure.error, "reason": failure.reason,
                           "at": datetime.now(timezone.utc).isoformat()})
        with open(self._path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    @property
    def path(self) -> Path | None:
        return self._path


def read_failures(root: Path) -> list[Failure]:
    out = []
    directory = Path(root) / DIRNAME
    for path in sorted(directory.glob("failures-*.jsonl")) if directory.is_dir() else []:
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn last line of a killed writer
            out.append(Failure(OpKind(rec["op"]), tuple(rec["key"]), rec["system"], rec["backend"],
                               rec["backend_version"], rec["error"], rec["reason"]))
    return out
