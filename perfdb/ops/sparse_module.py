"""A sparse-attention layer's whole attention block as one op: DeepSeek Sparse Attention (DeepSeek-V3.2,
GLM-5.x) and MiniMax Sparse Attention (MiniMax-M3).

The reference tool times DSA at module level (aiconfigurator-core `dsa_context_module` /
`dsa_generation_module`): the fused q_a / kv_a down projection, the q up projection, the indexer's
projections, its fp8 MQA logits and top-k, the weight-absorbed sparse MLA over the selected tokens
(with the per-head BMMs into and out of the latent) and o_proj, in one timing. No single servecast op
matches that, so this family is that block, and its roofline is the sum of the pieces servecast
prices a DSA layer with when no module table exists (estimator.layers: mla_down_proj, mla_q_up_proj,
mla_absorb_bmm, indexer_q_proj / indexer_k_proj, the sparse attention of perfdb.ops.sparse, mla_out_bmm, o_proj): the
same GemmCase / Sparse*Case flops and bytes, each part's compute at its own dtype's peak
(perfdb.roofline sums the parts). The TP all-reduce after o_proj is not part of the module.

Fields (per GPU): dtype is the projections' GEMM format (the tables' gemm_type: bf16 or fp8_block);
the attention math is bf16 over a kv_dtype latent cache; num_heads are this GPU's query heads; the
indexer (index_heads x index_head_dim) is replicated on every rank. Prefill axes: batch, seq_len new
tokens after prefix_len cached ones; decode: batch requests (one query token each) at kv_len.

MSA (aiconfigurator-core `msa_*_module`): the same block for GQA attention, whose top-k blocks of
tokens are picked by a small indexer: the qkv projection, the indexer's projections, the indexer +
top-k GQA attention (perfdb.ops.sparse, cache entries of 2 x kv heads x head_dim) and o_proj, as
estimator.layers prices an MSA layer (qkv_proj, indexer_q_proj / indexer_k_proj, attn_*_sparse, o_proj).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import ModuleCase, register
from perfdb.ops.gemm import GemmCase
from perfdb.ops.sparse import SparseDecodeCase, SparsePrefillCase
from perfdb.types import Dtype, OpKind, SparseKind


@dataclass(frozen=True)
class _Indexed:
    def _indexer_gemms(self, tokens, q_in: int) -> tuple[GemmCase, GemmCase]:
        """Indexer q heads from `q_in` (DSA: the q_lora_rank bottleneck, as DeepSeek-V3.2's model.py
        builds its wq_b; MSA: the hidden state), its single MQA key and per-head weights from the hidden
        state (estimator.layers_hybrid: indexer_q_proj, indexer_k_proj)."""
        return (GemmCase(dtype=Dtype.BF16, m=tokens, n=self.index_heads * self.index_head_dim, k=q_in),
                GemmCase(dtype=Dtype.BF16, m=tokens, n=self.index_head_dim + self.index_heads, k=self.hidden))


@dataclass(frozen=True)
class _DsaModuleShape(_Indexed):
    dtype: Dtype            # projection GEMMs
    kv_dtype: Dtype
    num_heads: int
    hidden: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    topk: int
    index_heads: int
    index_head_dim: int

    def attention_fields(self) -> dict:
        """The Sparse*Case fields of the absorbed MQA over the kv_lora_rank + rope latent."""
        latent = self.kv_lora_rank + self.qk_rope_head_dim
        return dict(kind=SparseKind.DSA, dtype=Dtype.BF16, kv_dtype=self.kv_dtype, num_heads=self.num_heads,
                    qk_dim=latent, v_dim=self.kv_lora_rank, kv_elems=latent, topk=self.topk,
                    index_heads=self.index_heads, index_head_dim=self.index_head_dim)

    def _gemms(self, tokens) -> tuple[GemmCase, ...]:
        h, d = self.num_heads, self.dtype
        down = self.q_lora_rank + self.kv_lora_rank + self.qk_rope_head_dim
        q_in = self.q_lora_rank or self.hidden
        return (
            GemmCase(dtype=d, m=tokens, n=down, k=self.hidden),                                         # q_a + kv_a
            GemmCase(dtype=d, m=tokens, n=h * (self.qk_nope_head_dim + self.qk_rope_head_dim), k=q_in),  # q_b
            GemmCase(dtype=Dtype.BF16, m=tokens, n=h * self.kv_lora_rank, k=self.qk_nope_head_dim),       # absorb
            *self._indexer_gemms(tokens, q_in),
            GemmCase(dtype=Dtype.BF16, m=tokens, n=h * self.v_head_dim, k=self.kv_lora_rank),            # out bmm
            GemmCase(dtype=d, m=tokens, n=self.hidden, k=h * self.v_head_dim),                           # o_proj
        )


@dataclass(frozen=True)
class _MsaModuleShape(_Indexed):
    dtype: Dtype            # projection GEMMs
    kv_dtype: Dtype
    num_heads: int          # query heads on this GPU
    num_kv_heads: int       # KV heads on this GPU
    head_dim: int
    hidden: int
    topk: int               # tokens attended (top-k blocks x block size)
    index_heads: int
    index_head_dim: int

    def attention_fields(self) -> dict:
        """The Sparse*Case fields of the GQA attention over the selected tokens."""
        return dict(kind=SparseKind.MSA, dtype=Dtype.BF16, kv_dtype=self.kv_dtype, num_heads=self.num_heads,
                    qk_dim=self.head_dim, v_dim=self.head_dim, kv_elems=2 * self.num_kv_heads * self.head_dim,
                    topk=self.topk, index_heads=self.index_heads, index_head_dim=self.index_head_dim)

    def _gemms(self, tokens) -> tuple[GemmCase, ...]:
        qkv = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        return (GemmCase(dtype=self.dtype, m=tokens, n=qkv, k=self.hidden),
                *self._indexer_gemms(tokens, self.hidden),
                GemmCase(dtype=self.dtype, m=tokens, n=self.hidden, k=self.num_heads * self.head_dim))


@dataclass(frozen=True)
class _PrefillAxes:
    """Prefill axes (after the shape fields): batch requests of seq_len new tokens after prefix_len cached."""
    NUMERIC: ClassVar = ("batch", "seq_len", "prefix_len")
    batch: np.ndarray
    seq_len: np.ndarray
    prefix_len: np.ndarray

    def parts(self) -> tuple:
        attn = SparsePrefillCase(batch=self.batch, seq_len=self.seq_len, prefix_len=self.prefix_len,
                                 **self.attention_fields())
        return (*self._gemms(self.batch * self.seq_len), attn)


@dataclass(frozen=True)
class _DecodeAxes:
    """Decode axes: batch query tokens (decoding requests; speculative tokens count as requests) at kv_len."""
    NUMERIC: ClassVar = ("batch", "kv_len")
    batch: np.ndarray
    kv_len: np.ndarray

    def parts(self) -> tuple:
        attn = SparseDecodeCase(batch=self.batch, kv_len=self.kv_len, **self.attention_fields())
        return (*self._gemms(self.batch), attn)


@register
@dataclass(frozen=True)
class DsaModulePrefillCase(_PrefillAxes, _DsaModuleShape, ModuleCase):
    KIND: ClassVar = OpKind.DSA_MODULE_PREFILL


@register
@dataclass(frozen=True)
class DsaModuleDecodeCase(_DecodeAxes, _DsaModuleShape, ModuleCase):
    KIND: ClassVar = OpKind.DSA_MODULE_DECODE


@register
@dataclass(frozen=True)
class MsaModulePrefillCase(_PrefillAxes, _MsaModuleShape, ModuleCase):
    KIND: ClassVar = OpKind.MSA_MODULE_PREFILL


@register
@dataclass(frozen=True)
class MsaModuleDecodeCase(_DecodeAxes, _MsaModuleShape, ModuleCase):
    KIND: ClassVar = OpKind.MSA_MODULE_DECODE
