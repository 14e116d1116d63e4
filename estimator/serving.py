"""Steady-state serving arithmetic on top of the step model (see estimate.py for the picture).

All quantities are arrays broadcast over the workload; times in ms, rates in requests per ms.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from estimator.deployment import kv_same_node
from estimator.memory import MemoryReport, kv_requests
from estimator.steps import OpTime, StepModel
from estimator.workload import Workload
from perfdb.types import Phase

if TYPE_CHECKING:
    from estimator.estimate import WorkerSpec

RHO_MAX = 0.98  # queue utilisation cap: beyond it the closed loop, not the queue formula, sets the wait
# Disaggregated deployments whose prefill worker count is not given: enough prefill workers that each
# would be busy this share of the time at the request rate the decode side sustains. Above 1 the
# pool is smaller than rate matching asks and the closed loop becomes prefill-bound. Fitted on
# e2e_train_silicon.csv disagg rows among 1.0 / 1.15 / 1.3 (grouped 5-fold CV picks 1.15 in 4 of 5
# folds; see docs/bench/estimator.md): the measured deployments run their prefill pools hot.
PREFILL_TARGET_UTIL = 1.15


@dataclass(frozen=True)
class ServingResult:
    ttft: np.ndarray
    tpot: np.ndarray
    latency: np.ndarray
    concurrency: np.ndarray     # requests in flight per replica / per decode worker
    req_per_ms: np.ndarray      # whole deployment
    osl: np.ndarray
    memory: MemoryReport
    breakdown: tuple[OpTime, ...]
    feasible: np.ndarray
    reason: str
    prefill_workers: np.ndarray | None = None   # disagg: the prefill worker count used (given or rate-matched)

    def tps_gpu(self, num_gpus: int) -> np.ndarray:
        return self.req_per_ms * self.osl * 1e3 / num_gpus


def _arrays(w: Workload):
    isl, osl, prefix, conc = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64)
                                                   for x in (w.isl, w.osl, w.prefix, w.concurrency)))
    new = np.maximum(isl - prefix, 1.0)
    # concurrency as given, fractions too: a run with fewer clients than workers (one client over nine
    # decode workers) holds conc x workers requests in all, each busy worker one (busy_batch)
    return isl, np.maximum(osl, 1.0), np.minimum(prefix, isl - 1.0).clip(0.0), conc, new


def max_batch(sm: StepModel, isl: np.ndarray, osl: np.ndarray) -> np.ndarray:
    """Requests the KV pool and the engine's batch cap admit per replica."""
    mem = sm.memory
    # TRT-LLM's default capacity scheduler (GUARANTEED_NO_EVICT) reserves the full sequence; vLLM and
    # SGLang allocate KV blocks as tokens arrive (preempting/retracting when short), so in steady state
    # a request holds its prompt plus half its output on average.
    tokens = isl + (osl if sm.resolved.reserves_full_sequence else osl / 2.0)
    return np.minimum(kv_requests(mem, tokens, sm.parallel.attn_dp), mem.max_batch)


def _mdl_wait(rho: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Mean wait in an M/D/1 queue with utilisation rho and deterministic service time."""
    rho = np.clip(rho, 0.0, RHO_MAX)
    return rho / (2.0 * (1.0 - rho)) * service


def busy_batch(conc: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Requests a busy worker holds: its share of the clients, within its batch cap, and at least the one
    it is serving. Fewer clients than workers (one client over nine decode workers: 1/9 each) leave some
    workers idle; the total in flight stays conc x workers (that total once counted one per worker:
    nine requests for the one client, whose opening burst then queued nine deep at the prefill worker,
    415 ms predicted for a 1k-token DeepSeek-R1 prompt the simulator prices at 159)."""
    return np.minimum(np.maximum(conc, 1.0), np.maximum(cap, 1.0))


def _feasibility(sm: StepModel, cap: np.ndarray) -> tuple[np.ndarray, str]:
    ok = cap >= 1
    reason = "" if np.all(ok) else (f"KV cache of {sm.memory.kv_capacity_tokens:.0f} tokens cannot hold one "
                                    f"request of isl+osl tokens with {sm.parallel.label()}")
    return ok, reason


def agg_metrics(sm: StepModel, w: Workload) -> ServingResult:
    isl, osl, prefix, conc, new = _arrays(w)
    cap = max_batch(sm, isl, osl)
    ok, reason = _feasibility(sm, cap)
    b = busy_batch(conc, cap)
    kv_mean = isl + osl / 2.0
    eng = sm.resolved
    chunks = np.ceil(new / eng.max_num_tokens)
    chunk = new / chunks
    chunk_prefix = prefix + (chunks - 1.0) / 2.0 * chunk   # mean cached length seen by a chunk
    per_step = np.clip(np.floor(eng.max_num_tokens / new), 1.0, b)   # prefills packed into one iteration
    burst = (Phase.PREFILL, per_step, chunk, chunk_prefix, 0, 0)
    if eng.mixes_prefill:   # prefill chunks ride along with the running decodes
        dec, pre, full = sm.steps([(Phase.DECODE, 0, 0, 0, b, kv_mean),
                                   (Phase.MIXED, 1.0, chunk, chunk_prefix, np.maximum(b - 1.0, 0.0), kv_mean), burst])
        work = chunks * np.maximum(pre.ms - dec.ms, 0.0)       # extra time the decodes wait per request
    else:                   # separate prefill iterations pause the decodes
        dec, pre, full = sm.steps([(Phase.DECODE, 0, 0, 0, b, kv_mean), (Phase.PREFILL, 1.0, chunk, chunk_prefix, 0, 0), burst])
        work = chunks * pre.ms
        if w.num_requests is not None:
            # a closed loop's waves arrive together (the burst below): a wave's b prompts are prefilled
            # per_step to an iteration, each iteration paying its host time once (StepResult.host_ms), so a
            # prompt pauses the decodes for its share of the wave's prefill iterations, not a whole one
            work = np.minimum(work, np.ceil(b / per_step) * chunks * full.ms / b)
    first_token = chunks * pre.ms
    gain = eng.tokens_per_step                                 # tokens per request per iteration (>1: speculative)
    # A request sees the other b - 1 (the arrival theorem of closed queueing networks, as in mean value
    # analysis): their prefills interrupt its decode, their running iteration delays its prefill. One
    # client alone never waits behind itself.
    others = (b - 1.0) / b
    arrivals = (b - 1.0) * gain / osl                          # other requests' prefills per decode iteration
    tpot = (dec.ms + arrivals * work) / gain
    rho = arrivals * work / (tpot * gain)                      # share of time spent on others' prefill work
    ttft = first_token + 0.5 * dec.ms * others + _mdl_wait(rho, work) + eng.ttft_overhead_ms
    cycle = ttft + (osl - 1.0) * tpot
    ttft = ttft + np.maximum(conc - b, 0.0) / b * cycle        # requests beyond the batch cap queue
    if w.num_requests is not None and eng.mixes_prefill and eng.group_wait_weight:
        # a packed group returns together (engine.GROUP_WAIT_WEIGHT): its whole prefill iteration, after
        # half the running iteration
        group = full.ms + 0.5 * dec.ms + eng.ttft_overhead_ms
        ttft = ttft + eng.group_wait_weight * np.maximum(group - ttft, 0.0)
    if w.num_requests is not None:  # the opening burst: all b requests queue for prefill iterations at once
        steps = np.ceil(b / per_step) * chunks
        burst_ttft = (steps + 1.0) / 2.0 * full.ms / chunks + eng.ttft_overhead_ms
        # Mixing engines decode between the burst's prefills, so the first wave finishes spread out and
        # the burst happens once (weight concurrency/requests). Engines that pause decodes for prefills
        # (SGLang) start every decode of the wave together; with a fixed osl they finish together and
        # the next wave arrives as a burst again: every wave pays it.
        weight = np.minimum(1.0, conc / np.asarray(w.num_requests, dtype=np.float64)) if eng.mixes_prefill else 1.0
        ttft = ttft + np.maximum(burst_ttft - ttft, 0.0) * weight
    latency = ttft + (osl - 1.0) * tpot
    mem = replace(sm.memory, max_batch=int(np.min(cap)) if cap.size else sm.memory.max_batch)
    return ServingResult(ttft=ttft, tpot=tpot, latency=latency, concurrency=conc, req_per_ms=conc / latency,
                         osl=osl, memory=mem, breakdown=dec.ops + pre.ops, feasible=ok, reason=reason)


def seen_share(n_total):
    """Share of the load an arriving request sees in a closed loop of n_total clients: the other
    n - 1 (the arrival theorem; mean value analysis)."""
    n = np.maximum(np.asarray(n_total, dtype=np.float64), 1.0)
    return (n - 1.0) / n


def _solve_rate(n_total, t0, service, mu) -> np.ndarray:
    """Closed loop: requests/ms lam with lam * (t0 + M/D/1 wait at the utilisation the other clients
    make, seen_share x lam / mu) = n_total (bisection)."""
    lo = np.zeros_like(t0)
    hi = np.minimum(mu * RHO_MAX, n_total / t0)
    seen = seen_share(n_total)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        f = mid * (t0 + _mdl_wait(seen * mid / mu, service)) - n_total
        lo, hi = np.where(f < 0, mid, lo), np.where(f < 0, hi, mid)
    return 0.5 * (lo + hi)


def _batch_service(p1, fixed, k):
    """Per-request service of a batch of k requests that pays the iteration's `fixed` part once."""
    return p1 - fixed + fixed / k


def _batched_extra(rho, p1, kmax, fixed=0.0):
    """Extra prefill-side time (ms) of a request over its own unqueued prefill p1 when a prefill
    worker packs the requests that queued during its previous iteration into one iteration (up to
    kmax by the token budget): it finishes with its whole batch of k requests (k ~ 1/(1-rho)), after
    the running batch's residual and the backlog ahead of it (M/D/1 with the per-request service).
    `fixed`: the part of p1 an iteration pays once whatever it holds (its host time outside kernels,
    StepResult.host_ms), so a batch of k takes k (p1 - fixed) + fixed, not k p1, as the simulator's
    batched prefill iterations do. `rho` is the utilisation at one request per iteration; batching
    lowers it to rho x (per-request service / p1)."""
    rho1 = np.clip(rho, 0.0, RHO_MAX)
    k = np.clip(1.0 / (1.0 - rho1), 1.0, kmax)
    rho = np.clip(rho1 * _batch_service(p1, fixed, k) / p1, 0.0, RHO_MAX)
    k = np.clip(1.0 / (1.0 - rho), 1.0, kmax)
    service = _batch_service(p1, fixed, k)
    batch = k * service
    return batch - p1 + rho * batch / 2.0 + _mdl_wait(rho, service)


def _solve_rate_batched(n_total, t0, p1, mu, kmax, fixed=0.0) -> np.ndarray:
    """Closed loop as `_solve_rate`, with the batching prefill worker's time (`_batched_extra`); its
    capacity is that of full batches (kmax requests per iteration paying `fixed` once)."""
    lo = np.zeros_like(t0)
    hi = np.minimum(mu * p1 / _batch_service(p1, fixed, kmax) * RHO_MAX, n_total / t0)
    seen = seen_share(n_total)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        f = mid * (t0 + _batched_extra(seen * mid / mu, p1, kmax, fixed)) - n_total
        lo, hi = np.where(f < 0, mid, lo), np.where(f < 0, hi, mid)
    return 0.5 * (lo + hi)


def _prefill_steps(sp: StepModel, prefill: "WorkerSpec", new, prefix):
    """(requests per forward, that forward, a full iteration, requests in it / pb) of a prefill worker.
    Attention DP: each rank prefills its own requests (attention at TP 1), the MoE runs over every
    rank's tokens; a worker batching what queued serves `ranks` requests per iteration, each at the pace
    of a full one. An explicit batch (the search's candidates) already counts the worker's requests."""
    pb = float(prefill.batch or 1)
    pre = sp.step(Phase.PREFILL, pb, new, prefix, 0, 0)
    ranks = float(sp.parallel.attn_dp) if prefill.batch is None else 1.0
    full = sp.step(Phase.PREFILL, pb * ranks, new, prefix, 0, 0) if ranks > 1 else pre
    return pb, pre, full, ranks


def disagg_metrics(sp: StepModel, sd: StepModel, prefill: "WorkerSpec", decode: "WorkerSpec",
                   w: Workload) -> ServingResult:
    """`prefill.workers` None: as many prefill workers as keep their utilisation at
    PREFILL_TARGET_UTIL for the rate the decode side sustains (rate-matched). Worker counts may be
    arrays that broadcast with the workload."""
    isl, osl, prefix, conc, new = _arrays(w)
    cap = max_batch(sd, isl, osl)
    if decode.batch:
        cap = np.minimum(cap, decode.batch)
    ok, reason = _feasibility(sd, cap)
    b = busy_batch(conc, cap)
    dec = sd.step(Phase.DECODE, 0, 0, 0, b, isl + osl / 2.0)
    pb, pre, full, ranks = _prefill_steps(sp, prefill, new, prefix)
    share = full.ms / ranks                                    # worker time per request at full load
    # the KV path is decided per xPyD group (estimator.deployment.kv_same_node): NVLink when the group fits
    # one NVLink domain. Rate-matched prefill pools are sized on the path a one-prefill-worker group takes.
    by_path = {same: sp.kv_transfer_ms(isl, decode.parallel, same) for same in (True, False)}
    d_workers = np.asarray(decode.workers, dtype=np.float64)

    def path_xfer(p_workers):
        same = kv_same_node(sp.system.nvlink_domain_gpus, prefill.parallel.num_gpus, p_workers,
                            decode.parallel.num_gpus, d_workers)
        return np.where(same, by_path[True], by_path[False])

    tpot = dec.ms / sd.resolved.tokens_per_step
    n_total = conc * d_workers
    # the decode worker's running iteration delays the hand-off only when others are decoding
    dec_wait = 0.5 * dec.ms * (b - 1.0) / b
    p_workers = np.asarray(prefill.workers, dtype=np.float64) if prefill.workers is not None else \
        prefill_workers_needed(n_total / (pre.ms + path_xfer(1.0) + dec_wait + (osl - 1.0) * tpot), share, pb)
    xfer = path_xfer(p_workers)
    t0 = pre.ms + xfer + dec_wait + (osl - 1.0) * tpot         # a request's time with no queueing
    mu = p_workers * pb / share                                # prefill capacity, requests per ms
    if prefill.batch is None:   # the engine batches what queued, up to its token budget
        kmax = np.maximum(1.0, np.floor(sp.resolved.max_num_tokens / new))
        lam = _solve_rate_batched(n_total, t0, share, mu, kmax, full.host_ms / ranks)
    else:
        lam = _solve_rate(n_total, t0, share, mu)
    # the decode pool holds at most b requests per worker: beyond it requests wait for admission (their
    # KV parked at the prefill side), and that wait is part of TTFT
    lam = np.minimum(lam, b * d_workers / (dec_wait + (osl - 1.0) * tpot))
    ttft = n_total / lam - (osl - 1.0) * tpot + sp.resolved.ttft_overhead_ms
    if w.num_requests is not None:  # the opening burst: every request queues at the prefill workers at once
        waves = np.ceil(n_total / (p_workers * pb * ranks))
        burst_ttft = (waves - 1.0) / 2.0 * full.ms + pre.ms + xfer + sp.resolved.ttft_overhead_ms
        ttft = ttft + np.maximum(burst_ttft - ttft, 0.0) * np.minimum(1.0, conc / np.asarray(w.num_requests, dtype=np.float64))
    latency = ttft + (osl - 1.0) * tpot
    lam = n_total / latency
    xfer_op = OpTime("kv_transfer", Phase.PREFILL, np.broadcast_to(xfer, ttft.shape), pre.source)
    return ServingResult(ttft=ttft, tpot=tpot, latency=latency, concurrency=conc, req_per_ms=lam, osl=osl,
                         memory=replace(sd.memory, max_batch=int(np.min(cap))), breakdown=dec.ops + pre.ops + (xfer_op,),
                         feasible=ok, reason=reason, prefill_workers=p_workers)


def prefill_workers_needed(rate: np.ndarray, prefill_ms: np.ndarray, batch: float) -> np.ndarray:
    """Prefill workers that serve `rate` requests/ms at PREFILL_TARGET_UTIL utilisation."""
    return np.maximum(1.0, np.ceil(rate * prefill_ms / batch / PREFILL_TARGET_UTIL))
