"""Linear attention and state-space mixers (Gated DeltaNet, Kimi Delta Attention, Mamba-2).

Each head keeps a (head_k_dim x head_v_dim) recurrent state per request instead of a per-token KV
cache: Gated DeltaNet and KDA a key x value matrix, Mamba-2 an ssm_state_size x head_dim matrix (its
"k" heads are the B/C groups). Prefill runs the chunked form (fla `chunk_gated_delta_rule`, Mamba-2
SSD): causal mixing inside chunks of `chunk` tokens plus a state pass between chunks, so its cost is
linear in the new tokens and independent of how many tokens came before (the state carries them).
Decode is one state update per request: read and write the state once, whatever the context length.

Flop counts (per token, per value head; dk = head_k_dim, dv = head_v_dim, C = chunk):
  chunked prefill  inter-chunk: the query reads the state, the WY keys read it, the state is updated:
                   3 (dk x dv) products = 6 dk dv; intra-chunk: the C x C causal scores and mixes over
                   keys and values, C/2 keys a token on average, 4 products: 2 C (dk + dv)
  decode           state decay + k^T S + rank-1 update + q S: DECODE_FLOPS_PER_STATE_ELEM per element
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import OUT_BYTES, OpCase, act_bytes, register
from perfdb.types import Dtype, LinearKind, OpKind

# flops per state element of one decode step: GDN / KDA (decay, k^T S, rank-1 delta update, q S: 4
# multiply-adds) and Mamba-2 (decay, x B^T update, C S: 3), as the fla / mamba_ssm recurrent kernels do
DECODE_FLOPS_PER_STATE_ELEM = {LinearKind.GDN: 8.0, LinearKind.KDA: 8.0, LinearKind.MAMBA2: 6.0}
CONV_STATE_BYTES = 2.0   # the short causal conv1d keeps its last (kernel - 1) inputs in the model dtype


@dataclass(frozen=True)
class _LinearShape:
    """The head geometry both phases share (per GPU: heads already divided by tensor parallelism)."""

    def state_elems(self) -> int:
        return self.num_v_heads * self.head_k_dim * self.head_v_dim

    def conv_dim(self) -> int:
        return 2 * self.num_k_heads * self.head_k_dim + self.num_v_heads * self.head_v_dim

    def state_bytes_per_request(self) -> float:
        """Recurrent + conv state of one request in one layer (what the engine's state pool stores)."""
        return self.state_elems() * act_bytes(self.state_dtype) + \
            self.conv_dim() * (self.conv_kernel - 1) * CONV_STATE_BYTES

    def _io_bytes_per_token(self) -> float:
        """q, k, v (post-conv) read, output written; gates are a few values a head."""
        return self.conv_dim() * act_bytes(self.dtype) + self.num_v_heads * self.head_v_dim * OUT_BYTES


@register
@dataclass(frozen=True)
class LinearPrefillCase(_LinearShape, OpCase):
    KIND: ClassVar = OpKind.LINEAR_PREFILL
    NUMERIC: ClassVar = ("batch", "seq_len")
    kind: LinearKind
    dtype: Dtype           # math precision of the chunk products
    state_dtype: Dtype     # recurrent-state storage (fp32 in Qwen3.5 / Nemotron-3 configs)
    num_k_heads: int       # query/key heads (Mamba-2: B/C groups) on this GPU
    num_v_heads: int       # value heads = state heads on this GPU
    head_k_dim: int        # Mamba-2: ssm_state_size
    head_v_dim: int        # Mamba-2: mamba_head_dim
    conv_kernel: int
    chunk: int             # tokens per chunk of the chunked scan (64 fla, 128 Mamba-2 SSD)
    batch: np.ndarray
    seq_len: np.ndarray    # new tokens per request

    def flops(self) -> np.ndarray:
        dk, dv = self.head_k_dim, self.head_v_dim
        per_token = 6.0 * dk * dv + 2.0 * self.chunk * (dk + dv)
        return self.batch * self.seq_len * self.num_v_heads * per_token

    def bytes(self) -> np.ndarray:
        state = 2.0 * self.state_elems() * act_bytes(self.state_dtype)   # initial state read, final written
        return self.batch * (self.seq_len * self._io_bytes_per_token() + state)


@register
@dataclass(frozen=True)
class LinearDecodeCase(_LinearShape, OpCase):
    KIND: ClassVar = OpKind.LINEAR_DECODE
    NUMERIC: ClassVar = ("batch",)
    kind: LinearKind
    dtype: Dtype
    state_dtype: Dtype
    num_k_heads: int
    num_v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int
    batch: np.ndarray      # decoding requests (one token each; speculative tokens count as requests)

    def flops(self) -> np.ndarray:
        return self.batch * self.state_elems() * DECODE_FLOPS_PER_STATE_ELEM[self.kind]

    def bytes(self) -> np.ndarray:
        # the state and the conv window are read and written once per step; nothing grows with context
        return self.batch * (2.0 * self.state_bytes_per_request() + self._io_bytes_per_token())
