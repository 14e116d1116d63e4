"""Sparse attention: a light indexer scores every cached token, the attention reads only the top-k.

DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5.x): an fp8 multi-query "lightning indexer" of
`index_heads` heads x `index_head_dim` scores each query against every cached token's index key; the
MLA attention (weight-absorbed, over the kv_lora_rank + rope latent, in prefill too: FlashMLA's sparse
kernels) then reads the `topk` best tokens. MiniMax-M3's block-sparse attention (MSA) scores tokens
with a few index heads, keeps the `topk` best blocks, and runs GQA over them.

One op covers indexer + top-k attention (the reference tool's `dsa` / `msa` kernel tables time the
module this way). The attention term stops growing at `topk` tokens; only the indexer term keeps
growing with the context, at index_heads x index_head_dim per token (DSA: 64 x 128 fp8, against 128
heads x 576 for the dense attention it replaces).

Fields (per GPU): num_heads query heads, qk_dim / v_dim the per-head score and value widths of the
attention math (DSA: 576 / 512), kv_elems the cache elements read per selected token (DSA: 576 latent
elements shared by the heads; MSA: 2 x kv_heads x head_dim).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.attention import causal_pairs
from perfdb.ops.base import OUT_BYTES, OpCase, act_bytes, kv_row_field, register
from perfdb.types import Dtype, OpKind, SparseKind

# bytes per cached token of the indexer's key: DSA stores fp8 keys with one fp32 scale per 128 (vLLM
# `DeepseekV32IndexerCache`, 128 + 4 bytes a token); MSA keeps bf16 index keys (MiniMax-M3 modelling code)
INDEX_KEY_BYTES_PER_ELEM = {SparseKind.DSA: 1.0 + 4.0 / 128, SparseKind.MSA: 2.0}


def index_cache_bytes_per_token(kind: SparseKind, index_head_dim: int) -> float:
    """Indexer cache bytes per token per layer (one MQA key per token)."""
    return index_head_dim * INDEX_KEY_BYTES_PER_ELEM[kind]


@dataclass(frozen=True)
class _SparseShape:
    def _pair_flops(self) -> float:
        return 2.0 * self.num_heads * (self.qk_dim + self.v_dim)

    def _index_flops(self) -> float:
        return 2.0 * self.index_heads * self.index_head_dim

    def _index_bytes(self) -> float:
        return index_cache_bytes_per_token(self.kind, self.index_head_dim)

    def _qo_bytes(self) -> float:
        return self.num_heads * (self.qk_dim * act_bytes(self.dtype) + self.v_dim * OUT_BYTES)


@register
@dataclass(frozen=True)
class SparsePrefillCase(_SparseShape, OpCase):
    KIND: ClassVar = OpKind.SPARSE_PREFILL
    NUMERIC: ClassVar = ("batch", "seq_len", "prefix_len")
    kind: SparseKind
    dtype: Dtype
    kv_dtype: Dtype
    num_heads: int
    qk_dim: int
    v_dim: int
    kv_elems: int
    topk: int               # tokens each query attends (MSA: topk blocks x block size)
    index_heads: int
    index_head_dim: int
    batch: np.ndarray
    seq_len: np.ndarray
    prefix_len: np.ndarray

    def flops(self) -> np.ndarray:
        attended = causal_pairs(self.seq_len, self.prefix_len, self.topk)   # min(position, topk) keys a query
        scored = causal_pairs(self.seq_len, self.prefix_len, 0)           # the indexer scores every earlier key
        return self.batch * (self._pair_flops() * attended + self._index_flops() * scored)

    def bytes(self) -> np.ndarray:
        kv_tokens = self.seq_len + self.prefix_len
        cache = kv_tokens * (self.kv_elems * act_bytes(self.kv_dtype) + self._index_bytes())
        return self.batch * (self.seq_len * self._qo_bytes() + cache)


@register
@dataclass(frozen=True)
class SparseDecodeCase(_SparseShape, OpCase):
    KIND: ClassVar = OpKind.SPARSE_DECODE
    NUMERIC: ClassVar = ("batch", "kv_len")
    kind: SparseKind
    dtype: Dtype
    kv_dtype: Dtype
    num_heads: int
    qk_dim: int
    v_dim: int
    kv_elems: int
    topk: int
    index_heads: int
    index_head_dim: int
    batch: np.ndarray
    kv_len: np.ndarray
    kv_row_bytes: float = kv_row_field()

    def _attended(self) -> np.ndarray:
        return np.minimum(self.kv_len, self.topk)

    def flops(self) -> np.ndarray:
        return self.batch * (self._pair_flops() * self._attended() + self._index_flops() * self.kv_len)

    def bytes(self) -> np.ndarray:
        selected = self._attended() * (self.kv_row_bytes or self.kv_elems * act_bytes(self.kv_dtype))
        return self.batch * (selected + self.kv_len * self._index_bytes() + self._qo_bytes())
