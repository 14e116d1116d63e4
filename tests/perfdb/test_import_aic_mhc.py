"""The reference tool's mHC module tables (mhc_module_perf: a DeepSeek-V4 layer's hyper-connection pre and
post, both sub-layers per timing) become mhc_module rows, and the estimator prices a V4 layer's mHC from
them when the database holds them (the projection GEMM + stream-mixing pieces otherwise)."""
import numpy as np
import pytest
from fixtures.aic_layout import DEVICE, _write, build_aic

from estimator.engine import EngineConfig
from estimator.layers import LayerComposer
from estimator.layers_hybrid import mhc_module
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.checkinterp import check_interp
from perfdb.importers import import_aic
from perfdb.lookup import PerfDB
from perfdb.ops import ElementwiseCase, MhcModuleCase
from perfdb.specs import load_system
from perfdb.storage import TableKey, read_table
from perfdb.types import Backend, Dtype, ElementwiseOp, MhcStage, OpKind, Phase, Source

V4 = "deepseek-ai/DeepSeek-V4-Pro"
H200 = load_system("h200_sxm")
VERSION = "1.3.0rc20"
TOKENS = (1, 8, 64, 512, 4096, 32768)


def _rows() -> list[dict]:
    rows = []
    for stage, per_element in (("pre", 1.0e-8), ("post", 1.8e-8)):   # ms per token x hidden: ~40% of HBM
        for hidden in (4096, 7168):
            for t in TOKENS:
                rows.append({"framework": "TRTLLM", "version": VERSION, "device": DEVICE, "op_name": stage,
                             "kernel_source": f"trtllm_mhc_{stage}", "architecture": "DeepseekV4ForCausalLM",
                             "num_tokens": t, "num_sites": 2, "hc_mult": 4, "hidden_size": hidden,
                             "sinkhorn_iters": 20, "latency": 0.01 + per_element * t * hidden})
    rows.append({**rows[0], "op_name": "head"})
    return rows


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("aic_mhc")
    systems = build_aic(root / "src")
    _write(systems / "data/h200_sxm/mhc/trtllm" / VERSION / "mhc_module_perf.parquet", _rows())
    out = root / "db"
    return out, import_aic(systems, out, system="h200_sxm", backends=(Backend.TRTLLM,))


def test_mhc_rows_land_with_stage_width_and_sites(db):
    out, report = db
    df = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, VERSION, OpKind.MHC_MODULE)).to_pandas()
    assert len(df) == 2 * 2 * len(TOKENS)
    assert set(df.stage) == {"pre", "post"} and set(df.hidden) == {4096, 7168} and set(df.sites) == {2}
    assert set(df.hc_mult) == {4} and set(df.sinkhorn_iters) == {20} and set(df.dtype) == {"bf16"}
    assert (df.sol_ms > 0).all() and (df.sol_ms < df.latency_ms).all()
    skipped = dict(next(t for t in report.tables if t.op == OpKind.MHC_MODULE).skipped)
    assert skipped == {"op_name 'head' is not an mHC stage (pre / post)": 1}


def test_module_traffic_is_the_elementwise_mix_per_sub_layer():
    """Per token, a layer's pre + post move what two ElementwiseOp.MHC sub-layers move (3.5 stream-sets
    each at hc 4); the modules add hc_fn's fixed fp32 read and the projection's flops."""
    t = np.array([1024.0, 2048.0])
    geo = dict(dtype=Dtype.BF16, hc_mult=4, hidden=7168, sinkhorn_iters=20, sites=2, num_tokens=t)
    pre, post = MhcModuleCase(stage=MhcStage.PRE, **geo), MhcModuleCase(stage=MhcStage.POST, **geo)
    mix = ElementwiseCase(op=ElementwiseOp.MHC, dtype=Dtype.BF16, hidden=4 * 7168, num_tokens=t)
    per_token = np.diff(pre.bytes() + post.bytes())[0] / 1024
    assert per_token == pytest.approx(2 * np.diff(mix.bytes())[0] / 1024)
    # hc_fn (fp32) read once a call: bytes(t) = sites x (per_token x t + fn), so b(t) - b(2t) / 2 = fn
    assert pre.bytes()[0] - pre.bytes()[1] / 2 == pytest.approx(24 * 4 * 7168 * 4.0)
    assert np.diff(pre.flops())[0] / 1024 > 2 * 2 * 24 * 4 * 7168                           # the projection


def test_v4_spec_carries_the_sinkhorn_iterations():
    m = load_model(V4)
    assert m.hc_mult == 4 and m.hc_sinkhorn_iters == 20
    assert load_model("deepseek-ai/DeepSeek-V3").hc_sinkhorn_iters == 0 and mhc_module(load_model("deepseek-ai/DeepSeek-V3")) is None


def _v4(out) -> StepModel:
    return StepModel.build(load_model(V4), H200, ParallelConfig(tp=8, moe_tp=8), EngineConfig(Backend.TRTLLM),
                           PerfDB(out).view("h200_sxm", Backend.TRTLLM))


def test_estimator_prices_mhc_from_the_module_and_says_so(db):
    out, _ = db
    sm = _v4(out)
    assert sm.composer.mhc_module is not None
    uses = {u.name: u for u in sm.composer.ops(0, 0, 0, 8, 4096)}
    assert uses["mhc_pre"].count == uses["mhc_post"].count == sm.model.num_layers   # a row is both sub-layers
    assert "mhc_proj" not in uses and "mhc_mix" not in uses and uses["mhc_head"].count == 1
    ops = {o.name: o for o in sm.step(Phase.DECODE, 0, 0, 0, 8, 4096).ops}      # 8 tokens: a measured row
    assert ops["mhc_pre"].source == ops["mhc_post"].source == Source.MEASURED
    measured = 0.01 + 1.0e-8 * 8 * 7168
    assert float(np.ravel(ops["mhc_pre"].ms)[0]) == pytest.approx(measured * sm.model.num_layers)
    pre = {o.name: o for o in sm.step(Phase.PREFILL, 1, 3000, 0, 0, 0).ops}
    assert pre["mhc_post"].source == Source.INTERPOLATED


def test_without_the_table_mhc_stays_on_its_pieces(db):
    out, _ = db
    m, par = load_model(V4), ParallelConfig(tp=8, moe_tp=8)
    assert LayerComposer(m, H200, par, Dtype.FP8).mhc_module is None
    uses = {u.name: u for u in LayerComposer(m, H200, par, Dtype.FP8).ops(0, 0, 0, 8, 4096)}
    assert uses["mhc_proj"].count == uses["mhc_mix"].count == 2 * m.num_layers and "mhc_pre" not in uses
    other = PerfDB(out).view("h200_sxm", Backend.TRTLLM)
    assert other.family(OpKind.MHC_MODULE) is not None
    assert not other.covers(MhcModuleCase(stage=MhcStage.PRE, dtype=Dtype.FP8, hc_mult=4, hidden=7168,
                                          sinkhorn_iters=20, sites=2, num_tokens=1))   # no fp8 streams stored


def test_check_interp_runs_on_the_mhc_table(db):
    out, _ = db
    report = check_interp(PerfDB(out).view("h200_sxm", Backend.TRTLLM), OpKind.MHC_MODULE)
    overall = report.results[0]
    assert report.table_rows == overall.rows == 2 * 2 * len(TOKENS) and np.isfinite(overall.median_rel_err)
