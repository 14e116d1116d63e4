"""Parsers for interleaved local / chunked / compressed attention, new MoE layouts and heterogeneous
layers: Llama-4, Gemma-4, MiMo-V2, MiniMax-M3, DeepSeek-V4 and DeciLM (Llama-Nemotron-Super).

Approximations, each stated where it is made: chunked attention (Llama-4) is priced as a sliding
window of the chunk size (a chunk's queries see 1..chunk keys, chunk/2 on average, so attention in
those layers is priced up to 2x high; its KV pool holds up to one chunk a request, as vLLM's); where
local and global layers differ in head geometry (Gemma-4 global layers: 512-dim heads, fewer KV
heads; MiMo-V2: 8 KV heads local, 4 global) the local geometry is used for both.
"""
from __future__ import annotations

import math
from collections import Counter

from estimator.models.hybrid_configs import gqa_common, layer_list, req
from estimator.models.spec import SparseSpec
from perfdb.errors import DataError
from perfdb.types import SparseKind


def _moe_every(layers: int, step: int) -> int:
    return sum(1 for i in range(layers) if (i + 1) % max(step, 1) == 0)


def llama4(cfg: dict, name: str) -> dict:
    """Llama-4 Scout / Maverick: chunked attention (8,192) on 3 of 4 layers (every 4th is global NoPE),
    MoE every `interleave_moe_layer_step` layers with one shared expert; dense layers `intermediate_size_mlp`."""
    base = gqa_common(cfg, name)
    layers = base["num_layers"]
    moe_layers = _moe_every(layers, int(cfg.get("interleave_moe_layer_step") or 1))
    chunk = int(cfg.get("attention_chunk_size") or 0)
    nope = cfg.get("no_rope_layers")
    # no_rope_layers: 1 = RoPE (chunked) layer, 0 = NoPE (global); default every 4th global
    local = sum(1 for v in nope if v) if isinstance(nope, list) and nope else layers - layers // 4
    inter = int(req(cfg, "intermediate_size", name))
    return dict(base, num_experts=int(req(cfg, "num_local_experts", name)), topk=int(cfg.get("num_experts_per_tok") or 1),
                moe_inter=inter, shared_inter=inter, inter=int(cfg.get("intermediate_size_mlp") or inter),
                num_dense_layers=layers - moe_layers, sliding_window=chunk if chunk else 0,
                num_sliding_layers=local if chunk else 0)


def gemma4(cfg: dict, name: str) -> dict:
    """Gemma-4: 5 sliding-window layers to 1 global; the MoE variant runs a dense MLP beside the experts
    in every layer (priced as a shared expert of `intermediate_size`)."""
    base = gqa_common(cfg, name)
    layers = base["num_layers"]
    types = layer_list(cfg, "layer_types", name, ("sliding_attention", "full_attention"), layers)
    out = dict(base, sliding_window=int(req(cfg, "sliding_window", name)), num_sliding_layers=types.count("sliding_attention"))
    inter = int(req(cfg, "intermediate_size", name))
    if cfg.get("enable_moe_block") and cfg.get("num_experts"):
        out.update(num_experts=int(cfg["num_experts"]), topk=int(req(cfg, "top_k_experts", name)),
                   moe_inter=int(req(cfg, "moe_intermediate_size", name)), shared_inter=inter, inter=0, num_dense_layers=0)
    else:
        out.update(inter=inter, num_dense_layers=layers)
    return out


def mimo_v2(cfg: dict, name: str) -> dict:
    """MiMo-V2-Flash: `hybrid_layer_pattern` 1 = sliding window (128), 0 = full; MoE where `moe_layer_freq` is 1."""
    base = gqa_common(cfg, name)
    layers = base["num_layers"]
    pattern = layer_list(cfg, "hybrid_layer_pattern", name, (0, 1), layers)
    moe = layer_list(cfg, "moe_layer_freq", name, (0, 1), layers)
    moe_inter = int(req(cfg, "moe_intermediate_size", name))
    return dict(base, num_kv_heads=int(cfg.get("swa_num_key_value_heads") or base["num_kv_heads"]),
                sliding_window=int(req(cfg, "sliding_window", name)), num_sliding_layers=sum(pattern),
                num_experts=int(req(cfg, "n_routed_experts", name)), topk=int(req(cfg, "num_experts_per_tok", name)),
                moe_inter=moe_inter, shared_inter=int(cfg.get("n_shared_experts") or 0) * moe_inter,
                inter=int(cfg.get("intermediate_size") or 0), num_dense_layers=layers - sum(moe))


def minimax_m3(cfg: dict, name: str) -> dict:
    """MiniMax-M3: GQA with block-sparse attention (MSA: top `sparse_topk_blocks` blocks of
    `sparse_block_size` tokens, scored by `sparse_num_index_heads` index heads) on the layers
    `sparse_attention_freq` marks; the first `first_k_dense_replace` layers are dense MLP."""
    base = gqa_common(cfg, name)
    layers = base["num_layers"]
    sp = cfg.get("sparse_attention_config") or {}
    sparse_layers = 0
    sparse = None
    if sp.get("use_sparse_attention"):
        freq = layer_list(sp, "sparse_attention_freq", name, (0, 1), layers)
        sparse_layers = sum(freq)
        sparse = SparseSpec(SparseKind.MSA, topk=int(req(sp, "sparse_topk_blocks", name)) * int(req(sp, "sparse_block_size", name)),
                            index_heads=int(req(sp, "sparse_num_index_heads", name)), index_head_dim=int(req(sp, "sparse_index_dim", name)))
    freq = cfg.get("moe_layer_freq")
    dense = layers - sum(layer_list(cfg, "moe_layer_freq", name, (0, 1), layers)) if isinstance(freq, list) \
        else int(cfg.get("first_k_dense_replace") or 0)
    moe_inter = int(cfg.get("moe_intermediate_size") or req(cfg, "intermediate_size", name))
    return dict(base, sparse=sparse, num_sparse_layers=sparse_layers, num_experts=int(req(cfg, "num_local_experts", name)),
                topk=int(req(cfg, "num_experts_per_tok", name)), moe_inter=moe_inter,
                shared_inter=int(cfg.get("shared_intermediate_size") or 0) * int(cfg.get("n_shared_experts") or 0),
                inter=int(cfg.get("dense_intermediate_size") or cfg.get("intermediate_size") or 0), num_dense_layers=dense,
                attn_output_gate=bool(cfg.get("attention_output_gate", False)))


def deepseek_v4(cfg: dict, name: str) -> dict:
    """DeepSeek-V4 (DeepSeek's inference model.py): multi-query attention whose one 512-dim entry per
    token is key and value, q through `q_lora_rank`, a grouped low-rank output projection (`o_groups`
    groups -> `o_lora_rank` each, then one projection to the hidden size); per layer `compress_ratios`:
    4 = CSA (overlapping compressor, one entry per 4 tokens, an indexer picks `index_topk` of them),
    128 = HCA (one entry per 128 tokens, read densely), 0 = the sliding window alone. Every layer also
    attends its last `sliding_window` (128) tokens. mHC residual streams (`hc_mult`). The list may
    carry one more ratio for the MTP layer (not priced)."""
    base = gqa_common(cfg, name)
    layers = base["num_layers"]
    ratios = req(cfg, "compress_ratios", name)
    if not isinstance(ratios, list) or len(ratios) < layers:
        raise DataError(f"config of {name}: 'compress_ratios' needs one ratio per layer ({layers})")
    n = Counter(int(r) for r in ratios[:layers])
    csa = min((r for r in n if 1 < r <= 8), default=4)
    hca = max((r for r in n if r > 8), default=0)
    unknown = sorted(set(n) - {0, csa, hca})
    if unknown:
        raise DataError(f"config of {name}: 'compress_ratios' has ratio(s) {unknown}; accepted: 0, one CSA ratio, one HCA ratio")
    heads, groups = base["num_heads"], int(req(cfg, "o_groups", name))
    if groups < 1 or heads % groups:
        raise DataError(f"config of {name}: 'o_groups' = {groups} must divide num_attention_heads ({heads})")
    moe_inter = int(req(cfg, "moe_intermediate_size", name))
    window = int(cfg.get("sliding_window") or 128)
    sparse = SparseSpec(SparseKind.DSA, topk=int(req(cfg, "index_topk", name)), index_heads=int(req(cfg, "index_n_heads", name)),
                        index_head_dim=int(req(cfg, "index_head_dim", name)), compress=csa)
    return dict(base, sparse=sparse, num_sparse_layers=n[csa], num_compressed_layers=n[hca] if hca else 0,
                kv_compress=hca or 1, sliding_window=window, num_sliding_layers=n[0], compressed_window=window,
                kv_shared=True, q_lora_rank=int(req(cfg, "q_lora_rank", name)), o_groups=groups,
                # the rope dims of each entry, which the engines' FP8 layouts keep in bf16 (estimator.kv_layout)
                qk_rope_head_dim=int(req(cfg, "qk_rope_head_dim", name)),
                o_lora_rank=int(req(cfg, "o_lora_rank", name)),
                num_experts=int(req(cfg, "n_routed_experts", name)), topk=int(req(cfg, "num_experts_per_tok", name)),
                moe_inter=moe_inter, shared_inter=int(cfg.get("n_shared_experts") or 0) * moe_inter,
                inter=0, num_dense_layers=0, hc_mult=int(cfg.get("hc_mult") or 0),
                # model.py's default when the config omits it
                hc_sinkhorn_iters=int(cfg.get("hc_sinkhorn_iters") or 20) if cfg.get("hc_mult") else 0)


def _decilm_inter(ffn_mult: float, hidden: int) -> int:
    """DeciLM `_ffn_mult_to_intermediate_size`: 2/3 * ffn_mult * hidden, rounded up to a multiple of 256."""
    return int(math.ceil(int(2 * ffn_mult * hidden / 3) / 256) * 256)


def decilm(cfg: dict, name: str) -> dict:
    """Llama-3.x-Nemotron-Super (DeciLM / NAS): per-layer `block_configs` with attention skipped (no_op)
    or grouped (n_heads_in_group), and FFN widths from ffn_mult. The MLP width is the mean over the
    layers that have one (GEMM cost and weight bytes are linear in it); KV heads the mean over
    attention layers."""
    base = gqa_common(cfg, name)
    blocks = req(cfg, "block_configs", name)
    if len(blocks) != base["num_layers"]:
        raise DataError(f"config of {name}: 'block_configs' lists {len(blocks)} layers; num_hidden_layers is {base['num_layers']}")
    attn = [b["attention"] for b in blocks if not (b.get("attention") or {}).get("no_op")]
    ffn = [b["ffn"] for b in blocks if not (b.get("ffn") or {}).get("no_op")]
    if any(a.get("replace_with_linear") for a in attn) or any(f.get("replace_with_linear") for f in ffn):
        raise DataError(f"config of {name}: 'block_configs' replace_with_linear layers are not supported; accepted: no_op or full blocks")
    groups = [int(req(a, "n_heads_in_group", name)) for a in attn]
    kv = round(sum(base["num_heads"] / g for g in groups) / len(groups)) if groups else base["num_kv_heads"]
    inters = [_decilm_inter(float(req(f, "ffn_mult", name)), base["hidden"]) for f in ffn]
    return dict(base, num_kv_heads=max(1, kv), num_attn_free_layers=base["num_layers"] - len(attn),
                num_mlp_free_layers=base["num_layers"] - len(ffn), num_dense_layers=len(ffn),
                inter=round(sum(inters) / len(inters)) if inters else 0)
