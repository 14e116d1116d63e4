"""Re-check candidates in the discrete-event simulator at their predicted concurrency, or at fewer
clients per replica / xPyD group when search.decide backs one off (`per_unit`).

The static estimate is a steady-state average; the simulator replays a closed-loop benchmark
(aiperf --concurrency) request by request with the engine's scheduler, so it shows the queueing
and batching effects the average hides. search.decide ranks and filters each mode's near-frontier
candidates on these results (the static TTFT/TPOT stay beside them). Calibrated or not, the replay follows
the protocol the simulator is validated on (estimator.sim.runs.simulate_runs: 10 requests per client,
the measured requests starting together on an idle engine, as InferenceX's client starts them once its
warm-up has drained) and reports the client's mean, the statistic the benchmarks publish and the
calibration is fitted to. Until 2026-12-05 the uncalibrated re-check used 4 requests per client and the
per-request median: a statistic the benchmarks do not report (on the enriched training table the
simulated median TTFT is 51% off, the mean 34%), and one that hid the opening wave's queue the
breakdown (means) showed: DeepSeek-R1's disagg pick met a 1,000 ms p50 while its mean queue wait was
4.5 s. When the database holds a `--base simulate` calibration for the system/backend (the bundled one
ships one), its corrected mean is shown instead.
"""
from __future__ import annotations

import math
from dataclasses import replace

from estimator.calibration import Calibration
from estimator.calibration_files import resolve_for_base
from estimator.engine import EngineConfig
from estimator.run_facts import RoleFlags
from estimator.sim import Deployment, LoadSpec, Pool, build_steps, simulate
from estimator.sim.calibrated import BASE as SIM_BASE
from estimator.sim.calibrated import calibrate_sweep
from estimator.sim.runs import RUN_MAX_REQUESTS, RUN_REQUESTS_PER_CLIENT
from estimator.sim.types import Lengths
from perfdb.lookup import PerfDB
from perfdb.types import Backend
from search.artifacts.engines import candidate_launch_flags, settings_for
from search.plan import PlanResult
from search.sla import checked, within
from search.types import Candidate, Mode, SimCheck, Sla

SIM_MIN_REQUESTS = 64   # a whole deployment's replay sends at least this many requests
# Identical replicas (agg) or xPyD groups (disagg) behind a balancing router serve the same per-request
# metrics, so the re-check simulates at most this many GPUs' worth of them at the proportional share of
# the concurrency: its cost stays bounded (a 16,384-GPU plan took 70 s simulating every replica).
SIM_MAX_GPUS = 64


def sim_units(c: Candidate) -> tuple[int, int]:
    """(units simulated, units deployed): agg replicas, or disagg xPyD groups. The fewest units that take
    an equal whole share of the static concurrency: a closed loop split evenly over identical units behind
    a balancing router is that many replays of one unit (with fixed lengths exact copies; with the client's
    spread of lengths draws of the same distribution, whose means differ by sampling: tests/search/
    test_simcheck.py pins both against a replay of every unit), and one unit costs a fraction of them
    (DeepSeek-R1 64x b200: 16 replicas -> 1). An uneven split keeps every unit, bounded by SIM_MAX_GPUS at
    the proportional share."""
    unit_gpus = c.decode.parallel.num_gpus if c.mode == Mode.AGG else c.gpus_used // c.replicas
    deployed = c.decode.workers if c.mode == Mode.AGG else c.replicas
    bound = min(deployed, max(1, SIM_MAX_GPUS // unit_gpus))
    conc = c.metrics.concurrency
    if conc >= 1 and float(conc).is_integer():
        return min(deployed // math.gcd(int(conc), deployed), bound), deployed
    return bound, deployed


def sim_requests(clients: int, units: int, deployed: int) -> int:
    """Requests of a replay of `clients` closed-loop clients on `units` of `deployed` units: as validated
    and fitted (estimator.sim.runs: RUN_REQUESTS_PER_CLIENT a client, at most RUN_MAX_REQUESTS), with the
    whole deployment's floor of SIM_MIN_REQUESTS shared over its units, so one unit replays what each of
    them would in a replay of all."""
    return min(RUN_MAX_REQUESTS, max(-(-SIM_MIN_REQUESTS * units // deployed), RUN_REQUESTS_PER_CLIENT * clients))


def sim_deployment(c: Candidate, nvlink_domain_gpus: int) -> Deployment:
    """The candidate as the simulator replays it: `sim_units` of its replicas or xPyD groups, the KV
    path decided per group (estimator.deployment)."""
    units, _ = sim_units(c)
    if c.mode == Mode.AGG:
        w = c.decode
        return Deployment(c.backend, agg=Pool(w.parallel, units, w.max_batch, w.max_num_tokens))
    p, d = c.prefill, c.decode
    return Deployment.disaggregated(c.backend, Pool(p.parallel, p.workers * units, p.max_batch, p.max_num_tokens),
                                    Pool(d.parallel, d.workers * units, d.max_batch, d.max_num_tokens),
                                    nvlink_domain_gpus, groups=units)


def candidate_flags(result: PlanResult, c: Candidate) -> RoleFlags:
    """The launch flags the plan writes for the candidate's workers (search.artifacts.engines.launch_flags),
    per role, for the simulator's schedulers: e.g. TRT-LLM's chunked context on an aggregated worker and
    its overlap executor off on a context server are what the artifacts launch and what the replay runs."""
    return RoleFlags.of_roles(candidate_launch_flags(c, settings_for(result.request, result.model, result.system, c)))


def sim_clients(c: Candidate, per_unit: int | None = None) -> tuple[int, float]:
    """(closed-loop clients simulated, requests in flight over the whole deployment they stand for): the
    candidate's static concurrency, or `per_unit` clients per replica / xPyD group."""
    units, deployed = sim_units(c)
    if per_unit is None:
        return max(1, int(math.ceil(c.metrics.concurrency * units / deployed))), c.metrics.concurrency
    return per_unit * units, float(per_unit * deployed)


def simulate_candidate(result: PlanResult, c: Candidate, db: PerfDB, seed: int = 0,
                       cal: Calibration | None = None, per_unit: int | None = None) -> SimCheck:
    """The candidate replayed as a closed loop at its static concurrency, or at `per_unit` clients per
    replica / xPyD group; corrected by `cal` (a `--base simulate` calibration) when given."""
    req = result.request
    dep = sim_deployment(c, result.system.nvlink_domain_gpus)
    view = db.view(result.system.name, c.backend, c.version)
    steps = build_steps(result.model, result.system, dep, EngineConfig(c.backend, c.version, kv_dtype=req.kv_dtype),
                        view)
    conc, load = sim_clients(c, per_unit)
    n = sim_requests(conc, *sim_units(c))
    lengths = (Lengths.of(req.isl, req.range_ratio), Lengths.of(req.osl, req.range_ratio))   # the client's spread
    r = simulate(steps, dep, LoadSpec.closed(conc, *lengths, n), seed=seed, engine_flags=candidate_flags(result, c))
    tps = r.output_tokens_per_s_per_gpu * c.gpus_used / c.total_gpus   # idle GPUs of the budget count
    hi = (None, None)
    if cal is None:
        ttft, tpot, stat = r.ttft.mean, r.tpot.mean, "mean"
    else:   # the simulated clients; calibrate_sweep takes the fit's feature per replica / xPyD group
        (p,) = calibrate_sweep([r], [conc], cal, dep, result.system.name, c.version, req.isl,
                               req.osl, result.model)
        ttft, tpot, stat = p.ttft_ms, p.tpot_ms, p.statistic
        # a closed loop at fixed concurrency: throughput scales inversely with the request latency
        tps *= (r.ttft.mean + (req.osl - 1) * r.tpot.mean) / (ttft + (req.osl - 1) * tpot)
        hi = tuple(None if iv is None else float(iv.hi) for iv in (p.ttft, p.tpot))
    s = SimCheck(row=c.row, ttft_ms=ttft, tpot_ms=tpot, meets_sla=False, statistic=stat, calibrated=cal is not None,
                 tokens_per_s_per_gpu=tps, ttft_hi_ms=hi[0], tpot_hi_ms=hi[1], parts=r.ttft_parts, concurrency=load)
    return replace(s, meets_sla=bool(within(*sim_checked(s, req.sla, req.osl), req.sla)))


def sim_checked(s: SimCheck, sla: Sla, osl: int) -> tuple[float, float, float]:
    """The replay's (TTFT, TPOT, request latency) the targets are checked on (search.sla.checked): with
    `--sla-at upper`, the upper ends of the simulate calibration's intervals; the replay's own values where
    it has none (uncalibrated)."""
    hi_ttft = s.ttft_ms if s.ttft_hi_ms is None else s.ttft_hi_ms
    hi_tpot = s.tpot_ms if s.tpot_hi_ms is None or s.ttft_hi_ms is None else s.tpot_hi_ms
    return checked(s.ttft_ms, s.tpot_ms, s.ttft_ms + (osl - 1) * s.tpot_ms, hi_ttft, hi_tpot, sla)


def sim_calibration(result: PlanResult, backend: Backend) -> Calibration | None:
    """The `--base simulate` calibration for the system/backend: the plan's --calibration when it was
    fitted on the simulator, else the one stored in the plan's database, unless --calibration none."""
    req = result.request
    return resolve_for_base(req.calibration, req.db_root, result.system.name, backend.value, SIM_BASE,
                            req.stored_calibration)
