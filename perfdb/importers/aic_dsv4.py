"""Conversion of the reference tool's DeepSeek-V4 HCA attention-module tables
(`dsv4_hca_context_module_perf` / `dsv4_hca_generation_module_perf`, sparse_attention folder) into
servecast's dsv4_module_prefill / _decode (perfdb.ops.dsv4_module: one compressing layer's whole
attention block).

The rows name the architecture (DeepseekV4ForCausalLM for Flash and Pro alike); `num_heads` is this
rank's heads and `num_heads x tp_size` the model's (64: DeepSeek-V4-Flash, 128: -Pro), which selects
the geometry below (their config.json: hidden_size, q_lora_rank, head_dim, o_groups, o_lora_rank,
sliding_window; a test checks they agree with the catalog). Local output groups = o_groups / tp_size.
`compress_ratio` is the layer kind (128 here). Context rows run isl new tokens after `step` cached ones
(the prefix axis, 24-28 values); generation rows one query token at isl + step cached tokens. KV is fp8
in every row (`fp8` / `fp8_e4m3`); `gemm_type` is the projections' format.

The CSA tables (`dsv4_csa_*_module_perf`) are not converted: their rows carry the collector's top-k
artefact (docs/perfdb-import.md, "Not imported"), so they stay skipped and CSA layers keep their pieces.
"""
from __future__ import annotations

import pandas as pd

from perfdb.importers.aic_tables import Converted, _attention_axes, _finish, _map_dtype
from perfdb.specs import SystemSpec
from perfdb.types import OpKind

HCA_RATIO = 128
# config.json of deepseek-ai/DeepSeek-V4-Flash (64 heads) and -Pro (128 heads)
DSV4_GEOMETRY: dict[int, dict[str, int]] = {
    64: dict(hidden=4096, q_lora_rank=1024, head_dim=512, o_groups=8, o_lora_rank=1024, window=128),
    128: dict(hidden=7168, q_lora_rank=1536, head_dim=512, o_groups=16, o_lora_rank=1024, window=128),
}


def _keep(df: pd.DataFrame, skipped: dict[str, int]) -> pd.DataFrame:
    ratio = df["compress_ratio"].astype("int64")
    for r, n in ratio[ratio != HCA_RATIO].value_counts().items():
        skipped[f"compress_ratio {r} is not an HCA layer (128)"] = int(n)
    df = df[ratio == HCA_RATIO]
    native = df["num_heads"].astype("int64") * df["tp_size"].astype("int64")
    for h, n in native[~native.isin(list(DSV4_GEOMETRY))].value_counts().items():
        skipped[f"num_heads x tp_size {h} matches no DeepSeek-V4 geometry (64 Flash, 128 Pro)"] = int(n)
    return df[native.isin(list(DSV4_GEOMETRY))].reset_index(drop=True)


def _hca(kind: OpKind):
    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
        skipped: dict[str, int] = {}
        df = _keep(df, skipped)
        out = pd.DataFrame(index=df.index)
        _map_dtype(df, "gemm_type", out, "dtype", skipped)
        _map_dtype(df, "kv_cache_dtype", out, "kv_dtype", skipped)
        tp = df["tp_size"].astype("int64")
        native = df["num_heads"].astype("int64") * tp
        geo = pd.DataFrame([DSV4_GEOMETRY[int(h)] for h in native], index=df.index,
                           columns=list(DSV4_GEOMETRY[64]), dtype="int64")
        out["compress"] = HCA_RATIO
        out["num_heads"] = df["num_heads"].astype("int64")
        out["o_groups"] = (geo["o_groups"] // tp).clip(lower=1)
        for name in ("hidden", "head_dim", "q_lora_rank", "o_lora_rank", "window"):
            out[name] = geo[name]
        out["topk"] = out["index_heads"] = out["index_head_dim"] = 0
        _attention_axes(df, out, decode=kind == OpKind.DSV4_MODULE_DECODE)
        return _finish(kind, df, out, skipped)
    return convert


DSV4_CONVERTERS = {
    "dsv4_hca_context_module_perf": _hca(OpKind.DSV4_MODULE_PREFILL),
    "dsv4_hca_generation_module_perf": _hca(OpKind.DSV4_MODULE_DECODE),
}
