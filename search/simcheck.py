"""Re-check candidates in the discrete-event simulator at their predicted concurrency.

The static estimate is a steady-state average; the simulator replays a closed-loop benchmark
(aiperf --concurrency) request by request with the engine's scheduler, so it shows the queueing
and batching effects the average hides. Results sit beside the static TTFT/TPOT; they do not
re-rank (the simulator is slower and stochastic). Medians are reported: a short closed-loop run
starts with every client's request at once, and that opening wave (which aiperf's warm-up requests
absorb) would dominate the means.
"""
from __future__ import annotations

import math

from estimator.engine import EngineConfig
from estimator.sim import LoadSpec, Pool, SimDeployment, build_steps, simulate
from perfdb.lookup import PerfDB
from search.plan import PlanResult
from search.types import Candidate, Mode, SimCheck

SIM_REQUESTS_PER_CLIENT = 4   # requests each closed-loop client sends (after the first wave's warm-up)
SIM_MIN_REQUESTS = 64
# Identical replicas (agg) or xPyD groups (disagg) behind a balancing router serve the same per-request
# metrics, so the re-check simulates at most this many GPUs' worth of them at the proportional share of
# the concurrency: its cost stays bounded (a 16,384-GPU plan took 70 s simulating every replica).
SIM_MAX_GPUS = 64


def sim_units(c: Candidate) -> tuple[int, int]:
    """(units simulated, units deployed): agg replicas, or disagg xPyD groups."""
    unit_gpus = c.decode.parallel.num_gpus if c.mode == Mode.AGG else c.gpus_used // c.replicas
    deployed = c.decode.workers if c.mode == Mode.AGG else c.replicas
    return min(deployed, max(1, SIM_MAX_GPUS // unit_gpus)), deployed


def sim_deployment(c: Candidate, nvlink_domain_gpus: int) -> SimDeployment:
    units, _ = sim_units(c)
    if c.mode == Mode.AGG:
        w = c.decode
        return SimDeployment(c.backend, agg=Pool(w.parallel, units, w.max_batch, w.max_num_tokens))
    p, d = c.prefill, c.decode
    return SimDeployment(
        c.backend,
        prefill=Pool(p.parallel, p.workers * units, p.max_batch, p.max_num_tokens),
        decode=Pool(d.parallel, d.workers * units, d.max_batch, d.max_num_tokens),
        same_node=p.parallel.num_gpus + d.parallel.num_gpus <= nvlink_domain_gpus)


def simulate_candidate(result: PlanResult, c: Candidate, db: PerfDB, seed: int = 0) -> SimCheck:
    req = result.request
    dep = sim_deployment(c, result.system.nvlink_domain_gpus)
    view = db.view(result.system.name, c.backend, c.version)
    steps = build_steps(result.model, result.system, dep, EngineConfig(c.backend, c.version, kv_dtype=req.kv_dtype),
                        view)
    units, deployed = sim_units(c)
    conc = max(1, int(math.ceil(c.metrics.concurrency * units / deployed)))
    load = LoadSpec.closed(conc, req.isl, req.osl, max(SIM_MIN_REQUESTS, SIM_REQUESTS_PER_CLIENT * conc))
    r = simulate(steps, dep, load, seed=seed)
    ok = r.ttft.p50 <= req.sla.ttft_ms and r.tpot.p50 <= req.sla.tpot_ms
    return SimCheck(row=c.row, ttft_ms=r.ttft.p50, tpot_ms=r.tpot.p50, meets_sla=ok)


def simulate_top(result: PlanResult, db: PerfDB, per_mode: int = 1) -> dict[int, SimCheck]:
    """The best `per_mode` candidates of each mode, simulated; {points row: SimCheck}."""
    out = {}
    for cands in result.top.values():
        for c in cands[:per_mode]:
            out[c.row] = simulate_candidate(result, c, db)
    return out
