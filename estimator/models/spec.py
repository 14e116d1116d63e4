"""ModelSpec: the architecture facts the estimator needs, parsed once from a Hugging Face config.

Everything is per model (not per GPU); the step model slices it by the parallel config.
Sizes are counts of elements; dtypes say how weights / KV are stored.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum

from perfdb.errors import InputError
from perfdb.ops.base import act_bytes
from perfdb.ops.dsv4_module import compressor_width
from perfdb.ops.sparse import index_cache_bytes_per_token
from perfdb.types import Dtype, LinearKind, SparseKind

# sizes every model has (the others may be 0: no dense MLP, no experts, no MLA, no sliding window)
_POSITIVE = frozenset({"hidden", "num_layers", "num_heads", "num_kv_heads", "head_dim", "vocab"})


class AttentionKind(str, Enum):
    GQA = "gqa"   # multi-head / grouped-query / multi-query attention over a K,V cache
    MLA = "mla"   # multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): compressed latent cache


@dataclass(frozen=True)
class LinearSpec:
    """Linear-attention / SSM mixer geometry (whole model, before tensor parallelism)."""

    kind: LinearKind
    num_k_heads: int           # GDN / KDA key heads; Mamba-2 B/C groups (n_groups)
    num_v_heads: int           # value heads = state heads (Mamba-2 mamba_num_heads)
    head_k_dim: int            # Mamba-2: ssm_state_size
    head_v_dim: int            # Mamba-2: mamba_head_dim
    conv_kernel: int = 4
    chunk: int = 64            # fla chunk size 64; Mamba-2 SSD `chunk_size` from the config
    state_dtype: Dtype = Dtype.FP32

    def in_proj_width(self) -> int:
        """Outputs of the fused input projection: q, k (B, C), v (x), the output gate (z) and per-head
        scalars (GDN: beta, decay; Mamba-2: dt); KDA's decay is per channel (a full-rank nv x dk gate)."""
        qk = 2 * self.num_k_heads * self.head_k_dim
        vz = 2 * self.num_v_heads * self.head_v_dim
        per_head = {LinearKind.GDN: 2 * self.num_v_heads, LinearKind.MAMBA2: self.num_v_heads,
                    LinearKind.KDA: self.num_v_heads * (self.head_k_dim + 1)}[self.kind]
        return qk + vz + per_head

    def out_width(self) -> int:
        return self.num_v_heads * self.head_v_dim

    def state_bytes_per_layer(self, tp: int = 1) -> float:
        """Recurrent state + conv window of one request in one layer, on one of `tp` GPUs."""
        state = self.num_v_heads * self.head_k_dim * self.head_v_dim * act_bytes(self.state_dtype)
        conv = (2 * self.num_k_heads * self.head_k_dim + self.num_v_heads * self.head_v_dim) * (self.conv_kernel - 1) * 2.0
        return (state + conv) / tp


@dataclass(frozen=True)
class SparseSpec:
    """Sparse-attention indexer (DSA, MSA): each query attends its `topk` best cache entries."""

    kind: SparseKind
    topk: int                  # entries each query attends (MSA: topk blocks x block size)
    index_heads: int
    index_head_dim: int
    compress: int = 1          # tokens per cache entry (DeepSeek-V4 CSA layers keep one entry per 4 tokens)

    def index_bytes_per_token(self) -> float:
        return index_cache_bytes_per_token(self.kind, self.index_head_dim) / self.compress


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
    # MLA (0 unless attention is MLA; q_lora_rank also for DeepSeek-V4's GQA-form attention)
    q_lora_rank: int = 0           # 0 = plain q projection
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # Sliding-window attention: `num_sliding_layers` layers attend to the last `sliding_window` tokens
    sliding_window: int = 0
    num_sliding_layers: int = 0
    attention_sinks: bool = False  # gpt-oss: a learned per-head sink logit (negligible cost, noted for fidelity)
    attn_output_gate: bool = False  # Qwen3.5: q_proj also emits a per-head sigmoid gate (doubles q's width)
    tie_embeddings: bool = False
    # Hybrid layouts. Layer counts are over num_layers; a layer may lack a token mixer (Nemotron-H MLP /
    # MoE blocks, DeciLM no-op attention) or an MLP (Nemotron-H Mamba / attention blocks).
    num_linear_layers: int = 0     # linear-attention / SSM mixers (no per-token KV)
    linear: LinearSpec | None = None
    num_sparse_layers: int = 0     # softmax layers with a top-k indexer (DSA / MSA / V4 CSA)
    sparse: SparseSpec | None = None
    num_compressed_layers: int = 0  # DeepSeek-V4 HCA: dense attention over one cache entry per kv_compress tokens
    kv_compress: int = 1
    num_attn_free_layers: int = 0
    num_mlp_free_layers: int = 0
    mlp_gated: bool = True         # SwiGLU (3 matrices) or squared-ReLU up/down (2, Nemotron-H)
    moe_latent: int = 0            # latent MoE (Nemotron-3 Super, Kimi-K3): experts work at this width
    hc_mult: int = 0               # DeepSeek-V4 mHC: residual streams per token (0 = plain residual)
    hc_sinkhorn_iters: int = 0     # and the Sinkhorn passes that normalise its residual mix
    # DeepSeek-V4 attention (DeepSeek's inference model.py): q through the q_lora_rank bottleneck, one
    # head_dim entry per token that is both key and value, a grouped low-rank output projection, and
    # the sliding window every compressing (CSA / HCA) layer attends beside its compressed entries
    kv_shared: bool = False        # one cache entry per token serves as key and value (K = V)
    o_groups: int = 0              # 0 = plain o_proj; else heads in o_groups groups, each -> o_lora_rank
    o_lora_rank: int = 0
    compressed_window: int = 0     # window tokens the CSA / HCA layers also attend and cache (0 = none)
    # Numerics
    attn_quant: Dtype = Dtype.BF16   # QKV/O projections (and MLA low-rank projections)
    gemm_quant: Dtype = Dtype.BF16   # dense MLP and shared-expert GEMMs
    moe_quant: Dtype = Dtype.BF16    # routed experts
    kv_dtype: Dtype = Dtype.BF16     # KV-cache storage
    # per-tensor FP8 GEMMs quantize their activations on every call (a checkpoint's activation_scheme
    # "dynamic"; a run labelled fp8 that serves a block-scaled checkpoint) rather than with static
    # input scales (ModelOpt): the flow the reference tool's TensorRT-LLM fp8 rows time (perfdb.served)
    fp8_dynamic_activations: bool = False

    def __post_init__(self) -> None:
        """A config with a non-positive size (a negative hidden size, 0 heads) would give negative or infinite
        latencies downstream: refuse it here, naming the field."""
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int:
                continue
            least = 1 if f.name in _POSITIVE else 0
            if value < least:
                raise InputError(f"model {self.name}: {f.name} = {value}; must be {'>= 1' if least else '>= 0'}")
        if self.num_kv_heads > self.num_heads or self.num_heads % self.num_kv_heads:
            raise InputError(f"model {self.name}: {self.num_heads} attention heads are not a multiple of "
                             f"{self.num_kv_heads} KV heads")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return (self.num_layers - self.num_dense_layers - self.num_mlp_free_layers) if self.is_moe else 0

    @property
    def num_attn_layers(self) -> int:
        """Softmax-attention layers (full, sliding, sparse, compressed): the ones with q/k/v projections."""
        return self.num_layers - self.num_linear_layers - self.num_attn_free_layers

    @property
    def num_full_layers(self) -> int:
        """Dense full-context attention layers (every token of every request in the KV cache)."""
        return self.num_attn_layers - self.num_sliding_layers - self.num_sparse_layers - self.num_compressed_layers

    @property
    def mlp_mats(self) -> int:
        return 3 if self.mlp_gated else 2

    @property
    def expert_hidden(self) -> int:
        return self.moe_latent or self.hidden

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

    @property
    def num_window_layers(self) -> int:
        """Layers holding a sliding-window cache: the sliding layers, plus DeepSeek-V4's CSA / HCA layers
        (each keeps the last `compressed_window` tokens beside its compressed entries)."""
        extra = self.num_sparse_layers + self.num_compressed_layers if self.compressed_window else 0
        return self.num_sliding_layers + extra

    @property
    def kv_per_head(self) -> int:
        """Cache vectors per KV head and token: 2 (K and V), 1 where one entry is both (DeepSeek-V4)."""
        return 1 if self.kv_shared else 2

    def kv_elems_per_token_layer(self, layer_sliding: bool = False) -> int:
        """KV-cache elements stored per token per layer (MLA: latent + rope key, shared by heads)."""
        if self.attention == AttentionKind.MLA:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.kv_per_head * self.num_kv_heads * self.head_dim

    def growing_kv_layers(self) -> float:
        """Layer-equivalents whose cache grows with every token: full and sparse layers (sparse ones keep
        every token; DeepSeek-V4 CSA one entry per `compress`), compressed layers 1/kv_compress each.
        Linear and sliding layers are not counted: their per-request state is bounded."""
        sparse = self.num_sparse_layers / (self.sparse.compress if self.sparse else 1)
        return self.num_full_layers + sparse + self.num_compressed_layers / max(self.kv_compress, 1)

    def index_bytes_per_token(self) -> float:
        """Sparse-attention index-cache bytes per token over the whole model (0 without an indexer)."""
        return self.sparse.index_bytes_per_token() * self.num_sparse_layers if self.sparse else 0.0

    def state_bytes_per_request(self, tp: int = 1) -> float:
        """Recurrent state of one request over every linear layer, on one of `tp` GPUs (fixed size)."""
        return self.linear.state_bytes_per_layer(tp) * self.num_linear_layers if self.linear else 0.0

    def index_params(self) -> int:
        """Indexer weights of one sparse layer (DeepSeek's V3.2 / V4 inference model.py): its query heads
        from the q_lora_rank bottleneck (the hidden state without one), per-head weights from the hidden
        state, and its key: one projection (DSA, MSA) or, in a compressing layer, its own overlapping
        compressor (wkv and wgate, hidden -> 2 x index_head_dim each)."""
        sp, h = self.sparse, self.hidden
        if sp is None:
            return 0
        key = h * sp.index_head_dim if sp.compress == 1 else 2 * h * compressor_width(sp.compress, sp.index_head_dim)
        return (self.q_lora_rank or h) * sp.index_heads * sp.index_head_dim + h * sp.index_heads + key

    def compressor_params(self) -> int:
        """DeepSeek-V4 KV compressors over the model: wkv and wgate (hidden -> width) per CSA / HCA layer."""
        csa = self.num_sparse_layers * compressor_width(self.sparse.compress, self.head_dim) if self.sparse \
            and self.sparse.compress > 1 else 0
        hca = self.num_compressed_layers * compressor_width(self.kv_compress, self.head_dim)
        return 2 * self.hidden * (csa + hca)

    def attention_params(self) -> tuple[int, int]:
        """Attention weights of one attention layer, (replicated on every TP rank, split by TP) elements:
        DeepSeek-V4 (o_groups): wq_a and wkv replicated (vLLM fuses them, ReplicatedLinear), wq_b, the
        grouped wo_a (o_groups x heads*head_dim/o_groups x o_lora_rank) and wo_b split; else the q / k /
        v / o projections, all counted as split (weights_per_gpu splits KV heads up to their count)."""
        h, hd, heads = self.hidden, self.head_dim, self.num_heads
        if self.o_groups:
            o = heads * hd * self.o_lora_rank + self.o_groups * self.o_lora_rank * h
            return h * (self.q_lora_rank + self.kv_per_head * self.num_kv_heads * hd), \
                self.q_lora_rank * heads * hd + o
        q_heads = heads * (2 if self.attn_output_gate else 1)
        return 0, h * (q_heads + self.kv_per_head * self.num_kv_heads) * hd + heads * hd * h

    def mhc_params(self) -> int:
        """mHC mixing weights (fp32): per layer, per sub-layer, (2 + hc) x hc logits from the hc x hidden
        streams; hc more for the head's final mix."""
        hc = self.hc_mult
        return (2 * self.num_layers * (2 + hc) * hc + hc) * hc * self.hidden if hc else 0

    def param_counts(self) -> dict[str, int]:
        """Parameter counts by group (elements), used for weight memory. Keys are fixed names. Left out:
        norms, rope tables, attention sinks, the compressors' position biases (< 0.01%)."""
        h = self.hidden
        if self.attention == AttentionKind.MLA:
            q = (h * self.q_lora_rank + self.q_lora_rank * self.num_heads * self.head_dim) if self.q_lora_rank \
                else h * self.num_heads * self.head_dim
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + \
                self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            o = self.num_heads * self.v_head_dim * h
            attn = q + kv + o
        else:
            attn = sum(self.attention_params())
        index = self.index_params() * self.num_sparse_layers + self.compressor_params()
        lin = h * (self.linear.in_proj_width() + self.linear.out_width()) if self.linear else 0
        mats = self.mlp_mats
        dense_mlp = mats * h * self.inter
        experts = mats * self.expert_hidden * self.moe_inter * self.num_experts
        shared = mats * h * self.shared_inter
        router = h * self.num_experts + (2 * h * self.moe_latent if self.moe_latent else 0)
        return {
            "attention": attn * self.num_attn_layers + lin * self.num_linear_layers + index,
            "mhc": self.mhc_params(),
            "dense_mlp": dense_mlp * self.num_dense_layers,
            "experts": experts * self.num_moe_layers,
            "shared_experts": shared * self.num_moe_layers,
            "router": router * self.num_moe_layers,
            "embedding": self.vocab * h,
            "lm_head": 0 if self.tie_embeddings else self.vocab * h,
        }

    def total_params(self) -> int:
        return sum(self.param_counts().values())
