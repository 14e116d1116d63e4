"""Collective and point-to-point communication. `msg_bytes` (the numeric axis) is the message size
per GPU as NCCL counts it (all_reduce: the buffer; all_gather: the gathered output; reduce_scatter:
the input). bytes() returns what crosses each GPU's link, so sol_ms = bytes() / link bandwidth."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import OpCase, register
from perfdb.types import CommOp, Dtype, OpKind, Transport

# Fraction of the message each GPU sends in a bandwidth-optimal ring/direct algorithm.
_LINK_FACTOR = {
    CommOp.ALL_REDUCE: lambda n: 2.0 * (n - 1) / n,
    CommOp.ALL_GATHER: lambda n: (n - 1) / n,
    CommOp.REDUCE_SCATTER: lambda n: (n - 1) / n,
    CommOp.ALL_TO_ALL: lambda n: (n - 1) / n,
    CommOp.P2P: lambda n: 1.0,
}


def link_factor(op: CommOp, num_gpus: int) -> float:
    """The fraction of the message each of `num_gpus` GPUs sends in the op's bandwidth-optimal algorithm."""
    return _LINK_FACTOR[op](num_gpus)


@register
@dataclass(frozen=True)
class CommCase(OpCase):
    KIND: ClassVar = OpKind.COMM
    NUMERIC: ClassVar = ("msg_bytes",)
    op: CommOp
    num_gpus: int
    transport: Transport
    dtype: Dtype
    msg_bytes: np.ndarray

    def flops(self) -> np.ndarray:
        return np.zeros_like(self.msg_bytes)

    def bytes(self) -> np.ndarray:
        if self.num_gpus <= 1 and self.op != CommOp.P2P:
            return np.zeros_like(self.msg_bytes)
        return link_factor(self.op, self.num_gpus) * self.msg_bytes
