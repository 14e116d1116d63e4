"""mHC module collector: a DeepSeek-V4 layer's hyper-connection `pre` (RMS-scaled projection of the
streams to the mixing logits, Sinkhorn on the residual mix, reduction of the streams to the sub-layer
input) or `post` (post weights x sub-layer output + residual mix of the streams), for `sites` sub-layers
back to back, in torch (`torch_mhc_reference`), written from DeepSeek-V4's inference model.py
(hc_pre / hc_split_sinkhorn / hc_post). The engines' fused tilelang / TRT-LLM kernels are what the
imported mhc_module tables time."""
from __future__ import annotations

from collectors.cases import product
from collectors.ops.common import randn, source, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, register
from perfdb.ops.mhc import MhcModuleCase, mix_width
from perfdb.types import Dtype, MhcStage, OpKind

HC_MULT, SINKHORN_ITERS, EPS = 4, 20, 1e-6   # DeepSeek-V4-Flash / -Pro config.json: hc_mult, hc_sinkhorn_iters, hc_eps


def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[MhcModuleCase]:
    if size == GridSize.TINY:
        tokens, hidden, dtype = [1, 16, 128], [256], Dtype.FP32    # CPU hosts: native fp32
    else:
        tokens = [1, 4, 16, 64, 256, 1024, 4096, 16384] + ([65536, 262144] if size == GridSize.FULL else [])
        hidden, dtype = [4096, 7168], Dtype.BF16                   # DeepSeek-V4-Flash, -Pro
    out = []
    for stage in MhcStage:
        for h in hidden:
            out += product(MhcModuleCase, dict(stage=stage, dtype=dtype, hc_mult=HC_MULT, hidden=h,
                                               sinkhorn_iters=SINKHORN_ITERS, sites=2), {"num_tokens": tokens})
    return out


def sinkhorn(logits, iters: int, eps: float = EPS):
    """Row-softmax, then alternate column and row normalisation: a (nearly) doubly stochastic hc x hc mix."""
    comb = logits.softmax(-1) + eps
    comb = comb / (comb.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + eps)
        comb = comb / (comb.sum(-2, keepdim=True) + eps)
    return comb


def mhc_pre(streams, fn, base, iters: int, eps: float = EPS):
    """streams [t, hc, h] -> (sub-layer input [t, h], post weights [t, hc], residual mix [t, hc, hc])."""
    import torch

    t, hc, _ = streams.shape
    flat = streams.flatten(1).float()
    mixes = (flat @ fn.T) * torch.rsqrt(flat.square().mean(-1, keepdim=True) + eps) + base
    pre = torch.sigmoid(mixes[:, :hc]) + eps
    post = 2 * torch.sigmoid(mixes[:, hc:2 * hc])
    comb = sinkhorn(mixes[:, 2 * hc:].view(t, hc, hc), iters, eps)
    return (pre[..., None] * streams.float()).sum(1).to(streams.dtype), post, comb


def mhc_post(out, streams, post, comb):
    """New streams [t, hc, h] = post x sub-layer output + comb-weighted mix of the old streams."""
    import torch

    mixed = post[..., None] * out.float()[:, None, :] + torch.einsum("tmn,tmh->tnh", comb, streams.float())
    return mixed.to(streams.dtype)


def build(case: MhcModuleCase, ctx: DeviceCtx) -> Prepared:
    import torch

    t, hc, h, dt = int(case.num_tokens), case.hc_mult, case.hidden, torch_dtype(case.dtype)
    streams = randn((t, hc, h), dt, ctx)
    sites = [(randn((mix_width(hc), hc * h), torch.float32, ctx, scale=0.02), randn((mix_width(hc),), torch.float32, ctx))
             for _ in range(case.sites)]
    if case.stage == MhcStage.PRE:
        fn = lambda: [mhc_pre(streams, w, b, case.sinkhorn_iters) for w, b in sites]  # noqa: E731
    else:
        outs = [(randn((t, h), dt, ctx), *mhc_pre(streams, w, b, case.sinkhorn_iters)[1:]) for w, b in sites]
        fn = lambda: [mhc_post(o, streams, post, comb) for o, post, comb in outs]  # noqa: E731
    return Prepared(fn, source(ctx, "torch_mhc_reference", "torch_mhc_reference_cpu"))


register(OpCollector(OpKind.MHC_MODULE, grid, build))
