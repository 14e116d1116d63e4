"""MoE collector: the expert FFNs of one GPU in an expert-parallel x MoE-tensor-parallel group.

Routing is drawn on the host at build time: each of `num_tokens` tokens picks `topk` distinct experts,
uniformly ("balanced") or with popularity ~ rank^-alpha ("power_law_<alpha>", as measured on real
traffic). The GPU timed is the EP rank holding the most-loaded experts, because a step waits for its
slowest rank. Its local experts run as one grouped GEMM (torch._grouped_mm) for gate+up, SiLU-and-mul,
and one for down; where _grouped_mm is unavailable, a loop of per-expert GEMMs. Token permutation and
the EP all-to-all are not included (the all-to-all is a communication case). Quantized experts (fp8,
fp8_block, mxfp4, nvfp4, int8) are stored in their format and dequantized in the timed call.
"""
from __future__ import annotations

import numpy as np

from collectors.cases import pow2, product
from collectors.ops.common import device, randn, source, torch_dtype
from collectors.ops.quant import QUANTIZED, dequantize, store
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, Unsupported, register
from perfdb.ops import MoeCase
from perfdb.ops.moe import DEFAULT_DISTRIBUTION
from perfdb.types import Dtype, OpKind

# (hidden, per-expert inter, topk, experts): DeepSeek-V3, Qwen3-235B-A22B, Qwen3-30B-A3B, gpt-oss-120b, Mixtral-8x7B
_MODELS = [(7168, 2048, 8, 256), (4096, 1536, 8, 128), (2048, 768, 8, 128), (2880, 2880, 4, 128), (4096, 14336, 2, 8)]
# The estimator's routing first (what predictions look up), then the uniform bound.
DISTRIBUTIONS = (DEFAULT_DISTRIBUTION, "balanced")


def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[MoeCase]:
    if size == GridSize.TINY:
        models, splits, tokens = [(64, 64, 2, 8)], [(1, 1), (1, 2)], [1, 16, 64]
    elif size == GridSize.SMALL:
        models, splits, tokens = _MODELS[:2], [(1, 8)], [1, 64, 1024, 8192]
    else:
        models, splits, tokens = _MODELS, [(1, 1), (1, 8), (8, 1), (2, 4), (1, 4)], pow2(1, 16384)
    out = []
    for hidden, inter, topk, experts in models:
        for moe_tp, moe_ep in splits:
            if experts % moe_ep or inter % moe_tp:
                continue
            for dist in DISTRIBUTIONS:
                fixed = {"dtype": Dtype.BF16, "hidden": hidden, "inter": inter, "topk": topk, "num_experts": experts,
                         "moe_tp": moe_tp, "moe_ep": moe_ep, "distribution": dist}
                out += product(MoeCase, fixed, {"num_tokens": tokens})
    return out


def popularity(distribution: str, num_experts: int) -> np.ndarray:
    """Routing probability of each expert, hottest first."""
    if distribution == "balanced":
        return np.full(num_experts, 1.0 / num_experts)
    if distribution.startswith("power_law_"):
        alpha = float(distribution.removeprefix("power_law_"))
        weights = np.arange(1, num_experts + 1, dtype=np.float64) ** -alpha
        return weights / weights.sum()
    raise Unsupported(f"unknown routing distribution {distribution!r}; accepted: balanced, power_law_<alpha>")


def local_counts(case: MoeCase, seed: int = 0) -> np.ndarray:
    """Tokens routed to each expert of the most-loaded EP rank (experts are dealt to ranks in blocks)."""
    rng = np.random.default_rng(seed)
    probs = popularity(case.distribution, case.num_experts)
    tokens, topk = int(case.num_tokens), case.topk
    # Gumbel top-k: topk distinct experts per token, drawn with the popularity weights.
    keys = np.log(probs)[None, :] - np.log(-np.log(rng.random((tokens, case.num_experts))))
    chosen = np.argpartition(-keys, topk - 1, axis=1)[:, :topk]
    counts = np.bincount(chosen.ravel(), minlength=case.num_experts)
    per_rank = counts.reshape(case.moe_ep, -1)
    return per_rank[int(np.argmax(per_rank.sum(axis=1)))]


def build(case: MoeCase, ctx: DeviceCtx) -> Prepared:
    import torch

    if case.num_experts % case.moe_ep or case.inter % case.moe_tp:
        raise Unsupported(f"{case.num_experts} experts / ep {case.moe_ep} and inter {case.inter} / tp {case.moe_tp} must divide")
    counts = local_counts(case)
    if case.dtype in QUANTIZED:
        return _build_quantized(case, counts, ctx)
    dt = torch_dtype(case.dtype)
    local, inter, hidden = len(counts), case.inter // case.moe_tp, case.hidden
    rows = max(int(counts.sum()), 1)
    x = randn((rows, hidden), dt, ctx)
    w13 = randn((local, hidden, 2 * inter), dt, ctx, scale=0.02)
    w2 = randn((local, inter, hidden), dt, ctx, scale=0.02)
    offs = torch.tensor(np.cumsum(counts), dtype=torch.int32, device=device(ctx))

    def grouped():
        h = torch._grouped_mm(x, w13, offs=offs)
        a = torch.nn.functional.silu(h[:, :inter]) * h[:, inter:]
        return torch._grouped_mm(a, w2, offs=offs)

    starts = np.concatenate(([0], np.cumsum(counts)))

    def loop():
        outs = []
        for e in range(local):
            if counts[e]:
                h = x[starts[e]:starts[e + 1]] @ w13[e]
                outs.append((torch.nn.functional.silu(h[:, :inter]) * h[:, inter:]) @ w2[e])
        return outs

    if hasattr(torch, "_grouped_mm"):
        try:
            grouped()
            return Prepared(grouped, source(ctx, "torch_grouped_mm", "torch_cpu_grouped_mm"))
        except RuntimeError:
            pass  # e.g. pre-Hopper GPU or alignment: the per-expert loop runs the same math
    return Prepared(loop, source(ctx, "torch_expert_loop", "torch_cpu_expert_loop"))


def _build_quantized(case: MoeCase, counts: np.ndarray, ctx: DeviceCtx) -> Prepared:
    """Quantized experts: the experts the routing touches are held in their format ([out, in] as
    checkpoints store them, collectors/ops/quant.py) and dequantized to bf16 inside the timed call, then
    the same grouped GEMMs as bf16. What a torch backend without fused quantized-MoE kernels pays."""
    import torch

    touched = counts[counts > 0]
    local, inter, hidden = max(len(touched), 1), case.inter // case.moe_tp, case.hidden
    rows = max(int(touched.sum()), 1)
    x = randn((rows, hidden), torch.bfloat16, ctx)
    w13 = store((local, 2 * inter, hidden), case.dtype, ctx)
    w2 = store((local, hidden, inter), case.dtype, ctx)
    offs = torch.tensor(np.cumsum(touched if len(touched) else [1]), dtype=torch.int32, device=device(ctx))
    starts = np.concatenate(([0], offs.cpu().numpy()))

    def weights():
        a = dequantize(w13, torch.bfloat16)[..., :hidden].transpose(1, 2)   # [local, hidden, 2 * inter]
        b = dequantize(w2, torch.bfloat16)[..., :inter].transpose(1, 2)     # [local, inter, hidden]
        return a, b

    def grouped():
        a, b = weights()
        h = torch._grouped_mm(x, a, offs=offs)
        return torch._grouped_mm(torch.nn.functional.silu(h[:, :inter]) * h[:, inter:], b, offs=offs)

    def loop():
        a, b = weights()
        outs = []
        for e in range(local):
            h = x[starts[e]:starts[e + 1]] @ a[e]
            outs.append((torch.nn.functional.silu(h[:, :inter]) * h[:, inter:]) @ b[e])
        return outs

    name = f"dequant_{case.dtype.value}"
    if hasattr(torch, "_grouped_mm"):
        try:
            grouped()
            return Prepared(grouped, source(ctx, f"torch_{name}_grouped_mm", f"torch_cpu_{name}_grouped_mm"))
        except RuntimeError:
            pass  # strided or unaligned weights: the per-expert loop runs the same math
    return Prepared(loop, source(ctx, f"torch_{name}_expert_loop", f"torch_cpu_{name}_expert_loop"))


register(OpCollector(OpKind.MOE, grid, build))
