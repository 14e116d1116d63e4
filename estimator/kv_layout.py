"""Bytes one token's KV-cache entry takes in one attention layer, as each engine lays it out.

A cache entry is `kv_elems_per_token_layer()` elements (MLA: the kv_lora_rank latent + the rope key;
DeepSeek-V4: one head_dim entry that is key and value; GQA: K and V of every KV head). At bf16 every
engine stores 2 bytes an element. In FP8 the MLA family is not 1 byte an element everywhere: some kernels
keep the rope dims in bf16 beside fp8 "nope" dims with block scales. Two figures per entry:

    pool_bytes  what the engine's KV-pool sizing charges per entry: capacity = pool / pool_bytes
    wire_bytes  what its buffers hold per entry, and what a disaggregated hand-off moves

They differ only where the engine's sizing and its buffers disagree (SGLang DSA on Hopper in FP8).
The sparse-attention indexer's keys (DSA: 128 fp8 + one fp32 scale = 132 B per entry, in SGLang's
DSATokenToKVPool and vLLM's indexer cache alike) are priced by perfdb.ops.sparse.index_cache_bytes_per_token
through ModelSpec.index_bytes_per_token.

Each layout names the engine file and version it was read from (`KvRow.source`).
"""
from __future__ import annotations

from dataclasses import dataclass

from estimator.models.spec import AttentionKind, ModelSpec
from perfdb.types import Backend, Dtype, SparseKind

BLACKWELL_SM = 100
# fp8 "nope" dims with one scale per block; rope dims kept in bf16 (2 bytes)
DS_MLA_BLOCK = 128          # DeepSeek-V3.2 fp8_ds_mla / SGLang DSA: one fp32 scale (4 B) per 128 nope dims
V4_BLOCK, V4_SCALE_PAD = 64, 1   # DeepSeek-V4: one UE8M0 scale (1 B) per 64 nope dims, 1 pad byte

_SGLANG_V4 = ("sglang 0.5.14 wheel: mem_cache/deepseek_v4_memory_pool.py get_bytes_per_token (448 FP8 NoPE + "
              "64 BF16 RoPE dims + 7 scales + 1 pad = 584 B; its create_buffer asserts uint8 storage, so a bf16 "
              "cache runs on NPU only and is priced here as elements x 2 B) and model_executor/pool_configurator.py DSV4PoolConfigurator (584 B an entry)")
_VLLM_V4 = ("vllm 0.34.0 wheel: models/deepseek_v4/attention.py (fp8_ds_mla: 448 B NoPE + 128 B RoPE + 8 B "
            "scales = 584 B a token); bf16 on FLASHINFER_MLA_SPARSE_DSV4: head_dim x 2 B")
_SGLANG_DSA = ("sglang 0.5.14 wheel: model_executor/pool_configurator.py _compute_cell_size charges "
               "(kv_lora_rank + qk_rope_head_dim) x element size for every MLA pool, DSA included; "
               "model_executor/model_runner_kv_cache_mixin.py calculate_mla_kv_cache_dim allocates FP8 DSA rows "
               "of kv_lora_rank + kv_lora_rank / 128 x 4 + qk_rope_head_dim x 2 B (656 B) for the flashmla_kv "
               "backends (server_args.py _set_default_dsa_backends: FP8 on Hopper) and the plain 576 for the "
               "trtllm ones (FP8 on Blackwell)")
_VLLM_DSA = ("vllm 0.34.0 wheel: platforms/cuda.py sparse MLA priorities (SM100 fp8: FLASHINFER_MLA_SPARSE, plain "
             "fp8 rows; SM90: FLASH_ATTN_MLA_SPARSE is bf16-only, so fp8 goes to FLASHMLA_SPARSE), "
             "model_executor/layers/attention/mla_attention.py _canonicalize_sparse_mla_kv_cache_dtype (FLASHMLA_SPARSE "
             "stores fp8 as fp8_ds_mla) and v1/attention/backend.py get_fp8_ds_mla_row_bytes (656 B)")
_GENERIC = ("elements x bytes per element (fp8 1, else 2): SGLang mem_cache/memory_pool.py MLATokenToKVPool / "
            "MHATokenToKVPool (0.5.14), vLLM's MLA and attention specs (0.34.0), TRT-LLM's KV cache manager")


@dataclass(frozen=True)
class KvRow:
    """One token's cache entry in one attention layer over all KV heads (not split by tensor parallelism)."""

    pool_bytes: float
    wire_bytes: float
    source: str


def _is_fp8(kv_dtype: Dtype) -> bool:
    return kv_dtype in (Dtype.FP8, Dtype.FP8_BLOCK)


def _dsa_mla(model: ModelSpec) -> bool:
    return model.attention == AttentionKind.MLA and model.sparse is not None and model.sparse.kind == SparseKind.DSA


def _v4_row(model: ModelSpec, backend: Backend | None, fp8: bool) -> KvRow | None:
    """DeepSeek-V4 (kv_shared, grouped output) in FP8: fp8 NoPE + bf16 RoPE + UE8M0 scales."""
    nope, rope = model.head_dim - model.qk_rope_head_dim, model.qk_rope_head_dim
    packed = nope + 2 * rope + nope // V4_BLOCK + V4_SCALE_PAD
    if fp8 and backend in (Backend.SGLANG, Backend.VLLM):
        return KvRow(packed, packed, _SGLANG_V4 if backend == Backend.SGLANG else _VLLM_V4)
    return None


def _dsa_row(model: ModelSpec, backend: Backend | None, sm_version: int) -> KvRow | None:
    """DSA over MLA (DeepSeek-V3.2, GLM-5) in FP8: DeepSeek's fp8_ds_mla rows on Hopper's FlashMLA kernels."""
    plain = model.kv_lora_rank + model.qk_rope_head_dim
    ds_mla = model.kv_lora_rank + model.kv_lora_rank // DS_MLA_BLOCK * 4 + 2 * model.qk_rope_head_dim
    hopper = sm_version < BLACKWELL_SM
    if backend == Backend.SGLANG:
        return KvRow(plain, ds_mla if hopper else plain, _SGLANG_DSA)
    if backend == Backend.VLLM:
        row = ds_mla if hopper else plain
        return KvRow(row, row, _VLLM_DSA)
    return None


def kv_row(model: ModelSpec, kv_dtype: Dtype, backend: Backend | None = None, sm_version: int = 0) -> KvRow:
    """Bytes of one token's entry in one attention layer as `backend` stores it on a GPU of `sm_version`
    (None: no engine's layout, elements x bytes per element)."""
    fp8 = _is_fp8(kv_dtype)
    special = None
    if model.kv_shared and model.o_groups and model.qk_rope_head_dim:
        special = _v4_row(model, backend, fp8)
    elif fp8 and _dsa_mla(model):
        special = _dsa_row(model, backend, sm_version)
    if special is not None:
        return special
    plain = model.kv_elems_per_token_layer() * (1.0 if fp8 else 2.0)
    return KvRow(plain, plain, _GENERIC)


def decode_read_bytes(model: ModelSpec, kv_dtype: Dtype, backend: Backend | None, sm_version: int) -> float:
    """Bytes a decode attention kernel reads per cached entry where `backend` stores its own FP8 row
    (DeepSeek-V4 584, DSA 656 on Hopper: the stored row, `wire_bytes`); 0 where the row is elements x bytes
    per element, which the decode ops price by themselves (perfdb.ops.base.kv_row_field)."""
    row = kv_row(model, kv_dtype, backend, sm_version)
    return 0.0 if row.source == _GENERIC else row.wire_bytes


def per_gpu_layer_bytes(model: ModelSpec, row: float, tp: int) -> float:
    """One token's cache bytes in one layer on one GPU: an MLA latent (and DeepSeek-V4's single entry) is
    replicated on every TP rank; GQA splits the KV heads over the ranks, each holding at least one."""
    if model.attention == AttentionKind.MLA:
        return row
    return row / model.num_kv_heads * max(1, model.num_kv_heads // tp)
