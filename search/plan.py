"""`plan()`: enumerate -> evaluate (vectorised) -> strict SLA filter -> Pareto -> rank -> re-check.

The reported results are re-evaluated through the estimator's public `estimate_disagg` and the SLA
is checked again on those numbers, so nothing reported can violate a target even if the vectorised
composition and the estimator ever drift apart (see _confirm).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from estimator.calibration_files import resolve_for_base
from estimator.models import load_model
from estimator.models.spec import ModelSpec
from perfdb.errors import InfeasibleError, InputError
from perfdb.lookup import PerfDB
from perfdb.specs import SystemSpec, load_system
from perfdb.types import Backend
from search.artifacts.engines import Role, supports
from search.calibrated import BASE, calibrate_points
from search.disagg import GroupLoad, compose, dominant
from search.evaluate import Context, decode_workers, evaluate_agg, prefill_workers
from search.pareto import frontier
from search.points import BACKENDS, MODES, PointTable
from search.rank import Ranking, rank
from search.recheck import recheck
from search.sla import Diagnosis, diagnose, meets
from search.space import parallel_configs
from search.types import DECIDE_POOL, Candidate, Mode, PlanRequest, SlaAt


@dataclass(frozen=True)
class PlanResult:
    request: PlanRequest
    model: ModelSpec
    system: SystemSpec
    versions: dict                     # Backend -> database version used (None = roofline only)
    points: PointTable                 # every evaluated deployment, `meets_sla` filled in
    worker_points: int                 # prefill/decode worker evaluations behind the disagg rows
    top: dict                          # Mode -> tuple[Candidate, ...], best first, all meeting the SLA
    winner: Candidate | None
    speedup: float | None              # winner's tokens/s/GPU over the other mode's best
    per_backend: dict                  # Backend -> best Candidate (when several backends ran)
    frontier: dict                     # Mode -> row indices of the SLA-meeting Pareto frontier
    frontier_all: dict                 # Mode -> row indices of the frontier ignoring the SLA
    diagnosis: Diagnosis | None        # set when nothing meets the SLA
    calibrations: dict = field(default_factory=dict)   # Backend -> Calibration applied (empty: uncalibrated)
    # set by search.decide: the replays that ranked the modes, the rows they failed, the static pick
    sims: dict = field(default_factory=dict)            # points row -> SimCheck
    rejected: tuple = ()
    static_winner: Candidate | None = None
    why: str = ""                                      # one line: why the winning mode wins under load
    # set by servecast.api.plan(save_dir=...): points row -> its artifact directory, relative to save_dir
    artifacts: dict = field(default_factory=dict)

    @property
    def points_evaluated(self) -> int:
        return len(self.points) + self.worker_points


def _backend_points(ctx: Context, modes: tuple[Mode, ...], sla) -> tuple[list[PointTable], int]:
    # memory feasibility is the estimator's (Context.step_model drops shapes that do not fit)
    configs = parallel_configs(ctx.model, ctx.system, ctx.budget)
    tables, workers = [], 0
    if Mode.AGG in modes:
        tables.append(evaluate_agg(ctx, [p for p in configs if supports(ctx.backend, p, Role.AGG)], sla))
    if Mode.DISAGG in modes and ctx.budget >= 2:
        # each role only in the shapes its engine runs in that role (e.g. no decode-side PP in vLLM)
        half = [p for p in configs if p.num_gpus < ctx.budget and supports(ctx.backend, p, Role.PREFILL)]
        dec_half = [p for p in configs if p.num_gpus < ctx.budget and supports(ctx.backend, p, Role.DECODE)]
        pre = prefill_workers(ctx, half)
        dec = decode_workers(ctx, dec_half)
        workers = len(pre) + len(dec)
        pre = pre.take(dominant(pre))

        def kv_ms(pi: int, di: int, same: bool) -> float:
            return float(ctx.prefill_model(half[pi]).kv_transfer_ms(ctx.isl, dec_half[di], same))

        overhead = ctx.prefill_model(half[int(pre.cfg[0])]).resolved.ttft_overhead_ms if len(pre) else 0.0
        tables.append(compose(pre, dec, kv_ms, GroupLoad(ctx.osl, ctx.budget, overhead, ctx.system.nvlink_domain_gpus),
                              BACKENDS.index(ctx.backend), half, dec_half))
    return tables, workers


def _screen(contexts: dict, modes: tuple[Mode, ...], sla, apart) -> dict:
    """{backend: (point tables, worker points, memory reasons)} of `_backend_points`, every other backend
    through `apart`'s first function (see `plan`; None: all here, in order)."""
    def run(backends) -> dict:
        out = {}
        for b in backends:
            t, w = _backend_points(contexts[b], modes, sla)
            out[b] = (t, w, list(contexts[b].memory_reasons))
        return out

    backends = list(contexts)
    if len(backends) < 2 or apart is None:   # nothing to share, or nowhere to share it
        return run(backends)
    there, here = apart(lambda: run(backends[1::2]), lambda: run(backends[0::2]))
    return here | there


def _no_fit_error(req: PlanRequest, model: ModelSpec, reasons: list[str]) -> InfeasibleError:
    why = reasons[-1] if reasons else "no parallel layout of the budget is valid for this model"
    return InfeasibleError(f"{model.name} fits nowhere in {req.total_gpus} x {req.system} GPUs "
                           f"({', '.join(b.value for b in req.backends)}): {why}; "
                           "try more --total-gpus, a quantized checkpoint or a larger GPU")


def _same(a: Candidate, b: Candidate, rel: float = 1e-6) -> bool:
    ma, mb = a.metrics, b.metrics
    return all(abs(x - y) <= rel * max(abs(x), 1e-9) for x, y in (
        (ma.ttft_ms, mb.ttft_ms), (ma.tpot_ms, mb.tpot_ms), (ma.tokens_per_s_per_gpu, mb.tokens_per_s_per_gpu)))


def plan(req: PlanRequest, db: PerfDB, apart=None) -> PlanResult:
    """The static search: every deployment of the budget evaluated, calibrated, filtered and ranked.

    apart(fn, here) -> (fn(), here()): how two pieces of work run (servecast.sidework.alongside: fn in a
    forked child on the second core; None: one after the other here). Every other backend's screen
    (`req.backends[1::2]`) goes to fn; the points are concatenated in backend order either way, so the
    result does not depend on it."""
    system = load_system(req.system)
    model = load_model(req.model, gemm_quant=req.gemm_quant, moe_quant=req.moe_quant, kv_dtype=req.kv_dtype,
                       hf_hub=req.hf_hub)
    modes = req.mode.modes()
    versions, contexts = {}, {}
    for backend in req.backends:
        view = db.view(system.name, backend, req.version)   # unknown version: NotFoundError listing the known
        versions[backend] = view.version
        ctx = Context(model, system, backend, view, view.version, req.kv_dtype, req.isl, req.osl, req.prefix,
                      req.total_gpus, calibration=resolve_for_base(req.calibration, req.db_root, system.name,
                                                                   backend.value, BASE, req.stored_calibration))
        if req.sla.at == SlaAt.UPPER and ctx.calibration is None:
            raise InputError(f"--sla-at upper checks the targets on the calibration's prediction intervals, and "
                             f"{backend.value} on {system.name} has no calibration (give --calibration DIR from "
                             "`servecast calibrate fit`, or use --sla-at median)")
        contexts[backend] = ctx
    screened = _screen(contexts, modes, req.sla, apart)
    tables, workers, reasons = [], 0, []
    for backend in req.backends:   # backend order, wherever each was screened
        t, w, why = screened[backend]
        tables += t
        workers += w
        contexts[backend].memory_reasons[:] = why
        reasons += why
    points = PointTable.concat(tables)
    if not points["feasible"].any():
        raise _no_fit_error(req, model, reasons)
    cals = {b: c.calibration for b, c in contexts.items() if c.calibration is not None}
    if cals:   # the SLA is checked on the calibrated prediction
        points = calibrate_points(points, cals, system.name, versions, req.isl, req.osl, model)
    ok = meets(points, req.sla)
    points = points.with_column("meets_sla", ok)
    ranking = rank(points, ok, modes, max(req.top_n, DECIDE_POOL))   # shown(): the first top_n of them
    top, winner, per_backend = _confirm(points, ranking, req, contexts, versions, modes)
    fr = {m: frontier(points["tokens_per_s_per_user"], points["tokens_per_s_per_gpu"],
                      ok & (points["mode"] == MODES.index(m))) for m in modes}
    fr_all = {m: frontier(points["tokens_per_s_per_user"], points["tokens_per_s_per_gpu"],
                          points["feasible"] & (points["mode"] == MODES.index(m))) for m in modes}
    speedup = None
    if winner is not None:
        others = [c[0].metrics.tokens_per_s_per_gpu for m, c in top.items() if m != winner.mode and c]
        speedup = winner.metrics.tokens_per_s_per_gpu / max(others) if others and max(others) > 0 else None
    return PlanResult(request=req, model=model, system=system, versions=versions, points=points,
                      worker_points=workers, top=top, winner=winner, speedup=speedup, per_backend=per_backend,
                      frontier=fr, frontier_all=fr_all,
                      diagnosis=diagnose(points, req.sla) if winner is None else None, calibrations=cals)


def _confirm(points: PointTable, ranking: Ranking, req: PlanRequest, contexts: dict, versions: dict,
             modes: tuple[Mode, ...]):
    """Re-evaluate the ranked rows through the estimator's per-deployment API and keep those that
    still meet every target. The best row of each mode is always recomputed; the rest only when
    that one came back different (the composition equals the estimator, tests pin it, so a
    difference means the estimator changed and nothing vectorised is trusted)."""
    top: dict = {}
    for mode in modes:
        rows = ranking.top[mode]
        kept, trust = [], False
        for i, row in enumerate(rows):
            base = points.candidate(row, versions[BACKENDS[int(points["backend"][row])]])
            if trust:
                kept.append(base)
                continue
            c = recheck(base, contexts[base.backend], req.sla)
            if c is not None:
                kept.append(c)
            trust = i == 0 and c is not None and _same(base, c)
        top[mode] = tuple(kept)
    best = [cs[0] for cs in top.values() if cs]
    winner = max(best, key=lambda c: (c.metrics.tokens_per_s_per_gpu, c.mode == Mode.AGG)) if best else None
    per_backend = _per_backend(points, top, req, contexts, versions) if len(req.backends) > 1 else {}
    return top, winner, per_backend


def _per_backend(points: PointTable, top: dict, req: PlanRequest, contexts: dict, versions: dict) -> dict:
    """The best SLA-meeting candidate of each backend (for --backend all)."""
    out: dict[Backend, Candidate] = {}
    for cs in top.values():
        for c in cs:
            cur = out.get(c.backend)
            if cur is None or c.metrics.tokens_per_s_per_gpu > cur.metrics.tokens_per_s_per_gpu:
                out[c.backend] = c
    for b in req.backends:   # a backend with nothing in the top-N still gets its best row
        if b in out:
            continue
        rows = np.flatnonzero(points["meets_sla"] & (points["backend"] == BACKENDS.index(b)))
        if len(rows):
            row = int(rows[np.argmax(points["tokens_per_s_per_gpu"][rows])])
            c = recheck(points.candidate(row, versions[b]), contexts[b], req.sla)
            if c is not None:
                out[b] = c
    return out


def shown(result: PlanResult) -> PlanResult:
    """The result as printed and written: the first `--top-n` candidates of each mode. The search and the
    load decision (search.decide) worked on DECIDE_POOL of them, so `--top-n` changes what is shown, never
    what wins."""
    n = result.request.top_n
    return replace(result, top={m: tuple(cs[:n]) for m, cs in result.top.items()})
