"""Multi-head latent attention (DeepSeek-V2/V3/R1, Kimi-K2). Prefill runs the expanded form
(per-head K of qk_nope + qk_rope dims, V of v_head_dim); decode runs the weight-absorbed form over the
compressed latent cache (kv_lora_rank + qk_rope per token, shared by all heads)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.attention import causal_pairs
from perfdb.ops.base import OUT_BYTES, OpCase, act_bytes, kv_row_field, register
from perfdb.types import Dtype, OpKind


@register
@dataclass(frozen=True)
class MlaPrefillCase(OpCase):
    KIND: ClassVar = OpKind.MLA_PREFILL
    NUMERIC: ClassVar = ("batch", "seq_len", "prefix_len")
    dtype: Dtype
    kv_dtype: Dtype
    num_heads: int              # query heads on this GPU
    kv_lora_rank: int           # 512 for DeepSeek-V3
    qk_rope_head_dim: int       # 64
    qk_nope_head_dim: int       # 128
    v_head_dim: int             # 128
    batch: np.ndarray
    seq_len: np.ndarray
    prefix_len: np.ndarray

    def flops(self) -> np.ndarray:
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        pairs = causal_pairs(self.seq_len, self.prefix_len, 0)
        return 2.0 * self.batch * self.num_heads * pairs * (qk + self.v_head_dim)

    def bytes(self) -> np.ndarray:
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        kv_tokens = self.seq_len + self.prefix_len
        q = self.seq_len * self.num_heads * qk * act_bytes(self.dtype)
        kv = kv_tokens * self.num_heads * (qk + self.v_head_dim) * act_bytes(self.dtype)
        o = self.seq_len * self.num_heads * self.v_head_dim * OUT_BYTES
        return self.batch * (q + kv + o)


@register
@dataclass(frozen=True)
class MlaDecodeCase(OpCase):
    KIND: ClassVar = OpKind.MLA_DECODE
    NUMERIC: ClassVar = ("batch", "kv_len")
    dtype: Dtype
    kv_dtype: Dtype
    num_heads: int
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    batch: np.ndarray
    kv_len: np.ndarray
    kv_row_bytes: float = kv_row_field()

    def flops(self) -> np.ndarray:
        latent = self.kv_lora_rank + self.qk_rope_head_dim
        return 2.0 * self.batch * self.num_heads * self.kv_len * (latent + self.kv_lora_rank)

    def bytes(self) -> np.ndarray:
        latent = self.kv_lora_rank + self.qk_rope_head_dim
        cache = self.kv_len * (self.kv_row_bytes or latent * act_bytes(self.kv_dtype))
        qo = self.num_heads * (latent * act_bytes(self.dtype) + self.kv_lora_rank * OUT_BYTES)
        return self.batch * (cache + qo)
