"""Elementwise collector: RMSNorm, SiLU-and-mul, RoPE, embedding gather, residual add, mHC stream mixing
(torch eager ops; engines fuse these, so their adapters supply their own kernels where they have them)."""
from __future__ import annotations

from collectors.cases import product
from collectors.ops.common import device, randn, source, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, register
from perfdb.ops import ElementwiseCase
from perfdb.types import Dtype, ElementwiseOp, OpKind

_VOCAB = 32768  # rows of the embedding table gathered from (large enough to miss in L2)
HC_MULT = 4     # DeepSeek-V4 `hc_mult`: residual streams per token (an mHC case's hidden is HC_MULT x model width)


def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[ElementwiseCase]:
    if size == GridSize.TINY:
        tokens, widths = [1, 16, 256], {op: [256] for op in ElementwiseOp}
    else:
        tokens = [1, 4, 16, 64, 256, 1024, 4096, 16384] + ([65536] if size == GridSize.FULL else [])
        widths = {ElementwiseOp.RMSNORM: [4096, 7168, 8192], ElementwiseOp.ADD: [4096, 7168, 8192],
                  ElementwiseOp.EMBEDDING: [4096, 7168, 8192], ElementwiseOp.SILU_MUL: [3584, 14336, 18432],
                  ElementwiseOp.ROPE: [1536, 5120, 9216], ElementwiseOp.MHC: [HC_MULT * 4096, HC_MULT * 7168]}
    dtype = Dtype.FP32 if size == GridSize.TINY else Dtype.BF16  # CPU hosts: native fp32
    out = []
    for op, hidden in widths.items():
        for h in hidden:
            out += product(ElementwiseCase, {"op": op, "dtype": dtype, "hidden": h}, {"num_tokens": tokens})
    return out


def _rmsnorm(x, w, eps=1e-6):
    import torch

    var = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(var + eps)).to(x.dtype) * w


def _rope(x, cos, sin):
    """Neox-style rotation of the whole width (q and k heads concatenated), half-split layout."""
    import torch

    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def mhc_mix(streams, pre, post, res, layer_out):
    """One mHC sub-layer's stream traffic: the pre-mix (streams [t, c, h] weighted by pre [t, c] into the
    layer input [t, h]) and the post-mix (res [t, c, c] mixes the streams, post [t, c] adds the layer's
    output back): what perfdb.ops.elementwise counts for ElementwiseOp.MHC."""
    import torch

    layer_in = torch.einsum("tc,tch->th", pre, streams)
    mixed = torch.einsum("tcd,tdh->tch", res, streams) + post[..., None] * layer_out[:, None, :]
    return layer_in, mixed


def build(case: ElementwiseCase, ctx: DeviceCtx) -> Prepared:
    import torch

    t, h, dt = int(case.num_tokens), case.hidden, torch_dtype(case.dtype)
    op = case.op
    if op == ElementwiseOp.RMSNORM:
        x, w = randn((t, h), dt, ctx), randn((h,), dt, ctx)
        fn = lambda: _rmsnorm(x, w)  # noqa: E731
    elif op == ElementwiseOp.SILU_MUL:
        x = randn((t, 2 * h), dt, ctx)
        fn = lambda: torch.nn.functional.silu(x[:, :h]) * x[:, h:]  # noqa: E731
    elif op == ElementwiseOp.ROPE:
        x = randn((t, h), dt, ctx)
        cos, sin = randn((t, h // 2), dt, ctx), randn((t, h // 2), dt, ctx)
        fn = lambda: _rope(x, cos, sin)  # noqa: E731
    elif op == ElementwiseOp.MHC:
        c = HC_MULT
        streams, out = randn((t, c, h // c), dt, ctx), randn((t, h // c), dt, ctx)
        pre, post, res = randn((t, c), dt, ctx), randn((t, c), dt, ctx), randn((t, c, c), dt, ctx)
        fn = lambda: mhc_mix(streams, pre, post, res, out)  # noqa: E731
    elif op == ElementwiseOp.EMBEDDING:
        table = randn((_VOCAB, h), dt, ctx)
        ids = torch.randint(0, _VOCAB, (t,), device=device(ctx))
        fn = lambda: torch.nn.functional.embedding(ids, table)  # noqa: E731
    else:
        a, b = randn((t, h), dt, ctx), randn((t, h), dt, ctx)
        fn = lambda: a + b  # noqa: E731
    return Prepared(fn, source(ctx, "torch_eager", "torch_cpu"))


register(OpCollector(OpKind.ELEMENTWISE, grid, build))
