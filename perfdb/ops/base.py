"""Op cases: one frozen dataclass per op family, with the one flops()/bytes() pair for that family.

A case holds *categorical* fields (scalars: dtype, head counts, ...) and *numeric* fields (shape axes:
numpy arrays, broadcast to one common shape), so one case answers many shapes in one call. The same
flops()/bytes() feed the collectors (achieved TFLOP/s, GB/s), `sol_ms` in every perfdb row, and the
roofline rung of the lookup ladder.
"""
from __future__ import annotations

import dataclasses
from enum import Enum
from typing import ClassVar

import numpy as np

from perfdb.registry import add
from perfdb.types import Dtype, OpKind

# (weight bytes/element, activation bytes/element) for each numeric format. Block scales are folded
# into the weight figure: fp8_block 1 fp32 scale per 128x128, nvfp4 1 fp8 per 16, mxfp4 1 e8m0 per 32.
# mxfp4 and int4 keep 16-bit activations (w4a16, as gpt-oss runs on Hopper); w4a8_mxfp4 quantises them to mxfp8.
DTYPE_BYTES: dict[Dtype, tuple[float, float]] = {
    Dtype.FP32: (4.0, 4.0),
    Dtype.BF16: (2.0, 2.0),
    Dtype.FP16: (2.0, 2.0),
    Dtype.FP8: (1.0, 1.0),
    Dtype.FP8_BLOCK: (1.0 + 4.0 / 16384, 1.0 + 4.0 / 128),
    Dtype.NVFP4: (0.5 + 1.0 / 16, 0.5 + 1.0 / 16),
    Dtype.MXFP4: (0.5 + 1.0 / 32, 2.0),
    Dtype.INT8: (1.0, 1.0),
    Dtype.INT4: (0.5 + 2.0 / 32, 2.0),          # bf16 scale per group of 32 (compressed-tensors pack-quantized)
    Dtype.W4A8_MXFP4: (0.5 + 1.0 / 32, 1.0 + 1.0 / 32),   # e8m0 scales per 32 on both sides
}
OUT_BYTES = 2.0  # outputs of GEMM/attention/MoE are bf16


def weight_bytes(dtype: Dtype) -> float:
    return DTYPE_BYTES[dtype][0]


def act_bytes(dtype: Dtype) -> float:
    return DTYPE_BYTES[dtype][1]


# A case field that prices the roofline rung only: no table column, not part of a lookup key
KEYLESS = {"key": False}


def table_fields(cls) -> tuple[dataclasses.Field, ...]:
    """The fields a family's tables store (every dataclass field but the KEYLESS ones)."""
    return tuple(f for f in dataclasses.fields(cls) if f.metadata.get("key", True))


def kv_row_field() -> dataclasses.Field:
    """`kv_row_bytes`: one cached token's entry as the engine stores it (estimator.kv_layout.kv_row),
    which a decode kernel reads; 0 = elements x bytes per element, the layout the tables' rows are
    priced at (perfdb.lookup reads a table at that layout, so a table answers with its kernel's time)."""
    return dataclasses.field(default=0.0, metadata=KEYLESS)


class OpCase:
    """Base of every case dataclass. Subclasses set KIND and declare NUMERIC (the array axes)."""

    KIND: ClassVar[OpKind]
    NUMERIC: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        arrays = [np.asarray(getattr(self, n), dtype=np.float64) for n in self.NUMERIC]
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):  # equal shapes: broadcast_arrays would return them as they are
            arrays = np.broadcast_arrays(*arrays)
        for name, arr in zip(self.NUMERIC, arrays, strict=True):
            object.__setattr__(self, name, arr)

    @classmethod
    def categorical_fields(cls) -> tuple[str, ...]:
        # cached per class (the estimator asks thousands of times per plan); the class's own __dict__,
        # so a subclass never sees its parent's tuple
        cached = cls.__dict__.get("_categorical_fields")
        if cached is None:
            cached = tuple(f.name for f in table_fields(cls) if f.name not in cls.NUMERIC)
            cls._categorical_fields = cached
        return cached

    @property
    def shape(self) -> tuple[int, ...]:
        return getattr(self, self.NUMERIC[0]).shape

    def categoricals(self) -> dict[str, object]:
        """Categorical values as stored in Parquet (enums as their string value)."""
        out = {}
        for name in self.categorical_fields():
            value = getattr(self, name)
            out[name] = value.value if isinstance(value, Enum) else value
        return out

    def flops(self) -> np.ndarray:
        raise NotImplementedError

    def bytes(self) -> np.ndarray:
        raise NotImplementedError


class ModuleCase(OpCase):
    """An op that times several kernels together (the reference tool's module-level tables): its
    flops and bytes are its parts' sums, and perfdb.roofline prices each part's compute at that part's
    own dtype peak."""

    def parts(self) -> tuple[OpCase, ...]:
        raise NotImplementedError

    def flops(self) -> np.ndarray:
        return sum(np.broadcast_to(p.flops(), self.shape) for p in self.parts())

    def bytes(self) -> np.ndarray:
        return sum(np.broadcast_to(p.bytes(), self.shape) for p in self.parts())


OP_CASES: dict[OpKind, type[OpCase]] = {}


def register(cls: type[OpCase]) -> type[OpCase]:
    """Class decorator: one case type per op family; a second registration is a bug."""
    return add(OP_CASES, cls.KIND, cls, "op family")
