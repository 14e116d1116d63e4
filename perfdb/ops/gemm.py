"""GEMM: out[m, n] = act[m, k] @ weight[k, n]; m is tokens, n the output features, k the input ones."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import OUT_BYTES, OpCase, act_bytes, register, weight_bytes
from perfdb.types import Dtype, OpKind


@register
@dataclass(frozen=True)
class GemmCase(OpCase):
    KIND: ClassVar = OpKind.GEMM
    NUMERIC: ClassVar = ("m", "n", "k")
    dtype: Dtype
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray

    def flops(self) -> np.ndarray:
        return 2.0 * self.m * self.n * self.k

    def bytes(self) -> np.ndarray:
        return (self.m * self.k * act_bytes(self.dtype) + self.k * self.n * weight_bytes(self.dtype)
                + self.m * self.n * OUT_BYTES)
