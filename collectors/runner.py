"""Resumable, lossless collection runs.

The database is the run's progress record: before measuring, every case whose key already has a row
in the database (or a recorded failure, unless retrying) is skipped. Rows are written as atomic
shards every few cases, so `kill -9` loses at most one unwritten batch and a re-run of the same
command measures exactly the cases that have no row: none lost, none twice. A wall-clock budget
stops the run between cases; the rest stay pending for the next run.

Several collectors may write into one database at once (one per GPU, per node): each claims a case
before measuring it (perfdb.claims), and after claiming re-reads the shards written since it last
looked, so every case is measured once; a crashed collector's claims return to the pool.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from collectors import distributed
from collectors.cases import key
from collectors.failures import Failure, read_failures
from collectors.session import Session, measure
from collectors.sinks import DbSink, NullSink
from perfdb.claims import ClaimBook
from perfdb.errors import NotFoundError
from perfdb.ops import OpCase
from perfdb.schema import key_columns
from perfdb.storage import TableKey, read_meta, read_table, shard_paths, write_meta
from perfdb.types import OpKind


@dataclass(frozen=True)
class Progress:
    done: int          # cases finished in this run (measured or failed)
    total: int         # cases this run set out to measure
    measured: int
    failed: int
    last: str          # label of the case just finished


@dataclass(frozen=True)
class RunSummary:
    requested: int     # cases asked for
    skipped: int       # already in the database (or recorded failures)
    measured: int
    failed: int
    remaining: int     # not started: the budget ran out
    shards: tuple[Path, ...]
    failures_file: Path | None
    unneeded: int = 0  # adaptive runs: planned cases the sampler judged unnecessary (never measured)
    taken: int = 0     # measured (or being measured) by another collector into the same database


def label(case: OpCase) -> str:
    cats = case.categoricals()
    nums = ",".join(f"{n}={int(getattr(case, n))}" for n in case.NUMERIC)
    first = next(iter(cats.values()), "")
    return f"{case.KIND.value}[{first}] {nums}"


def done_keys(root: Path, s: Session, kinds: set[OpKind], retry_failed: bool) -> set[tuple]:
    """(op, key) of every case already in the database for this system/backend/version."""
    out: set[tuple] = set()
    for kind in kinds:
        tkey = TableKey(s.prov.system, s.prov.backend, s.prov.backend_version, kind)
        try:
            table = read_table(root, tkey)
        except NotFoundError:
            continue
        cols = [table.column(c).to_pylist() for c in key_columns(kind)]
        out.update((kind, tuple(vals)) for vals in zip(*cols, strict=True))
    if not retry_failed:
        out.update((f.op, f.key) for f in read_failures(root)
                   if (f.system, f.backend, f.backend_version) == (s.prov.system, s.prov.backend.value, s.prov.backend_version))
    return out


def pending(cases: list[OpCase], root: Path, s: Session, retry_failed: bool = False) -> list[OpCase]:
    done = done_keys(root, s, {c.KIND for c in cases}, retry_failed) if Path(root).exists() else set()
    return [c for c in cases if (c.KIND, _norm(key(c))) not in done]


class _Shared:
    """Claims plus what other collectors wrote since `pending` read the database (rank 0 of a run that is
    not a torchrun job: a communication job has one writer)."""

    def __init__(self, root: Path, s: Session, retry_failed: bool):
        self.root, self.s, self.retry_failed = Path(root), s, retry_failed
        self.claims = ClaimBook(root, s.prov.system, s.prov.backend, s.prov.backend_version)
        self.seen: dict[OpKind, set[Path]] = {}
        self.done: set[tuple] = set()

    def start(self, kinds: set[OpKind]) -> None:
        for kind in kinds:
            self.seen[kind] = set(shard_paths(self.root, self._tkey(kind)))

    def _tkey(self, kind: OpKind) -> TableKey:
        return TableKey(self.s.prov.system, self.s.prov.backend, self.s.prov.backend_version, kind)

    def _written_elsewhere(self, kind: OpKind, k: tuple) -> bool:
        import pyarrow.parquet as pq

        for path in sorted(set(shard_paths(self.root, self._tkey(kind))) - self.seen.setdefault(kind, set())):
            table = pq.ParquetFile(path).read(columns=list(key_columns(kind)))   # no pyarrow.dataset import
            cols = [table.column(c).to_pylist() for c in key_columns(kind)]
            self.done.update((kind, tuple(v)) for v in zip(*cols, strict=True))
            self.seen[kind].add(path)
        if (kind, k) in self.done:
            return True
        return not self.retry_failed and any(
            (f.op, f.key) == (kind, k) and (f.system, f.backend, f.backend_version) ==
            (self.s.prov.system, self.s.prov.backend.value, self.s.prov.backend_version) for f in read_failures(self.root))

    def written(self, case: OpCase, flushed: bool, failed: bool) -> None:
        """Release claims whose outcome is on disk: all held ones after a shard flush, a failure at once."""
        if flushed:
            self.claims.release_all()
        elif failed:
            self.claims.release(case.KIND, _norm(key(case)))

    def take(self, case: OpCase) -> bool:
        """Claim the case; False when another collector holds it or has already written it."""
        k = _norm(key(case))
        if not self.claims.claim(case.KIND, k):
            return False
        if self._written_elsewhere(case.KIND, k):
            self.claims.release(case.KIND, k)
            return False
        return True


def _norm(k: tuple) -> tuple:
    return tuple(int(v) if isinstance(v, (np.integer,)) else v for v in k)


def _record_meta(root: Path, s: Session) -> None:
    meta = read_meta(root, s.prov.system, s.prov.backend, s.prov.backend_version)
    meta.update({"gpu_name": s.info.gpu_name, "serial_hash": s.info.serial_hash, "driver": s.info.driver,
                 "collector_version": s.prov.collector_version, "device": s.info.device,
                 "timer": {"budget_s": s.timer.budget_s, "warmup_s": s.timer.warmup_s, "min_reps": s.timer.min_reps,
                           "max_reps": s.timer.max_reps, "flush_bytes": s.timer.flush_bytes,
                           "use_graph": s.timer.use_graph}})
    write_meta(root, s.prov.system, s.prov.backend, s.prov.backend_version, meta)


def run(cases: list[OpCase], root: Path, s: Session, budget_s: float | None = None, retry_failed: bool = False,
        rows_per_shard: int = 8, on_progress: Callable[[Progress], None] | None = None) -> RunSummary:
    """Measure every case not yet in the database at `root`; see the module docstring."""
    multi = distributed.active()
    todo = pending(cases, root, s, retry_failed) if s.ctx.rank == 0 else []
    if multi:
        todo = distributed.broadcast(todo)  # every rank runs rank 0's list, in its order
    sink = DbSink(root, s.prov.system, s.prov.backend, s.prov.backend_version, rows_per_shard,
                  host=s.prov.host) if s.ctx.rank == 0 else NullSink()
    if s.ctx.rank == 0:
        _record_meta(sink.root, s)
    shared = _Shared(sink.root, s, retry_failed) if s.ctx.rank == 0 and not multi else None
    if shared is not None:
        shared.start({c.KIND for c in todo})
    start, measured, failed, done, taken = time.monotonic(), 0, 0, 0, 0
    try:
        for case in todo:
            go = budget_s is None or time.monotonic() - start < budget_s
            if multi:
                go = distributed.broadcast(go)
            if not go:
                break
            if shared is not None and not shared.take(case):
                taken += 1
                continue
            written = len(sink.shards) if shared is not None else 0
            result = measure(case, s)
            if isinstance(result, Failure):
                sink.add_failure(result)
                failed += 1
            else:
                sink.add_row(case.KIND, result)
                measured += 1
            if shared is not None:
                shared.written(case, flushed=len(sink.shards) > written, failed=isinstance(result, Failure))
            done += 1
            if on_progress:
                on_progress(Progress(done, len(todo) - taken, measured, failed, label(case)))
    finally:
        sink.flush()  # on Ctrl-C too: what was measured is kept
        if shared is not None:
            shared.claims.release_all()   # after the flush: every claimed case is written (or pending again)
    return RunSummary(len(cases), len(cases) - len(todo), measured, failed, len(todo) - done - taken,
                      tuple(getattr(sink, "shards", ())), getattr(getattr(sink, "failures", None), "path", None),
                      taken=taken)
