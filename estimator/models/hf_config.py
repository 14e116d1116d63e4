"""Parse a Hugging Face `config.json` (+ optional `hf_quant_config.json`) into a ModelSpec.

One parser per architecture family; the table SUPPORTED maps `architectures[0]` to it. An unknown
architecture raises NotFoundError listing the supported ones.
"""
from __future__ import annotations

from collections.abc import Callable

from estimator.models.spec import AttentionKind, ModelSpec
from perfdb.errors import DataError, NotFoundError
from perfdb.types import Dtype


def _req(cfg: dict, key: str, name: str):
    if key not in cfg or cfg[key] is None:
        raise DataError(f"config of {name} lacks required field {key!r}")
    return cfg[key]


def _gqa_common(cfg: dict, name: str) -> dict:
    heads = int(_req(cfg, "num_attention_heads", name))
    hidden = int(_req(cfg, "hidden_size", name))
    return dict(
        hidden=hidden,
        num_layers=int(_req(cfg, "num_hidden_layers", name)),
        num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        vocab=int(_req(cfg, "vocab_size", name)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attention=AttentionKind.GQA,
    )


def _sliding(cfg: dict, num_layers: int) -> dict:
    """Sliding-window layers: explicit `layer_types` (gpt-oss) or Mistral-style global window."""
    window = int(cfg.get("sliding_window") or 0)
    types = cfg.get("layer_types")
    if types:
        n = sum(1 for t in types if t == "sliding_attention")
        return dict(sliding_window=window if n else 0, num_sliding_layers=n if window else 0)
    if window and cfg.get("use_sliding_window", True):
        return dict(sliding_window=window, num_sliding_layers=num_layers)
    return {}


def _dense(cfg: dict, name: str) -> dict:
    base = _gqa_common(cfg, name)
    return dict(base, inter=int(_req(cfg, "intermediate_size", name)), num_dense_layers=base["num_layers"],
                **_sliding(cfg, base["num_layers"]))


def _moe_gqa(cfg: dict, name: str) -> dict:
    base = _gqa_common(cfg, name)
    experts = int(cfg.get("num_experts") or cfg.get("num_local_experts") or _req(cfg, "n_routed_experts", name))
    moe_inter = int(cfg.get("moe_intermediate_size") or _req(cfg, "intermediate_size", name))
    topk = int(cfg.get("num_experts_per_tok") or _req(cfg, "experts_per_token", name))
    # Qwen3-MoE: `mlp_only_layers` are dense, and layers off the `decoder_sparse_step` grid too; GLM-4.5
    # (DeepSeek-style keys): the first `first_k_dense_replace` layers, and `n_shared_experts` of the expert size.
    layers = base["num_layers"]
    step = int(cfg.get("decoder_sparse_step") or 1)
    dense_ids = set(cfg.get("mlp_only_layers") or []) | {i for i in range(layers) if (i + 1) % step != 0} \
        | set(range(int(cfg.get("first_k_dense_replace") or 0)))
    shared_inter = int(cfg.get("shared_intermediate_size") or cfg.get("shared_expert_intermediate_size")
                       or int(cfg.get("n_shared_experts") or 0) * moe_inter)
    return dict(base, num_experts=experts, topk=topk, moe_inter=moe_inter, shared_inter=shared_inter,
                inter=int(cfg.get("intermediate_size") or 0) if dense_ids else 0,
                num_dense_layers=len(dense_ids), attention_sinks=cfg.get("model_type") == "gpt_oss",
                **_sliding(cfg, layers))


def _deepseek(cfg: dict, name: str) -> dict:
    heads = int(_req(cfg, "num_attention_heads", name))
    nope, rope = int(_req(cfg, "qk_nope_head_dim", name)), int(_req(cfg, "qk_rope_head_dim", name))
    moe_inter = int(_req(cfg, "moe_intermediate_size", name))
    return dict(
        attention=AttentionKind.MLA, hidden=int(_req(cfg, "hidden_size", name)),
        num_layers=int(_req(cfg, "num_hidden_layers", name)), num_heads=heads, num_kv_heads=heads,
        head_dim=nope + rope, vocab=int(_req(cfg, "vocab_size", name)),
        inter=int(_req(cfg, "intermediate_size", name)),
        num_dense_layers=int(cfg.get("first_k_dense_replace") or 0),
        num_experts=int(_req(cfg, "n_routed_experts", name)), topk=int(_req(cfg, "num_experts_per_tok", name)),
        moe_inter=moe_inter, shared_inter=int(cfg.get("n_shared_experts") or 0) * moe_inter,
        q_lora_rank=int(cfg.get("q_lora_rank") or 0), kv_lora_rank=int(_req(cfg, "kv_lora_rank", name)),
        qk_rope_head_dim=rope, qk_nope_head_dim=nope, v_head_dim=int(_req(cfg, "v_head_dim", name)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )


SUPPORTED: dict[str, Callable[[dict, str], dict]] = {
    "LlamaForCausalLM": _dense,
    "MistralForCausalLM": _dense,
    "Qwen2ForCausalLM": _dense,
    "Qwen3ForCausalLM": _dense,
    "Qwen3MoeForCausalLM": _moe_gqa,
    "MixtralForCausalLM": _moe_gqa,
    "GptOssForCausalLM": _moe_gqa,
    "MiniMaxM2ForCausalLM": _moe_gqa,
    "Glm4MoeForCausalLM": _moe_gqa,
    "DeepseekV3ForCausalLM": _deepseek,
    "DeepseekV2ForCausalLM": _deepseek,
    # DeepSeek-V3.2: V3's MLA plus a lightning indexer that lets each query attend to its top 2,048 keys
    # (DSA). Priced as dense MLA: attention beyond 2k tokens of context is over-predicted (at 8k, decode
    # attention reads ~4x the keys DSA does; the indexer itself, an fp8 MQA over all keys, is ~6% of dense).
    "DeepseekV32ForCausalLM": _deepseek,
}


def _quant_from_config(cfg: dict) -> dict:
    """Numerics from `quantization_config` inside config.json."""
    q = cfg.get("quantization_config") or {}
    method = str(q.get("quant_method", "")).lower()
    if method == "fp8":
        d = Dtype.FP8_BLOCK if q.get("weight_block_size") else Dtype.FP8
        return dict(attn_quant=d, gemm_quant=d, moe_quant=d)
    if method == "mxfp4":  # gpt-oss: experts in mxfp4, attention and router in bf16
        return dict(moe_quant=Dtype.MXFP4)
    if method == "compressed-tensors":
        # Kimi-K2.x: int4 group-32 weight-only routed experts. No int4 Dtype: mxfp4 (4-bit weights,
        # 16-bit activations, one scale per 32) has the same bytes and math precision.
        groups = q.get("config_groups") or {}
        bits = {g.get("weights", {}).get("num_bits") for g in groups.values() if isinstance(g, dict)}
        if 4 in bits:
            return dict(moe_quant=Dtype.MXFP4)
        if 8 in bits:
            return dict(attn_quant=Dtype.FP8, gemm_quant=Dtype.FP8, moe_quant=Dtype.FP8)
    return {}


_ALGO = {"FP8": Dtype.FP8, "NVFP4": Dtype.NVFP4, "FP8_BLOCK_SCALES": Dtype.FP8_BLOCK, "W4A16_MXFP4": Dtype.MXFP4}


def _quant_from_modelopt(qcfg: dict) -> dict:
    """Numerics from ModelOpt's `hf_quant_config.json` (NVIDIA checkpoints)."""
    q = qcfg.get("quantization", qcfg)
    algo = _ALGO.get(str(q.get("quant_algo", "")).upper())
    out: dict = {}
    if algo is not None:
        excluded = " ".join(q.get("exclude_modules") or [])
        out = dict(gemm_quant=algo, moe_quant=algo,
                   attn_quant=Dtype.BF16 if "self_attn" in excluded else algo)
    if str(q.get("kv_cache_quant_algo", "")).upper() == "FP8":
        out["kv_dtype"] = Dtype.FP8
    return out


def parse_config(cfg: dict, name: str, quant_cfg: dict | None = None) -> ModelSpec:
    """Build a ModelSpec from config.json contents (multimodal wrappers: their `text_config`)."""
    if "text_config" in cfg and isinstance(cfg["text_config"], dict):
        cfg = cfg["text_config"]
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else ""
    parser = SUPPORTED.get(arch)
    if parser is None:
        raise NotFoundError(f"model {name}: unsupported architecture {arch or '(none)'!r}; "
                            f"supported: {', '.join(sorted(SUPPORTED))}")
    fields = parser(cfg, name)
    fields.update(_quant_from_config(cfg))
    if quant_cfg:
        fields.update(_quant_from_modelopt(quant_cfg))
    return ModelSpec(name=name, architecture=arch, **fields)
