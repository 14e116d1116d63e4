"""Simulate measured runs (rows of the e2e_train_silicon.csv format) at their measured concurrency.

The closed loop runs `requests_per_client` requests per client (InferenceX sends 10 x concurrency
prompts), capped at `max_requests` so that thousands of rows stay affordable; the first wave of a
closed loop arrives at once, as it does in the benchmark. Each row's deployment is
estimator.deployment.from_row's, as the static prediction's: layouts within one NVLink domain, the KV
path per xPyD group. Aggregated rows are one replica holding the whole concurrency (the run table's
batch_size is per replica, and agg rows have one replica); disaggregated rows use the table's worker
counts (recorded, or filled by `servecast calibrate enrich`), or where it omits them the estimator's
rules (estimator.runs / estimator.serving): decode workers holding the concurrency within
min(KV pool, DECODE_BATCH_PRIOR) requests each, prefill workers rate-matched at PREFILL_TARGET_UTIL.
Each row's engine is the estimator's too (the enrichment's speculative decoding, else RUN_SPEC_TOKENS
drafts where it assumes them). An enriched row also replays its client protocol: its request and
warm-up counts (capped as above) and its length distribution (below), which the static estimate does
not model.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from estimator.deployment import Deployment, from_row
from estimator.engine import EngineConfig
from estimator.runs import (
    DECODE_BATCH_PRIOR,
    Prediction,
    RunRow,
    client_mean_lengths,
    group_key,
    model_for,
    pick_version,
    spec_tokens,
)
from estimator.serving import max_batch, prefill_workers_needed
from estimator.sim.build import build_steps
from estimator.sim.engine import RoleSteps, simulate
from estimator.sim.metrics import SimResult
from estimator.sim.types import Lengths, LoadSpec, client_spread
from perfdb.errors import ServecastError
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend


def row_engine(row: RunRow, backend: Backend, model) -> EngineConfig:
    """The engine the estimator assumes for a run-table row (its recorded speculative decoding, if
    enriched); an aggregated row's engine also gets its recorded limits (engine_max_batch_size,
    engine_max_num_tokens: the launch flags, per attention-DP rank where the engine's are per rank)
    and memory share (engine_mem_fraction, in the engine's own sense: estimator.memory). What each role's
    launch settings name per engine (expert slots, MoE exchange and kernel) rides on its Pool (from_row)."""
    agg = row.mode != "disagg"
    return EngineConfig(backend, spec_tokens=spec_tokens(row, backend, model),
                        max_batch_size=row.facts.max_batch if agg else None,
                        max_num_tokens=row.facts.max_num_tokens if agg else None,
                        mem_fraction=row.facts.mem_fraction if agg else None)


def _deployment(row: RunRow, system, steps_for, model) -> tuple[Deployment, int]:
    """The row's deployment (estimator.deployment.from_row: layouts within an NVLink domain, the KV path
    per xPyD group, each engine's expert slots and MoE kernel) with the worker counts the table omits
    derived by the estimator's rules."""
    conc = int(row.concurrency or (row.agg.batch if row.agg else 1) or 1)
    experts, moe = model.num_experts, model.moe_quant
    if row.mode != "disagg":
        return from_row(row, system, experts=experts, moe_dtype=moe), conc
    one = from_row(row, system, 1, 1, experts, moe)
    steps: RoleSteps = steps_for(one)
    cap = min(max(float(max_batch(steps.decode, np.float64(row.isl), np.float64(row.osl))), 1.0), DECODE_BATCH_PRIOR)
    if one.decode.max_batch:
        cap = min(cap, one.decode.max_batch)
    d_workers = row.decode.workers or max(1, math.ceil(conc / cap))
    p_workers = row.prefill.workers
    if p_workers is None:   # rate-matched on the path of a one-prefill-worker group (as estimator.serving)
        sd, sp = steps.decode, steps.prefill
        pre = float(sp.prefill_ms(1, row.isl, 0))
        path = from_row(row, system, 1, d_workers, experts, moe)
        xfer = float(sp.kv_transfer_ms(row.isl, path.decode.parallel, path.same_node))
        dec = float(sd.decode_ms(min(conc / d_workers, cap), row.isl + row.osl / 2))
        rate = conc / (pre + xfer + row.osl * dec / sd.resolved.tokens_per_step)   # requests/ms, no queueing
        p_workers = int(prefill_workers_needed(np.float64(rate), np.float64(pre), 1.0))
    return from_row(row, system, p_workers, d_workers, experts, moe), conc


@dataclass(frozen=True)
class SimRun:
    id: str
    status: str                        # 'ok' or why the row could not be simulated
    result: SimResult | None
    deployment: Deployment | None

    def prediction(self, stat: str = "mean") -> Prediction:
        """As estimator.runs.Prediction, TTFT/TPOT taken as the client's `stat` (mean | p50 | p90 | p99)."""
        if self.result is None:
            return Prediction(self.id, math.nan, math.nan, math.nan, self.status)
        r = self.result
        return Prediction(self.id, getattr(r.ttft, stat), getattr(r.tpot, stat), r.output_tokens_per_s_per_gpu, "ok")


# the replay protocol of a measured run (and so of every `--base simulate` calibration fitted on them)
RUN_REQUESTS_PER_CLIENT, RUN_MAX_REQUESTS = 10, 20_000


def simulate_runs(rows: list[RunRow], db: PerfDB, requests_per_client: int = RUN_REQUESTS_PER_CLIENT,
                  max_requests: int = RUN_MAX_REQUESTS,
                  seed: int = 0, frontend_ms: float | None = None, range_ratio: float = 0.0,
                  on_row: Callable[[], None] | None = None) -> list[SimRun]:
    """One SimRun per row, in input order. `frontend_ms` as in simulate() (None: the estimator's);
    `range_ratio` > 0 draws ISL/OSL uniformly around the row's (the table records nominal lengths).
    `on_row` is called once per row done (a progress bar: the 2,437 training runs take minutes)."""
    groups: dict[tuple, list[RunRow]] = defaultdict(list)
    for r in rows:
        groups[group_key(r)].append(r)
    out: dict[str, SimRun] = {}
    for group in groups.values():
        r0 = group[0]
        try:
            backend = Backend(r0.backend)
            system = load_system(r0.system)
            model = model_for(r0, system)
            view = db.view(r0.system, backend, pick_version(db, r0.system, backend, r0.backend_version))
        except (ServecastError, ValueError) as exc:
            out.update((r.id, _failed(r, exc)) for r in group)
            if on_row:
                for _ in group:
                    on_row()
            continue
        cache: dict[tuple, object] = {}
        for row in group:
            out[row.id] = _one(row, backend, model, system, view, cache, (requests_per_client, max_requests),
                               seed, frontend_ms, range_ratio)
            if on_row:
                on_row()
    return [out[r.id] for r in rows]


def _one(row, backend, model, system, view, cache, counts, seed, frontend_ms, range_ratio) -> SimRun:
    try:
        if row.isl < 1 or row.osl < 1 or (row.agg is None and row.mode != "disagg"):
            raise ValueError("row lacks isl/osl or its parallel layout")
        engine = row_engine(row, backend, model)

        def steps_for(dep: Deployment):
            # workers and routing do not change a worker's step model: key on everything else a pool holds
            key = (engine, *(replace(p, workers=1) if p else None for p in (dep.agg, dep.prefill, dep.decode)))
            if key not in cache:
                cache[key] = build_steps(model, system, dep, engine, view)
            return cache[key]

        dep, conc = _deployment(row, system, steps_for, model)
        steps = steps_for(dep)
        # the client's warm-up is a phase of its own that drains before the measured run (InferenceX
        # utils/bench_serving/benchmark_serving.py: `await asyncio.gather(*warmup_tasks)` before the
        # benchmark starts): the measured requests start on an idle engine, their first wave at once
        n = max(conc, min(row.facts.num_prompts or counts[0] * conc, counts[1]))
        isl, osl = _lengths(row, range_ratio)
        load = LoadSpec.closed(conc, isl, osl, n)
        flags = row.facts.per_role(disagg=dep.agg is None)   # each role's engine as launched
        r = simulate(steps, dep, load, seed=seed, frontend_ms=frontend_ms, engine_flags=flags)
    except (ServecastError, ValueError) as exc:
        return _failed(row, exc)
    return SimRun(row.id, "ok", r, dep)


def _lengths(row: RunRow, range_ratio: float) -> tuple[Lengths, Lengths]:
    """ISL/OSL draws: `range_ratio` > 0 as asked; else the row's recorded client protocol (InferenceX's
    client draws integers in [r x nominal, nominal]: the simulator's uniform around a mean, mean
    nominal x (1 + r) / 2 and ratio (1 - r) / (1 + r)); else the nominal lengths."""
    if range_ratio > 0 or row.facts.range_ratio is None or not 0 <= row.facts.range_ratio < 1:
        return Lengths.of(row.isl, range_ratio), Lengths.of(row.osl, range_ratio)
    sym = client_spread(row.facts.range_ratio)
    isl, osl = client_mean_lengths(row)   # the static estimate's lengths too
    return Lengths.of(isl, sym), Lengths.of(osl, sym)


def _failed(row: RunRow, exc: Exception) -> SimRun:
    return SimRun(row.id, f"{type(exc).__name__}: {exc}", None, None)
