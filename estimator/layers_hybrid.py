"""Op composition of the 2026 layer kinds, for estimator.layers.LayerComposer: linear-attention / SSM
mixers, sparse (indexer + top-k) attention, DeepSeek-V4 compressed attention and mHC.

Per GPU: heads divided by tensor parallelism as the engines shard them (vLLM / SGLang split GDN and
Mamba-2 heads and B/C groups across TP ranks; the DSA indexer is replicated on every rank).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from estimator.models.spec import AttentionKind, ModelSpec
from perfdb.ops import (
    AttentionDecodeCase,
    AttentionPrefillCase,
    DsaModuleDecodeCase,
    DsaModulePrefillCase,
    Dsv4ModuleDecodeCase,
    Dsv4ModulePrefillCase,
    ElementwiseCase,
    GemmCase,
    LinearDecodeCase,
    LinearPrefillCase,
    MhcModuleCase,
    MsaModuleDecodeCase,
    MsaModulePrefillCase,
    OpCase,
    SparseDecodeCase,
    SparsePrefillCase,
)
from perfdb.ops.dsv4_module import compressor_width
from perfdb.types import Dtype, ElementwiseOp, MhcStage, SparseKind


def linear_ops(m: ModelSpec, tp: int, kv_dtype: Dtype, t, pb, s, db, q_per_decode, op_use) -> list:
    """In-projection, chunked scan (prefill) / state update (decode), out-projection of every linear layer.
    The scan does not depend on the cached prefix: the state carries it."""
    lin, n = m.linear, m.num_linear_layers
    if lin is None or n == 0:
        return []
    geo = dict(kind=lin.kind, dtype=Dtype.BF16, state_dtype=lin.state_dtype,
               num_k_heads=max(1, lin.num_k_heads // tp), num_v_heads=max(1, lin.num_v_heads // tp),
               head_k_dim=lin.head_k_dim, head_v_dim=lin.head_v_dim, conv_kernel=lin.conv_kernel)
    q = m.attn_quant
    return [
        op_use("linear_in_proj", GemmCase(dtype=q, m=t, n=lin.in_proj_width() // tp, k=m.hidden), n),
        op_use("linear_prefill", LinearPrefillCase(chunk=lin.chunk, batch=pb, seq_len=s, **geo), n, pb > 0),
        op_use("linear_decode", LinearDecodeCase(batch=db * q_per_decode, **geo), n, db > 0),
        op_use("linear_out_proj", GemmCase(dtype=q, m=t, n=m.hidden, k=lin.out_width() // tp), n),
    ]


def _attn_geometry(m: ModelSpec, heads: int, kv_heads: int) -> dict:
    """Score / value widths and cache elements per entry of the attention a sparse layer runs."""
    if m.attention == AttentionKind.MLA:   # absorbed MQA over the latent (FlashMLA sparse kernels)
        latent = m.kv_lora_rank + m.qk_rope_head_dim
        return dict(qk_dim=latent, v_dim=m.kv_lora_rank, kv_elems=latent)
    # DeepSeek-V4: one head_dim entry is key and value (kv_per_head 1)
    return dict(qk_dim=m.head_dim, v_dim=m.head_dim, kv_elems=m.kv_per_head * kv_heads * m.head_dim)


def sparse_ops(m: ModelSpec, heads: int, kv_heads: int, kv_dtype: Dtype, t, pb, s, p, db, kv, op_use,
               kv_row_bytes: float = 0.0) -> list:
    """Indexer projections and the indexer + top-k attention of the sparse layers. Cache entries of a
    compressing layer (DeepSeek-V4 CSA) stand for `compress` tokens each: the lengths are in entries.
    kv_row_bytes: the engine's stored row the decode reads (estimator.kv_layout.decode_read_bytes; 0: elements
    x bytes)."""
    sp, n = m.sparse, m.num_sparse_layers
    if sp is None or n == 0:
        return []
    c = float(sp.compress)
    geo = dict(kind=sp.kind, dtype=Dtype.BF16, kv_dtype=kv_dtype, num_heads=heads, topk=sp.topk,
               index_heads=sp.index_heads, index_head_dim=sp.index_head_dim, **_attn_geometry(m, heads, kv_heads))
    # indexer queries from the q_lora_rank bottleneck (the hidden state without one); per-head weights
    # and, where entries are single tokens, the index key from the hidden state (a compressing layer's
    # key comes from its indexer compressor: compressor_proj)
    key = sp.index_head_dim if sp.compress == 1 else 0
    # DeepSeek-V4 decode: one sparse_attn kernel reads the window and the selected entries together
    # (inference model.py: window indices ++ compressed top-k): the window joins the entry axis and
    # the top-k (the indexer then also scores the <= window extra entries: 128 of thousands)
    w = m.compressed_window
    dec = dict(geo, topk=sp.topk + w, kv_row_bytes=kv_row_bytes)
    return [
        op_use("indexer_q_proj", GemmCase(dtype=Dtype.BF16, m=t, n=sp.index_heads * sp.index_head_dim,
                                          k=m.q_lora_rank or m.hidden), n),
        op_use("indexer_k_proj", GemmCase(dtype=Dtype.BF16, m=t, n=key + sp.index_heads, k=m.hidden), n),
        # prefill: each query sees min(position / compress, topk) entries; queries are not compressed,
        # so the entry axes shrink by `compress` and the batch grows by it (pairs scale as 1 / compress)
        op_use("attn_prefill_sparse", SparsePrefillCase(batch=pb * c, seq_len=s / c, prefix_len=p / c, **geo), n, pb > 0),
        op_use("attn_decode_sparse", SparseDecodeCase(batch=db, kv_len=kv / c + np.minimum(kv, w), **dec), n, db > 0),
    ]


@dataclass(frozen=True)
class SparseModule:
    """The module family that prices a sparse layer's whole attention block (perfdb.ops.sparse_module), with
    this model's fields on this GPU."""

    prefill: type[OpCase]
    decode: type[OpCase]
    fields: dict

    def probes(self) -> tuple[OpCase, OpCase]:
        return (self.prefill(batch=1, seq_len=1, prefix_len=0, **self.fields), self.decode(batch=1, kv_len=1, **self.fields))

    def ops(self, n: int, pb, s, p, db, kv, q_per_decode, op_use) -> list:
        """Prefill requests and decode query tokens (each verified speculative token selects its own
        top-k) as two modules, run by the n sparse layers."""
        return [
            op_use(self.prefill.KIND.value, self.prefill(batch=pb, seq_len=s, prefix_len=p, **self.fields), n, pb > 0),
            op_use(self.decode.KIND.value, self.decode(batch=db * q_per_decode, kv_len=kv, **self.fields), n, db > 0),
        ]


def sparse_module(m: ModelSpec, heads: int, kv_heads: int, kv_dtype: Dtype) -> SparseModule | None:
    """The module of a model's sparse layers: DSA for MLA models whose every attention layer is sparse
    (DeepSeek-V3.2, GLM-5.x), MSA for GQA ones (MiniMax-M3); None otherwise (DeepSeek-V4's compressed
    layers, no sparse layers)."""
    sp = m.sparse
    if sp is None or m.num_sparse_layers == 0 or sp.compress != 1:
        return None
    common = dict(dtype=m.attn_quant, kv_dtype=kv_dtype, num_heads=heads, hidden=m.hidden, topk=sp.topk,
                  index_heads=sp.index_heads, index_head_dim=sp.index_head_dim)
    if m.attention == AttentionKind.MLA and sp.kind == SparseKind.DSA and m.num_sparse_layers == m.num_attn_layers:
        return SparseModule(DsaModulePrefillCase, DsaModuleDecodeCase, dict(
            common, q_lora_rank=m.q_lora_rank, kv_lora_rank=m.kv_lora_rank, qk_nope_head_dim=m.qk_nope_head_dim,
            qk_rope_head_dim=m.qk_rope_head_dim, v_head_dim=m.v_head_dim))
    if m.attention == AttentionKind.GQA and sp.kind == SparseKind.MSA and not m.attn_output_gate:
        return SparseModule(MsaModulePrefillCase, MsaModuleDecodeCase,
                            dict(common, num_kv_heads=kv_heads, head_dim=m.head_dim))
    return None


def v4_module(m: ModelSpec, tp: int, heads: int, kv_dtype: Dtype) -> SparseModule | None:
    """The module of DeepSeek-V4's HCA layers (perfdb.ops.dsv4_module at the model's kv_compress), with
    this model's fields on this GPU; None for other models. CSA layers keep their pieces (the imported CSA
    tables are not used: docs/perfdb-import.md)."""
    if not m.o_groups or not m.num_compressed_layers:
        return None
    fields = dict(dtype=m.attn_quant, kv_dtype=kv_dtype, compress=m.kv_compress, num_heads=heads,
                  o_groups=max(1, m.o_groups // tp), hidden=m.hidden, head_dim=m.head_dim, q_lora_rank=m.q_lora_rank,
                  o_lora_rank=m.o_lora_rank, window=m.compressed_window, topk=0, index_heads=0, index_head_dim=0)
    return SparseModule(Dsv4ModulePrefillCase, Dsv4ModuleDecodeCase, fields)


def compressed_ops(m: ModelSpec, common: dict, pb, s, p, db, kv, op_use) -> list:
    """DeepSeek-V4 HCA layers: dense attention over one cache entry per `kv_compress` tokens (same
    entry-axis scaling as sparse_ops); decode reads the window's entries in the same kernel."""
    n, c = m.num_compressed_layers, float(m.kv_compress)
    if n == 0:
        return []
    return [
        op_use("attn_prefill_compressed", AttentionPrefillCase(window=0, batch=pb * c, seq_len=s / c, prefix_len=p / c,
                                                              **common), n, pb > 0),
        op_use("attn_decode_compressed", AttentionDecodeCase(window=0, batch=db, kv_len=np.maximum(kv / c, 1.0)
                                                                       + np.minimum(kv, m.compressed_window), **common),
               n, db > 0),
    ]


def mhc_module(m: ModelSpec) -> tuple[MhcModuleCase, MhcModuleCase] | None:
    """Probes (one token) of a model's mHC pre and post modules, one layer (both sub-layers) each; None
    without mHC."""
    if not m.hc_mult:
        return None
    geo = dict(dtype=Dtype.BF16, hc_mult=m.hc_mult, hidden=m.hidden, sinkhorn_iters=m.hc_sinkhorn_iters, sites=2,
               num_tokens=1)
    return MhcModuleCase(stage=MhcStage.PRE, **geo), MhcModuleCase(stage=MhcStage.POST, **geo)


def mhc_ops(m: ModelSpec, t, op_use, module: tuple[MhcModuleCase, MhcModuleCase] | None = None) -> list:
    """mHC: per layer, twice (attention and MLP sub-layers), a small projection of the hc_mult streams to
    the mixing weights (hc_mult pre + hc_mult post + hc_mult^2 residual logits) and the stream mixing; with
    measured modules (`module`: the probes of mhc_module) a layer's pre and post modules instead, each
    covering both sub-layers. The head's final mix stays a GEMM either way."""
    if not m.hc_mult:
        return []
    hc, n = m.hc_mult, 2 * m.num_layers
    head = op_use("mhc_head", GemmCase(dtype=Dtype.BF16, m=t, n=hc, k=hc * m.hidden), 1)
    if module is not None:
        return [op_use(f"mhc_{p.stage.value}", replace(p, num_tokens=t), m.num_layers) for p in module] + [head]
    return [
        op_use("mhc_proj", GemmCase(dtype=Dtype.BF16, m=t, n=2 * hc + hc * hc, k=hc * m.hidden), n),
        op_use("mhc_mix", ElementwiseCase(op=ElementwiseOp.MHC, dtype=Dtype.BF16, hidden=hc * m.hidden, num_tokens=t), n),
        # before the final norm the streams are mixed once more into one (hc weights a token)
        head,
    ]


def v4_projection_ops(m: ModelSpec, tp: int, t, op_use, hca_module: bool = False) -> list:
    """DeepSeek-V4 attention projections of every attention layer (DeepSeek's inference model.py, vLLM's
    deepseek_v4: wq_a and wkv fused and replicated; wq_b column-split by heads; wo_a a grouped
    projection, each of the o_groups / tp local groups maps its heads x head_dim to o_lora_rank (priced
    as one GEMM of n = local groups x o_lora_rank over one group's width: the flops and weight bytes of
    the batched form); wo_b row-split back to the hidden size), then the KV compressors of the CSA / HCA
    layers (wkv and wgate fused; a CSA layer's indexer compressor beside its KV one). hca_module: the HCA
    layers are priced by their measured module (v4_module), which holds their projections and compressor."""
    hca = 0 if hca_module else m.num_compressed_layers
    q, n, h, hd = m.attn_quant, m.num_attn_layers - (m.num_compressed_layers - hca), m.hidden, m.head_dim
    heads, groups = max(1, m.num_heads // tp), max(1, m.o_groups // tp)
    group_width = m.num_heads * hd // m.o_groups
    ops = [
        op_use("attn_q_kv_down", GemmCase(dtype=q, m=t, n=m.q_lora_rank + m.kv_per_head * m.num_kv_heads * hd, k=h), n),
        op_use("attn_q_up", GemmCase(dtype=q, m=t, n=heads * hd, k=m.q_lora_rank), n),
        op_use("attn_o_group", GemmCase(dtype=q, m=t, n=groups * m.o_lora_rank, k=group_width), n),
        op_use("attn_o_up", GemmCase(dtype=q, m=t, n=h, k=groups * m.o_lora_rank), n),
    ]
    sp = m.sparse
    if sp is not None and sp.compress > 1 and m.num_sparse_layers:
        width = 2 * (compressor_width(sp.compress, hd) + compressor_width(sp.compress, sp.index_head_dim))
        ops.append(op_use("compressor_proj_csa", GemmCase(dtype=q, m=t, n=width, k=h), m.num_sparse_layers))
    if hca:
        ops.append(op_use("compressor_proj_hca", GemmCase(dtype=q, m=t, n=2 * compressor_width(m.kv_compress, hd), k=h), hca))
    return ops
