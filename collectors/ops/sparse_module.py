"""Sparse-attention module collectors: a sparse layer's whole attention block (perfdb.ops.sparse_module), the
same block the reference tool's dsa_*_module / msa_*_module tables time.

DSA (DeepSeek-V3.2, GLM-5): a torch reference on every device: the q_a /
kv_a down projection, q_b, the indexer's projections, the absorbed q (per-head BMM into the latent), the
indexer + top-k attention of collectors.ops.sparse_attention over the latent cache, the BMM out of the
latent and o_proj. Rows say `torch_dsa_module_reference` (the engines' fused FlashMLA / DeepGEMM modules
come with their adapters). The projections run in the case's activation dtype (fp8 GEMMs are not
emulated here: such cases are recorded unsupported).

MSA (MiniMax-M3): the qkv projection, the indexer's projections, the indexer's top-k per query (token
granularity here, where MiniMax's kernels pick blocks of tokens) and GQA attention over the selected
tokens' K / V, then o_proj. Rows say `torch_msa_module_reference`.
"""
from __future__ import annotations

from collectors.cases import product
from collectors.ops.common import device, randn, torch_dtype
from collectors.ops.sparse_attention import sparse_attend
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, Unsupported, register
from perfdb.ops import DsaModuleDecodeCase, DsaModulePrefillCase, MsaModuleDecodeCase, MsaModulePrefillCase
from perfdb.types import Dtype, OpKind


def _fixed(size: GridSize) -> dict:
    if size == GridSize.TINY:
        return dict(dtype=Dtype.FP32, kv_dtype=Dtype.FP32, num_heads=2, hidden=32, q_lora_rank=16, kv_lora_rank=16,
                    qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, topk=8, index_heads=2, index_head_dim=8)
    # GLM-5 at tp 8 (config.json of zai-org/GLM-5): 8 of its 64 heads, top 2,048 over a 576-element latent
    return dict(dtype=Dtype.BF16, kv_dtype=Dtype.BF16, num_heads=8, hidden=6144, q_lora_rank=2048, kv_lora_rank=512,
                qk_nope_head_dim=192, qk_rope_head_dim=64, v_head_dim=256, topk=2048, index_heads=32, index_head_dim=128)


def _msa_fixed(size: GridSize) -> dict:
    if size == GridSize.TINY:
        return dict(dtype=Dtype.FP32, kv_dtype=Dtype.FP32, num_heads=4, num_kv_heads=2, head_dim=8, hidden=32, topk=8,
                    index_heads=2, index_head_dim=8)
    # MiniMax-M3 at tp 8 (its config.json: 64 query / 4 KV heads of 128, top 16 blocks of 128 tokens)
    return dict(dtype=Dtype.BF16, kv_dtype=Dtype.BF16, num_heads=8, num_kv_heads=1, head_dim=128, hidden=6144,
                topk=2048, index_heads=4, index_head_dim=128)


def _decode_grid(cls, fixed):
    def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list:
        axes = {"batch": [1, 3], "kv_len": [4, 32]} if size == GridSize.TINY else \
            {"batch": [1, 8, 32, 128], "kv_len": [1024, 4096, 16384, 65536]}
        return product(cls, fixed(size), axes, keep=lambda batch, kv_len: batch * kv_len <= 1 << 22)
    return grid


def _prefill_grid(cls, fixed):
    def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list:
        axes = {"batch": [1], "seq_len": [8, 24], "prefix_len": [0, 8]} if size == GridSize.TINY else \
            {"batch": [1, 2], "seq_len": [512, 1024, 2048, 4096], "prefix_len": [0, 4096]}
        return product(cls, fixed(size), axes)
    return grid


def _weights(case, dt, ctx: DeviceCtx) -> dict:
    h, rope, lora = case.num_heads, case.qk_rope_head_dim, case.kv_lora_rank
    s = case.hidden ** -0.5
    return dict(
        down=randn((case.hidden, case.q_lora_rank + lora + rope), dt, ctx, s),
        q_b=randn((case.q_lora_rank, h * (case.qk_nope_head_dim + rope)), dt, ctx, case.q_lora_rank ** -0.5),
        index=randn((case.hidden, case.index_heads * case.index_head_dim + case.index_head_dim + case.index_heads), dt, ctx, s),
        absorb=randn((h, case.qk_nope_head_dim, lora), dt, ctx, case.qk_nope_head_dim ** -0.5),
        out=randn((h, lora, case.v_head_dim), dt, ctx, lora ** -0.5),
        o=randn((h * case.v_head_dim, case.hidden), dt, ctx, (h * case.v_head_dim) ** -0.5),
    )


def dsa_module_forward(case, x, w: dict, cache, k_idx, visible):
    """x [b, s, hidden] new tokens; cache [b, t, kv_lora + rope] latents (the new tokens' last); k_idx
    [b, t, index_head_dim] indexer keys. Returns [b, s, hidden]."""
    import torch

    b, s, _ = x.shape
    h, nope, rope, lora = case.num_heads, case.qk_nope_head_dim, case.qk_rope_head_dim, case.kv_lora_rank
    ih, idim = case.index_heads, case.index_head_dim
    q_lat = (x @ w["down"])[..., :case.q_lora_rank]          # the kv_a part was written into the cache
    q = (q_lat @ w["q_b"]).view(b, s, h, nope + rope)
    q_abs = torch.einsum("bshn,hnl->bshl", q[..., :nope], w["absorb"])
    q_full = torch.cat([q_abs, q[..., nope:]], dim=-1)       # [b, s, h, lora + rope]
    idx = x @ w["index"]
    q_idx = idx[..., :ih * idim].view(b, s, ih, idim)
    w_idx = idx[..., ih * idim + idim:]
    lat = sparse_attend(q_full, q_idx, w_idx, cache, k_idx, case.topk, visible)   # [b, s, h, lora]
    out = torch.einsum("bshl,hlv->bshv", lat[..., :lora], w["out"])
    return out.reshape(b, s, h * case.v_head_dim) @ w["o"]


def _msa_weights(case, dt, ctx: DeviceCtx) -> dict:
    hd, s = case.head_dim, case.hidden ** -0.5
    return dict(
        qkv=randn((case.hidden, (case.num_heads + 2 * case.num_kv_heads) * hd), dt, ctx, s),
        index=randn((case.hidden, case.index_heads * case.index_head_dim + case.index_head_dim + case.index_heads), dt, ctx, s),
        o=randn((case.num_heads * hd, case.hidden), dt, ctx, (case.num_heads * hd) ** -0.5),
    )


def msa_module_forward(case, x, w: dict, cache, k_idx, visible):
    """x [b, s, hidden]; cache [b, t, 2 x kv_heads x head_dim] K and V of every token (the new ones' last);
    k_idx [b, t, index_head_dim]. Returns [b, s, hidden]."""
    import torch

    b, s, _ = x.shape
    h, g, hd, ih, idim = case.num_heads, case.num_kv_heads, case.head_dim, case.index_heads, case.index_head_dim
    q = (x @ w["qkv"])[..., :h * hd].view(b, s, g, h // g, hd)      # this step's k, v went into the cache
    idx = x @ w["index"]
    scores = torch.einsum("bsid,btd->bsit", idx[..., :ih * idim].view(b, s, ih, idim).float(), k_idx.float()).relu()
    scores = (scores * idx[..., ih * idim + idim:].float()[..., None]).sum(2).masked_fill(~visible, float("-inf"))
    top = scores.topk(min(case.topk, cache.shape[1]), dim=-1).indices                           # [b, s, k]
    chosen = torch.gather(cache[:, None].expand(-1, s, -1, -1), 2, top[..., None].expand(-1, -1, -1, cache.shape[-1]))
    k, v = chosen.view(b, s, -1, 2, g, hd).unbind(3)                                             # [b, s, k, g, hd]
    logits = torch.einsum("bsgrd,bskgd->bsgrk", q.float(), k.float()) * hd ** -0.5
    hidden_out = torch.isinf(torch.gather(scores, 2, top))[:, :, None, None, :]
    attn = torch.einsum("bsgrk,bskgd->bsgrd", logits.masked_fill(hidden_out, float("-inf")).softmax(-1), v.float())
    return attn.to(x.dtype).reshape(b, s, h * hd) @ w["o"]


def _build(case, queries: int, keys: int, ctx: DeviceCtx) -> Prepared:
    import torch

    if case.kv_dtype != case.dtype:
        raise Unsupported(f"sparse module reference needs kv_dtype == dtype, got {case.kv_dtype.value}/{case.dtype.value}")
    dt, b = torch_dtype(case.dtype), int(case.batch)
    torch.manual_seed(0)
    msa = isinstance(case, (MsaModulePrefillCase, MsaModuleDecodeCase))
    w = _msa_weights(case, dt, ctx) if msa else _weights(case, dt, ctx)
    entry = 2 * case.num_kv_heads * case.head_dim if msa else case.kv_lora_rank + case.qk_rope_head_dim
    x = randn((b, queries, case.hidden), dt, ctx)
    cache = randn((b, keys, entry), dt, ctx)
    k_idx = randn((b, keys, case.index_head_dim), dt, ctx)
    pos = torch.arange(keys - queries, keys, device=device(ctx))
    visible = torch.arange(keys, device=device(ctx))[None, :] <= pos[:, None]
    forward, name = (msa_module_forward, "msa") if msa else (dsa_module_forward, "dsa")
    return Prepared(lambda: forward(case, x, w, cache, k_idx, visible), f"torch_{name}_module_reference")


def build_decode(case, ctx: DeviceCtx) -> Prepared:
    return _build(case, 1, int(case.kv_len), ctx)


def build_prefill(case, ctx: DeviceCtx) -> Prepared:
    return _build(case, int(case.seq_len), int(case.seq_len + case.prefix_len), ctx)


register(OpCollector(OpKind.DSA_MODULE_PREFILL, _prefill_grid(DsaModulePrefillCase, _fixed), build_prefill))
register(OpCollector(OpKind.DSA_MODULE_DECODE, _decode_grid(DsaModuleDecodeCase, _fixed), build_decode))
register(OpCollector(OpKind.MSA_MODULE_PREFILL, _prefill_grid(MsaModulePrefillCase, _msa_fixed), build_prefill))
register(OpCollector(OpKind.MSA_MODULE_DECODE, _decode_grid(MsaModuleDecodeCase, _msa_fixed), build_decode))
