"""AIC's wide-EP MoE tables (SGLang's experts behind DeepEP) import as the moe family's rows of their own
kernel (perfdb.types.MoeKernel.DEEPEP_*), back-filled into the current version as AIConfigurator does, and
only a view asking for that kernel sees them."""
from __future__ import annotations

import yaml
from fixtures.aic_layout import _common, _write, build_aic

from perfdb.importers import import_aic
from perfdb.lookup import PerfDB
from perfdb.storage import TableKey, read_table
from perfdb.types import Backend, MoeKernel, OpKind


def _moe(version: str, op: str, ks: str, tokens, dist: str) -> list[dict]:
    return [{**_common("SGLang", version, op, ks), "moe_dtype": "fp8_block", "num_tokens": t, "hidden_size": 7168,
             "inter_size": 2048, "topk": 8, "num_experts": 256, "moe_tp_size": 1, "moe_ep_size": 16,
             "distribution": dist, "latency": 0.5 + t * 1e-5} for t in tokens]


def test_wide_ep_moe_tables_land_as_their_own_kernels_rows(tmp_path):
    systems = build_aic(tmp_path / "src")
    q = systems / "query_versions.yaml"
    doc = yaml.safe_load(q.read_text())
    doc["defaults"]["sglang"] = {"current": "0.5.14"}
    q.write_text(yaml.safe_dump(doc))
    data = systems / "data" / "h200_sxm" / "moe" / "sglang"
    _write(data / "0.5.14/moe_perf.parquet", _moe("0.5.14", "moe", "sglang_flashinfer_trtllm_moe", (16, 4096), "balanced"))
    _write(data / "0.5.10/wideep_context_moe_perf.parquet",
           _moe("0.5.10", "moe_context", "deepepmoe", (256, 4096, 65536), "uniform")
           + _moe("0.5.10", "moe_context", "deepepmoe", (256,), "power_law_1.01"))
    _write(data / "0.5.10/wideep_generation_moe_perf.parquet", _moe("0.5.10", "moe_generation", "deepepmoe", (16, 128), "uniform"))
    db = tmp_path / "db"
    report = import_aic(systems, db, system="h200_sxm", backends=(Backend.SGLANG,))
    wide = [t for t in report.tables if "wideep" in t.aic_table]
    assert {t.op for t in wide} == {OpKind.MOE} and all(t.backfilled and t.version == "0.5.14" for t in wide)
    rows = read_table(db, TableKey("h200_sxm", Backend.SGLANG, "0.5.14", OpKind.MOE)).to_pandas()
    normal = rows[rows["kernel_source"] == MoeKernel.DEEPEP_NORMAL.value]
    assert sorted(normal["num_tokens"]) == [256, 256, 4096, 65536]
    assert set(normal["distribution"]) == {"balanced", "power_law_1.01"}     # AIC's uniform is the balanced routing
    assert (rows["kernel_source"] == MoeKernel.DEEPEP_LL.value).sum() == 2
    perf = PerfDB(db)
    assert perf.view("h200_sxm", Backend.SGLANG, "0.5.14").family(OpKind.MOE).num_rows == 2   # flashinfer's only
    assert perf.view("h200_sxm", Backend.SGLANG, "0.5.14", moe_kernel=MoeKernel.DEEPEP_LL).family(OpKind.MOE).num_rows == 2


def test_deepep_dispatch_and_combine_land_as_all_to_all_rows(tmp_path):
    """wideep_deepep_ll / _normal: one dispatch (block-FP8) and one combine (bf16) all_to_all row per AIC row,
    microseconds to ms, node_num x 8 GPUs (the network beyond one node), and the bytes the estimator's
    exchange counts for the same tokens (perfdb.ops.moe.a2a_copies_per_token: one copy per routed expert for
    the low-latency kernels, one per destination rank for the normal ones)."""
    import numpy as np

    from perfdb.ops.moe import a2a_copies_per_token

    systems = build_aic(tmp_path / "src")
    comm = systems / "data" / "h200_sxm" / "comm" / "sglang" / "0.5.6.post2"
    shape = {"hidden_size": 7168, "num_topk": 8, "num_experts": 256}
    _write(comm / "wideep_deepep_ll_perf.parquet",
           [{**_common("sglang", "0.5.6.post2", "ll", "deepep"), **shape, "node_num": 1, "num_token": 64,
             "dispatch_avg_t_us": 21.0, "combine_avg_t_us": 26.0, "dispatch_bandwidth_gbps": 1.0,
             "combine_bandwidth_gbps": 1.0}])
    _write(comm / "wideep_deepep_normal_perf.parquet",
           [{**_common("sglang", "0.5.6.post2", "normal", "deepep"), **shape, "node_num": 2, "num_token": 4096,
             "dispatch_sms": 24, "dispatch_transmit_us": 1373.0, "dispatch_notify_us": 56.0, "combine_sms": 24,
             "combine_transmit_us": 2942.0, "combine_notify_us": 0.0}])
    db = tmp_path / "db"
    import_aic(systems, db, system="h200_sxm", backends=(Backend.SGLANG,), version="0.5.6.post2")
    rows = read_table(db, TableKey("h200_sxm", Backend.SGLANG, "0.5.6.post2", OpKind.COMM)).to_pandas()
    rows = rows[rows["kernel_source"].str.startswith("sglang_deepep")].set_index("kernel_source")
    ll_d, ll_c = rows.loc["sglang_deepep_ll_dispatch"], rows.loc["sglang_deepep_ll_combine"]
    assert (ll_d["op"], ll_d["dtype"], ll_d["num_gpus"], ll_d["transport"]) == ("all_to_all", "fp8_block", 8, "nvlink")
    assert ll_d["msg_bytes"] == 64 * 8 * 7168 and ll_c["msg_bytes"] == 2 * 64 * 8 * 7168 and ll_c["dtype"] == "bf16"
    assert np.isclose(ll_d["latency_ms"], 0.021) and np.isclose(ll_c["latency_ms"], 0.026)
    nd = rows.loc["sglang_deepep_normal_dispatch_sm24"]
    assert (nd["num_gpus"], nd["transport"]) == (16, "network")
    assert nd["msg_bytes"] == round(4096 * float(a2a_copies_per_token(16, 8, False)) * 7168)
    assert np.isclose(nd["latency_ms"], 1.429) and np.isclose(rows.loc["sglang_deepep_normal_combine_sm24", "latency_ms"], 2.942)
