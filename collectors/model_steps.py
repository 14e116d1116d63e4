"""Whole-model step timing: a real architecture (Hugging Face transformers) with random weights, timed
as one engine iteration, to check the estimator's op composition against silicon (the "chain check").

The model is built from its config.json with fewer layers (op shapes do not depend on the layer count)
and run the way the torch backend's collectors run each op, so that a difference between the measured
step and the estimator's sum of measured ops is composition, not kernel choice:
- attention through a registered attention function (`servecast`): prefill is causal SDPA over the new
  tokens (collectors/ops/attention_prefill.py); decode is our paged-decode kernel (Triton on GPU, the
  torch reference on CPU; collectors/ops/attention_decode.py) reading the static KV cache in place
  as pages;
- MLA (DeepSeek-V3 / Kimi-K2 layouts) decodes in the weight-absorbed form over the latent cache
  (collectors/ops/mla.py), as serving engines do, instead of transformers' expand-the-whole-cache path;
- MoE experts through transformers' grouped_mm experts (torch._grouped_mm, as collectors/ops/moe.py);
- logits for the last position only (engines compute no logits for prompt tokens).
Prefill runs without a cache (prefix 0); decode runs one new token per request against a static cache
of `kv` tokens filled with random values. Each step is timed with the collectors' one timer (a CUDA
graph replayed between CUDA events on GPU; perf_counter on CPU).

Needs torch and transformers (>= 5.0: grouped_mm experts, AttentionInterface).
"""
from __future__ import annotations

import copy
import inspect
import types
from dataclasses import dataclass

from collectors.registry import Unsupported
from collectors.timer import TimerConfig, Timing, time_op

ATTENTION_NAME = "servecast"
PAGE = 16  # tokens per page the decode kernel reads the static cache in (collectors/ops/attention_decode.py)


@dataclass(frozen=True)
class StepPoint:
    phase: str   # "prefill" (batch x seq new tokens, no cache) or "decode" (batch requests, kv cached tokens each)
    batch: int
    seq: int     # prefill: new tokens per request; decode: cached tokens per request

    @property
    def label(self) -> str:
        return f"{self.phase} b={self.batch} {'isl' if self.phase == 'prefill' else 'kv'}={self.seq}"


def truncated_config(config: dict, layers: int) -> dict:
    """The config with `layers` decoder layers; a model whose first layers are dense (DeepSeek-V3's
    first_k_dense_replace) keeps one dense layer and the rest MoE, so both kinds stay in the step.
    A multimodal config's language model (`text_config`) is returned on its own."""
    cfg = copy.deepcopy(config.get("text_config", config))
    if layers >= int(cfg["num_hidden_layers"]):
        return cfg
    cfg["num_hidden_layers"] = layers
    if int(cfg.get("first_k_dense_replace", 0) or 0) > 0:
        cfg["first_k_dense_replace"] = 1
    for key in ("layer_types", "mlp_only_layers"):
        if isinstance(cfg.get(key), list):
            cfg[key] = [x for x in cfg[key] if not isinstance(x, int) or x < layers] if key == "mlp_only_layers" \
                else cfg[key][:layers]
    cfg.pop("quantization_config", None)  # random bf16 weights: the checkpoint's quantization does not apply
    return cfg


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, _attention)
    # our kernels take lengths, not masks: transformers builds none (no extra kernel in the step)
    AttentionMaskInterface.register(ATTENTION_NAME, lambda *args, **kwargs: None)


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """query [b, h, q, d], key/value [b, kvh, L, d]; returns ([b, q, h, dv], None) as transformers expects."""
    import torch

    if query.shape[2] > 1:  # prefill: causal over the new tokens (no cached prefix in these steps)
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scaling, enable_gqa=query.shape[1] != key.shape[1])
        return out.transpose(1, 2), None
    lens, table = kwargs.get("servecast_kv_lens"), kwargs.get("servecast_block_table")
    if lens is None or table is None:
        raise Unsupported("decode through the servecast attention needs servecast_kv_lens / servecast_block_table")
    b, kvh, length, dim = key.shape
    # the static cache [b, kvh, L, d] read in place as pages [b*kvh*L/PAGE, PAGE, kvh, d]: page p of
    # request r starts at r*kvh*L*d + p*PAGE*d, tokens are d apart, heads L*d apart
    per_req = length // PAGE
    pages = (b - 1) * kvh * per_req + per_req  # the block table names head 0's pages; heads offset from them
    k_pages = key.as_strided((pages, PAGE, kvh, dim), (PAGE * dim, dim, length * dim, 1))
    v_pages = value.as_strided((pages, PAGE, kvh, dim), (PAGE * dim, dim, length * dim, 1))
    q = query[:, :, 0, :]
    if query.is_cuda:
        from collectors.ops.paged_decode_triton import paged_decode

        out = paged_decode(q, k_pages, v_pages, table, lens, max_kv_len=length)
    else:
        from collectors.ops.attention_decode import reference

        out = reference(q, k_pages, v_pages, table, lens)
    return out.unsqueeze(1), None


def cache_kwarg(model) -> str:
    """The name transformers' forward takes the KV cache under: `past_key_values` up to 5.2x, `cache` after."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _mla_decode_forward(self, hidden_states, position_embeddings, attention_mask, **kwargs):
    """DeepSeek-V3 attention with the weight-absorbed decode (prefill keeps transformers' expanded form)."""
    import torch

    b, s = hidden_states.shape[:-1]
    past_key_values = kwargs.get("cache", kwargs.get("past_key_values"))
    if s > 1 or past_key_values is None:
        return self._servecast_expanded_forward(hidden_states, position_embeddings, attention_mask, **kwargs)
    from transformers.models.deepseek_v3 import modeling_deepseek_v3 as hf

    nope, rope, latent, vdim = self.qk_nope_head_dim, self.qk_rope_head_dim, self.kv_lora_rank, self.v_head_dim
    q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states))) if self.q_lora_rank is not None \
        else self.q_proj(hidden_states)
    q = q.view(b, s, -1, nope + rope).transpose(1, 2)                       # [b, h, 1, nope + rope]
    q_nope, q_rot = torch.split(q, [nope, rope], dim=-1)
    ckv = self.kv_a_proj_with_mqa(hidden_states)
    c, k_rot = torch.split(ckv, [latent, rope], dim=-1)
    c = self.kv_a_layernorm(c).view(b, 1, s, latent)
    k_rot = k_rot.view(b, 1, s, rope)
    cos, sin = position_embeddings
    rotate = hf.apply_rotary_pos_emb_interleave if self.config.rope_interleave else hf.apply_rotary_pos_emb
    q_rot, k_rot = rotate(q_rot, k_rot, cos, sin)
    c_all, kr_all = past_key_values.update(c, k_rot, self.layer_idx)    # [b, 1, L, latent], [b, 1, L, rope]
    heads = q.shape[1]
    w = self.kv_b_proj.weight.view(heads, nope + vdim, latent)
    # absorb: q_nope -> latent space, one [b, nope] x [nope, latent] product per head
    q_lat = torch.bmm(q_nope[:, :, 0].transpose(0, 1), w[:, :nope]).transpose(0, 1)          # [b, h, latent]
    scores = torch.bmm(q_lat, c_all[:, 0].transpose(1, 2)) + torch.bmm(q_rot[:, :, 0], kr_all[:, 0].transpose(1, 2))
    probs = (scores.float() * self.scaling).softmax(-1).to(q_lat.dtype)                      # [b, h, L]
    out_lat = torch.bmm(probs, c_all[:, 0])                                                  # [b, h, latent]
    out = torch.bmm(out_lat.transpose(0, 1), w[:, nope:].transpose(1, 2)).transpose(0, 1)   # [b, h, v]
    return self.o_proj(out.reshape(b, s, heads * vdim)), None


def _patch_mla(model) -> None:
    for module in model.modules():
        if type(module).__name__ == "DeepseekV3Attention" and not hasattr(module, "_servecast_expanded_forward"):
            module._servecast_expanded_forward = module.forward
            module.forward = types.MethodType(_mla_decode_forward, module)


def build_model(config: dict, device: str):
    """A causal LM of this config with random bf16 weights on `device`, wired to the collectors' kernels."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    _register_attention()
    cfg_dict = dict(config)
    model_type = cfg_dict.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32  # CPU hosts: native fp32, as the collectors
    kwargs = {"attn_implementation": ATTENTION_NAME, "dtype": dtype}
    if getattr(cfg, "num_experts", None) or getattr(cfg, "n_routed_experts", None) or getattr(cfg, "num_local_experts", None):
        kwargs["experts_implementation"] = "grouped_mm"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, **kwargs)
    model.eval()
    _patch_mla(model)
    return model


def decode_inputs(model, point: StepPoint, device: str):
    """(forward kwargs) of one decode step against a static cache holding `point.seq` random tokens."""
    import torch
    from transformers import StaticCache

    b, kv = point.batch, point.seq
    mla = any(type(m).__name__ == "DeepseekV3Attention" for m in model.modules())
    length = kv + 1 if mla else -(-(kv + 1) // PAGE) * PAGE  # MLA attends the whole cache: no padding
    cache = StaticCache(config=model.config, max_cache_len=length)
    ids = torch.randint(0, model.config.vocab_size, (b, 1), device=device)
    pos = torch.full((1,), kv, dtype=torch.long, device=device)
    kwargs = {"input_ids": ids, cache_kwarg(model): cache, "cache_position": pos, "position_ids": pos.expand(b, 1),
              "use_cache": True, "logits_to_keep": 1}
    if not mla:
        kvh = model.config.num_key_value_heads
        per_req = length // PAGE
        rows = torch.arange(b, device=device, dtype=torch.int32)[:, None] * (kvh * per_req)
        kwargs["servecast_block_table"] = rows + torch.arange(per_req, device=device, dtype=torch.int32)[None, :]
        kwargs["servecast_kv_lens"] = torch.full((b,), kv + 1, dtype=torch.int32, device=device)
    with torch.no_grad():
        model(**kwargs)  # allocates the cache layers
    for layer in cache.layers:
        layer.keys.normal_()   # random cache contents (timing on zeros flatters tensor cores)
        layer.values.normal_()
        # every timed step (and every CUDA-graph replay) writes the new token at position kv: transformers'
        # own update advances a counter per call and would run past the cache
        layer.update = types.MethodType(_update_at(pos), layer)
        layer.cumulative_length.fill_(kv)  # what transformers' masks read as the cached length
    return kwargs


def _update_at(pos):
    def update(self, key_states, value_states, *args, **kwargs):
        self.keys.index_copy_(2, pos, key_states)
        self.values.index_copy_(2, pos, value_states)
        return self.keys, self.values
    return update


def step_fn(model, point: StepPoint, device: str):
    """One prefill or decode step of `model` as a callable (its inputs built once; see the module docstring)."""
    import torch

    if point.phase == "prefill":
        ids = torch.randint(0, model.config.vocab_size, (point.batch, point.seq), device=device)
        kwargs = {"input_ids": ids, "use_cache": False, "logits_to_keep": 1}
    elif point.phase == "decode":
        kwargs = decode_inputs(model, point, device)
    else:
        raise Unsupported(f"unknown step phase {point.phase!r}; accepted: prefill, decode")

    def step():
        with torch.no_grad():
            return model(**kwargs).logits
    return step


def time_step(model, point: StepPoint, device: str, timer: TimerConfig) -> Timing:
    """Time one prefill or decode step of `model` with the collectors' timer."""
    return time_op(step_fn(model, point, device), device, timer)


# CPU-sized widths of every architecture (the rehearsal and the tests): the same kinds of layers
_TINY_WIDTHS = dict(hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, vocab_size=128, num_experts=8, n_routed_experts=8,
                    num_experts_per_tok=2, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8,
                    qk_nope_head_dim=8, v_head_dim=8)


def tiny_config(cfg: dict) -> dict:
    """A CPU-sized copy of an architecture: the same layer kinds and counts, tiny widths."""
    out = {k: _TINY_WIDTHS.get(k, v) for k, v in cfg.items()}
    if out.get("model_type") == "deepseek_v3":   # 8 experts: 2 groups of 4; MLA has as many KV heads as heads
        out.update(n_group=2, topk_group=1, num_key_value_heads=out["num_attention_heads"])
    return out
