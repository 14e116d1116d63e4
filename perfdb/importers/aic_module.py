"""Conversion of the reference tool's sparse-attention module tables into servecast's module families
(perfdb.ops.sparse_module: a sparse layer's whole attention block): `dsa_context_module_perf` /
`dsa_generation_module_perf` (sparse_attention folder) into dsa_module_prefill / _decode, and
`msa_context_module_perf` / `msa_generation_module_perf` (msa folder) into msa_module_prefill / _decode.

AIC's rows name the model architecture, not its dimensions; the geometry below is each
architecture's config.json (the values estimator/catalog holds for deepseek-ai/DeepSeek-V3.2,
zai-org/GLM-5 and MiniMaxAI/MiniMax-M3; a test checks they agree). `num_heads` is per GPU (128 / tp
for V3.2, 64 / tp for GLM-5 and M3: the sglang rows' tp_size column confirms it); M3's KV heads per
GPU follow as its 4 KV heads over the same tp, at least one (AIC's MiniMaxM3Model: max(1, 4 // tp));
vLLM's sweep also has 128-head rows (tp 1/2 of a wider model), given 8 KV heads at the same ratio.
Context rows: isl new tokens after `step` cached ones; generation rows: one query token at isl + step
cached tokens (as the MLA tables). `gemm_type` is the projections' format, `kv_cache_dtype` the
cache's; `mla_dtype` is bf16 in every row (the attention math). Dropped and counted: GLM-5.2's
skip-indexer rows (its layers that reuse another layer's top-k: servecast has no such layer) and
architectures with no geometry here.

`mhc_module_perf` (mhc folder) into mhc_module (perfdb.ops.mhc): op_name is the stage (pre / post),
num_sites the sub-layers one timing covers (2 in every 0.12.0 row: the collectors run a layer's attention
and MLP calls back to back and report them as one), hidden_size the stream width (4096: DeepSeek-V4-Flash,
7168: -Pro), hc_mult and sinkhorn_iters the config's. The streams are bf16 (the collectors' residual).
"""
from __future__ import annotations

import pandas as pd

from perfdb.importers.aic_tables import Converted, _attention_axes, _finish, _map_dtype
from perfdb.specs import SystemSpec
from perfdb.types import Dtype, MhcStage, OpKind

_MSA_TOTAL_HEADS, _MSA_TOTAL_KV_HEADS = 64, 4     # MiniMax-M3 config.json: num_attention_heads, num_key_value_heads

# config.json of deepseek-ai/DeepSeek-V3.2 and zai-org/GLM-5 (hidden_size, q_lora_rank, kv_lora_rank,
# qk_nope_head_dim, qk_rope_head_dim, v_head_dim, index_topk, index_n_heads, index_head_dim); of
# MiniMaxAI/MiniMax-M3 (hidden_size, head_dim, sparse top-k blocks x block size, index heads and dim)
DSA_GEOMETRY: dict[str, dict[str, int]] = {
    "DeepseekV32ForCausalLM": dict(hidden=7168, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
                                   qk_rope_head_dim=64, v_head_dim=128, topk=2048, index_heads=64,
                                   index_head_dim=128),
    "GlmMoeDsaForCausalLM": dict(hidden=6144, q_lora_rank=2048, kv_lora_rank=512, qk_nope_head_dim=192,
                                 qk_rope_head_dim=64, v_head_dim=256, topk=2048, index_heads=32,
                                 index_head_dim=128),
}
MSA_GEOMETRY: dict[str, dict[str, int]] = {
    "MiniMaxM3ForCausalLM": dict(head_dim=128, hidden=6144, topk=16 * 128, index_heads=4, index_head_dim=128),
}


def _keep(df: pd.DataFrame, family: str, geometry: dict, skipped: dict[str, int]) -> pd.DataFrame:
    op = df["op_name"].astype(str)
    full = {f"{family}_context_module", f"{family}_generation_module"}
    for name, n in op[~op.isin(full)].value_counts().items():
        skipped[f"op_name {name!r} (layers that reuse another layer's top-k) has no servecast op"] = int(n)
    df = df[op.isin(full)]
    arch = df["architecture"].astype(str)
    for name, n in arch[~arch.isin(list(geometry))].value_counts().items():
        skipped[f"architecture {name!r} has no {family.upper()} geometry in servecast"] = int(n)
    return df[arch.isin(list(geometry))].reset_index(drop=True)


def _module(family: str, geometry: dict[str, dict[str, int]], kind: OpKind):
    decode = kind in (OpKind.DSA_MODULE_DECODE, OpKind.MSA_MODULE_DECODE)

    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
        skipped: dict[str, int] = {}
        df = _keep(df, family, geometry, skipped)
        out = pd.DataFrame(index=df.index)
        _map_dtype(df, "gemm_type", out, "dtype", skipped)
        _map_dtype(df, "kv_cache_dtype", out, "kv_dtype", skipped)
        out["num_heads"] = df["num_heads"].astype("int64")
        if family == "msa":   # M3's query / KV ratio of 16; one KV head at least (replicated beyond tp 4)
            out["num_kv_heads"] = (out["num_heads"] * _MSA_TOTAL_KV_HEADS // _MSA_TOTAL_HEADS).clip(lower=1)
        columns = list(next(iter(geometry.values())))
        fields = pd.DataFrame([geometry[a] for a in df["architecture"].astype(str)], index=df.index, columns=columns,
                              dtype="int64")
        for name in columns:
            out[name] = fields[name]
        _attention_axes(df, out, decode)
        return _finish(kind, df, out, skipped)
    return convert


def _mhc(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
    skipped: dict[str, int] = {}
    stage = df["op_name"].astype(str)
    known = stage.isin([s.value for s in MhcStage])
    for name, n in stage[~known].value_counts().items():
        skipped[f"op_name {name!r} is not an mHC stage (pre / post)"] = int(n)
    df = df[known].reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    out["stage"] = df["op_name"].astype(str)
    out["dtype"] = Dtype.BF16.value
    out["hc_mult"] = df["hc_mult"].astype("int64")
    out["hidden"] = df["hidden_size"].astype("int64")
    out["sinkhorn_iters"] = df["sinkhorn_iters"].astype("int64")
    out["sites"] = df["num_sites"].astype("int64")
    out["num_tokens"] = df["num_tokens"].astype("int64")
    return _finish(OpKind.MHC_MODULE, df, out, skipped)


MODULE_CONVERTERS = {
    "dsa_context_module_perf": _module("dsa", DSA_GEOMETRY, OpKind.DSA_MODULE_PREFILL),
    "dsa_generation_module_perf": _module("dsa", DSA_GEOMETRY, OpKind.DSA_MODULE_DECODE),
    "msa_context_module_perf": _module("msa", MSA_GEOMETRY, OpKind.MSA_MODULE_PREFILL),
    "msa_generation_module_perf": _module("msa", MSA_GEOMETRY, OpKind.MSA_MODULE_DECODE),
    "mhc_module_perf": _mhc,
}
