"""DeepSeek-V4 attention-module collector: one HCA layer's whole attention block (perfdb.ops.dsv4_module),
the block the reference tool's dsv4_hca_*_module tables time, as a torch reference written from
DeepSeek's inference model.py: the fused q / kv down projection, the q up projection, the KV compressor
(wkv + wgate over this step's tokens, a softmax-gated sum per `compress` tokens), one softmax over the
compressed entries and the last `window` tokens (the query sees an entry once its tokens are all at or
before it), and the grouped output projection (a BMM per local group, then wo_b). Rows say
`torch_dsv4_module_reference`. The projections and cache run in the case's activation dtype (fp8 GEMMs
and fp8 caches are not emulated: such cases are recorded unsupported), as are CSA cases (compress 4:
their indexer's top-k path is the sparse_module reference's and is not composed here).
"""
from __future__ import annotations

from collectors.cases import product
from collectors.ops.common import device, randn, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, Unsupported, register
from perfdb.ops import Dsv4ModuleDecodeCase, Dsv4ModulePrefillCase
from perfdb.ops.dsv4_module import CSA_RATIO
from perfdb.types import Dtype, OpKind


def _fixed(size: GridSize) -> dict:
    if size == GridSize.TINY:
        return dict(dtype=Dtype.FP32, kv_dtype=Dtype.FP32, compress=8, num_heads=4, o_groups=2, hidden=32, head_dim=8,
                    q_lora_rank=16, o_lora_rank=8, window=4, topk=0, index_heads=0, index_head_dim=0)
    # DeepSeek-V4-Pro's HCA layers at tp 8 (its config.json): 16 of 128 heads, 2 of 16 output groups
    return dict(dtype=Dtype.BF16, kv_dtype=Dtype.BF16, compress=128, num_heads=16, o_groups=2, hidden=7168, head_dim=512,
                q_lora_rank=1536, o_lora_rank=1024, window=128, topk=0, index_heads=0, index_head_dim=0)


def prefill_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list:
    axes = {"batch": [1], "seq_len": [8, 24], "prefix_len": [0, 8]} if size == GridSize.TINY else \
        {"batch": [1, 2], "seq_len": [512, 1024, 2048, 4096], "prefix_len": [0, 4096, 16384]}
    return product(Dsv4ModulePrefillCase, _fixed(size), axes)


def decode_grid(size: GridSize, ctx: DeviceCtx | None = None) -> list:
    axes = {"batch": [1, 3], "kv_len": [4, 32]} if size == GridSize.TINY else \
        {"batch": [1, 8, 32, 128], "kv_len": [1024, 8192, 65536, 262144]}
    return product(Dsv4ModuleDecodeCase, _fixed(size), axes)


def _weights(case, dt, ctx: DeviceCtx) -> dict:
    h, hd, g = case.num_heads, case.head_dim, case.o_groups
    return {"down": randn((case.hidden, case.q_lora_rank + hd), dt, ctx, scale=case.hidden ** -0.5),
            "q_up": randn((case.q_lora_rank, h * hd), dt, ctx, scale=case.q_lora_rank ** -0.5),
            "comp": randn((case.hidden, 2 * hd), dt, ctx, scale=case.hidden ** -0.5),
            "o_a": randn((g, h // g * hd, case.o_lora_rank), dt, ctx, scale=(h // g * hd) ** -0.5),
            "o_b": randn((g * case.o_lora_rank, case.hidden), dt, ctx, scale=(g * case.o_lora_rank) ** -0.5)}


def visibility(case, queries: int, prefix: int, entries: int, window_start: int, window_keys: int, ctx: DeviceCtx):
    """[queries, entries + window_keys] bool: query i (position prefix + i) sees entry j once its `compress`
    tokens end at or before it, and the window tokens in (position - window, position]."""
    import torch

    pos = prefix + torch.arange(queries, device=device(ctx))[:, None]
    ends = (torch.arange(entries, device=device(ctx))[None, :] + 1) * case.compress - 1
    kp = window_start + torch.arange(window_keys, device=device(ctx))[None, :]
    return torch.cat((ends <= pos, (kp <= pos) & (kp > pos - case.window)), dim=1)


def hca_module_forward(case, x, w: dict, entries, window_kv, visible):
    """x [b, s, hidden]; entries [b, n_e, head_dim] compressed cache (this step's complete groups are
    recomputed into its tail); window_kv [b, n_w, head_dim] the window tokens' entries. -> [b, s, hidden]."""
    import torch

    b, s, _ = x.shape
    h, hd, g, c = case.num_heads, case.head_dim, case.o_groups, case.compress
    q = ((x @ w["down"])[..., :case.q_lora_rank] @ w["q_up"]).view(b, s, h, hd)
    kv_new, gate = (x @ w["comp"]).split(hd, dim=-1)
    groups = s // c
    if groups:
        gated = gate[:, :groups * c].float().view(b, groups, c, hd).softmax(2) * kv_new[:, :groups * c].float().view(b, groups, c, hd)
        entries = torch.cat((entries[:, :entries.shape[1] - groups], gated.sum(2).to(x.dtype)), dim=1)
    keys = torch.cat((entries, window_kv), dim=1).float()                                       # K = V
    logits = torch.einsum("bshd,btd->bsht", q.float(), keys) * hd ** -0.5
    attn = torch.einsum("bsht,btd->bshd", logits.masked_fill(~visible[None, :, None, :], float("-inf")).softmax(-1), keys)
    per_group = attn.to(x.dtype).reshape(b * s, g, h // g * hd).transpose(0, 1)                 # [g, b s, heads/g x hd]
    return (torch.bmm(per_group, w["o_a"]).transpose(0, 1).reshape(b * s, -1) @ w["o_b"]).view(b, s, -1)


def _build(case, queries: int, prefix: int, ctx: DeviceCtx) -> Prepared:
    import torch

    if case.compress == CSA_RATIO:
        raise Unsupported("the DeepSeek-V4 module reference composes HCA layers only (CSA: compress 4)")
    if case.kv_dtype != case.dtype:
        raise Unsupported(f"dsv4 module reference needs kv_dtype == dtype, got {case.kv_dtype.value}/{case.dtype.value}")
    dt, b = torch_dtype(case.dtype), int(case.batch)
    torch.manual_seed(0)
    tokens = prefix + queries
    start = max(0, prefix - case.window + 1)
    n_e, n_w = tokens // case.compress, tokens - start
    x = randn((b, queries, case.hidden), dt, ctx)
    entries, window_kv = randn((b, n_e, case.head_dim), dt, ctx), randn((b, n_w, case.head_dim), dt, ctx)
    visible = visibility(case, queries, prefix, n_e, start, n_w, ctx)
    w = _weights(case, dt, ctx)
    return Prepared(lambda: hca_module_forward(case, x, w, entries, window_kv, visible), "torch_dsv4_module_reference")


def build_prefill(case, ctx: DeviceCtx) -> Prepared:
    return _build(case, int(case.seq_len), int(case.prefix_len), ctx)


def build_decode(case, ctx: DeviceCtx) -> Prepared:
    return _build(case, 1, int(case.kv_len), ctx)


register(OpCollector(OpKind.DSV4_MODULE_PREFILL, prefill_grid, build_prefill))
register(OpCollector(OpKind.DSV4_MODULE_DECODE, decode_grid, build_decode))
