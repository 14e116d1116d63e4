"""vLLM adapter: vLLM's own custom ops where they exist (RMSNorm, SiLU-and-mul, fused MoE), bf16 linear
layers through F.linear as vLLM runs them. Untested here (vLLM is not installable on this CPU host):
the call signatures follow vLLM's `_custom_ops` and `fused_moe` as documented; tests are marked `engines`."""
from __future__ import annotations

from collectors.backends import Adapter
from collectors.backends.engines import bf16_linear, require
from collectors.ops.common import randn, torch_dtype
from collectors.registry import DeviceCtx, Prepared, Unsupported
from perfdb.ops import ElementwiseCase, MoeCase
from perfdb.types import Backend, ElementwiseOp, OpKind


def _elementwise(case: ElementwiseCase, ctx: DeviceCtx) -> Prepared:
    import torch
    from vllm import _custom_ops as ops

    t, h, dt = int(case.num_tokens), case.hidden, torch_dtype(case.dtype)
    if case.op == ElementwiseOp.RMSNORM:
        x, w = randn((t, h), dt, ctx), randn((h,), dt, ctx)
        out = torch.empty_like(x)
        return Prepared(lambda: ops.rms_norm(out, x, w, 1e-6), "vllm_rms_norm")
    if case.op == ElementwiseOp.SILU_MUL:
        x = randn((t, 2 * h), dt, ctx)
        out = torch.empty(t, h, dtype=dt, device=x.device)
        return Prepared(lambda: ops.silu_and_mul(out, x), "vllm_silu_and_mul")
    raise Unsupported(f"the vllm adapter times rmsnorm and silu_mul; {case.op.value} runs inside vLLM's fused layers")


def _moe(case: MoeCase, ctx: DeviceCtx) -> Prepared:
    import numpy as np
    import torch
    from vllm.model_executor.layers.fused_moe import fused_experts

    from collectors.ops.moe import local_counts

    dt = torch_dtype(case.dtype)
    counts = local_counts(case)
    local, inter, h = len(counts), case.inter // case.moe_tp, case.hidden
    tokens = max(1, int(np.ceil(counts.sum() / case.topk)))
    ids = torch.tensor(np.repeat(np.arange(local), counts)[: tokens * case.topk], dtype=torch.int32)
    ids = torch.nn.functional.pad(ids, (0, tokens * case.topk - ids.numel())).view(tokens, case.topk).cuda()
    x = randn((tokens, h), dt, ctx)
    w1, w2 = randn((local, 2 * inter, h), dt, ctx, 0.02), randn((local, h, inter), dt, ctx, 0.02)
    weights = torch.full((tokens, case.topk), 1.0 / case.topk, device="cuda")
    return Prepared(lambda: fused_experts(x, w1, w2, weights, ids), "vllm_fused_moe_triton")


def adapter() -> Adapter:
    _, version = require("vllm", "vllm", Backend.VLLM)
    return Adapter(Backend.VLLM, version, {OpKind.GEMM: bf16_linear("vllm"), OpKind.ELEMENTWISE: _elementwise,
                                           OpKind.MOE: _moe})
