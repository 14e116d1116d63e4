"""MLA collector (DeepSeek-V3/R1, Kimi-K2 attention), torch implementations of both forms.

Prefill: the expanded form. Per-head K = [k_nope, k_rope] (qk_nope + qk_rope dims, the rope part shared
by every head) and V (v_head_dim) are up-projected from the latent, then causal SDPA.
Decode: the weight-absorbed form over the compressed cache. q_nope is absorbed into the latent space
(kv_lora_rank), scores = q_latent . c + q_rope . k_rope against the shared cache of kv_lora_rank +
qk_rope dims per token; the output stays in latent space (the V up-projection is a separate GEMM).
An fp8 KV cache is stored in fp8 e4m3 and up-converted inside the timed call (kernel_source `_fp8kv`).
"""
from __future__ import annotations

from collectors.cases import pow2, product
from collectors.ops.common import kv_randn, kv_storage_dtype, prefix_causal_mask, randn, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, register
from perfdb.ops import MlaDecodeCase, MlaPrefillCase
from perfdb.types import Dtype, OpKind

_DSV3 = {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128}
_TINY = {"kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32}


def _dims(size: GridSize) -> tuple[dict, list[int]]:
    if size == GridSize.TINY:
        return _TINY, [4]
    return _DSV3, ([128, 64, 32, 16] if size == GridSize.FULL else [128, 16])  # heads per GPU at TP 1..8


def prefill_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[MlaPrefillCase]:
    dims, heads = _dims(size)
    axes = {GridSize.TINY: {"batch": [1, 2], "seq_len": [16, 64], "prefix_len": [0]},
            GridSize.SMALL: {"batch": [1, 8], "seq_len": [512, 4096], "prefix_len": [0]},
            GridSize.FULL: {"batch": pow2(1, 32), "seq_len": pow2(128, 16384), "prefix_len": [0, 4096]}}[size]
    return [c for h in heads for c in product(
        MlaPrefillCase, {"dtype": Dtype.BF16, "kv_dtype": Dtype.BF16, "num_heads": h, **dims}, axes,
        keep=lambda batch, seq_len, prefix_len: batch * (seq_len + prefix_len) <= 65536)]


def decode_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[MlaDecodeCase]:
    dims, heads = _dims(size)
    axes = {GridSize.TINY: {"batch": [1, 4], "kv_len": [16, 128]},
            GridSize.SMALL: {"batch": [1, 64], "kv_len": [1024, 16384]},
            GridSize.FULL: {"batch": pow2(1, 512), "kv_len": pow2(64, 131072)}}[size]
    return [c for h in heads for c in product(
        MlaDecodeCase, {"dtype": Dtype.BF16, "kv_dtype": Dtype.BF16, "num_heads": h, **dims}, axes,
        keep=lambda batch, kv_len: batch * kv_len <= 1 << 22)]


def _check(case) -> object:
    kv_storage_dtype(case.kv_dtype, case.dtype)  # raises Unsupported for a KV format not collected here
    return torch_dtype(case.dtype)


def build_prefill(case: MlaPrefillCase, ctx: DeviceCtx) -> Prepared:
    import torch

    dt = _check(case)
    b, s, p, h = int(case.batch), int(case.seq_len), int(case.prefix_len), case.num_heads
    qk = case.qk_nope_head_dim + case.qk_rope_head_dim
    q = randn((b, h, s, qk), dt, ctx)
    k_nope = randn((b, h, s + p, case.qk_nope_head_dim), dt, ctx)
    k_rope = kv_randn((b, 1, s + p, case.qk_rope_head_dim), case.kv_dtype, case.dtype, ctx)
    v = randn((b, h, s + p, case.v_head_dim), dt, ctx)
    mask = prefix_causal_mask(s, p, ctx)

    def fn():
        k = torch.cat((k_nope, k_rope.to(dt).expand(b, h, s + p, case.qk_rope_head_dim)), dim=-1)
        if mask is None:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return Prepared(fn, "torch_mla_expanded_sdpa" + ("_fp8kv" if case.kv_dtype != case.dtype else ""))


def build_decode(case: MlaDecodeCase, ctx: DeviceCtx) -> Prepared:
    import torch

    dt = _check(case)
    b, t, h = int(case.batch), int(case.kv_len), case.num_heads
    latent = case.kv_lora_rank + case.qk_rope_head_dim
    q = randn((b, h, latent), dt, ctx)          # absorbed q_nope (kv_lora_rank) + q_rope
    stored = kv_randn((b, t, latent), case.kv_dtype, case.dtype, ctx)  # compressed KV: latent c + k_rope
    scale = (case.qk_nope_head_dim + case.qk_rope_head_dim) ** -0.5

    def fn():
        cache = stored.to(dt) if stored.dtype != dt else stored  # an fp8 cache is up-converted first
        scores = torch.bmm(q, cache.transpose(1, 2)).float().mul_(scale).softmax(-1).to(dt)  # [b, h, t]
        return torch.bmm(scores, cache[:, :, :case.kv_lora_rank])                         # [b, h, kv_lora_rank]

    return Prepared(fn, "torch_mla_absorbed" + ("_fp8kv" if case.kv_dtype != case.dtype else ""))


register(OpCollector(OpKind.MLA_PREFILL, prefill_grid, build_prefill))
register(OpCollector(OpKind.MLA_DECODE, decode_grid, build_decode))
