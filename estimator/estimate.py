"""Serving metrics of one deployment: TTFT, TPOT, latency and throughput from the step model.

Aggregated replica (`estimate`): steady-state continuous batching at a fixed number of requests in
flight (closed loop, as a benchmark client's --concurrency). Every request prefills once and decodes
osl-1 times, so on average B/osl new requests join per iteration and their prefill work interrupts
(separate prefill iterations) or rides along (mixed iterations) the decodes: TPOT carries that share.
TTFT is the prefill itself, half an iteration of waiting for the running one to end, and the wait for
earlier arrivals' prefills (a deterministic-service queue).

Disaggregated (`estimate_disagg`): prefill workers run prefill only; decode workers decode only; the
KV cache crosses NVLink or the network in between; the closed-loop request rate is solved so that
prefill queueing, transfer and decode agree.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from estimator.engine import EngineConfig
from estimator.memory import MemoryReport
from estimator.models.spec import ModelSpec
from estimator.parallel import ParallelConfig
from estimator.serving import agg_metrics, disagg_metrics
from estimator.steps import HOST_OP, OpTime, StepModel
from estimator.workload import Workload
from perfdb.errors import InfeasibleError, InputError
from perfdb.lookup import DbView
from perfdb.specs import SystemSpec
from perfdb.types import Source


@dataclass(frozen=True)
class WorkerSpec:
    parallel: ParallelConfig
    engine: EngineConfig
    workers: int | np.ndarray | None = 1  # None (prefill only): rate-matched; arrays broadcast with the workload
    batch: int | None = None   # prefill: requests per prefill iteration (None = 1); decode: cap on batch

    def __post_init__(self) -> None:
        if self.workers is not None and np.any(np.asarray(self.workers) < 1):
            raise InputError(f"workers={self.workers}: need at least 1 worker (or None for rate-matched prefill)")
        if self.batch is not None and self.batch < 1:
            raise InputError(f"batch={self.batch}: must be >= 1")


@dataclass(frozen=True)
class Estimate:
    ttft_ms: np.ndarray | float
    tpot_ms: np.ndarray | float
    request_latency_ms: np.ndarray | float
    tokens_per_s_per_gpu: np.ndarray | float     # output tokens per second per GPU of the deployment
    tokens_per_s_per_user: np.ndarray | float    # 1000 / TPOT
    concurrency: np.ndarray | float              # requests in flight per replica (agg) / per decode worker (disagg)
    num_gpus: int | np.ndarray   # disagg: prefill + decode GPUs (an array when worker counts are)
    memory: MemoryReport
    breakdown: tuple[OpTime, ...]
    source: Source
    feasible: np.ndarray | bool
    reason: str


def _out(x, scalar: bool):
    x = np.asarray(x)
    return x.item() if scalar and x.size == 1 else x


def _is_scalar(w: Workload) -> bool:
    return all(np.ndim(getattr(w, f)) == 0 for f in ("isl", "osl", "prefix", "concurrency"))


def _infeasible(reason: str, num_gpus: int, memory: MemoryReport | None, workload: Workload) -> Estimate:
    """NaN metrics (arrays of the workload's shape when it is vectorised) and the reason."""
    shape = np.broadcast_shapes(*(np.shape(getattr(workload, f)) for f in ("isl", "osl", "prefix", "concurrency")))
    nan = float("nan") if not shape else np.full(shape, np.nan)
    feasible = False if not shape else np.zeros(shape, dtype=bool)
    mem = memory or MemoryReport(0.0, 0.0, 0.0, 0.0, 0.0, 0, False, reason)
    return Estimate(nan, nan, nan, nan, nan, nan, num_gpus, mem, (), Source.ROOFLINE, feasible, reason)


def _worst(ops: tuple[OpTime, ...]) -> Source:
    """Worst source over the kernel ops; the fitted per-step host overhead is reported in the breakdown
    as `calibrated` but does not make the whole estimate calibrated."""
    return max((o.source for o in ops if o.name != HOST_OP), key=lambda s: s.code, default=Source.MEASURED)


def estimate(model: ModelSpec, system: SystemSpec, parallel: ParallelConfig, engine: EngineConfig,
             workload: Workload, view: DbView) -> Estimate:
    """Aggregated replica at `workload.concurrency` requests in flight. Infeasible configurations
    (parallel layout, memory) come back with feasible=False and the reason instead of raising."""
    try:
        sm = StepModel.build(model, system, parallel, engine, view)
    except InfeasibleError as exc:
        return _infeasible(str(exc), parallel.num_gpus, None, workload)
    if not sm.memory.feasible:
        return _infeasible(sm.memory.reason, parallel.num_gpus, sm.memory, workload)
    r = agg_metrics(sm, workload)
    scalar = _is_scalar(workload)
    return Estimate(
        ttft_ms=_out(r.ttft, scalar), tpot_ms=_out(r.tpot, scalar), request_latency_ms=_out(r.latency, scalar),
        tokens_per_s_per_gpu=_out(r.tps_gpu(parallel.num_gpus), scalar), tokens_per_s_per_user=_out(1e3 / r.tpot, scalar),
        concurrency=_out(r.concurrency, scalar), num_gpus=parallel.num_gpus, memory=r.memory,
        breakdown=r.breakdown, source=_worst(r.breakdown), feasible=_out(r.feasible, scalar), reason=r.reason,
    )


def estimate_disagg(model: ModelSpec, system: SystemSpec, prefill: WorkerSpec, decode: WorkerSpec,
                    workload: Workload, view: DbView) -> Estimate:
    """Disaggregated deployment; workload.concurrency is requests in flight per decode worker."""
    try:
        sp = StepModel.build(model, system, prefill.parallel, replace(prefill.engine, prefill_server=True), view)
        sd = StepModel.build(model, system, decode.parallel, decode.engine, view)
    except InfeasibleError as exc:
        return _infeasible(str(exc), 0, None, workload)
    for sm, role in ((sp, "prefill"), (sd, "decode")):
        if not sm.memory.feasible:
            return _infeasible(f"{role} worker: {sm.memory.reason}", 0, sm.memory, workload)
    r = disagg_metrics(sp, sd, prefill, decode, workload)
    gpus = r.prefill_workers * prefill.parallel.num_gpus + np.asarray(decode.workers, dtype=np.float64) * decode.parallel.num_gpus
    scalar = _is_scalar(workload)
    return Estimate(
        ttft_ms=_out(r.ttft, scalar), tpot_ms=_out(r.tpot, scalar), request_latency_ms=_out(r.latency, scalar),
        tokens_per_s_per_gpu=_out(r.tps_gpu(gpus), scalar), tokens_per_s_per_user=_out(1e3 / r.tpot, scalar),
        concurrency=_out(r.concurrency, scalar), num_gpus=_out(gpus, scalar), memory=r.memory, breakdown=r.breakdown,
        source=_worst(r.breakdown), feasible=_out(r.feasible, scalar), reason=r.reason,
    )
