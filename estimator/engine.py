"""Serving-engine settings that change step times or memory: one EngineConfig per worker.

`None` fields mean the engine's documented default, resolved by `resolve()`. The defaults and the
per-step overheads are named constants with their origin; the overheads are the only constants
fitted, and only on ../shared/data/e2e_train_silicon.csv (see docs/estimator.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from perfdb.errors import InputError
from perfdb.specs import SystemSpec
from perfdb.types import Backend, Dtype

if TYPE_CHECKING:
    from estimator.parallel import ParallelConfig

GIB = 1024**3

# vLLM: `--gpu-memory-utilization` 0.9 (share of total GPU memory the engine may use);
# `--max-num-batched-tokens` 8192 and `--max-num-seqs` 1024 (V1 defaults for online serving on GPUs
# with >= 70 GiB; vllm/engine/arg_utils.py) and chunked prefill always on.
VLLM_MEM_UTIL = 0.9
VLLM_MAX_TOKENS = 8192
VLLM_MAX_SEQS = 1024
# TensorRT-LLM (PyTorch backend, LLM API): KvCacheConfig.free_gpu_memory_fraction 0.9 of the memory
# free after weights and activations; max_num_tokens 8192; max_batch_size 2048; chunked prefill off.
TRTLLM_FREE_FRACTION = 0.9
TRTLLM_MAX_TOKENS = 8192
TRTLLM_MAX_BATCH = 2048
# SGLang: `--mem-fraction-static` is the share of total memory for weights + KV pool. Its default
# (sglang/srt/server_args.py `_handle_gpu_memory_settings`, 0.5.x) reserves, in MiB, 512 + 1.5 per
# token of `--chunked-prefill-size` (activations) + 2 per captured CUDA-graph batch size + 1024 per 8
# GPUs of tp*pp (+3 per graph batch per DP rank with DP attention, 4.5 above 300), at least 10 GiB on GPUs above
# 60 GiB, and takes fraction = 1 - reserved / GPU memory. Chunk 8192 and graph batch 256 (tp < 4) or
# 512 on GPUs below 160 GiB (H100/H200), chunk 16384 and graph batch 512 above (B200/GB200). Reserving
# a fixed 10-13 GiB instead of the 0.4 table's 12% (tp1) leaves a tp1 Qwen3-32B on H100 a 21k-token
# pool instead of 38k: the e2e rows of that deployment run 3-8 requests, not 16.
SGLANG_RESERVED_BASE_MIB, SGLANG_RESERVED_PER_TOKEN_MIB, SGLANG_RESERVED_PER_GRAPH_BS_MIB = 512, 1.5, 2
SGLANG_RESERVED_PER_8_GPUS_MIB, SGLANG_RESERVED_DP_PER_GRAPH_BS_MIB = 1024, 3
SGLANG_RESERVED_FLOOR_MIB, SGLANG_FLOOR_ABOVE_MIB = 10 * 1024, 60 * 1024
SGLANG_LARGE_GPU_MIB = 160 * 1024
SGLANG_CHUNK_SMALL, SGLANG_CHUNK_LARGE = 8192, 16384
SGLANG_MAX_RUNNING = 4096

# Host-side time per engine iteration (scheduling, sampling, detokenisation, launch) in ms that no
# kernel measurement contains. Fitted on e2e_train_silicon.csv decode-dominated rows (small batch).
STEP_OVERHEAD_MS = {Backend.TRTLLM: 0.0, Backend.SGLANG: 1.4, Backend.VLLM: 0.0, Backend.TORCH: 3.0}

# Per-request time to first token outside the GPU (HTTP, tokenisation, admission, detokenising and
# streaming the first token), ms. Fitted on e2e_train_silicon.csv agg rows at concurrency <= 4.
TTFT_OVERHEAD_MS = {Backend.TRTLLM: 52.0, Backend.SGLANG: 91.0, Backend.VLLM: 27.0, Backend.TORCH: 0.0}

# Disaggregated hand-off per request, ms: after the prefill engine finishes, the router forwards the
# request to a decode engine, which allocates KV blocks, handshakes with the prefill worker (NIXL/UCX
# descriptors, SGLang's bootstrap server), pulls the cache and schedules the request. Fixed cost on
# top of the bytes/bandwidth of the transfer. Fitted on e2e_train_silicon.csv disagg rows at
# concurrency <= 4 (median of measured minus predicted TTFT, see docs/estimator.md); vLLM has no
# disagg rows (0, unfitted).
KV_HANDOFF_MS = {Backend.TRTLLM: 166.0, Backend.SGLANG: 139.0, Backend.VLLM: 0.0, Backend.TORCH: 0.0}

# KV admission: TRT-LLM's GUARANTEED_NO_EVICT scheduler reserves isl+osl tokens per request; vLLM
# (paged, preempts) and SGLang (retracts) admit on the tokens present, isl + osl/2 on average.
RESERVES_FULL_SEQUENCE = {Backend.TRTLLM: True, Backend.SGLANG: False, Backend.VLLM: False, Backend.TORCH: True}

# Kernel fusions and overlaps the engines apply by default (their model code): TRT-LLM and SGLang fuse
# the residual add + RMSNorm into the TP all-reduce kernel, and run DeepSeek-style shared experts on
# a second CUDA stream concurrently with the routed experts. vLLM runs them as separate kernels.
FUSES_ALLREDUCE_NORM = {Backend.TRTLLM: True, Backend.SGLANG: True, Backend.VLLM: False, Backend.TORCH: False}
OVERLAPS_SHARED_EXPERTS = {Backend.TRTLLM: True, Backend.SGLANG: True, Backend.VLLM: False, Backend.TORCH: False}

# Acceptance of each speculative draft token when not given: DeepSeek-V3 technical report (sec. 5.4.3)
# measures 85-90% acceptance of the MTP module's second-token prediction; we take the low end.
SPEC_ACCEPTANCE = 0.85

# Closed-loop benchmarks with a fixed output length: the requests a mixing engine prefills in one
# packed iteration (up to max_num_tokens of prompt) start decoding together, finish together and come
# back together, so a returning request waits for its whole group's packed prefill iteration, not just
# its own prompt. TRT-LLM packs whole prompts (chunked prefill off); the measured runs show the group
# coming back about half the time (its TTFT at ISL 1024 was under-predicted ~1.4x by the steady-state
# formula). vLLM's chunked prefill spreads a group over iterations and its runs show no such wait.
# Weight of the group wait over the steady-state TTFT: fitted on e2e_train_silicon.csv agg rows among
# 0 / 0.25 / 0.5 / 0.75 / 1 (grouped 5-fold CV by deployment family picks 0.5 in 4 of 5 folds;
# TRT-LLM agg TTFT median |error| 35.8% -> 29.3% held out; docs/bench/estimator.md).
GROUP_WAIT_WEIGHT = {Backend.TRTLLM: 0.5, Backend.SGLANG: 0.0, Backend.VLLM: 0.0, Backend.TORCH: 0.0}

# Whether prefill tokens share an iteration with decode requests by default. vLLM (V1 chunked
# prefill) and TRT-LLM (in-flight batching) mix them; SGLang runs prefill batches on their own
# unless --enable-mixed-chunk.
MIXES_PREFILL = {Backend.TRTLLM: True, Backend.VLLM: True, Backend.SGLANG: False, Backend.TORCH: False}


@dataclass(frozen=True)
class EngineConfig:
    backend: Backend
    version: str | None = None
    kv_dtype: Dtype | None = None        # None: the checkpoint's KV dtype
    max_batch_size: int | None = None    # requests per iteration (vLLM max_num_seqs, SGLang max_running_requests)
    max_num_tokens: int | None = None    # tokens per iteration (vLLM max_num_batched_tokens, SGLang chunked_prefill_size)
    mem_fraction: float | None = None    # vLLM gpu_memory_utilization / SGLang mem_fraction_static / TRT-LLM free_gpu_memory_fraction
    spec_tokens: int = 0                 # speculative decoding: draft tokens per step (MTP layers, EAGLE); 0 = off
    spec_acceptance: float | None = None  # probability that each draft token is accepted (None: SPEC_ACCEPTANCE)

    def __post_init__(self) -> None:
        if self.mem_fraction is not None and not 0.0 < self.mem_fraction <= 1.0:
            raise InputError(f"mem_fraction={self.mem_fraction}: must be in (0, 1]")
        if self.spec_tokens < 0 or (self.spec_acceptance is not None and not 0.0 <= self.spec_acceptance <= 1.0):
            raise InputError(f"spec_tokens={self.spec_tokens}, spec_acceptance={self.spec_acceptance}: "
                             "need spec_tokens >= 0 and an acceptance in [0, 1]")
        for name in ("max_batch_size", "max_num_tokens"):
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
    spec_acceptance: float = SPEC_ACCEPTANCE
    kv_handoff_ms: float = 0.0
    reserves_full_sequence: bool = True
    group_wait_weight: float = 0.0     # GROUP_WAIT_WEIGHT

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens each decoding request emits per iteration: 1 + a + ... + a^k."""
        a, k = self.spec_acceptance, self.spec_tokens
        return float(sum(a**i for i in range(k + 1)))


def sglang_defaults(system: SystemSpec, tp: int, pp: int = 1, attn_dp: int = 1,
                    chunk: int | None = None) -> tuple[float, int]:
    """(mem_fraction_static, chunked_prefill_size) SGLang picks when not given (a given chunk size
    changes the activation reserve)."""
    gpu_mib = system.gpu.mem_bytes / 2**20
    large = gpu_mib >= SGLANG_LARGE_GPU_MIB
    chunk = chunk or (SGLANG_CHUNK_LARGE if large else SGLANG_CHUNK_SMALL)
    graph_bs = 512 if large or tp >= 4 else 256
    reserved = (SGLANG_RESERVED_BASE_MIB + SGLANG_RESERVED_PER_TOKEN_MIB * max(chunk, 2048)
                + SGLANG_RESERVED_PER_GRAPH_BS_MIB * graph_bs + SGLANG_RESERVED_PER_8_GPUS_MIB * tp * pp / 8)
    if attn_dp > 1:   # DP attention pads every rank's graphs (x1.5 more above 300 sizes)
        reserved += SGLANG_RESERVED_DP_PER_GRAPH_BS_MIB * graph_bs * attn_dp * (1.5 if graph_bs > 300 else 1.0)
    if gpu_mib > SGLANG_FLOOR_ABOVE_MIB:
        reserved = max(reserved, SGLANG_RESERVED_FLOOR_MIB)
    return round(max(gpu_mib - reserved, 0.0) / gpu_mib, 3), chunk


def resolve(engine: EngineConfig, system: SystemSpec, parallel: ParallelConfig) -> ResolvedEngine:
    b = engine.backend
    if b == Backend.VLLM:
        frac, tokens, batch = VLLM_MEM_UTIL, VLLM_MAX_TOKENS, VLLM_MAX_SEQS
    elif b == Backend.SGLANG:
        frac, tokens = sglang_defaults(system, parallel.tp, parallel.pp, parallel.attn_dp, engine.max_num_tokens)
        batch = SGLANG_MAX_RUNNING
    else:  # TRT-LLM and plain torch follow TRT-LLM's rules
        frac, tokens, batch = TRTLLM_FREE_FRACTION, TRTLLM_MAX_TOKENS, TRTLLM_MAX_BATCH
    return ResolvedEngine(
        backend=b,
        max_batch_size=engine.max_batch_size or batch,
        max_num_tokens=engine.max_num_tokens or tokens,
        mem_fraction=engine.mem_fraction or frac,
        mixes_prefill=MIXES_PREFILL[b],
        step_overhead_ms=STEP_OVERHEAD_MS[b],
        ttft_overhead_ms=TTFT_OVERHEAD_MS[b],
        fuses_allreduce_norm=FUSES_ALLREDUCE_NORM[b],
        overlaps_shared_experts=OVERLAPS_SHARED_EXPERTS[b],
        spec_tokens=engine.spec_tokens,
        spec_acceptance=SPEC_ACCEPTANCE if engine.spec_acceptance is None else engine.spec_acceptance,
        kv_handoff_ms=KV_HANDOFF_MS[b],
        reserves_full_sequence=RESERVES_FULL_SEQUENCE[b],
        group_wait_weight=GROUP_WAIT_WEIGHT[b],
    )
