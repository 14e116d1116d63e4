"""Parse a Hugging Face `config.json` (+ optional `hf_quant_config.json`) into a ModelSpec.

One parser per architecture family; the table SUPPORTED maps `architectures[0]` to it. An unknown
architecture raises NotFoundError listing the supported ones.
"""
from __future__ import annotations

from collections.abc import Callable

from estimator.models import hybrid_configs as hy
from estimator.models import layout_configs as lay
from estimator.models.hybrid_configs import gqa_common as _gqa_common
from estimator.models.hybrid_configs import req as _req
from estimator.models.spec import ModelSpec
from perfdb.errors import DataError, InputError, NotFoundError
from perfdb.types import Dtype


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
    base = hy.mla_common(cfg, name)
    return dict(base, **hy.deepseek_moe(cfg, name, base["num_layers"]))


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
    # multimodal wrappers and renamed text models whose language model is one of the above
    "Qwen3VLForConditionalGeneration": _dense,
    "Qwen3VLMoeForConditionalGeneration": _moe_gqa,
    "MiMoForCausalLM": _dense,
    "Step3p7FlashForCausalLM": _moe_gqa,
    "KimiK25ForConditionalGeneration": _deepseek,
    # DeepSeek-V3.2 and GLM-5.x: MLA + the DSA lightning indexer (each query attends its top 2,048 keys)
    "DeepseekV32ForCausalLM": hy.deepseek_dsa,
    "GlmMoeDsaForCausalLM": hy.deepseek_dsa,
    # hybrid linear attention
    "Qwen3_5ForConditionalGeneration": hy.qwen35,
    "Qwen3_5MoeForConditionalGeneration": hy.qwen35,
    "Qwen3NextForCausalLM": hy.qwen35,
    "NemotronHForCausalLM": hy.nemotron_h,
    "KimiLinearForCausalLM": hy.kimi_linear,
    "KimiK3ForConditionalGeneration": hy.kimi_linear,
    # interleaved local / compressed / sparse attention, heterogeneous layers
    "Llama4ForConditionalGeneration": lay.llama4,
    "Llama4ForCausalLM": lay.llama4,
    "Gemma4ForConditionalGeneration": lay.gemma4,
    "MiMoV2FlashForCausalLM": lay.mimo_v2,
    "MiniMaxM3ForCausalLM": lay.minimax_m3,
    "MiniMaxM3SparseForConditionalGeneration": lay.minimax_m3,
    "DeepseekV4ForCausalLM": lay.deepseek_v4,
    "DeciLMForCausalLM": lay.decilm,
}


def _compressed_tensors(q: dict) -> dict:
    """compressed-tensors recipes: int4 group-32 weight-only experts (Kimi-K2.x, `type: int`), mxfp4
    weight-only (Kimi-K3, `type: float`, group 32), nvfp4 (4-bit float weights and activations, group 16),
    8-bit weights: fp8. The ignore lists keep attention and shared experts in bf16 in these checkpoints."""
    groups = [g for g in (q.get("config_groups") or {}).values() if isinstance(g, dict)]
    for g in groups:
        w, a = g.get("weights") or {}, g.get("input_activations") or {}
        if w.get("num_bits") == 4:
            if w.get("type") == "int":
                return dict(moe_quant=Dtype.INT4)
            if a.get("num_bits") == 4:
                return dict(moe_quant=Dtype.NVFP4, gemm_quant=Dtype.NVFP4)
            return dict(moe_quant=Dtype.MXFP4)
        if w.get("num_bits") == 8:
            return dict(attn_quant=Dtype.FP8, gemm_quant=Dtype.FP8, moe_quant=Dtype.FP8)
    return {}


def _quant_from_config(cfg: dict) -> dict:
    """Numerics from `quantization_config` inside config.json."""
    q = cfg.get("quantization_config") or {}
    method = str(q.get("quant_method", "")).lower()
    out: dict = {}
    if method == "fp8":
        d = Dtype.FP8_BLOCK if q.get("weight_block_size") else Dtype.FP8
        out = dict(attn_quant=d, gemm_quant=d, moe_quant=d,
                   fp8_dynamic_activations=str(q.get("activation_scheme", "dynamic")).lower() == "dynamic")
    elif method == "mxfp4":  # gpt-oss: experts in mxfp4, attention and router in bf16
        out = dict(moe_quant=Dtype.MXFP4)
    elif method == "compressed-tensors":
        out = _compressed_tensors(q)
    elif method == "modelopt" and q.get("quant_algo"):
        out = _quant_from_modelopt(q)
    elif method == "modelopt":
        out = _compressed_tensors(q)
    if str(cfg.get("expert_dtype", "")).lower() == "fp4":   # DeepSeek-V4: routed experts in fp4 (e2m1, ue8m0 / 32)
        out["moe_quant"] = Dtype.MXFP4
    return out


_ALGO = {"FP8": Dtype.FP8, "NVFP4": Dtype.NVFP4, "FP8_BLOCK_SCALES": Dtype.FP8_BLOCK, "W4A16_MXFP4": Dtype.MXFP4,
         "MXFP8": Dtype.FP8, "W4A8_MXFP4_MXFP8": Dtype.W4A8_MXFP4, "W4A16_AWQ": Dtype.INT4, "INT4_AWQ": Dtype.INT4,
         # nvfp4 weights, 16-bit activations: 4-bit weight-only with 16-bit math, as int4 (same 0.5625 B/weight)
         "W4A16_NVFP4": Dtype.INT4}


_ATTN_MODULES = ("self_attn", "q_proj", "k_proj", "v_proj", "o_proj", "qkv", "in_proj", "out_proj", "mixer", ".attn.")


def _mixed_precision(q: dict) -> dict:
    """ModelOpt MIXED_PRECISION: one algorithm per module; the most common one among routed experts sets
    moe_quant, among attention / mixer projections attn_quant, among the other linear layers gemm_quant."""
    counts: dict[str, dict[Dtype, int]] = {"moe_quant": {}, "attn_quant": {}, "gemm_quant": {}}
    for module, spec in (q.get("quantized_layers") or {}).items():
        algo = _ALGO.get(str((spec or {}).get("quant_algo", "")).upper())
        if algo is None or "lm_head" in module:
            continue
        if "experts" in module and "shared" not in module:
            target = "moe_quant"
        else:
            target = "attn_quant" if any(a in module for a in _ATTN_MODULES) else "gemm_quant"
        counts[target][algo] = counts[target].get(algo, 0) + 1
    return {field: max(c, key=c.get) for field, c in counts.items() if c}


def _quant_from_modelopt(qcfg: dict) -> dict:
    """Numerics from ModelOpt's `hf_quant_config.json` (NVIDIA checkpoints)."""
    q = qcfg.get("quantization", qcfg)
    name = str(q.get("quant_algo", "")).upper()
    algo = _ALGO.get(name)
    out: dict = {}
    if name == "MIXED_PRECISION":
        out = _mixed_precision(q)
    elif algo is not None:
        excluded = " ".join(q.get("exclude_modules") or q.get("ignore") or [])
        out = dict(gemm_quant=algo, moe_quant=algo,
                   attn_quant=Dtype.BF16 if "self_attn" in excluded or ".attn." in excluded else algo)
    if str(q.get("kv_cache_quant_algo", "")).upper() == "FP8":
        out["kv_dtype"] = Dtype.FP8
    return out


def _text_config(cfg: dict) -> tuple[dict, str]:
    """The language model's config and its architecture. Multimodal wrappers (Qwen3-VL, Qwen3.5,
    Llama-4, Gemma-4, Kimi-K2.5 / K3) nest it under `text_config`, often without `architectures`: the
    wrapper's architecture names the family then; the wrapper's quantization and tied-embedding
    settings apply where the text config has none."""
    outer = (cfg.get("architectures") or [""])[0]
    inner = cfg.get("text_config")
    if not isinstance(inner, dict):
        return cfg, outer
    merged = dict(inner)
    for key in ("quantization_config", "tie_word_embeddings"):
        if merged.get(key) is None and cfg.get(key) is not None:
            merged[key] = cfg[key]
    own = (inner.get("architectures") or [""])[0]
    return merged, own if own in SUPPORTED else outer


def parse_config(cfg: dict, name: str, quant_cfg: dict | None = None) -> ModelSpec:
    """Build a ModelSpec from config.json contents (multimodal wrappers: their `text_config`)."""
    if not isinstance(cfg, dict):
        raise DataError(f"config of {name} is not a JSON object")
    cfg, arch = _text_config(cfg)
    parser = SUPPORTED.get(arch)
    if parser is None:
        raise NotFoundError(f"model {name}: unsupported architecture {arch or '(none)'!r}; "
                            f"supported: {', '.join(sorted(SUPPORTED))}")
    try:
        fields = parser(cfg, name)
    except ZeroDivisionError:   # a size derived from another one that is 0 (head_dim = hidden / 0 heads)
        zero = [k for k, v in cfg.items() if isinstance(v, int) and not isinstance(v, bool) and v == 0]
        raise InputError(f"model {name}: config sizes must be >= 1, got 0 for {', '.join(zero) or 'a size'}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:   # a field of the wrong type or shape
        raise DataError(f"config of {name} ({arch}): malformed field: {exc}") from None
    fields.update(_quant_from_config(cfg))
    if quant_cfg:
        fields.update(_quant_from_modelopt(quant_cfg))
    return ModelSpec(name=name, architecture=arch, **fields)
