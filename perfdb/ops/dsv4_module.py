"""A DeepSeek-V4 compressing layer's whole attention block as one op, as the reference tool's
dsv4_{csa,hca}_{context,generation}_module tables time it (one layer's `self_attn`): the fused q / kv
down projection (wq_a + wkv, replicated), the q up projection (wq_b, heads split by TP), the layer's KV
compressor (wkv + wgate; CSA's overlapping one is twice as wide and has an indexer compressor beside
it), for CSA the indexer's projections and the indexer + top-k attention over one entry per `compress`
tokens, for HCA the dense attention over one entry per `compress` tokens, the 128-token window, and the
grouped output projection (wo_a: each local group maps its heads to o_lora_rank; wo_b back to hidden).

Its roofline is the sum of the pieces servecast prices such a layer with when no module table exists
(estimator.layers_hybrid: v4_projection_ops, sparse_ops, compressed_ops, and the window's prefill op of
estimator.layers): the same GemmCase / Sparse*Case / Attention*Case flops and bytes, each part's compute
at its own dtype's peak. The TP all-reduce after wo_b is not part of the module.

Fields (per GPU): dtype is the projections' format (the tables' gemm_type), kv_dtype the cache's (fp8 in
every 0.12.0 row); num_heads and o_groups are this GPU's query heads and output groups; one KV head of
head_dim that is key and value; topk / index_heads / index_head_dim are the CSA indexer's (0 for HCA).
Prefill axes: batch, seq_len new tokens after prefix_len cached ones; decode: batch query tokens at
kv_len cached tokens. Entry axes shrink by `compress` (and the batch grows by it) as in
estimator.layers_hybrid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.attention import AttentionDecodeCase, AttentionPrefillCase
from perfdb.ops.base import ModuleCase, register
from perfdb.ops.gemm import GemmCase
from perfdb.ops.sparse import SparseDecodeCase, SparsePrefillCase
from perfdb.types import Dtype, OpKind, SparseKind

# DeepSeek-V4 compressors overlap neighbouring windows at this ratio (CSA): wkv / wgate emit 2 x the
# entry width (DeepSeek's inference model.py, `Compressor`: overlap = compress_ratio == 4, coff = 1 + overlap)
CSA_RATIO = 4


def compressor_width(ratio: int, dim: int) -> int:
    """Output width of each of a compressor's two projections (wkv, wgate) for entries of `dim`."""
    return dim * (2 if ratio == CSA_RATIO else 1)


@dataclass(frozen=True)
class _Dsv4Shape:
    dtype: Dtype
    kv_dtype: Dtype
    compress: int          # tokens per cache entry: 4 CSA, 128 HCA
    num_heads: int
    o_groups: int
    hidden: int
    head_dim: int
    q_lora_rank: int
    o_lora_rank: int
    window: int
    topk: int
    index_heads: int
    index_head_dim: int

    @property
    def csa(self) -> bool:
        return self.compress == CSA_RATIO

    def _gemms(self, tokens) -> tuple[GemmCase, ...]:
        d, hd, h = self.dtype, self.head_dim, self.hidden
        width = 2 * compressor_width(self.compress, hd)
        if self.csa:
            width += 2 * compressor_width(self.compress, self.index_head_dim)
        out = (GemmCase(dtype=d, m=tokens, n=self.q_lora_rank + hd, k=h),                          # wq_a + wkv
               GemmCase(dtype=d, m=tokens, n=self.num_heads * hd, k=self.q_lora_rank),             # wq_b
               GemmCase(dtype=d, m=tokens, n=self.o_groups * self.o_lora_rank,                     # wo_a (grouped)
                        k=self.num_heads * hd // self.o_groups),
               GemmCase(dtype=d, m=tokens, n=h, k=self.o_groups * self.o_lora_rank),               # wo_b
               GemmCase(dtype=d, m=tokens, n=width, k=h))                                          # compressors
        if self.csa:   # indexer queries from the q_lora bottleneck, per-head weights from the hidden state
            out += (GemmCase(dtype=Dtype.BF16, m=tokens, n=self.index_heads * self.index_head_dim, k=self.q_lora_rank),
                    GemmCase(dtype=Dtype.BF16, m=tokens, n=self.index_heads, k=h))
        return out

    def _dense(self, window: int) -> dict:
        return dict(dtype=Dtype.BF16, kv_dtype=self.kv_dtype, num_heads=self.num_heads, num_kv_heads=1,
                    head_dim=self.head_dim, window=window)

    def _sparse(self, topk: int) -> dict:
        return dict(kind=SparseKind.DSA, dtype=Dtype.BF16, kv_dtype=self.kv_dtype, num_heads=self.num_heads,
                    qk_dim=self.head_dim, v_dim=self.head_dim, kv_elems=self.head_dim, topk=topk,
                    index_heads=self.index_heads, index_head_dim=self.index_head_dim)


@register
@dataclass(frozen=True)
class Dsv4ModulePrefillCase(_Dsv4Shape, ModuleCase):
    KIND: ClassVar = OpKind.DSV4_MODULE_PREFILL
    NUMERIC: ClassVar = ("batch", "seq_len", "prefix_len")
    batch: np.ndarray
    seq_len: np.ndarray
    prefix_len: np.ndarray

    def parts(self) -> tuple:
        c, b, s, p = float(self.compress), self.batch, self.seq_len, self.prefix_len
        entries = dict(batch=b * c, seq_len=s / c, prefix_len=p / c)
        attn = (SparsePrefillCase(**entries, **self._sparse(self.topk)) if self.csa
                else AttentionPrefillCase(**entries, **self._dense(0)))
        window = AttentionPrefillCase(batch=b, seq_len=s, prefix_len=p, **self._dense(self.window))
        return (*self._gemms(b * s), attn, window)


@register
@dataclass(frozen=True)
class Dsv4ModuleDecodeCase(_Dsv4Shape, ModuleCase):
    """Decode: one sparse_attn / attention kernel reads the window's entries and the compressed ones."""
    KIND: ClassVar = OpKind.DSV4_MODULE_DECODE
    NUMERIC: ClassVar = ("batch", "kv_len")
    batch: np.ndarray
    kv_len: np.ndarray

    def parts(self) -> tuple:
        c, kv, w = float(self.compress), self.kv_len, self.window
        if self.csa:
            attn = SparseDecodeCase(batch=self.batch, kv_len=kv / c + np.minimum(kv, w), **self._sparse(self.topk + w))
        else:
            attn = AttentionDecodeCase(batch=self.batch, kv_len=np.maximum(kv / c, 1.0) + np.minimum(kv, w),
                                       **self._dense(0))
        return (*self._gemms(self.batch), attn)
