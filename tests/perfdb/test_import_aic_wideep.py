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
