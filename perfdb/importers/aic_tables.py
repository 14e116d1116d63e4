"""Per-table conversion of AIConfigurator rows into servecast op-family rows (key columns + latency).

One converter per AIC table name. Each returns the op family, a frame with the family's key columns,
`latency_ms`, `kernel_source` and `gpu_name`, and the rows it dropped with the reason. Units: AIC
`latency` is milliseconds; comm `message_size` counts elements (checked against the data: 8-GPU NCCL
all-reduce of 128 Mi half elements reaches 445 GB/s bus bandwidth, only possible at 2 bytes/element).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perfdb.ops.moe import a2a_copies_per_token
from perfdb.specs import SystemSpec
from perfdb.types import CommOp, Dtype, MoeKernel, OpKind, Transport

# AIC dtype / quant-mode strings -> servecast Dtype. Formats with no servecast Dtype (int8_wo, sq,
# w4afp8) are skipped and reported rather than forced onto a wrong roofline.
AIC_DTYPES: dict[str, Dtype] = {
    "bfloat16": Dtype.BF16, "bf16": Dtype.BF16,
    "float16": Dtype.FP16, "half": Dtype.FP16, "fp16": Dtype.FP16,
    "float32": Dtype.FP32, "float": Dtype.FP32,
    "fp8": Dtype.FP8, "fp8_e4m3": Dtype.FP8,
    "fp8_block": Dtype.FP8_BLOCK,
    "nvfp4": Dtype.NVFP4, "fp4": Dtype.NVFP4,
    "w4a16_mxfp4": Dtype.MXFP4, "mxfp4": Dtype.MXFP4,
    "int8": Dtype.INT8,
    "int4_wo": Dtype.INT4,                    # int4 weight-only, group-scaled (Kimi-K2.x experts)
    "w4a8_mxfp4_mxfp8": Dtype.W4A8_MXFP4,     # gpt-oss MoE on Blackwell
}
AIC_COMM_OPS = {"all_reduce": CommOp.ALL_REDUCE, "all_gather": CommOp.ALL_GATHER,
                "reduce_scatter": CommOp.REDUCE_SCATTER, "alltoall": CommOp.ALL_TO_ALL,
                "all_to_all": CommOp.ALL_TO_ALL}
# DeepSeek-V3/R1 MLA dimensions: AIC's context/generation MLA tables are collected for that geometry.
MLA_DIMS = {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128}
_ELEMENT_BYTES = {Dtype.FP16: 2.0, Dtype.BF16: 2.0, Dtype.FP32: 4.0, Dtype.FP8: 1.0, Dtype.INT8: 1.0,
                  Dtype.NVFP4: 0.5 + 1.0 / 16, Dtype.FP8_BLOCK: 1.0, Dtype.MXFP4: 0.5 + 1.0 / 32,
                  Dtype.INT4: 0.5 + 2.0 / 32, Dtype.W4A8_MXFP4: 0.5 + 1.0 / 32}


@dataclass
class Converted:
    kind: OpKind
    frame: pd.DataFrame                        # key columns + latency_ms, kernel_source, gpu_name
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> rows


Converter = Callable[[pd.DataFrame, SystemSpec, str], Converted]


def _map_dtype(df: pd.DataFrame, column: str, out: pd.DataFrame, name: str, skipped: dict[str, int]) -> pd.Series:
    mapped = df[column].astype(str).map({k: v.value for k, v in AIC_DTYPES.items()})
    for raw in sorted(set(df.loc[mapped.isna(), column].astype(str))):
        skipped[f"{column} {raw!r} has no servecast dtype"] = int((df[column].astype(str) == raw).sum())
    out[name] = mapped
    return mapped


def _finish(kind: OpKind, df: pd.DataFrame, out: pd.DataFrame, skipped: dict[str, int],
            kernel_source: pd.Series | str | None = None, latency_scale: float = 1.0) -> Converted:
    out["latency_ms"] = df["latency"].astype(float) * latency_scale
    out["kernel_source"] = df["kernel_source"].astype(str) if kernel_source is None else kernel_source
    out["gpu_name"] = df["device"].astype(str) if "device" in df else None
    bad = ~np.isfinite(out["latency_ms"]) | (out["latency_ms"] <= 0)
    if bad.any():
        skipped["latency missing or <= 0"] = int(bad.sum())
    keep = out.notna().drop(columns=["gpu_name"]).all(axis=1) & ~bad
    return Converted(kind, out[keep].reset_index(drop=True), skipped)


def _gemm(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
    out, skipped = pd.DataFrame(index=df.index), {}
    _map_dtype(df, "gemm_dtype", out, "dtype", skipped)
    for col in ("m", "n", "k"):
        out[col] = df[col].astype("int64")
    return _finish(OpKind.GEMM, df, out, skipped)


def _attention_axes(df: pd.DataFrame, out: pd.DataFrame, decode: bool) -> None:
    """The tables' batch_size / isl / step as servecast's axes: decode rows hold isl (1 in the 0.12.0
    generation tables) tokens plus `step` decoded ones in the KV cache; prefill rows run isl new tokens
    after `step` cached ones (0 in every 0.12.0 context table that has the column)."""
    out["batch"] = df["batch_size"].astype("int64")
    step = df["step"].astype("int64") if "step" in df else 0
    if decode:
        out["kv_len"] = df["isl"].astype("int64") + step
    else:
        out["seq_len"] = df["isl"].astype("int64")
        out["prefix_len"] = step


def _attention(decode: bool) -> Converter:
    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
        out, skipped = pd.DataFrame(index=df.index), {}
        _map_dtype(df, "attn_dtype", out, "dtype", skipped)
        _map_dtype(df, "kv_cache_dtype", out, "kv_dtype", skipped)
        out["num_heads"] = df["num_heads"].astype("int64")
        out["num_kv_heads"] = df["num_key_value_heads"].astype("int64")
        out["head_dim"] = df["head_dim"].astype("int64")
        out["window"] = df["window_size"].astype("int64") if "window_size" in df else 0
        _attention_axes(df, out, decode)
        return _finish(OpKind.ATTENTION_DECODE if decode else OpKind.ATTENTION_PREFILL, df, out, skipped)
    return convert


def _mla(decode: bool) -> Converter:
    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
        out, skipped = pd.DataFrame(index=df.index), {}
        _map_dtype(df, "mla_dtype", out, "dtype", skipped)
        _map_dtype(df, "kv_cache_dtype", out, "kv_dtype", skipped)
        out["num_heads"] = df["num_heads"].astype("int64")   # per GPU already (128 / tp_size)
        for name, value in MLA_DIMS.items():
            out[name] = value
        _attention_axes(df, out, decode)
        return _finish(OpKind.MLA_DECODE if decode else OpKind.MLA_PREFILL, df, out, skipped)
    return convert


def _moe(df: pd.DataFrame, system: SystemSpec, backend: str, kernel_source: str | None = None) -> Converted:
    out, skipped = pd.DataFrame(index=df.index), {}
    _map_dtype(df, "moe_dtype", out, "dtype", skipped)
    for src, dst in (("hidden_size", "hidden"), ("inter_size", "inter"), ("topk", "topk"),
                     ("num_experts", "num_experts"), ("moe_tp_size", "moe_tp"), ("moe_ep_size", "moe_ep"),
                     ("num_tokens", "num_tokens")):
        out[dst] = df[src].astype("int64")
    out["distribution"] = df["distribution"].astype(str)
    return _finish(OpKind.MOE, df, out, skipped, kernel_source=kernel_source)


def _wideep_moe(kernel: str) -> Converter:
    """SGLang's experts behind DeepEP (AIC collector/sglang/collect_wideep_deepep_moe.py, run_moe_core on one
    GPU holding 256 / ep experts): the context table after a normal-mode dispatch, the generation one after a
    low-latency one. `num_tokens` is the EP group's tokens (tokens per rank x ep), as the moe table's counts
    every token the experts see; `uniform` routing is the moe table's `balanced`. The kernel goes into
    kernel_source (perfdb.types.MoeKernel.DEEPEP_*): rows only an engine launched with DeepEP runs."""
    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
        return _moe(df.assign(distribution=df["distribution"].astype(str).replace({"uniform": "balanced"})),
                    system, backend, kernel_source=kernel)
    return convert


def _transport(num_gpus: pd.Series, system: SystemSpec) -> pd.Series:
    inside = num_gpus <= system.nvlink_domain_gpus
    return pd.Series(np.where(inside, Transport.NVLINK.value, Transport.NETWORK.value), index=num_gpus.index)


def _comm_common(df: pd.DataFrame, out: pd.DataFrame, dtype: pd.Series, system: SystemSpec) -> None:
    out["num_gpus"] = df["num_gpus"].astype("int64")
    out["transport"] = _transport(out["num_gpus"], system)
    elem = dtype.map({d.value: b for d, b in _ELEMENT_BYTES.items()})
    out["msg_bytes"] = np.round(df["message_size"].astype(float) * elem).astype("Int64")


def _nccl(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
    out, skipped = pd.DataFrame(index=df.index), {}
    out["op"] = df["op_name"].map({k: v.value for k, v in AIC_COMM_OPS.items()})
    if out["op"].isna().any():
        skipped["comm op not in servecast"] = int(out["op"].isna().sum())
    dtype = _map_dtype(df, "nccl_dtype", out, "dtype", skipped)
    _comm_common(df, out, dtype, system)
    return _finish(OpKind.COMM, df, out, skipped, kernel_source="nccl")


def _custom_allreduce(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
    out, skipped = pd.DataFrame(index=df.index), {}
    out["op"] = CommOp.ALL_REDUCE.value
    dtype = _map_dtype(df, "allreduce_dtype", out, "dtype", skipped)
    _comm_common(df, out, dtype, system)
    # "TRTLLM" -> trtllm_custom; "SGLang_CustomAllReduce_graph" -> sglang_custom_graph
    ks = df["kernel_source"].astype(str).str.lower().str.replace("customallreduce", "custom", regex=False)
    ks = ks.where(ks != backend, backend + "_custom")
    return _finish(OpKind.COMM, df, out, skipped, kernel_source=ks)


def _moe_a2a(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
    """DeepEP dispatch/combine as all_to_all: msg_bytes = tokens per rank x topk x hidden x element bytes.

    This table's `latency` is in microseconds (it equals its `transmit_us` column). The model shape
    goes into kernel_source because different (hidden, topk, experts) with equal bytes time
    differently (latency-bound low-latency kernels), and the comm schema has no columns for them.
    """
    out, skipped = pd.DataFrame(index=df.index), {}
    out["op"] = CommOp.ALL_TO_ALL.value
    raw = df["comm_dtype"].astype(str).replace({"default": "bfloat16"})
    dtype = _map_dtype(df.assign(comm_dtype=raw), "comm_dtype", out, "dtype", skipped)
    out["num_gpus"] = df["ep_size"].astype("int64")
    multi_node = df["node_num"].astype("int64") > 1
    out["transport"] = _transport(out["num_gpus"], system).where(~multi_node, Transport.NETWORK.value)
    elem = dtype.map({d.value: b for d, b in _ELEMENT_BYTES.items()})
    tokens = df["num_tokens"].astype(float) * df["topk"].astype(float) * df["hidden_size"].astype(float)
    out["msg_bytes"] = np.round(tokens * elem).astype("Int64")
    ks = (df["comm_backend"].astype(str) + "_" + df["phase"].astype(str) + "_h" + df["hidden_size"].astype(str)
          + "_top" + df["topk"].astype(str) + "_e" + df["num_experts"].astype(str))
    return _finish(OpKind.COMM, df, out, skipped, kernel_source=ks, latency_scale=1e-3)


# GPUs behind one `node_num` of AIC's DeepEP tables: "collected on 8-GPU HGX fleets" (aiconfigurator's
# perf_database moe_a2a loader: ep_size = node_num * 8)
DEEPEP_GPUS_PER_NODE = 8


def _deepep(low_latency: bool) -> Converter:
    """SGLang's DeepEP dispatch and combine (wideep_deepep_ll_perf / wideep_deepep_normal_perf): each row
    becomes an all_to_all dispatch row (fp8_block: DeepEP sends block-FP8 activations for FP8 experts) and a
    combine row (bf16), latency in microseconds (LL: the per-phase averages; normal: transmit + notify),
    num_gpus = node_num x 8 (the network beyond one node), msg_bytes = num_token (per rank) x the copies per
    token the kernel sends (perfdb.ops.moe.a2a_copies_per_token, as the estimator prices them) x hidden x
    element bytes. kernel_source `sglang_deepep_<ll|normal>_<phase>`, the normal kernels' SM budget appended
    (`_sm<dispatch_sms | combine_sms>`: each budget times its own kernel, 4-24 SMs, 5x apart at a size): the comm
    lookup answers the fastest kernel at a size (docs/perfdb-lookup.md), i.e. the budget a tuned
    `--deepep-config` picks (the srt-slurm wide-EP recipes pass one), not a median over budgets."""
    mode = "ll" if low_latency else "normal"

    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> Converted:
        parts, skipped = [], {}
        gpus = df["node_num"].astype("int64") * DEEPEP_GPUS_PER_NODE
        transport = _transport(gpus, system).where(df["node_num"].astype("int64") <= 1, Transport.NETWORK.value)
        copies = a2a_copies_per_token(gpus.to_numpy(), df["num_topk"].to_numpy(), low_latency)
        for phase, dtype in (("dispatch", Dtype.FP8_BLOCK), ("combine", Dtype.BF16)):
            us = (df[f"{phase}_avg_t_us"].astype(float) if low_latency else
                  df[f"{phase}_transmit_us"].astype(float) + df[f"{phase}_notify_us"].astype(float))
            out = pd.DataFrame({"op": CommOp.ALL_TO_ALL.value, "dtype": dtype.value, "num_gpus": gpus,
                                "transport": transport}, index=df.index)
            out["msg_bytes"] = np.round(df["num_token"].astype(float) * copies * df["hidden_size"].astype(float)
                                        * _ELEMENT_BYTES[dtype]).astype("Int64")
            ks = f"sglang_deepep_{mode}_{phase}"
            if not low_latency:
                ks = ks + "_sm" + df[f"{phase}_sms"].astype("int64").astype(str)
            c = _finish(OpKind.COMM, df.assign(latency=us), out, {}, kernel_source=ks, latency_scale=1e-3)
            parts.append(c.frame)
            skipped.update({f"{phase}: {k}": v for k, v in c.skipped.items()})
        return Converted(OpKind.COMM, pd.concat(parts, ignore_index=True), skipped)
    return convert


# AIC table name (file stem) -> converter (the linear-attention tables: perfdb.importers.aic_hybrid; the
# DSA / MSA / mHC module tables: perfdb.importers.aic_module; DeepSeek-V4's HCA modules: aic_dsv4).
# Everything else (module-level tables such as mla_*_module, the other wideep_* ones, dsv4_csa_*, mla_bmm,
# quantize, encoder attention) has no servecast op family and is skipped and reported.
CONVERTERS: dict[str, Converter] = {
    "gemm_perf": _gemm,
    "context_attention_perf": _attention(decode=False),
    "generation_attention_perf": _attention(decode=True),
    "context_mla_perf": _mla(decode=False),
    "generation_mla_perf": _mla(decode=True),
    "moe_perf": _moe,
    "wideep_context_moe_perf": _wideep_moe(MoeKernel.DEEPEP_NORMAL.value),
    "wideep_generation_moe_perf": _wideep_moe(MoeKernel.DEEPEP_LL.value),
    "wideep_deepep_ll_perf": _deepep(low_latency=True),
    "wideep_deepep_normal_perf": _deepep(low_latency=False),
    "nccl_perf": _nccl,
    "custom_allreduce_perf": _custom_allreduce,
    "moe_a2a_perf": _moe_a2a,
}

from perfdb.importers.aic_dsv4 import DSV4_CONVERTERS  # noqa: E402
from perfdb.importers.aic_hybrid import LINEAR_CONVERTERS  # noqa: E402  (they build on this module's helpers)
from perfdb.importers.aic_module import MODULE_CONVERTERS  # noqa: E402

CONVERTERS.update(LINEAR_CONVERTERS)
CONVERTERS.update(MODULE_CONVERTERS)
CONVERTERS.update(DSV4_CONVERTERS)
