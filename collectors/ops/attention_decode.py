"""Decode attention collector: one new query token per request over a paged KV cache.

GPU: our Triton kernel (paged_decode_triton.py). CPU: a torch reference (gather the pages, then
attention) that runs the same harness and is what the Triton kernel is checked against.
The cache is stored in `kv_dtype`: the math dtype, or fp8 e4m3 (read and up-converted in the kernel, as
engines' fp8-KV decode kernels do; the per-tensor scale is 1 and costs nothing measurable).
"""
from __future__ import annotations

from collectors.cases import pow2, product
from collectors.ops.common import device, kv_randn, randn, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, register
from perfdb.ops import AttentionDecodeCase
from perfdb.types import Dtype, OpKind

PAGE_SIZE = 16          # tokens per KV page (vLLM's default block size)
_MAX_KV_TOKENS = 1 << 22  # batch * kv_len bound: 4M tokens of KV per GPU


def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[AttentionDecodeCase]:
    if size == GridSize.TINY:
        heads, axes = [(4, 2, 64)], {"batch": [1, 4], "kv_len": [16, 100, 256]}
    elif size == GridSize.SMALL:
        heads, axes = [(32, 8, 128), (8, 1, 128)], {"batch": [1, 16, 128], "kv_len": [512, 4096, 32768]}
    else:
        heads = [(64, 8, 128), (32, 8, 128), (16, 2, 128), (8, 1, 128), (4, 1, 128), (32, 32, 128), (64, 4, 128),
                 (16, 16, 64)]
        axes = {"batch": pow2(1, 512), "kv_len": pow2(64, 131072)}
    dt = Dtype.FP32 if size == GridSize.TINY else Dtype.BF16  # CPU hosts: native fp32
    # fp8 KV (engines' --kv-cache-dtype fp8) beside the 16-bit cache; TINY checks the fp8 path on bf16 math
    kv_dtypes = [(dt, dt), (Dtype.BF16, Dtype.FP8)]
    out = []
    for h, kvh, d in heads:
        for math_dt, kv_dt in kv_dtypes:
            fixed = {"dtype": math_dt, "kv_dtype": kv_dt, "num_heads": h, "num_kv_heads": kvh, "head_dim": d,
                     "window": 0}
            out += product(AttentionDecodeCase, fixed, axes,
                           keep=lambda batch, kv_len: batch * kv_len <= _MAX_KV_TOKENS)
    return out


def make_inputs(batch: int, kv_len: int, heads: int, kv_heads: int, dim: int, dtype: Dtype, ctx: DeviceCtx,
                seed: int = 0, kv_dtype: Dtype | None = None):
    """Query, paged caches (in kv_dtype, default dtype) with pages scattered in random order, block table
    and lengths."""
    import torch

    torch.manual_seed(seed)
    kv_dtype = kv_dtype or dtype
    pages_per_req = -(-kv_len // PAGE_SIZE)
    num_pages = batch * pages_per_req
    q = randn((batch, heads, dim), torch_dtype(dtype), ctx)
    k_cache = kv_randn((num_pages, PAGE_SIZE, kv_heads, dim), kv_dtype, dtype, ctx)
    v_cache = kv_randn((num_pages, PAGE_SIZE, kv_heads, dim), kv_dtype, dtype, ctx)
    perm = torch.randperm(num_pages).to(device(ctx), torch.int32)
    block_table = perm.view(batch, pages_per_req).contiguous()
    kv_lens = torch.full((batch,), kv_len, dtype=torch.int32, device=device(ctx))
    return q, k_cache, v_cache, block_table, kv_lens


def reference(q, k_cache, v_cache, block_table, kv_lens, window: int = 0):
    """Torch paged decode: gather each request's pages, then grouped attention in fp32 (window > 0: over
    each request's last `window` tokens)."""
    import torch

    batch, heads, dim = q.shape
    kv_heads = k_cache.shape[2]
    max_len = int(kv_lens.max())
    k = k_cache[block_table.long()].flatten(1, 2)[:, :max_len]  # [batch, tokens, kv_heads, dim]
    v = v_cache[block_table.long()].flatten(1, 2)[:, :max_len]
    k = k.transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1).float()
    v = v.transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1).float()
    scores = torch.einsum("bhd,bhtd->bht", q.float(), k) * dim ** -0.5
    pos = torch.arange(max_len, device=q.device)[None, :]
    valid = pos < kv_lens[:, None]
    if window > 0:
        valid &= pos >= kv_lens[:, None] - window
    scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
    return torch.einsum("bht,bhtd->bhd", scores.softmax(-1), v).to(q.dtype)


def build(case: AttentionDecodeCase, ctx: DeviceCtx) -> Prepared:
    b, kv = int(case.batch), int(case.kv_len)
    inputs = make_inputs(b, kv, case.num_heads, case.num_kv_heads, case.head_dim, case.dtype, ctx,
                         kv_dtype=case.kv_dtype)
    suffix = ("_fp8kv" if case.kv_dtype == Dtype.FP8 else "") + ("_window" if case.window > 0 else "")
    w = int(case.window)
    if ctx.device != "cuda":
        return Prepared(lambda: reference(*inputs, window=w), "torch_paged_reference" + suffix)
    from collectors.ops.paged_decode_triton import paged_decode

    return Prepared(lambda: paged_decode(*inputs, max_kv_len=kv, window=w), "triton_paged_decode" + suffix)


register(OpCollector(OpKind.ATTENTION_DECODE, grid, build))
