"""Vectorised evaluation of the space through the estimator's step model.

Aggregated replicas: one `agg_metrics` call per (parallelism, token budget) over the whole batch
ladder. Disaggregated workers: one prefill step call per parallelism over the prefill batches, one
decode step call per parallelism over the decode ladder; search.disagg composes them. A step model
is built once per (parallelism, engine settings) and reused.

tokens/s/GPU always divides by the whole budget: replicas that do not fit are idle GPUs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from estimator.calibration import Calibration
from estimator.engine import EngineConfig
from estimator.models.spec import ModelSpec
from estimator.parallel import ParallelConfig
from estimator.serving import agg_metrics, max_batch
from estimator.steps import StepModel
from estimator.workload import Workload
from perfdb.errors import InfeasibleError
from perfdb.lookup import DbView
from perfdb.specs import SystemSpec
from perfdb.types import Backend, Dtype, Phase, Source
from search.disagg import WorkerPoints
from search.points import BACKENDS, MODES, PointTable
from search.sla import target_ratios
from search.space import AGG_TOKEN_BUDGETS, PREFILL_TOKEN_BUDGET, batch_ladder, prefill_batches
from search.types import Mode, Sla

# Aggregated shapes refined over every token budget after the first pass at the default budget.
REFINE_SHAPES = 8


@dataclass
class Context:
    """Everything one backend's evaluation shares; caches its step models."""

    model: ModelSpec
    system: SystemSpec
    backend: Backend
    view: DbView
    version: str | None
    kv_dtype: Dtype | None
    isl: int
    osl: int
    prefix: int
    budget: int
    memory_reasons: list = field(default_factory=list)   # why shapes did not fit (for the error message)
    calibration: Calibration | None = None   # applied to the points before the SLA filter (search.calibrated)
    _models: dict = field(default_factory=dict)

    @property
    def new_tokens(self) -> int:
        return max(self.isl - self.prefix, 1)

    def step_model(self, p: ParallelConfig, max_num_tokens: int | None, prefill_server: bool = False) -> StepModel | None:
        """The step model of one worker shape at a token budget; `prefill_server`: a disaggregated prefill
        server's (EngineConfig.prefill_server)."""
        key = (p, max_num_tokens, prefill_server)
        if key not in self._models:
            engine = EngineConfig(self.backend, self.version, kv_dtype=self.kv_dtype, max_num_tokens=max_num_tokens,
                                  prefill_server=prefill_server)
            try:
                sm = StepModel.build(self.model, self.system, p, engine, self.view)
            except InfeasibleError as exc:
                self.memory_reasons.append(str(exc))
                sm = None
            if sm is not None and not sm.memory.feasible:
                self.memory_reasons.append(sm.memory.reason)
                sm = None
            self._models[key] = sm
        return self._models[key]

    def prefill_model(self, p: ParallelConfig) -> StepModel | None:
        """A disaggregated prefill worker of shape `p`: a prefill server at the search's prefill token budget
        (PREFILL_TOKEN_BUDGET, or the whole prompt when longer)."""
        return self.step_model(p, self.prefill_tokens, prefill_server=True)

    @property
    def prefill_tokens(self) -> int:
        return max(PREFILL_TOKEN_BUDGET, self.new_tokens)

    def kv_cap(self, sm: StepModel) -> int:
        """Requests of isl+osl tokens the replica admits (KV pool and engine cap)."""
        return int(max_batch(sm, np.asarray(float(self.isl)), np.asarray(float(self.osl))))


def _worst(ops) -> int:
    """Worst data source of the kernels behind a step. The per-step host overhead is a fitted
    constant (Source.CALIBRATED) on every step, so it would mask the kernels' sources: left out."""
    return max((o.source.code for o in ops if o.source != Source.CALIBRATED), default=Source.MEASURED.code)


def _estimated_share(ops, shape) -> np.ndarray:
    """Share of kernel time (host overhead left out) whose lookups fell back to extrapolation or
    the roofline, per point: 0 when every kernel came from measured or interpolated rows."""
    total, rough = np.zeros(shape), np.zeros(shape)
    for o in ops:   # in place: same sums in the same order, no new array per op
        if o.source == Source.CALIBRATED:
            continue
        total += o.ms
        if o.source.code >= Source.EXTRAPOLATED.code:
            rough += o.ms
    return np.divide(rough, total, out=np.zeros(shape), where=total > 0)


def _ladder_with_cap(p: ParallelConfig, cap: int) -> np.ndarray:
    ladder = batch_ladder(p, cap)
    return np.unique(np.append(ladder, cap)) if cap >= 1 else ladder[:0]


def agg_token_budgets(new_tokens: int) -> list[int]:
    """Budgets that change the prefill chunking: the smallest of each chunk count."""
    seen, out = set(), []
    for t in AGG_TOKEN_BUDGETS:
        chunks = -(-new_tokens // t)
        if chunks not in seen:
            seen.add(chunks)
            out.append(t)
    return out


def _agg_block(ctx: Context, p: ParallelConfig, tokens: int | None) -> PointTable | None:
    """One replica shape at one token budget over its whole batch ladder (one agg_metrics call)."""
    sm = ctx.step_model(p, tokens)
    if sm is None:
        return None
    cap = ctx.kv_cap(sm)
    b = _ladder_with_cap(p, cap).astype(np.float64)
    if not len(b):
        ctx.memory_reasons.append(f"{p.label()}: KV cache cannot hold one request of {ctx.isl + ctx.osl} tokens")
        return None
    r = agg_metrics(sm, Workload.benchmark(ctx.isl, ctx.osl, ctx.prefix, b))
    replicas = ctx.budget // p.num_gpus
    used = replicas * p.num_gpus
    return PointTable.block(
        len(b), mode=MODES.index(Mode.AGG), backend=BACKENDS.index(ctx.backend), replicas=1,
        d_tp=p.tp, d_pp=p.pp, d_dp=p.attn_dp, d_moe_tp=p.moe_tp, d_moe_ep=p.moe_ep, d_workers=replicas,
        d_batch=b.astype(np.int64), d_max_tokens=sm.resolved.max_num_tokens, gpus_used=used,
        total_gpus=ctx.budget, source=_worst(r.breakdown), estimated_share=_estimated_share(r.breakdown, b.shape),
        ttft_ms=r.ttft, tpot_ms=r.tpot, request_latency_ms=r.latency,
        tokens_per_s_per_gpu=r.tps_gpu(p.num_gpus) * used / ctx.budget,
        tokens_per_s_per_user=1e3 / r.tpot, concurrency=r.concurrency * replicas,
        mem_headroom=1.0 - b / max(cap, 1), feasible=r.feasible,
    )


def _config_score(block: PointTable, sla: Sla) -> float:
    """How promising a replica shape is: its best SLA-meeting tokens/s/GPU, else minus its distance
    to the targets (worst ratio), so shapes near the targets are refined when none meets them."""
    ratios = np.maximum.reduce(list(target_ratios(block["ttft_ms"], block["tpot_ms"], block["request_latency_ms"],
                                                  sla).values()))
    ok = block["feasible"] & (ratios <= 1.0)
    if ok.any():
        return float(block["tokens_per_s_per_gpu"][ok].max())
    finite = ratios[np.isfinite(ratios)]
    return -float(finite.min()) if len(finite) else -np.inf


def evaluate_agg(ctx: Context, configs: list[ParallelConfig], sla: Sla) -> PointTable:
    """Every shape at the engine's default token budget, then the REFINE_SHAPES most promising
    shapes at every other budget that changes the prefill chunking (coarse to fine)."""
    blocks, scored = [], []
    for p in configs:
        block = _agg_block(ctx, p, None)
        if block is not None:
            blocks.append(block)
            scored.append((_config_score(block, sla), p, int(block["d_max_tokens"][0])))
    scored.sort(key=lambda t: -t[0])
    for _, p, default in scored[:REFINE_SHAPES]:
        for tokens in agg_token_budgets(ctx.new_tokens):
            if -(-ctx.new_tokens // tokens) == -(-ctx.new_tokens // default):
                continue   # same chunking as the default budget: same step times, more activation memory
            block = _agg_block(ctx, p, tokens)
            if block is not None:
                blocks.append(block)
    return PointTable.concat(blocks)


def prefill_workers(ctx: Context, configs: list[ParallelConfig]) -> WorkerPoints:
    """Prefill candidates: every parallelism x prefill batch (requests per forward)."""
    parts = []
    tokens = ctx.prefill_tokens
    batches = prefill_batches(ctx.new_tokens, tokens)
    for i, p in enumerate(configs):
        if p.attn_dp > batches.max():
            continue   # attention-DP ranks with no request of their own: idle GPUs, never better
        sm = ctx.prefill_model(p)
        if sm is None:
            continue
        pb = batches[batches >= p.attn_dp].astype(np.float64)
        res = sm.step(Phase.PREFILL, pb, ctx.new_tokens, ctx.prefix, 0, 0)
        cap_tokens = sm.memory.kv_capacity_tokens
        parts.append(dict(cfg=np.full(len(pb), i), gpus=np.full(len(pb), p.num_gpus), batch=pb.astype(np.int64),
                          max_tokens=np.full(len(pb), tokens), step_ms=res.ms, rate=pb / res.ms,
                          headroom=1.0 - pb * ctx.isl / cap_tokens, feasible=pb * ctx.isl <= cap_tokens,
                          source=np.full(len(pb), _worst(res.ops)), share=_estimated_share(res.ops, pb.shape)))
    return _stack(parts)


def decode_workers(ctx: Context, configs: list[ParallelConfig]) -> WorkerPoints:
    """Decode candidates: every parallelism x batch limit up to what its KV pool admits."""
    parts = []
    for i, p in enumerate(configs):
        sm = ctx.step_model(p, None)
        if sm is None:
            continue
        cap = ctx.kv_cap(sm)
        b = _ladder_with_cap(p, cap).astype(np.float64)
        if not len(b):
            continue
        res = sm.step(Phase.DECODE, 0, 0, 0, b, ctx.isl + ctx.osl / 2.0)
        parts.append(dict(cfg=np.full(len(b), i), gpus=np.full(len(b), p.num_gpus), batch=b.astype(np.int64),
                          max_tokens=np.full(len(b), sm.resolved.max_num_tokens), step_ms=res.ms,
                          rate=b / (res.ms * max(ctx.osl - 1, 1)), headroom=1.0 - b / max(cap, 1),
                          feasible=np.ones(len(b), dtype=bool), source=np.full(len(b), _worst(res.ops)),
                          share=_estimated_share(res.ops, b.shape)))
    return _stack(parts)


def _stack(parts: list[dict]) -> WorkerPoints:
    names = WorkerPoints.__dataclass_fields__
    if not parts:
        return WorkerPoints(**{k: np.zeros(0, dtype=bool if k == "feasible" else np.float64) for k in names})
    return WorkerPoints(**{k: np.concatenate([p[k] for p in parts]) for k in names})
