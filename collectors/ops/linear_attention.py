"""Linear-attention / SSM collectors (Gated DeltaNet, KDA, Mamba-2): chunked prefill and the decode
state update, on the same per-request state layout the estimator prices (perfdb.ops.linear).

GPU with flash-linear-attention installed (`fla`): its `chunk_gated_delta_rule` /
`fused_recurrent_gated_delta_rule` kernels run GDN and KDA (KDA through the same kernels with a
head-wise decay: the per-channel decay costs the same bytes), and the kernel source says so.
Otherwise (CPU, or no fla): a torch reference of the recurrence, token by token for prefill (the
exact math, not the fast kernel: the rows say `torch_recurrent_reference`).
"""
from __future__ import annotations

from collectors.cases import product
from collectors.ops.common import randn, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, register
from perfdb.ops import LinearDecodeCase, LinearPrefillCase
from perfdb.types import Dtype, LinearKind, OpKind

# (k heads, v heads, dk, dv) per GPU: Qwen3.5-397B at tp 8 (2, 8, 128, 128), Nemotron-3 Super at tp 8
# (1 group, 16 heads, state 128, head 64), Kimi-K3 KDA at tp 8 (12, 12, 128, 128)
_GEOMETRY = {LinearKind.GDN: (2, 8, 128, 128), LinearKind.MAMBA2: (1, 16, 128, 64), LinearKind.KDA: (12, 12, 128, 128)}


def _fixed(kind: LinearKind, size: GridSize) -> dict:
    nk, nv, dk, dv = (1, 2, 16, 16) if size == GridSize.TINY else _GEOMETRY[kind]
    dt = Dtype.FP32 if size == GridSize.TINY else Dtype.BF16
    return dict(kind=kind, dtype=dt, state_dtype=Dtype.FP32, num_k_heads=nk, num_v_heads=nv, head_k_dim=dk,
                head_v_dim=dv, conv_kernel=4)


def prefill_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[LinearPrefillCase]:
    kinds = [LinearKind.GDN] if size == GridSize.TINY else list(LinearKind)
    axes = {"batch": [1, 2], "seq_len": [8, 32]} if size == GridSize.TINY else \
        {"batch": [1, 4, 16], "seq_len": [256, 1024, 4096, 16384]}
    out = []
    for kind in kinds:
        chunk = 128 if kind == LinearKind.MAMBA2 else 64
        out += product(LinearPrefillCase, dict(_fixed(kind, size), chunk=chunk), axes,
                       keep=lambda batch, seq_len: batch * seq_len <= 65536)
    return out


def decode_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[LinearDecodeCase]:
    kinds = [LinearKind.GDN] if size == GridSize.TINY else list(LinearKind)
    batches = [1, 4] if size == GridSize.TINY else [1, 8, 32, 128, 512]
    return [c for kind in kinds for c in product(LinearDecodeCase, _fixed(kind, size), {"batch": batches})]


def _inputs(case, tokens: int, ctx: DeviceCtx):
    import torch

    b, nv, dk, dv = int(case.batch), case.num_v_heads, case.head_k_dim, case.head_v_dim
    dt = torch_dtype(case.dtype)
    torch.manual_seed(0)
    q, k = randn((b, tokens, nv, dk), dt, ctx), randn((b, tokens, nv, dk), dt, ctx, scale=dk ** -0.5)
    v = randn((b, tokens, nv, dv), dt, ctx)
    decay = torch.rand(b, tokens, nv, device=q.device).mul_(-0.1)    # log decay per token and head
    beta = torch.rand(b, tokens, nv, device=q.device)
    state = randn((b, nv, dk, dv), torch.float32, ctx)
    return q, k, v, decay, beta, state


def recurrent_step(kind: LinearKind, q, k, v, decay, beta, state):
    """One token of every request: decay the state, update it (delta rule for GDN / KDA, plain outer
    product for Mamba-2), read it with the query. Shapes: q, k [b, h, dk], v [b, h, dv], state fp32."""
    state = state * decay.exp()[..., None, None]
    kf, vf = k.float(), v.float()
    if kind == LinearKind.MAMBA2:
        update = vf
    else:
        update = (vf - (kf[..., None] * state).sum(-2)) * beta[..., None]
    state = state + kf[..., None] * update[..., None, :]
    return (q.float()[..., None] * state).sum(-2).to(q.dtype), state


def reference_prefill(kind: LinearKind, q, k, v, decay, beta, state):
    outs = []
    for t in range(q.shape[1]):
        o, state = recurrent_step(kind, q[:, t], k[:, t], v[:, t], decay[:, t], beta[:, t], state)
        outs.append(o)
    return outs[-1], state


def _fla():
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
    except ImportError:
        return None
    return chunk_gated_delta_rule, fused_recurrent_gated_delta_rule


def build_prefill(case: LinearPrefillCase, ctx: DeviceCtx) -> Prepared:
    q, k, v, decay, beta, state = _inputs(case, int(case.seq_len), ctx)
    fla = _fla() if ctx.device == "cuda" and case.kind != LinearKind.MAMBA2 else None
    if fla is not None:
        chunk = fla[0]
        return Prepared(lambda: chunk(q, k, v, decay, beta, initial_state=state, output_final_state=True),
                        "fla_chunk_gated_delta_rule")
    return Prepared(lambda: reference_prefill(case.kind, q, k, v, decay, beta, state), "torch_recurrent_reference")


def build_decode(case: LinearDecodeCase, ctx: DeviceCtx) -> Prepared:
    q, k, v, decay, beta, state = _inputs(case, 1, ctx)
    fla = _fla() if ctx.device == "cuda" and case.kind != LinearKind.MAMBA2 else None
    if fla is not None:
        fused = fla[1]
        return Prepared(lambda: fused(q, k, v, decay, beta, initial_state=state, output_final_state=True),
                        "fla_fused_recurrent_gated_delta_rule")
    return Prepared(lambda: recurrent_step(case.kind, q[:, 0], k[:, 0], v[:, 0], decay[:, 0], beta[:, 0], state),
                    "torch_recurrent_reference")


register(OpCollector(OpKind.LINEAR_PREFILL, prefill_grid, build_prefill))
register(OpCollector(OpKind.LINEAR_DECODE, decode_grid, build_decode))
