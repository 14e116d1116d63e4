"""Fan a run out over a Ray cluster: each task holds one GPU (num_gpus=1; num_cpus=1 for CPU runs),
measures a chunk of cases with its own device session, and returns the rows; the driver writes them
into the one database as each task finishes (so nodes need no shared filesystem). Already-measured
cases are skipped as in a local run, so a fleet run resumes the same way.

One fleet run should be one GPU type and one image: rows are filed under each worker's detected
system and backend version, but the skip check uses the driver's.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from collectors import runner
from collectors.failures import Failure
from collectors.session import Session, measure, open_session
from collectors.sinks import DbSink
from collectors.timer import TimerConfig
from perfdb.ops import OpCase
from perfdb.types import Backend


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    backend: Backend
    device: str
    timer: TimerConfig
    system: str | None


def measure_chunk(cases: list[OpCase], spec: TaskSpec) -> tuple[list[tuple], list[Failure]]:
    """Runs inside a Ray task: ([(op, row)], [failure]) for the chunk, on the task's own GPU."""
    session = open_session(spec.backend, spec.device, spec.timer, spec.system)
    rows, failures = [], []
    for case in cases:
        result = measure(case, session)
        (failures.append(result) if isinstance(result, Failure) else rows.append((case.KIND, result)))
    return rows, failures


def _connect(address: str) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, log_to_driver=False)


def run_on_ray(address: str, cases: list[OpCase], root: Path, session: Session, budget_s: float | None = None,
               retry_failed: bool = False, chunk_cases: int = 8) -> runner.RunSummary:
    """Measure the pending cases as Ray tasks; rows land in `root` as tasks finish."""
    import ray

    _connect(address)
    todo = runner.pending(cases, root, session, retry_failed)
    spec = TaskSpec(session.prov.backend, session.ctx.device, session.timer, session.prov.system)
    resources = {"num_gpus": 1} if session.ctx.device == "cuda" else {"num_cpus": 1}
    task = ray.remote(**resources)(measure_chunk)
    chunks = [todo[i:i + chunk_cases] for i in range(0, len(todo), chunk_cases)]
    refs = {task.remote(chunk, spec): len(chunk) for chunk in chunks}
    sinks: dict[tuple, DbSink] = {}
    start, measured, failed, left = time.monotonic(), 0, 0, len(todo)
    failure_sink = DbSink(root, session.prov.system, session.prov.backend, session.prov.backend_version)
    while refs:
        timeout = None if budget_s is None else max(0.0, budget_s - (time.monotonic() - start))
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        if not ready:  # budget spent: tasks still queued are cancelled and stay pending for a later run
            for ref in refs:
                ray.cancel(ref)
            break
        rows, failures = ray.get(ready[0])
        left -= refs.pop(ready[0])
        for kind, row in rows:
            pkey = (row["system"], row["backend"], row["backend_version"])
            if pkey not in sinks:
                sinks[pkey] = DbSink(root, pkey[0], Backend(pkey[1]), pkey[2], rows_per_shard=10**9)
            sinks[pkey].add_row(kind, row)
        for failure in failures:
            failure_sink.add_failure(failure)
        for sink in sinks.values():
            sink.flush()  # one shard per finished task and table
        measured, failed = measured + len(rows), failed + len(failures)
    shards = tuple(p for s in sinks.values() for p in s.shards)
    return runner.RunSummary(len(cases), len(cases) - len(todo), measured, failed, left, shards,
                             failure_sink.failures.path)
