"""Claims: several collectors writing into one database measure each case once.

A collector claims a case before it measures it, by publishing a small file

    <root>/.claims/<system>/<backend>/<version>/<op>/<sha1 of the case key>.claim

with os.link from a private temp file: link fails when the name exists, so exactly one collector gets
each case, and a claim is never seen half-written. The claim holds host, pid and the time it was taken.
Once the case's row is in a shard (or its failure is recorded), the claimer deletes its claim; the
database itself then says the case is done.

A crashed claimer's cases return to the pool: a claim is stale when its pid no longer runs on this
host, or, for another host (whose processes this one cannot see), when it is older than the lease
(`lease_s`, default one hour: a claim is held only while its case is measured and until the next
shard is written, seconds to minutes). A stale claim is taken over by renaming it away (rename is
atomic: one collector wins) and publishing a new one.

After claiming, the claimer re-reads the shards written since it last looked: a case another collector
measured and released in the meantime is not measured again.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from perfdb.types import Backend, OpKind

CLAIMS_DIR = ".claims"
DEFAULT_LEASE_S = 3600.0


@dataclass(frozen=True)
class Claimer:
    """Who claims: host and pid (defaults: this process)."""

    host: str
    pid: int

    @staticmethod
    def this_process() -> "Claimer":
        return Claimer(socket.gethostname(), os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process: it exists
        return True
    return True


class ClaimBook:
    """The claims of one (system, backend, version) of a database, for one claimer."""

    def __init__(self, root: Path, system: str, backend: Backend, version: str, claimer: Claimer | None = None,
                 lease_s: float = DEFAULT_LEASE_S):
        self.dir = Path(root) / CLAIMS_DIR / system / backend.value / version
        self.claimer = claimer or Claimer.this_process()
        self.lease_s = lease_s
        self.held: set[Path] = set()

    def _path(self, kind: OpKind, key: tuple) -> Path:
        digest = hashlib.sha1(json.dumps([str(v) for v in key]).encode()).hexdigest()
        return self.dir / kind.value / f"{digest}.claim"

    def _stale(self, path: Path) -> bool:
        try:
            info = json.loads(path.read_text())
            age = time.time() - float(info["taken_at"])
            host, pid = str(info["host"]), int(info["pid"])
        except FileNotFoundError:
            return False   # released meanwhile: the next try sees the name free
        except (OSError, ValueError, KeyError, TypeError):
            age, host, pid = time.time() - path.stat().st_mtime, "", -1   # unreadable: judged by age
        if host == self.claimer.host:
            return not _alive(pid) or (pid == self.claimer.pid and path not in self.held)
        return age > self.lease_s

    def _publish(self, path: Path) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{self.claimer.host}-{self.claimer.pid}-{path.name}")
        tmp.write_text(json.dumps({"host": self.claimer.host, "pid": self.claimer.pid, "taken_at": time.time()}))
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self.held.add(path)
        return True

    def claim(self, kind: OpKind, key: tuple) -> bool:
        """True when this claimer now holds the case; False when another live collector does."""
        path = self._path(kind, key)
        if path in self.held or self._publish(path):
            return True
        if not self._stale(path):
            return False
        aside = path.with_name(f"{path.name}.stale-{self.claimer.host}-{self.claimer.pid}")
        try:
            os.rename(path, aside)   # one collector wins the stale claim
        except FileNotFoundError:
            return self._publish(path)
        if not self._stale(aside):   # another collector re-claimed it between our look and the rename: give it back
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return self._publish(path)

    def release(self, kind: OpKind, key: tuple) -> None:
        path = self._path(kind, key)
        if path in self.held:
            path.unlink(missing_ok=True)
            self.held.discard(path)

    def release_all(self) -> None:
        for path in self.held:
            path.unlink(missing_ok=True)
        self.held.clear()
