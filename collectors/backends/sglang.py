"""SGLang adapter: sgl-kernel's RMSNorm and SiLU-and-mul, bf16 linear layers through F.linear as SGLang
runs them. Untested here (SGLang is not installable on this CPU host); tests are marked `engines`."""
from __future__ import annotations

from collectors.backends import Adapter
from collectors.backends.engines import bf16_linear, require
from collectors.ops.common import randn, torch_dtype
from collectors.registry import DeviceCtx, Prepared, Unsupported
from perfdb.ops import ElementwiseCase
from perfdb.types import Backend, ElementwiseOp, OpKind


def _elementwise(case: ElementwiseCase, ctx: DeviceCtx) -> Prepared:
    import sgl_kernel

    t, h, dt = int(case.num_tokens), case.hidden, torch_dtype(case.dtype)
    if case.op == ElementwiseOp.RMSNORM:
        x, w = randn((t, h), dt, ctx), randn((h,), dt, ctx)
        return Prepared(lambda: sgl_kernel.rmsnorm(x, w, 1e-6), "sgl_kernel_rmsnorm")
    if case.op == ElementwiseOp.SILU_MUL:
        x = randn((t, 2 * h), dt, ctx)
        return Prepared(lambda: sgl_kernel.silu_and_mul(x), "sgl_kernel_silu_and_mul")
    raise Unsupported(f"the sglang adapter times rmsnorm and silu_mul; {case.op.value} runs inside SGLang's fused layers")


def adapter() -> Adapter:
    _, version = require("sglang", "sglang", Backend.SGLANG)
    return Adapter(Backend.SGLANG, version, {OpKind.GEMM: bf16_linear("sglang"), OpKind.ELEMENTWISE: _elementwise})
