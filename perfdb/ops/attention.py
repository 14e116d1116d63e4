"""Attention with grouped KV heads (MHA/GQA/MQA): prefill over new tokens with an optional cached
prefix, and decode over per-request KV lengths. `window` = 0 means full causal attention."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import OUT_BYTES, OpCase, act_bytes, register
from perfdb.types import Dtype, OpKind


def _window_prefix_sum(n: np.ndarray, window: int) -> np.ndarray:
    """sum_{j=1..n} min(window, j): keys seen by the first n causal query positions."""
    full = n * (n + 1) / 2
    if window <= 0:
        return full
    w = float(window)
    return np.where(n <= w, full, w * (w + 1) / 2 + (n - w) * w)


def causal_pairs(seq_len: np.ndarray, prefix_len: np.ndarray, window: int) -> np.ndarray:
    """(query, key) pairs scored by causal attention for seq_len new tokens after prefix_len cached ones."""
    return _window_prefix_sum(prefix_len + seq_len, window) - _window_prefix_sum(prefix_len, window)


@register
@dataclass(frozen=True)
class AttentionPrefillCase(OpCase):
    KIND: ClassVar = OpKind.ATTENTION_PREFILL
    NUMERIC: ClassVar = ("batch", "seq_len", "prefix_len")
    dtype: Dtype          # math precision of QK^T / PV
    kv_dtype: Dtype       # KV-cache storage
    num_heads: int        # query heads on this GPU
    num_kv_heads: int     # KV heads on this GPU
    head_dim: int
    window: int           # sliding window in tokens; 0 = full
    batch: np.ndarray
    seq_len: np.ndarray
    prefix_len: np.ndarray

    def flops(self) -> np.ndarray:
        return 4.0 * self.batch * self.num_heads * self.head_dim * causal_pairs(self.seq_len, self.prefix_len, self.window)

    def bytes(self) -> np.ndarray:
        kv_tokens = self.seq_len + self.prefix_len
        if self.window > 0:
            kv_tokens = np.minimum(kv_tokens, self.seq_len + self.window)
        qo = self.seq_len * self.num_heads * self.head_dim * (act_bytes(self.dtype) + OUT_BYTES)
        kv = kv_tokens * self.num_kv_heads * self.head_dim * 2 * act_bytes(self.kv_dtype)
        return self.batch * (qo + kv)


@register
@dataclass(frozen=True)
class AttentionDecodeCase(OpCase):
    KIND: ClassVar = OpKind.ATTENTION_DECODE
    NUMERIC: ClassVar = ("batch", "kv_len")
    dtype: Dtype
    kv_dtype: Dtype
    num_heads: int
    num_kv_heads: int
    head_dim: int
    window: int
    batch: np.ndarray
    kv_len: np.ndarray    # tokens in each request's KV cache (mean over the batch)

    def _attended(self) -> np.ndarray:
        return np.minimum(self.kv_len, self.window) if self.window > 0 else self.kv_len

    def flops(self) -> np.ndarray:
        return 4.0 * self.batch * self.num_heads * self.head_dim * self._attended()

    def bytes(self) -> np.ndarray:
        kv = self._attended() * self.num_kv_heads * self.head_dim * 2 * act_bytes(self.kv_dtype)
        qo = self.num_heads * self.head_dim * (act_bytes(self.dtype) + OUT_BYTES)
        return self.batch * (kv + qo)
