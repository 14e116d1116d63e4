"""Serving-engine settings that change step times or memory: one EngineConfig per worker.

`None` fields mean the engine's documented default, resolved by `resolve()` from the engine's profile
(estimator/engines/<engine>.py: one file per engine, each value with its provenance; the overheads are
the only values fitted, and only on ../shared/data/e2e_train_silicon.csv, see docs/estimator.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from estimator.engines import profile_for
from estimator.engines.profile import DpMoeExchange
from estimator.engines.sglang import sglang_defaults
from estimator.spec import accepted_length, default_acceptance
from perfdb.errors import InputError
from perfdb.specs import SystemSpec
from perfdb.types import Backend, Dtype, MoeKernel

if TYPE_CHECKING:
    from estimator.models.spec import ModelSpec
    from estimator.parallel import ParallelConfig

GIB = 1024**3


@dataclass(frozen=True)
class EngineConfig:
    backend: Backend
    version: str | None = None
    kv_dtype: Dtype | None = None        # None: what the engine stores by default (kv_cache_dtype)
    max_batch_size: int | None = None    # requests per iteration (vLLM max_num_seqs, SGLang max_running_requests)
    max_num_tokens: int | None = None    # tokens per iteration (vLLM max_num_batched_tokens, SGLang chunked_prefill_size)
    mem_fraction: float | None = None    # vLLM gpu_memory_utilization / SGLang mem_fraction_static / TRT-LLM free_gpu_memory_fraction
    spec_tokens: int = 0                 # speculative decoding: draft tokens per step (MTP layers, EAGLE); 0 = off
    spec_acceptance: float | None = None  # probability that each draft token is accepted (None: estimator.spec's)
    expert_slots: int | None = None       # physical expert slots per MoE layer (redundant experts); None: the model's
    dp_moe_exchange: DpMoeExchange | None = None   # attention-DP MoE exchange as launched; None: the engine's default
    moe_kernel: MoeKernel | None = None   # MoE kernel its launch settings name (EngineProfile.moe_kernel_switches)
    kv_tokens: int | None = None          # KV-pool cap per attention rank as launched (EngineProfile.kv_tokens_flag)
    prefill_server: bool = False          # a disaggregated prefill server (EngineProfile.prefill_server_step_ms_by_arch)

    def __post_init__(self) -> None:
        if self.mem_fraction is not None and not 0.0 < self.mem_fraction <= 1.0:
            raise InputError(f"mem_fraction={self.mem_fraction}: must be in (0, 1]")
        if self.spec_tokens < 0 or (self.spec_acceptance is not None and not 0.0 <= self.spec_acceptance <= 1.0):
            raise InputError(f"spec_tokens={self.spec_tokens}, spec_acceptance={self.spec_acceptance}: "
                             "need spec_tokens >= 0 and an acceptance in [0, 1]")
        for name in ("max_batch_size", "max_num_tokens", "expert_slots", "kv_tokens"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise InputError(f"{name}={v}: must be >= 1")


@dataclass(frozen=True)
class ResolvedEngine:
    """EngineConfig with every default filled in for one system and stage size."""

    backend: Backend
    max_batch_size: int
    max_num_tokens: int
    mem_fraction: float
    mixes_prefill: bool
    step_overhead_ms: float
    ttft_overhead_ms: float
    fuses_allreduce_norm: bool
    overlaps_shared_experts: bool
    spec_tokens: int = 0
    spec_acceptance: float = 1.0       # per draft token (estimator.spec); unused when spec_tokens is 0
    kv_handoff_ms: float = 0.0         # disagg: frontend passes beyond the first (KvHandoff), ms
    mla_copy_per_decode_rank: bool = False   # KvHandoff.mla_copy_per_decode_rank
    reserves_full_sequence: bool = True
    group_wait_weight: float = 0.0     # EngineProfile.group_wait_weight
    dp_moe_exchange: DpMoeExchange = DpMoeExchange.GATHER_SCATTER   # EngineProfile.dp_moe_exchange
    context_step_ms: float = 0.0       # EngineProfile.context_step_ms_by_arch for this model's architecture
    kv_tokens: int | None = None       # KV-pool cap per attention rank as launched (None: memory sizes it)

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens each decoding request emits per iteration (estimator.spec.accepted_length)."""
        return accepted_length(self.spec_acceptance, self.spec_tokens)


def kv_cache_dtype(engine: EngineConfig, model: ModelSpec, system: SystemSpec) -> Dtype:
    """The KV-cache dtype a worker on `system`'s GPUs stores: the one asked for, else the engine's own choice
    for the architecture and GPU when its flag is left at auto (EngineProfile.kv_dtype_by_arch: SGLang and
    vLLM store DeepSeek-V4's KV in FP8; SGLang DSA models' (GLM-5, DeepSeek-V3.2) in FP8 on Blackwell and
    BF16 on Hopper; vLLM GLM-5's in FP8 on Blackwell), else the checkpoint's."""
    if engine.kv_dtype is not None:
        return engine.kv_dtype
    rules = profile_for(engine.backend).kv_dtype_by_arch.get(model.architecture, ())
    return next((r.dtype for r in rules if r.applies(system.gpu.sm_version)), model.kv_dtype)


def resolve(engine: EngineConfig, system: SystemSpec, parallel: ParallelConfig,
            architecture: str | None = None) -> ResolvedEngine:
    """architecture: the model's HF architecture, which picks the default draft acceptance (estimator.spec)
    and the engine's extra time per iteration with prompt tokens (EngineProfile.context_step_ms_by_arch)."""
    prof = profile_for(engine.backend)
    frac, tokens = prof.mem_fraction, prof.max_num_tokens
    if prof.layout_defaults is not None:   # defaults that depend on the GPU and layout (SGLang)
        frac, tokens = prof.layout_defaults(system, parallel.tp, parallel.pp, parallel.attn_dp, engine.max_num_tokens)
    return ResolvedEngine(
        backend=engine.backend,
        max_batch_size=engine.max_batch_size or prof.max_batch,
        max_num_tokens=engine.max_num_tokens or tokens,
        mem_fraction=engine.mem_fraction or frac,
        mixes_prefill=prof.scheduler.mixes_decode if prof.scheduler else False,
        step_overhead_ms=prof.step_overhead_ms,
        ttft_overhead_ms=prof.ttft_overhead_ms,
        fuses_allreduce_norm=prof.fuses_allreduce_norm,
        overlaps_shared_experts=prof.overlaps_shared_experts,
        spec_tokens=engine.spec_tokens,
        spec_acceptance=default_acceptance(architecture) if engine.spec_acceptance is None else engine.spec_acceptance,
        kv_handoff_ms=prof.handoff.frontend_hops * prof.ttft_overhead_ms,
        mla_copy_per_decode_rank=prof.handoff.mla_copy_per_decode_rank,
        reserves_full_sequence=prof.reserves_full_sequence,
        group_wait_weight=prof.group_wait_weight,
        dp_moe_exchange=engine.dp_moe_exchange or prof.dp_moe_exchange,
        context_step_ms=prof.context_step_ms(architecture, engine.prefill_server),
        kv_tokens=engine.kv_tokens,
    )


__all__ = ["GIB", "EngineConfig", "ResolvedEngine", "kv_cache_dtype", "resolve", "sglang_defaults"]
