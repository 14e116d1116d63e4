"""Sparse-attention collectors (DSA / MSA): the indexer scores every cached token, top-k selects, the
attention reads the selected entries (perfdb.ops.sparse). A torch reference on every device (the
engines' FlashMLA sparse / NSA kernels come with their adapters): rows say `torch_sparse_reference`.
"""
from __future__ import annotations

from collectors.cases import product
from collectors.ops.common import device, randn, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, Unsupported, register
from perfdb.ops import SparseDecodeCase, SparsePrefillCase
from perfdb.types import Dtype, OpKind, SparseKind


def _fixed(size: GridSize) -> dict:
    if size == GridSize.TINY:
        return dict(kind=SparseKind.DSA, dtype=Dtype.FP32, kv_dtype=Dtype.FP32, num_heads=2, qk_dim=24, v_dim=16,
                    kv_elems=24, topk=8, index_heads=2, index_head_dim=8)
    # GLM-5 / DeepSeek-V3.2 at tp 8: 8 (or 16) heads over the 576-element latent, top 2,048, 32-64 x 128 indexer
    return dict(kind=SparseKind.DSA, dtype=Dtype.BF16, kv_dtype=Dtype.BF16, num_heads=16, qk_dim=576, v_dim=512,
                kv_elems=576, topk=2048, index_heads=64, index_head_dim=128)


def decode_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[SparseDecodeCase]:
    axes = {"batch": [1, 3], "kv_len": [4, 32]} if size == GridSize.TINY else \
        {"batch": [1, 8, 32, 128], "kv_len": [1024, 4096, 16384, 65536]}
    return product(SparseDecodeCase, _fixed(size), axes, keep=lambda batch, kv_len: batch * kv_len <= 1 << 22)


def prefill_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[SparsePrefillCase]:
    axes = {"batch": [1], "seq_len": [8, 24], "prefix_len": [0, 8]} if size == GridSize.TINY else \
        {"batch": [1, 2], "seq_len": [512, 1024, 2048, 4096], "prefix_len": [0, 4096]}
    return product(SparsePrefillCase, _fixed(size), axes)


def _check(case) -> None:
    if case.dtype != case.kv_dtype:
        raise Unsupported(f"sparse reference needs kv_dtype == dtype, got {case.kv_dtype.value}/{case.dtype.value}")
    if case.qk_dim < case.v_dim or case.kv_elems < case.qk_dim:
        raise Unsupported("sparse reference reads K and V from one latent cache entry: needs kv_elems >= qk_dim >= v_dim")


def sparse_attend(q, q_idx, w_idx, cache, k_idx, topk: int, visible):
    """q [b, s, h, qk], q_idx [b, s, ih, id], w_idx [b, s, ih], cache [b, t, e], k_idx [b, t, id], visible
    [s, t] bool: index scores, top-k per query, attention over the gathered entries (fp32 math)."""
    import torch

    scores = torch.einsum("bsid,btd->bsit", q_idx.float(), k_idx.float()).relu()
    scores = (scores * w_idx.float()[..., None]).sum(2).masked_fill(~visible, float("-inf"))   # [b, s, t]
    k = min(topk, cache.shape[1])
    idx = scores.topk(k, dim=-1).indices                                                       # [b, s, k]
    chosen = torch.gather(cache.float()[:, None].expand(-1, idx.shape[1], -1, -1), 2,
                          idx[..., None].expand(-1, -1, -1, cache.shape[-1]))                 # [b, s, k, e]
    qk, dv = q.shape[-1], chosen.shape[-1]
    logits = torch.einsum("bshd,bskd->bshk", q.float(), chosen[..., :qk]) * qk ** -0.5
    picked = torch.gather(scores, 2, idx)
    logits = logits.masked_fill(torch.isinf(picked)[:, :, None, :], float("-inf"))
    return torch.einsum("bshk,bskd->bshd", logits.softmax(-1), chosen[..., : min(dv, qk)]).to(q.dtype)


def _build(case, queries: int, keys: int, ctx: DeviceCtx) -> Prepared:
    import torch

    _check(case)
    dt, b = torch_dtype(case.dtype), int(case.batch)
    torch.manual_seed(0)
    q = randn((b, queries, case.num_heads, case.qk_dim), dt, ctx)
    q_idx = randn((b, queries, case.index_heads, case.index_head_dim), dt, ctx)
    w_idx = randn((b, queries, case.index_heads), dt, ctx)
    cache = randn((b, keys, case.kv_elems), dt, ctx)
    k_idx = randn((b, keys, case.index_head_dim), dt, ctx)
    pos = torch.arange(keys - queries, keys, device=device(ctx))
    visible = torch.arange(keys, device=device(ctx))[None, :] <= pos[:, None]                 # causal
    return Prepared(lambda: sparse_attend(q, q_idx, w_idx, cache, k_idx, case.topk, visible), "torch_sparse_reference")


def build_decode(case: SparseDecodeCase, ctx: DeviceCtx) -> Prepared:
    return _build(case, 1, int(case.kv_len), ctx)


def build_prefill(case: SparsePrefillCase, ctx: DeviceCtx) -> Prepared:
    return _build(case, int(case.seq_len), int(case.seq_len + case.prefix_len), ctx)


register(OpCollector(OpKind.SPARSE_PREFILL, prefill_grid, build_prefill))
register(OpCollector(OpKind.SPARSE_DECODE, decode_grid, build_decode))
