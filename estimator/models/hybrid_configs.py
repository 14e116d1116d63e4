"""Parsers for the 2026 layouts: hybrid linear attention, sparse attention, interleaved local attention,
latent / interleaved MoE and heterogeneous layers. Each returns ModelSpec fields (see hf_config.SUPPORTED).

Per-layer patterns are read from the config's own list (`layer_types`, `hybrid_override_pattern`,
`layers_block_type`, `block_configs`, `compress_ratios`, ...) and reduced to layer counts: identical
layers cost the same, so the estimator runs each op once with the number of layers that run it.
A malformed pattern raises DataError naming the field and what it accepts.
"""
from __future__ import annotations

from collections import Counter

from estimator.models.spec import AttentionKind, LinearSpec, SparseSpec
from perfdb.errors import DataError
from perfdb.types import Dtype, LinearKind, SparseKind


def req(cfg: dict, key: str, name: str):
    if key not in cfg or cfg[key] is None:
        raise DataError(f"config of {name} lacks required field {key!r}")
    return cfg[key]


def layer_list(cfg: dict, key: str, name: str, accepted: tuple[str, ...], layers: int) -> list:
    """A per-layer list field, checked for length and values."""
    values = req(cfg, key, name)
    if isinstance(values, str):
        values = list(values)
    if len(values) != layers:
        raise DataError(f"config of {name}: {key!r} lists {len(values)} layers; num_hidden_layers is {layers}")
    bad = sorted({str(v) for v in values} - set(map(str, accepted)))
    if bad:
        raise DataError(f"config of {name}: {key!r} has unknown layer type(s) {', '.join(bad)}; "
                        f"accepted: {', '.join(map(str, accepted))}")
    return values


def gqa_common(cfg: dict, name: str) -> dict:
    heads = int(req(cfg, "num_attention_heads", name))
    hidden = int(req(cfg, "hidden_size", name))
    return dict(
        hidden=hidden, num_layers=int(req(cfg, "num_hidden_layers", name)), num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or cfg.get("attention_head_dim") or hidden // heads),
        vocab=int(req(cfg, "vocab_size", name)), tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attention=AttentionKind.GQA,
    )


def mla_common(cfg: dict, name: str) -> dict:
    """DeepSeek-style MLA attention fields (shared by V3, V3.2, GLM-5, Kimi-K2.x, Kimi-K3)."""
    heads = int(req(cfg, "num_attention_heads", name))
    nope, rope = int(req(cfg, "qk_nope_head_dim", name)), int(req(cfg, "qk_rope_head_dim", name))
    return dict(
        attention=AttentionKind.MLA, hidden=int(req(cfg, "hidden_size", name)),
        num_layers=int(req(cfg, "num_hidden_layers", name)), num_heads=heads, num_kv_heads=heads,
        head_dim=nope + rope, vocab=int(req(cfg, "vocab_size", name)),
        q_lora_rank=int(cfg.get("q_lora_rank") or 0), kv_lora_rank=int(req(cfg, "kv_lora_rank", name)),
        qk_rope_head_dim=rope, qk_nope_head_dim=nope, v_head_dim=int(req(cfg, "v_head_dim", name)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )


def dsa_sparse(cfg: dict, name: str) -> SparseSpec:
    return SparseSpec(SparseKind.DSA, topk=int(req(cfg, "index_topk", name)),
                      index_heads=int(req(cfg, "index_n_heads", name)), index_head_dim=int(req(cfg, "index_head_dim", name)))


def deepseek_moe(cfg: dict, name: str, layers: int) -> dict:
    moe_inter = int(req(cfg, "moe_intermediate_size", name))
    return dict(inter=int(cfg.get("intermediate_size") or 0),
                num_dense_layers=min(layers, int(cfg.get("first_k_dense_replace") or 0)),
                num_experts=int(req(cfg, "n_routed_experts", name)), topk=int(req(cfg, "num_experts_per_tok", name)),
                moe_inter=moe_inter, shared_inter=int(cfg.get("n_shared_experts") or 0) * moe_inter)


def deepseek_dsa(cfg: dict, name: str) -> dict:
    """DeepSeek-V3.2 and GLM-5.x: MLA with the DSA indexer on every layer."""
    base = mla_common(cfg, name)
    return dict(base, **deepseek_moe(cfg, name, base["num_layers"]), sparse=dsa_sparse(cfg, name),
                num_sparse_layers=base["num_layers"])


def qwen35(cfg: dict, name: str) -> dict:
    """Qwen3.5 / 3.6 (and Qwen3-Next): Gated DeltaNet layers with gated full attention every
    `full_attention_interval`-th layer; dense or MoE (512 experts + one shared) MLP."""
    base = gqa_common(cfg, name)
    layers = base["num_layers"]
    types = layer_list(cfg, "layer_types", name, ("linear_attention", "full_attention"), layers)
    linear = LinearSpec(LinearKind.GDN, num_k_heads=int(req(cfg, "linear_num_key_heads", name)),
                        num_v_heads=int(req(cfg, "linear_num_value_heads", name)),
                        head_k_dim=int(req(cfg, "linear_key_head_dim", name)),
                        head_v_dim=int(req(cfg, "linear_value_head_dim", name)),
                        conv_kernel=int(cfg.get("linear_conv_kernel_dim") or 4),
                        state_dtype=_state_dtype(cfg.get("mamba_ssm_dtype")))
    out = dict(base, linear=linear, num_linear_layers=types.count("linear_attention"),
               attn_output_gate=bool(cfg.get("attn_output_gate", False)))
    if cfg.get("num_experts"):
        moe_inter = int(req(cfg, "moe_intermediate_size", name))
        out.update(num_experts=int(cfg["num_experts"]), topk=int(req(cfg, "num_experts_per_tok", name)),
                   moe_inter=moe_inter, shared_inter=int(cfg.get("shared_expert_intermediate_size") or 0),
                   inter=0, num_dense_layers=len(cfg.get("mlp_only_layers") or []))
    else:
        out.update(inter=int(req(cfg, "intermediate_size", name)), num_dense_layers=layers)
    return out


def _state_dtype(value) -> Dtype:
    """mamba_ssm_dtype / mamba_ssm_cache_dtype: float32 in Qwen3.5 / Nemotron-3; absent = the model dtype."""
    return Dtype.FP32 if str(value).lower() in ("float32", "fp32") else Dtype.BF16


_NEMOTRON_CODES = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}


def nemotron_h(cfg: dict, name: str) -> dict:
    """Nemotron-H / Nemotron-3: one block per layer, each a Mamba-2 mixer (M), attention (*), a MoE (E)
    or a squared-ReLU MLP (-); Nemotron-3 Super / Ultra run the experts in a latent space."""
    # the layer pattern is the layer list (Nemotron-3 Ultra configs have no num_hidden_layers)
    field = "layers_block_type" if cfg.get("layers_block_type") else "hybrid_override_pattern"
    layers = len(req(cfg, field, name))
    base = gqa_common(dict(cfg, num_hidden_layers=cfg.get("num_hidden_layers") or layers), name)
    if field == "layers_block_type":
        blocks = layer_list(cfg, field, name, tuple(_NEMOTRON_CODES.values()), base["num_layers"])
    else:
        blocks = [_NEMOTRON_CODES[c] for c in layer_list(cfg, field, name, tuple(_NEMOTRON_CODES), base["num_layers"])]
    n = Counter(blocks)
    heads, head_dim = int(req(cfg, "mamba_num_heads", name)), int(req(cfg, "mamba_head_dim", name))
    linear = LinearSpec(LinearKind.MAMBA2, num_k_heads=int(req(cfg, "n_groups", name)), num_v_heads=heads,
                        head_k_dim=int(req(cfg, "ssm_state_size", name)), head_v_dim=head_dim,
                        conv_kernel=int(cfg.get("conv_kernel") or 4), chunk=int(cfg.get("chunk_size") or 128),
                        state_dtype=_state_dtype(cfg.get("mamba_ssm_cache_dtype")))
    out = dict(base, linear=linear, num_linear_layers=n["mamba"], num_attn_free_layers=n["moe"] + n["mlp"],
               num_mlp_free_layers=n["mamba"] + n["attention"], num_dense_layers=n["mlp"], mlp_gated=False,
               inter=int(cfg.get("intermediate_size") or 0) if n["mlp"] else 0)
    if n["moe"]:
        moe_inter = int(req(cfg, "moe_intermediate_size", name))
        out.update(num_experts=int(req(cfg, "n_routed_experts", name)), topk=int(req(cfg, "num_experts_per_tok", name)),
                   moe_inter=moe_inter, moe_latent=int(cfg.get("moe_latent_size") or 0),
                   shared_inter=int(cfg.get("moe_shared_expert_intermediate_size") or 0)
                   * int(cfg.get("n_shared_experts") or 1))
    return out


def kimi_linear(cfg: dict, name: str) -> dict:
    """Kimi Linear / Kimi-K3: KDA layers with MLA full attention at `full_attn_layers`; latent MoE."""
    base = mla_common(cfg, name)
    lin = req(cfg, "linear_attn_config", name)
    layers = base["num_layers"]
    kda = len(lin.get("kda_layers") or [])
    if kda > layers:
        raise DataError(f"config of {name}: linear_attn_config.kda_layers lists {kda} layers; num_hidden_layers is {layers}")
    heads, dim = int(req(lin, "num_heads", name)), int(req(lin, "head_dim", name))
    linear = LinearSpec(LinearKind.KDA, num_k_heads=heads, num_v_heads=heads, head_k_dim=dim, head_v_dim=dim,
                        conv_kernel=int(lin.get("short_conv_kernel_size") or 4))
    moe_inter = int(req(cfg, "moe_intermediate_size", name))
    latent = int(cfg.get("routed_expert_hidden_size") or 0)
    return dict(base, linear=linear, num_linear_layers=kda, inter=int(cfg.get("intermediate_size") or 0),
                num_dense_layers=min(layers, int(cfg.get("first_k_dense_replace") or 0)),
                num_experts=int(req(cfg, "num_experts", name)),
                topk=int(cfg.get("num_experts_per_token") or req(cfg, "num_experts_per_tok", name)),
                moe_inter=moe_inter, moe_latent=latent if latent != base["hidden"] else 0,
                shared_inter=int(cfg.get("num_shared_experts") or 0) * moe_inter)
