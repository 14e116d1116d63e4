"""Re-evaluate one candidate through the estimator's public per-deployment API.

The search composes its numbers from step-model arrays; the reported candidates are recomputed with
`estimate` (aggregated) or `estimate_disagg` (disaggregated) and must still meet every target.
"""
from __future__ import annotations

from dataclasses import replace

from estimator.calibration import apply, context_for
from estimator.engine import EngineConfig
from estimator.estimate import WorkerSpec, estimate, estimate_disagg
from estimator.workload import Workload
from search.calibrated import interval
from search.evaluate import Context
from search.sla import checked, within
from search.types import Candidate, Metrics, Mode, Sla, SlaAt


def _engine(ctx: Context, max_num_tokens: int | None) -> EngineConfig:
    return EngineConfig(ctx.backend, ctx.version, kv_dtype=ctx.kv_dtype, max_num_tokens=max_num_tokens)


def recheck(c: Candidate, ctx: Context, sla: Sla, agg_too: bool = False) -> Candidate | None:
    """The candidate with the estimator's own metrics, or None when those miss a target or do not fit.

    Aggregated rows already come from the estimator's `agg_metrics` (what `estimate` calls), so
    they are only recomputed with agg_too (tests pin the equality); disaggregated rows come from the
    closed-form composition and are always recomputed with `estimate_disagg`."""
    if c.mode == Mode.AGG and not agg_too:
        return c
    if c.mode == Mode.AGG:
        w = c.decode
        est = estimate(ctx.model, ctx.system, w.parallel, _engine(ctx, w.max_num_tokens),
                       Workload.benchmark(ctx.isl, ctx.osl, ctx.prefix, w.max_batch), ctx.view)
        used = w.workers * w.parallel.num_gpus
        scale, conc, unit_conc = used / c.total_gpus, est.concurrency * w.workers, est.concurrency
    else:
        p, d = c.prefill, c.decode
        est = estimate_disagg(ctx.model, ctx.system,
                              WorkerSpec(p.parallel, _engine(ctx, p.max_num_tokens), p.workers, p.max_batch),
                              WorkerSpec(d.parallel, _engine(ctx, None), d.workers, None),
                              Workload.benchmark(ctx.isl, ctx.osl, ctx.prefix, d.max_batch), ctx.view)
        group = p.workers * p.parallel.num_gpus + d.workers * d.parallel.num_gpus
        scale, conc = group * c.replicas / c.total_gpus, est.concurrency * d.workers * c.replicas
        unit_conc = est.concurrency * d.workers   # one xPyD group
    if not bool(est.feasible):
        return None
    if ctx.calibration is not None:   # the same correction search.calibrated applied to the points
        est = apply(est, ctx.calibration, context_for(ctx.system.name, ctx.backend.value, ctx.version, c.mode.value,
                                                      ctx.isl, ctx.osl, c.decode.parallel.num_gpus, unit_conc,
                                                      ctx.model))
    m = Metrics(ttft_ms=float(est.ttft_ms), tpot_ms=float(est.tpot_ms),
                request_latency_ms=float(est.request_latency_ms),
                tokens_per_s_per_gpu=float(est.tokens_per_s_per_gpu) * scale,
                tokens_per_s_per_user=float(est.tokens_per_s_per_user), concurrency=float(conc),
                mem_headroom=c.metrics.mem_headroom, source=est.source if ctx.calibration else c.metrics.source,
                estimated_share=c.metrics.estimated_share)
    hi = (None, None)
    if sla.at == SlaAt.UPPER:   # plan() refuses --sla-at upper without a calibration
        iv = interval(ctx.calibration, c.mode, m.ttft_ms, m.tpot_ms, ctx.model.name, ctx.system.name)
        if iv is None:
            return None
        hi = (iv.ttft_ms[1], iv.tpot_ms[1])
    fits = within(*checked(m.ttft_ms, m.tpot_ms, m.request_latency_ms, *hi, sla), sla)
    return replace(c, metrics=m) if fits else None
