"""ModelSpec: the architecture facts the estimator needs, parsed once from a Hugging Face config.

Everything is per model (not per GPU); the step model slices it by the parallel config.
Sizes are counts of elements; dtypes say how weights / KV are stored.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from perfdb.types import Dtype


class AttentionKind(str, Enum):
    GQA = "gqa"   # multi-head / grouped-query / multi-query attention over a K,V cache
    MLA = "mla"   # multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): compressed latent cache


@dataclass(frozen=True)
class ModelSpec:
    name: str                      # HF id or path it was loaded from
    architecture: str              # HF `architectures[0]`, e.g. "LlamaForCausalLM"
    attention: AttentionKind
    hidden: int
    num_layers: int
    num_heads: int
    num_kv_heads: int              # = num_heads for MLA (each head has its own expanded K/V)
    head_dim: int                  # GQA head dim; for MLA qk_nope + qk_rope
    vocab: int
    inter: int                     # dense MLP intermediate size (0 if no dense layer)
    num_dense_layers: int          # layers with a dense MLP (all of them for a dense model)
    # Mixture of experts (num_experts == 0: dense model)
    num_experts: int = 0
    topk: int = 0
    moe_inter: int = 0             # per-expert intermediate size
    shared_inter: int = 0          # total shared-expert intermediate size (n_shared * moe_inter)
    # MLA (0 unless attention is MLA)
    q_lora_rank: int = 0           # 0 = plain q projection
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # Sliding-window attention: `num_sliding_layers` layers attend to the last `sliding_window` tokens
    sliding_window: int = 0
    num_sliding_layers: int = 0
    attention_sinks: bool = False  # gpt-oss: a learned per-head sink logit (negligible cost, noted for fidelity)
    tie_embeddings: bool = False
    # Numerics
    attn_quant: Dtype = Dtype.BF16   # QKV/O projections (and MLA low-rank projections)
    gemm_quant: Dtype = Dtype.BF16   # dense MLP and shared-expert GEMMs
    moe_quant: Dtype = Dtype.BF16    # routed experts
    kv_dtype: Dtype = Dtype.BF16     # KV-cache storage

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers

    @property
    def num_full_layers(self) -> int:
        return self.num_layers - self.num_sliding_layers

    def with_quant(self, gemm_quant: Dtype | None = None, moe_quant: Dtype | None = None,
                   kv_dtype: Dtype | None = None, attn_quant: Dtype | None = None) -> "ModelSpec":
        """The same architecture with other numerics (the measured-run table names a base model plus
        its quantization). An override of gemm_quant also sets the attention projections unless
        attn_quant is given, as serving engines quantize every linear layer of such checkpoints."""
        return replace(
            self,
            gemm_quant=gemm_quant or self.gemm_quant,
            attn_quant=attn_quant or gemm_quant or self.attn_quant,
            moe_quant=moe_quant or self.moe_quant,
            kv_dtype=kv_dtype or self.kv_dtype,
        )

    def kv_elems_per_token_layer(self, layer_sliding: bool = False) -> int:
        """KV-cache elements stored per token per layer (MLA: latent + rope key, shared by heads)."""
        if self.attention == AttentionKind.MLA:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    def param_counts(self) -> dict[str, int]:
        """Parameter counts by group (elements), used for weight memory. Keys are fixed names."""
        h = self.hidden
        if self.attention == AttentionKind.MLA:
            q = (h * self.q_lora_rank + self.q_lora_rank * self.num_heads * self.head_dim) if self.q_lora_rank \
                else h * self.num_heads * self.head_dim
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + \
                self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            o = self.num_heads * self.v_head_dim * h
            attn = q + kv + o
        else:
            attn = h * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim + self.num_heads * self.head_dim * h
        dense_mlp = 3 * h * self.inter
        experts = 3 * h * self.moe_inter * self.num_experts
        shared = 3 * h * self.shared_inter
        router = h * self.num_experts
        return {
            "attention": attn * self.num_layers,
            "dense_mlp": dense_mlp * self.num_dense_layers,
            "experts": experts * self.num_moe_layers,
            "shared_experts": shared * self.num_moe_layers,
            "router": router * self.num_moe_layers,
            "embedding": self.vocab * h,
            "lm_head": 0 if self.tie_embeddings else self.vocab * h,
        }

    def total_params(self) -> int:
        return sum(self.param_counts().values())
