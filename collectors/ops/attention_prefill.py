"""Prefill attention collector: causal attention of `seq_len` new tokens after `prefix_len` cached ones,
through torch scaled_dot_product_attention with one explicit kernel (flash first, then cuDNN,
memory-efficient; math on CPU). The row's kernel_source names the kernel that ran. Sliding-window
layers (window > 0) pass an explicit windowed causal mask, so a masked kernel runs (`_window`).

An fp8 KV cache (engines' --kv-cache-dtype fp8) is stored in fp8 e4m3 and up-converted to the math dtype
before SDPA inside the timed call (kernel_source gets `_fp8kv_dequant`): torch has no SDPA kernel that
reads fp8 K/V, and the extra pass over K/V is what a torch backend really pays."""
from __future__ import annotations

from collectors.cases import pow2, product
from collectors.ops.common import kv_randn, prefix_causal_mask, randn, torch_dtype, window_causal_mask
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, Unsupported, register
from perfdb.ops import AttentionPrefillCase
from perfdb.types import Dtype, OpKind

# (query heads, kv heads, head dim) per GPU: Llama-3.1-8B/70B and Qwen3 slices at TP 1..8, MQA/MHA.
_HEADS_FULL = [(64, 8, 128), (32, 8, 128), (16, 2, 128), (8, 1, 128), (4, 1, 128), (32, 32, 128),
               (64, 4, 128), (16, 16, 64)]
_MAX_TOKENS = 131072  # batch * (seq + prefix) bound: keeps K/V under a few GiB


def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[AttentionPrefillCase]:
    if size == GridSize.TINY:
        heads, axes = [(4, 2, 64)], {"batch": [1, 2], "seq_len": [16, 64, 128], "prefix_len": [0, 64]}
    elif size == GridSize.SMALL:
        heads = [(32, 8, 128), (8, 1, 128)]
        axes = {"batch": [1, 4, 16], "seq_len": [256, 1024, 4096], "prefix_len": [0, 4096]}
    else:
        heads = _HEADS_FULL
        axes = {"batch": pow2(1, 64), "seq_len": pow2(128, 16384), "prefix_len": [0, 1024, 4096, 16384]}
    out = []
    for h, kvh, d in heads:
        dt = Dtype.FP32 if size == GridSize.TINY else Dtype.BF16  # CPU hosts: native fp32
        fixed = {"dtype": dt, "kv_dtype": dt, "num_heads": h, "num_kv_heads": kvh,
                 "head_dim": d, "window": 0}
        out += product(AttentionPrefillCase, fixed, axes,
                       keep=lambda batch, seq_len, prefix_len: batch * (seq_len + prefix_len) <= _MAX_TOKENS)
    return out


def _kernels(ctx: DeviceCtx):
    from torch.nn.attention import SDPBackend

    if ctx.device != "cuda":
        return [(SDPBackend.MATH, "sdpa_cpu_math"), (SDPBackend.FLASH_ATTENTION, "sdpa_cpu_flash")]
    return [(SDPBackend.FLASH_ATTENTION, "sdpa_flash"), (SDPBackend.CUDNN_ATTENTION, "sdpa_cudnn"),
            (SDPBackend.EFFICIENT_ATTENTION, "sdpa_efficient")]


def build(case: AttentionPrefillCase, ctx: DeviceCtx) -> Prepared:
    dt = torch_dtype(case.dtype)
    b, s, p = int(case.batch), int(case.seq_len), int(case.prefix_len)
    q = randn((b, case.num_heads, s, case.head_dim), dt, ctx)
    k = kv_randn((b, case.num_kv_heads, s + p, case.head_dim), case.kv_dtype, case.dtype, ctx)
    v = kv_randn((b, case.num_kv_heads, s + p, case.head_dim), case.kv_dtype, case.dtype, ctx)
    dequant = k.dtype != dt
    gqa = case.num_heads != case.num_kv_heads
    # With a cached prefix the causal mask is aligned bottom-right (query i sees prefix + i + 1 keys).
    # sliding-window layers: an explicit windowed causal mask (flash takes none; a masked kernel runs)
    mask = window_causal_mask(s, p, int(case.window), ctx) if case.window > 0 else prefix_causal_mask(s, p, ctx)
    reasons: list[str] = []
    suffix = ("_fp8kv_dequant" if dequant else "") + ("_window" if case.window > 0 else "")
    prepared = _first_kernel(q, k, v, mask, gqa, ctx, reasons, suffix)
    if prepared is None and gqa:
        # No kernel takes grouped KV heads here: expand them (reads group x more KV; labelled as such).
        group = case.num_heads // case.num_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        prepared = _first_kernel(q, k, v, mask, False, ctx, reasons, "_kv_expanded" + suffix)
    if prepared is None:
        raise Unsupported("no SDPA kernel accepts this case: " + "; ".join(reasons))
    return prepared


def _first_kernel(q, k, v, mask, gqa: bool, ctx: DeviceCtx, reasons: list[str], suffix: str) -> Prepared | None:
    """The first SDPA kernel (in _kernels order) that runs this case, pinned with sdpa_kernel."""
    import torch
    from torch.nn.attention import sdpa_kernel

    for backend, name in _kernels(ctx):
        def fn(backend=backend):
            kk, vv = (k.to(q.dtype), v.to(q.dtype)) if k.dtype != q.dtype else (k, v)  # fp8 cache: dequantize
            with sdpa_kernel([backend]):
                if mask is None:
                    return torch.nn.functional.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa)
                return torch.nn.functional.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, enable_gqa=gqa)
        try:
            fn()
        except RuntimeError as exc:
            reasons.append(f"{name}{suffix}: {str(exc).splitlines()[0][:80]}")
            continue
        return Prepared(fn, name + suffix)
    return None

register(OpCollector(OpKind.ATTENTION_PREFILL, grid, build))
