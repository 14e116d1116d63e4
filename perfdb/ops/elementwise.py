"""Memory-bound per-token ops. `hidden` is the width the op touches: the model hidden size for
rmsnorm/add/embedding, the MLP intermediate size for silu_mul, (q_heads + kv_heads) * head_dim for rope."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import OpCase, act_bytes, register
from perfdb.types import Dtype, ElementwiseOp, OpKind

# (tensors read + written per token of width `hidden`, flops per element)
_TRAFFIC = {
    ElementwiseOp.RMSNORM: (2.0, 4.0),
    ElementwiseOp.SILU_MUL: (3.0, 4.0),   # read gate and up, write one
    ElementwiseOp.ROPE: (2.0, 3.0),
    ElementwiseOp.EMBEDDING: (2.0, 0.0),  # gather one row, write it
    ElementwiseOp.ADD: (3.0, 1.0),
    # mHC (DeepSeek-V4) per sub-layer, `hidden` = hc_mult x model hidden (one "stream-set"): the pre-mix
    # reads the streams (1) and writes the layer input (1/hc_mult), the post-mix reads the streams (1) and
    # the layer output (1/hc_mult) and writes the streams (1): 3.5 stream-sets at hc_mult 4; ~2 x hc_mult
    # flops an element for the two hc_mult x hc_mult mixes (Sinkhorn acts on 4 x 4 matrices: negligible)
    ElementwiseOp.MHC: (3.5, 8.0),
}


@register
@dataclass(frozen=True)
class ElementwiseCase(OpCase):
    KIND: ClassVar = OpKind.ELEMENTWISE
    NUMERIC: ClassVar = ("num_tokens",)
    op: ElementwiseOp
    dtype: Dtype
    hidden: int
    num_tokens: np.ndarray

    def flops(self) -> np.ndarray:
        return _TRAFFIC[self.op][1] * self.num_tokens * self.hidden

    def bytes(self) -> np.ndarray:
        return _TRAFFIC[self.op][0] * self.num_tokens * self.hidden * act_bytes(self.dtype)
