"""GPU memory of one worker: weights, KV cache, activations, buffers, reserve -> KV capacity.

All figures are bytes per GPU unless named otherwise. Each engine's admission rule turns the memory
left after weights into a KV-cache pool; a configuration whose weights do not fit, or whose pool is
empty, is infeasible with the reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from estimator.engine import GIB, ResolvedEngine
from estimator.kv_layout import kv_row, per_gpu_layer_bytes
from estimator.models.spec import AttentionKind, ModelSpec
from estimator.parallel import ParallelConfig, moe_split
from perfdb.ops.base import weight_bytes
from perfdb.specs import SystemSpec
from perfdb.types import Backend, Dtype

# CUDA context + allocator fragmentation + engine runtime, per GPU (outside the KV pool). ~1 GiB is
# what nvidia-smi shows for an idle CUDA context with cuBLAS/NCCL loaded.
RUNTIME_RESERVE_BYTES = 1 * GIB
# CUDA graphs captured for decode batch sizes (vLLM/SGLang/TRT-LLM capture ~50 sizes): ~0.5 GiB.
CUDA_GRAPH_BYTES = GIB // 2
# NCCL / custom all-reduce workspaces when the worker spans several GPUs.
COMM_BUFFER_BYTES = 1 * GIB
# Recurrent state of hybrid (linear-attention / Mamba) models, each engine's rule:
#  SGLang 0.5.x `--mamba-full-memory-ratio` 0.9 (server_args.py): the static pool is split so that the
#    Mamba state pool is 0.9x the full-attention KV pool; its slot count caps running requests.
#  TRT-LLM (PyTorch backend MambaHybridCacheManager): one state slot per `max_batch_size` request, allocated
#    before the KV pool; where 2048 slots do not fit, the plan lowers max_batch_size so that the states
#    take at most TRTLLM_STATE_SHARE of the free memory (the artifact sets that max_batch_size).
#  vLLM V1 hybrid allocator: a request's state occupies pages of the one shared KV pool.
SGLANG_MAMBA_FULL_RATIO = 0.9
TRTLLM_STATE_SHARE = 0.5
# KV of sliding-window layers (hybrids whose other layers' cache grows with the context), each engine's rule:
#  SGLang 0.5.14 keeps two static pools (model_executor/pool_configurator.py HybridSWAPoolConfigurator, and
#    DSV4PoolConfigurator for DeepSeek-V4): the window pool holds swa_full_tokens_ratio x the full pool's
#    tokens, so each full-pool token costs full + ratio x window bytes (server_args.py default 0.8;
#    arg_groups/deepseek_v4_hook.py sets 0.1 for DeepSeek-V4, with page_size 256). A running request holds
#    at most window + SGLANG_SWA_EVICTION_INTERVAL (environ.py, 128) + 2 pages of the window pool
#    (SWAChunkCapPoolConfigurator's per-request bound: the trailing window, the eviction interval, the
#    alignment page and the decode page), which caps the requests it admits (schedule_policy.py remaining_swa).
#  vLLM 0.34.0 and TRT-LLM: one KV pool; a request's sliding-window layers hold only the blocks inside its
#    window (vLLM v1 hybrid KV cache manager, SlidingWindowSpec / SlidingWindowMLASpec groups), charged per
#    request beside its full-attention tokens (kv_requests).
SGLANG_SWA_RATIO = 0.8
SGLANG_SWA_RATIO_V4 = 0.1
SGLANG_SWA_EVICTION_INTERVAL = 128
SGLANG_PAGE = 1
SGLANG_PAGE_V4 = 256


@dataclass(frozen=True)
class MemoryReport:
    weights_bytes: float          # per GPU (the fullest pipeline stage)
    kv_bytes_per_token: float     # per GPU, per token of one request (full-attention layers; MLA latent)
    activation_bytes: float       # per GPU, peak transient of a max_num_tokens forward pass
    reserve_bytes: float          # per GPU: runtime + CUDA graphs + communication buffers
    kv_capacity_tokens: float     # per replica (all attention-DP ranks), tokens of KV the pool holds
    max_batch: int                # engine cap on requests in flight per replica
    feasible: bool
    reason: str                   # '' when feasible
    gpu_mem_bytes: float = 0.0
    kv_pool_bytes: float = 0.0    # per GPU
    sliding_bytes_per_request: float = 0.0  # per GPU: window-bounded KV of sliding-window layers, per request
    sliding_bytes_per_token: float = 0.0    # per GPU: KV per token of the sliding-window layers (up to the window)
    full_bytes_per_token: float = 0.0       # per GPU: KV per token of the full-attention layers
    sliding_window: int = 0
    state_bytes_per_request: float = 0.0    # per GPU: recurrent state of the linear layers (fixed per request)
    index_bytes_per_token: float = 0.0      # per GPU: sparse-attention indexer keys (inside full_bytes_per_token)
    state_in_kv_pool: bool = False          # vLLM: states take pages of the KV pool (serving.max_batch counts them)
    window_pool_tokens: float = 0.0         # per replica: SGLang's separate window pool (0: windows share the KV pool)
    window_hold_tokens: float = 0.0         # window-pool tokens one running request holds at most (SGLang)


def weights_per_gpu(model: ModelSpec, p: ParallelConfig) -> float:
    """Weight bytes on the fullest GPU: layers/pp of every group, split as the engines shard them."""
    h, tp = model.hidden, p.tp
    wa = weight_bytes(model.attn_quant)
    if model.attention == AttentionKind.MLA:
        replicated = h * (model.q_lora_rank + model.kv_lora_rank + model.qk_rope_head_dim)  # fused down-proj
        split = (model.q_lora_rank or h) * model.num_heads * model.head_dim \
            + model.kv_lora_rank * model.num_heads * (model.qk_nope_head_dim + model.v_head_dim) \
            + model.num_heads * model.v_head_dim * h
        attn = (replicated + split / tp) * wa
    elif model.o_groups:   # DeepSeek-V4: replicated q / kv down-projection, the rest split by heads / groups
        replicated, split = model.attention_params()
        attn = (replicated + split / tp) * wa
    else:
        kv_split = min(tp, model.num_kv_heads)
        q_heads = model.num_heads * (2 if model.attn_output_gate else 1)
        kv = model.kv_per_head * h * model.num_kv_heads * model.head_dim
        attn = (h * (q_heads + model.num_heads) * model.head_dim / tp + kv / kv_split) * wa
    moe_tp, moe_ep = moe_split(p)
    wg, mats = weight_bytes(model.gemm_quant), model.mlp_mats
    dense = mats * h * model.inter / tp * wg
    moe = 0.0
    if model.is_moe:
        moe = (mats * model.expert_hidden * model.moe_inter * model.num_experts / (moe_tp * moe_ep) * weight_bytes(model.moe_quant)
               + mats * h * model.shared_inter / tp * wg + h * model.num_experts * 2.0 + 2 * h * model.moe_latent * wg)
    lin = model.linear
    mixer = (h * (lin.in_proj_width() + lin.out_width()) / tp * wa) if lin else 0.0
    # the indexer's projections (bf16) and the V4 compressors are replicated on every rank; mHC weights fp32
    index = model.index_params() * 2.0 * model.num_sparse_layers + model.compressor_params() * wa + model.mhc_params() * 4.0
    layers = (attn * model.num_attn_layers + mixer * model.num_linear_layers + index
              + dense * model.num_dense_layers + moe * model.num_moe_layers) / p.pp
    emb = model.vocab * h * 2.0 / tp
    head = 0.0 if model.tie_embeddings else emb
    return layers + (emb + head if p.pp == 1 else max(emb, head))


def kv_bytes(model: ModelSpec, p: ParallelConfig, kv_dtype: Dtype, backend: Backend | None = None,
             sm_version: int = 0) -> tuple[float, float]:
    """(bytes per token over the layers whose cache grows with the context, bytes per token over sliding
    layers), per GPU, as `backend`'s KV-pool sizing charges them on a GPU of `sm_version`
    (estimator.kv_layout; None: elements x bytes). Growing layers: full attention, sparse attention (every
    token kept, plus its indexer key), compressed attention (1 / kv_compress); linear layers hold a fixed
    state instead."""
    row = kv_row(model, kv_dtype, backend, sm_version).pool_bytes
    per_layer = per_gpu_layer_bytes(model, row, p.tp)
    growing = per_layer * model.growing_kv_layers() + model.index_bytes_per_token()   # indexer keys: replicated
    return growing / p.pp, per_layer * model.num_window_layers / p.pp


def activation_bytes(model: ModelSpec, p: ParallelConfig, max_tokens: int) -> float:
    """Peak transient activations of one forward pass of max_tokens tokens per GPU (bf16): residual,
    normed input, QKV, attention output, and the widest MLP/MoE intermediate, ~2x for the allocator."""
    moe_tp, moe_ep = moe_split(p)
    widest = max(2 * model.inter / p.tp, 2 * model.moe_inter * model.topk / max(1, moe_tp), model.hidden)
    qkv = (model.num_heads + 2 * model.num_kv_heads) * model.head_dim / p.tp
    per_token = (4 * model.hidden + qkv + widest) * 2.0
    logits = min(max_tokens, 1024) * model.vocab / p.tp * 4.0  # fp32 logits of the sampled rows
    return 2.0 * max_tokens * per_token + logits


def _state_pool(model: ModelSpec, p: ParallelConfig, eng: ResolvedEngine, pool: float, free: float) -> tuple[float, int]:
    """(KV pool left after the engine's recurrent-state pool, requests whose state it holds) per GPU."""
    state = model.state_bytes_per_request(p.tp) / p.pp
    if state <= 0:
        return pool, eng.max_batch_size
    if eng.backend == Backend.SGLANG:
        kv = pool / (1.0 + SGLANG_MAMBA_FULL_RATIO)
        return kv, min(eng.max_batch_size, int(max(pool - kv, 0.0) // state))
    if eng.backend == Backend.VLLM:
        return pool, min(eng.max_batch_size, int(max(pool, 0.0) // state))
    slots = min(eng.max_batch_size, int(max(TRTLLM_STATE_SHARE * free, 0.0) // state))
    return eng.mem_fraction * (free - slots * state), slots


def memory_report(model: ModelSpec, system: SystemSpec, p: ParallelConfig, eng: ResolvedEngine,
                  kv_dtype: Dtype) -> MemoryReport:
    total = float(system.gpu.mem_bytes)
    weights = weights_per_gpu(model, p)
    kv_full, kv_slide = kv_bytes(model, p, kv_dtype, eng.backend, system.gpu.sm_version)
    act = activation_bytes(model, p, eng.max_num_tokens)
    init = RUNTIME_RESERVE_BYTES + (COMM_BUFFER_BYTES if p.num_gpus > 1 else 0)   # held before weights load
    reserve = init + CUDA_GRAPH_BYTES
    free = total - weights - act - reserve
    if eng.backend == Backend.VLLM:      # budget = util * total, minus everything the profile run sees
        pool = eng.mem_fraction * total - weights - act - reserve
    elif eng.backend == Backend.SGLANG:  # static pool = fraction * free-at-init - weights; the rest is dynamic
        pool = eng.mem_fraction * (total - init) - weights
    else:                                # TRT-LLM: fraction of what is free after weights and activations
        pool = eng.mem_fraction * free
    pool, slots = _state_pool(model, p, eng, pool, free)
    slide_req = kv_slide * model.sliding_window if model.sliding_window else 0.0
    per_token = kv_full if kv_full > 0 else kv_slide  # all-sliding models: report the per-token cost
    ratio, hold = sglang_window_pool(model, eng.backend) if kv_full > 0 and kv_slide > 0 else (0.0, 0.0)
    cell = per_token + ratio * kv_slide               # SGLang: each full-pool token brings ratio window tokens
    per_rank = max(pool, 0.0) / cell if cell > 0 else math.inf
    if eng.kv_tokens is not None:    # a launch cap below what memory allows (SGLang --max-total-tokens)
        per_rank = min(per_rank, float(eng.kv_tokens))
    capacity = per_rank * p.attn_dp
    reason = ""
    if weights > total:
        reason = (f"{model.name} weights need {weights / 1e9:.0f} GB/GPU with {p.label()}; "
                  f"{system.name} has {total / GIB:.0f} GiB")
    elif pool <= 0:
        reason = (f"no KV-cache memory left on {system.name} with {p.label()}: weights {weights / GIB:.1f} GiB, "
                  f"activations {act / GIB:.1f} GiB, reserve {reserve / GIB:.1f} GiB of {total / GIB:.0f} GiB "
                  f"({eng.backend.value} memory fraction {eng.mem_fraction})")
    elif slots < 1:
        reason = (f"no room for one request's recurrent state ({model.state_bytes_per_request(p.tp) / p.pp / GIB:.2f} GiB/GPU) "
                  f"on {system.name} with {p.label()}")
    return MemoryReport(
        weights_bytes=weights, kv_bytes_per_token=per_token, activation_bytes=act, reserve_bytes=reserve,
        kv_capacity_tokens=capacity, max_batch=slots * p.attn_dp, feasible=not reason,
        reason=reason, gpu_mem_bytes=total, kv_pool_bytes=max(pool, 0.0), sliding_bytes_per_request=slide_req,
        sliding_bytes_per_token=kv_slide, full_bytes_per_token=kv_full, sliding_window=model.sliding_window,
        state_bytes_per_request=model.state_bytes_per_request(p.tp) / p.pp,
        index_bytes_per_token=model.index_bytes_per_token() / p.pp,
        state_in_kv_pool=eng.backend == Backend.VLLM and model.num_linear_layers > 0,
        window_pool_tokens=ratio * capacity, window_hold_tokens=hold,
    )


def sglang_window_pool(model: ModelSpec, backend: Backend) -> tuple[float, float]:
    """(swa_full_tokens_ratio, window-pool tokens one running request holds at most) of SGLang's separate
    window pool; (0, 0) for the engines whose windows share the KV pool."""
    if backend != Backend.SGLANG or not model.sliding_window:
        return 0.0, 0.0
    v4 = model.kv_shared and model.compressed_window > 0
    ratio, page = (SGLANG_SWA_RATIO_V4, SGLANG_PAGE_V4) if v4 else (SGLANG_SWA_RATIO, SGLANG_PAGE)
    return ratio, float(model.sliding_window + SGLANG_SWA_EVICTION_INTERVAL + 2 * page)


def window_requests(mem: MemoryReport, tokens, attn_dp: int) -> np.ndarray:
    """Requests of `tokens` tokens whose windows SGLang's window pool holds per replica (inf where the
    windows share the KV pool): each holds min(tokens, window_hold_tokens) of it."""
    tokens = np.asarray(tokens, dtype=np.float64)
    if mem.window_pool_tokens <= 0:
        return np.full(tokens.shape, np.inf)
    held = np.maximum(np.minimum(tokens, mem.window_hold_tokens), 1.0)
    return np.floor(mem.window_pool_tokens / attn_dp / held) * attn_dp


def kv_requests(mem: MemoryReport, tokens: np.ndarray, attn_dp: int) -> np.ndarray:
    """Requests of `tokens` KV tokens each that the engine's KV pools admit per replica (before its batch
    cap): SGLang's two pools (full-pool tokens, window-pool holds) each bound them; elsewhere a request's
    full tokens, its window (and on vLLM its recurrent state) come out of the one pool."""
    tokens = np.asarray(tokens, dtype=np.float64)
    window = np.minimum(tokens, mem.sliding_window) if mem.sliding_window else 0.0
    if mem.window_pool_tokens > 0:
        by_full = np.floor(mem.kv_capacity_tokens / attn_dp / np.maximum(tokens, 1.0)) * attn_dp
        return np.minimum(by_full, window_requests(mem, tokens, attn_dp))
    per_req = tokens * mem.full_bytes_per_token + window * mem.sliding_bytes_per_token
    if mem.state_in_kv_pool:   # vLLM hybrids: the recurrent state takes pool pages too
        per_req = per_req + mem.state_bytes_per_request
    return np.floor(mem.kv_pool_bytes / np.maximum(per_req, 1.0)) * attn_dp
