"""Quantized weights as checkpoints store them, and their dequantization in torch.

Used where the torch backend has no fused kernel that reads a format directly (the MoE experts): the
weights are held in their real format and bytes (fp8 e4m3 with a per-tensor or 128x128-block scale;
e2m1 fp4 packed two per byte with one scale per 32 (mx, power-of-two scale) or 16 (nv, fp8 scale)
values; int8 with a per-row scale; int4 packed two per byte with a bf16 scale per 32), and `dequantize` turns them into bf16 inside the timed call. So a
row measures what a torch backend really pays: reading the quantized bytes, writing bf16 weights, then
the bf16 GEMM. Engine adapters time the engines' fused kernels instead.
"""
from __future__ import annotations

from dataclasses import dataclass

from collectors.ops.common import device, randn
from collectors.registry import DeviceCtx, Unsupported
from perfdb.types import Dtype

# e2m1 code -> value (sign bit 3, then 2 exponent and 1 mantissa bits), the OCP MX / NVFP4 element type
FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
# w4a8_mxfp4 stores mxfp4 weights (its mxfp8 activations are the engines' fused kernels' business)
_FP4_BLOCK = {Dtype.MXFP4: 32, Dtype.NVFP4: 16, Dtype.W4A8_MXFP4: 32}
INT4_GROUP = 32   # compressed-tensors pack-quantized int4 (Kimi-K2.x experts): one bf16 scale per 32 weights
QUANTIZED = (Dtype.FP8, Dtype.FP8_BLOCK, Dtype.MXFP4, Dtype.NVFP4, Dtype.INT8, Dtype.INT4, Dtype.W4A8_MXFP4)


@dataclass(frozen=True)
class QuantWeights:
    dtype: Dtype
    data: object     # torch tensor in the stored format, [..., rows, cols] (fp4: cols / 2 bytes)
    scale: object    # per tensor, per block or per row, as the format keeps it
    cols: int


def padded_cols(cols: int, dtype: Dtype) -> int:
    """Columns a format stores: padded up to its scale block (engines pad the same way)."""
    block = {Dtype.FP8_BLOCK: 128, Dtype.INT4: INT4_GROUP, **_FP4_BLOCK}.get(dtype, 1)
    return -(-cols // block) * block


def store(shape: tuple[int, ...], dtype: Dtype, ctx: DeviceCtx) -> QuantWeights:
    """Random weights of `shape` ([..., rows, cols]; cols = the reduction dimension) stored in `dtype`,
    cols padded to the format's scale block."""
    import torch

    *lead, rows, cols = shape
    cols = padded_cols(cols, dtype)
    shape = (*lead, rows, cols)
    dev = device(ctx)
    if dtype in (Dtype.FP8, Dtype.FP8_BLOCK):
        data = randn(shape, torch.float32, ctx, scale=0.5).to(torch.float8_e4m3fn)
        if dtype == Dtype.FP8:
            return QuantWeights(dtype, data, torch.tensor(0.02, device=dev), cols)
        blocks = -(-rows // 128)
        return QuantWeights(dtype, data, torch.rand(*lead, blocks, cols // 128, device=dev) * 0.02, cols)
    if dtype in _FP4_BLOCK:
        block = _FP4_BLOCK[dtype]
        data = torch.randint(0, 256, (*lead, rows, cols // 2), dtype=torch.uint8, device=dev)
        exponent = torch.randint(-8, -4, (*lead, rows, cols // block), device=dev).float()
        scale = torch.exp2(exponent) if block == 32 else torch.exp2(exponent).to(torch.float8_e4m3fn)
        return QuantWeights(dtype, data, scale, cols)
    if dtype == Dtype.INT4:
        data = torch.randint(0, 256, (*lead, rows, cols // 2), dtype=torch.uint8, device=dev)
        scale = (torch.rand(*lead, rows, cols // INT4_GROUP, device=dev) * 0.01).to(torch.bfloat16)
        return QuantWeights(dtype, data, scale, cols)
    if dtype == Dtype.INT8:
        data = torch.randint(-127, 128, shape, dtype=torch.int8, device=dev)
        return QuantWeights(dtype, data, torch.rand(*lead, rows, 1, device=dev) * 0.01, cols)
    raise Unsupported(f"no stored format for {dtype.value} weights; accepted: {', '.join(d.value for d in QUANTIZED)}")


def dequantize(w: QuantWeights, out_dtype):
    """bf16 (out_dtype) weights of `w`: the work a torch backend does before its GEMM."""
    import torch

    if w.dtype == Dtype.FP8:
        return (w.data.to(torch.float32) * w.scale).to(out_dtype)
    if w.dtype == Dtype.FP8_BLOCK:
        rows = w.data.shape[-2]
        s = w.scale.repeat_interleave(128, dim=-2)[..., :rows, :].repeat_interleave(128, dim=-1)
        return (w.data.to(torch.float32) * s).to(out_dtype)
    if w.dtype == Dtype.INT4:   # symmetric: stored nibble n is the value n - 8
        low, high = (w.data & 0xF).to(torch.int8) - 8, (w.data >> 4).to(torch.int8) - 8
        values = torch.stack((low, high), dim=-1).flatten(-2).to(torch.float32)
        return (values * w.scale.to(torch.float32).repeat_interleave(INT4_GROUP, dim=-1)).to(out_dtype)
    if w.dtype in _FP4_BLOCK:
        table = torch.tensor(FP4_VALUES, dtype=torch.float32, device=w.data.device)
        low, high = (w.data & 0xF).long(), (w.data >> 4).long()
        values = torch.stack((table[low], table[high]), dim=-1).flatten(-2)   # [..., rows, cols]
        s = w.scale.to(torch.float32).repeat_interleave(_FP4_BLOCK[w.dtype], dim=-1)
        return (values * s).to(out_dtype)
    return (w.data.to(torch.float32) * w.scale).to(out_dtype)  # int8, per-row scale
