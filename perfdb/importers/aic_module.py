"""Conversion of the reference tool's DSA module tables (`dsa_context_module_perf`,
`dsa_generation_module_perf`, sparse_attention folder) into servecast's dsa_module_prefill /
dsa_module_decode rows (perfdb.ops.sparse_module: the whole attention block of a DSA layer).

AIC's rows name the model architecture, not its dimensions; the geometry below is each
architecture's config.json (the same values estimator/catalog holds for deepseek-ai/DeepSeek-V3.2 and
zai-org/GLM-5; a test checks they agree). `num_heads` is per GPU (128 / tp for V3.2, 64 / tp for
GLM-5: the sglang rows' tp_size column confirms it). Context rows: isl new tokens after `step`
cached ones; generation rows: one query token at isl + step cached tokens (as the MLA tables).
`gemm_type` is the projections' format, `kv_cache_dtype` the latent cache's; `mla_dtype` is bf16 in
every row (the attention math). Dropped and counted: GLM-5.2's skip-indexer rows (its layers that
reuse another layer's top-k: servecast has no such layer), architectures with no geometry here.
"""
from __future__ import annotations

import pandas as pd

from perfdb.importers.aic_tables import Converted, _finish, _map_dtype
from perfdb.specs import SystemSpec
from perfdb.types import OpKind

# config.json of deepseek-ai/DeepSeek-V3.2 and zai-org/GLM-5 (hidden_size, q_lora_rank, kv_lora_rank,
# qk_nope_head_dim, qk_rope_head_dim, v_head_dim, index_topk, index_n_heads, index_head_dim)
DSA_GEOMETRY: dict[str, dict[str, int]] = {
    "DeepseekV32ForCausalLM": dict(hidden=7168, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
                                   qk_rope_head_dim=64, v_head_dim=128, topk=2048, index_heads=64,
                                   index_head_dim=128),
    "GlmMoeDsaForCausalLM": dict(hidden=6144, q_lora_rank=2048, kv_lora_rank=512, qk_nope_head_dim=192,
                                 qk_rope_head_dim=64, v_head_dim=256, topk=2048, index_heads=32,
                                 index_head_dim=128),
}
_FULL_MODULE = {"dsa_context_module", "dsa_generation_module"}


def _keep(df: pd.DataFrame, skipped: dict[str, int]) -> pd.DataFrame:
    op = df["op_name"].astype(str)
    for name, n in op[~op.isin(_FULL_MODULE)].value_counts().items():
        skipped[f"op_name {name!r} (layers that reuse another layer's top-k) has no servecast op"] = int(n)
    df = df[op.isin(_FULL_MODULE)]
    arch = df["architecture"].astype(str)
    for name, n in arch[~arch.isin(list(DSA_GEOMETRY))].value_counts().items():
        skipped[f"architecture {name!r} has no DSA geometry in servecast"] = int(n)
    return df[arch.isin(list(DSA_GEOMETRY))].reset_index(drop=True)


def _dsa_module(decode: bool):
    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
        skipped: dict[str, int] = {}
        df = _keep(df, skipped)
        out = pd.DataFrame(index=df.index)
        _map_dtype(df, "gemm_type", out, "dtype", skipped)
        _map_dtype(df, "kv_cache_dtype", out, "kv_dtype", skipped)
        out["num_heads"] = df["num_heads"].astype("int64")
        geometry = pd.DataFrame([DSA_GEOMETRY[a] for a in df["architecture"].astype(str)], index=df.index,
                                columns=list(DSA_GEOMETRY["DeepseekV32ForCausalLM"]), dtype="int64")
        for name in geometry.columns:
            out[name] = geometry[name]
        out["batch"] = df["batch_size"].astype("int64")
        if decode:
            out["kv_len"] = df["isl"].astype("int64") + df["step"].astype("int64")
        else:
            out["seq_len"] = df["isl"].astype("int64")
            out["prefix_len"] = df["step"].astype("int64")
        return _finish(OpKind.DSA_MODULE_DECODE if decode else OpKind.DSA_MODULE_PREFILL, df, out, skipped)
    return convert


MODULE_CONVERTERS = {"dsa_context_module_perf": _dsa_module(decode=False),
                     "dsa_generation_module_perf": _dsa_module(decode=True)}
