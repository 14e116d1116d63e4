"""Conversion of the reference tool's linear-attention kernel tables (`gdn_perf`, `kda_perf`,
`mamba2_perf`) into servecast's linear_prefill / linear_decode rows.

AIC times each kernel of the mixer separately, one row per (kernel, phase, shape): the short causal
conv1d (`causal_conv1d_fn` in context, `causal_conv1d_update` in generation) and the scan
(`chunk_gated_delta_rule`, `chunk_kda` in context; `fused_recurrent_*` / `*_decode` in generation).
servecast's op is conv + scan (perfdb.ops.linear counts the conv state's bytes), so the latencies of
one conv row and one scan row of the same shape are added. Where a table times several scan kernels
for one shape (KDA decode: three implementations) the fastest is kept and named in kernel_source.
Shapes with no scan row (the 0.12.0 mamba2 tables hold conv1d rows only), `verify` (speculative)
rows and shapes missing their conv row are dropped and counted per reason. AIC's head counts are
per GPU; the state is fp32 (the Qwen3.5 / Kimi-K3 / Nemotron-3 checkpoints' mamba_ssm_dtype).
The module-level sparse-attention tables time projections and attention together: the DSA and MSA
ones feed servecast's dsa_module / msa_module families (perfdb.importers.aic_module), DeepSeek-V4's HCA
ones dsv4_module (perfdb.importers.aic_dsv4); the dsv4 CSA ones stay skipped.
"""
from __future__ import annotations

import pandas as pd

from perfdb.importers.aic_tables import Converted, _finish
from perfdb.specs import SystemSpec
from perfdb.types import Dtype, LinearKind, OpKind

# AIC column -> servecast field, per table; Mamba-2's "k" heads are its B/C groups, its "k" dim the state
_COLUMNS = {
    LinearKind.GDN: {"num_k_heads": "num_k_heads", "head_k_dim": "head_k_dim", "num_v_heads": "num_v_heads",
                     "head_v_dim": "head_v_dim"},
    LinearKind.KDA: {"num_k_heads": "num_k_heads", "head_k_dim": "head_k_dim", "num_v_heads": "num_v_heads",
                     "head_v_dim": "head_v_dim"},
    LinearKind.MAMBA2: {"num_k_heads": "n_groups", "head_k_dim": "d_state", "num_v_heads": "nheads", "head_v_dim": "head_dim"},
}
FLA_CHUNK = 64   # fla's chunk size for GDN / KDA (its kernels fix BT = 64)
_PHASES = {"context": OpKind.LINEAR_PREFILL, "generation": OpKind.LINEAR_DECODE}


def _shape_keys(kind: LinearKind, phase: str) -> list[str]:
    keys = ["batch_size", "d_conv", *_COLUMNS[kind].values()]
    if phase == "context":
        keys.append("seq_len")
        if kind == LinearKind.MAMBA2:
            keys.append("chunk_size")
    return keys


def _pair(kind: LinearKind, df: pd.DataFrame, phase: str, skipped: dict[str, int]) -> pd.DataFrame:
    """One row per shape: conv latency + the fastest scan latency, kernel names joined."""
    keys = _shape_keys(kind, phase)
    rows = df[df["phase"] == phase].copy()
    rows["latency"] = rows["latency"].astype(float)
    is_conv = rows["kernel_source"].astype(str).str.startswith("causal_conv1d")
    conv = rows[is_conv].groupby(keys, as_index=False).agg(conv=("latency", "median"), conv_ks=("kernel_source", "first"))
    scan = rows[~is_conv].sort_values("latency").groupby(keys, as_index=False).first()
    both = conv.merge(scan, on=keys, how="outer", indicator=True)
    for side, reason in (("left_only", "shape has a conv1d row but no scan kernel row"),
                         ("right_only", "shape has a scan row but no conv1d row")):
        n = int((both["_merge"] == side).sum())
        if n:
            skipped[f"{phase}: {reason}"] = skipped.get(f"{phase}: {reason}", 0) + n
    both = both[both["_merge"] == "both"].reset_index(drop=True)
    both["latency"] = both["conv"] + both["latency"]
    both["kernel_source"] = both["conv_ks"].astype(str) + "+" + both["kernel_source"].astype(str)
    return both


def _linear(kind: LinearKind):
    def convert(df: pd.DataFrame, system: SystemSpec, backend: str) -> list[Converted]:
        out_list, skipped_all = [], {}
        other = ~df["phase"].isin(list(_PHASES))
        if other.any():
            for p, n in df.loc[other, "phase"].astype(str).value_counts().items():
                skipped_all[f"phase {p!r} has no servecast op"] = int(n)
        for phase, op in _PHASES.items():
            skipped = dict(skipped_all) if phase == "context" else {}
            paired = _pair(kind, df, phase, skipped)
            out = pd.DataFrame(index=paired.index)
            out["kind"], out["dtype"], out["state_dtype"] = kind.value, Dtype.BF16.value, Dtype.FP32.value
            for ours, theirs in _COLUMNS[kind].items():
                out[ours] = paired[theirs].astype("int64")
            out["conv_kernel"] = paired["d_conv"].astype("int64")
            out["batch"] = paired["batch_size"].astype("int64")
            if op == OpKind.LINEAR_PREFILL:
                out["chunk"] = paired["chunk_size"].astype("int64") if kind == LinearKind.MAMBA2 else FLA_CHUNK
                out["seq_len"] = paired["seq_len"].astype("int64")
            out_list.append(_finish(op, paired, out, skipped, kernel_source=paired["kernel_source"]))
        return out_list
    return convert


LINEAR_CONVERTERS = {"gdn_perf": _linear(LinearKind.GDN), "kda_perf": _linear(LinearKind.KDA),
                     "mamba2_perf": _linear(LinearKind.MAMBA2)}
