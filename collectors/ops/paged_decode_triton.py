"""Decode attention over a paged KV cache: our own Triton kernel (split-KV, GQA-grouped).

Layout (as vLLM's): k_cache, v_cache [num_pages, page_size, num_kv_heads, head_dim] in q's dtype or fp8
e4m3 (up-converted on load); block_table
[batch, max_pages] of page ids; kv_lens [batch]. One program handles one (request, kv head, split):
the GQA group of query heads sharing that kv head attends over its split's pages with an online
softmax; partial outputs and log-sum-exps are merged in torch (exact, not an approximation).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _decode_split(Q, KC, VC, BT, LENS, OP, LSE, scale, window,
                  s_qb, s_qh, s_kp, s_kt, s_kh, s_bt, s_ob, s_oh, s_os, s_lb, s_lh,
                  GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, D: tl.constexpr, PAGE: tl.constexpr,
                  PAGES_PER_SPLIT: tl.constexpr):
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    split = tl.program_id(2)
    kv_len = tl.load(LENS + b)
    g = tl.arange(0, GROUP_PAD)
    d = tl.arange(0, D)
    t = tl.arange(0, PAGE)
    heads = kvh * GROUP + g
    gmask = g < GROUP
    q = tl.load(Q + b * s_qb + heads[:, None] * s_qh + d[None, :], mask=gmask[:, None], other=0.0)
    m_i = tl.full([GROUP_PAD], float("-inf"), tl.float32)
    l_i = tl.zeros([GROUP_PAD], tl.float32)
    acc = tl.zeros([GROUP_PAD, D], tl.float32)
    # sliding window (window > 0): only the last `window` tokens are attended; splits start at their page
    lo = tl.where(window > 0, tl.maximum(kv_len - window, 0), 0)
    first = lo // PAGE + split * PAGES_PER_SPLIT
    last = tl.minimum(first + PAGES_PER_SPLIT, tl.cdiv(kv_len, PAGE))
    # a constexpr trip count with masking (not range(first, last)): the same code runs under
    # TRITON_INTERPRET=1 on CPU, which is how the tests check this kernel without a GPU
    for i in range(PAGES_PER_SPLIT):
        page_idx = first + i
        page = tl.load(BT + b * s_bt + page_idx, mask=page_idx < last, other=0).to(tl.int64)
        tok = page_idx * PAGE + t
        # tok < last * PAGE <=> this page is live (a tensor comparison: mixing in a scalar bool trips
        # triton 3.9's interpreter)
        tmask = (tok < kv_len) & (tok >= lo) & (tok < last * PAGE)
        offs = page * s_kp + t[:, None] * s_kt + kvh * s_kh + d[None, :]
        # an fp8 cache is up-converted on load (a no-op for a 16-bit cache)
        k = tl.load(KC + offs, mask=tmask[:, None], other=0.0).to(q.dtype)
        v = tl.load(VC + offs, mask=tmask[:, None], other=0.0).to(q.dtype)
        s = tl.dot(q, tl.trans(k)) * scale
        s = tl.where(tmask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # nothing seen yet: keep acc and l at 0, no NaN
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = acc / tl.maximum(l_i, 1e-30)[:, None]
    lse = tl.where(l_i > 0, m_i + tl.log(tl.maximum(l_i, 1e-30)), float("-inf"))
    tl.store(OP + b * s_ob + heads[:, None] * s_oh + split * s_os + d[None, :], out, mask=gmask[:, None])
    tl.store(LSE + b * s_lb + heads * s_lh + split, lse, mask=gmask)


def paged_decode(q, k_cache, v_cache, block_table, kv_lens, max_kv_len: int, pages_per_split: int = 16,
                 window: int = 0):
    """q [batch, heads, head_dim] -> out [batch, heads, head_dim] (q's dtype). window > 0: each request
    attends its last `window` tokens only (sliding-window layers)."""
    import torch

    batch, heads, dim = q.shape
    page, kv_heads = k_cache.shape[1], k_cache.shape[2]
    group = heads // kv_heads
    span = min(max_kv_len, window + page) if window > 0 else max_kv_len  # a window may straddle one more page
    splits = max(1, triton.cdiv(triton.cdiv(span, page), pages_per_split))
    part = torch.empty(batch, heads, splits, dim, device=q.device, dtype=torch.float32)
    lse = torch.empty(batch, heads, splits, device=q.device, dtype=torch.float32)
    _decode_split[(batch, kv_heads, splits)](
        q, k_cache, v_cache, block_table, kv_lens, part, lse, dim ** -0.5, window,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), block_table.stride(0),
        part.stride(0), part.stride(1), part.stride(2), lse.stride(0), lse.stride(1),
        GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)), D=dim, PAGE=page,
        PAGES_PER_SPLIT=pages_per_split)
    weights = torch.softmax(lse, dim=-1).nan_to_num_(0.0)  # empty splits have lse=-inf: weight 0
    return (part * weights.unsqueeze(-1)).sum(dim=2).to(q.dtype)
