"""The reference tool's DeepSeek-V4 HCA attention-module tables (dsv4_hca_*_module_perf) become
dsv4_module_* rows keyed by the geometry their heads x tp name (Flash / Pro); the CSA ones stay skipped;
the estimator prices V4's HCA layers from them when the database holds them (their pieces otherwise),
and the module's roofline is exactly those pieces."""
import numpy as np
import pytest
from fixtures.aic_layout import DEVICE, _write, build_aic

from estimator.engine import EngineConfig
from estimator.layers import LayerComposer
from estimator.layers_hybrid import v4_module
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.checkinterp import check_interp
from perfdb.importers import import_aic
from perfdb.importers.aic_dsv4 import DSV4_GEOMETRY
from perfdb.lookup import PerfDB
from perfdb.roofline import roofline_s
from perfdb.specs import load_system
from perfdb.storage import TableKey, read_table
from perfdb.types import Backend, Dtype, OpKind, Phase, Source

PRO, FLASH = "deepseek-ai/DeepSeek-V4-Pro", "deepseek-ai/DeepSeek-V4-Flash"
B200 = load_system("b200_sxm")
VERSION = "1.3.0rc20"
DSV4 = (OpKind.DSV4_MODULE_PREFILL, OpKind.DSV4_MODULE_DECODE)


def _row(op, native, tp, batch, isl, step, latency, ratio=128):
    return {"framework": "TRTLLM", "version": VERSION, "device": DEVICE, "op_name": op, "kernel_source": "default",
            "model": "sgl-project/DeepSeek-V4-Pro-FP8", "architecture": "DeepseekV4ForCausalLM", "mla_dtype": "bfloat16",
            "kv_cache_dtype": "fp8", "gemm_type": "fp8_block", "num_heads": native // tp, "batch_size": batch, "isl": isl,
            "tp_size": tp, "step": step, "compress_ratio": ratio, "latency": latency}


def _rows(decode: bool, ratio=128):
    op = f"dsv4_{'csa' if ratio == 4 else 'hca'}_{'generation' if decode else 'context'}_module"
    rows = []
    for tp in (4, 8):
        for batch in (1, 4, 16):
            if decode:
                rows += [_row(op, 128, tp, batch, 1, step, 0.08 + 1e-3 * batch * (1 + step / 65536), ratio)
                         for step in (1023, 8191, 65535)]
            else:
                rows += [_row(op, 128, tp, batch, isl, step, 0.1 + 2e-4 * batch * isl * (1 + step / 65536), ratio)
                         for isl in (256, 2048) for step in (0, 4096)]
    rows.append(_row(op, 96, 8, 1, 1 if decode else 256, 1023 if decode else 0, 0.1, ratio))   # no such model
    return rows


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("aic_dsv4")
    systems = build_aic(root / "src")
    folder = systems / "data/h200_sxm/sparse_attention/trtllm" / VERSION
    _write(folder / "dsv4_hca_context_module_perf.parquet", _rows(decode=False))
    _write(folder / "dsv4_hca_generation_module_perf.parquet", _rows(decode=True))
    _write(folder / "dsv4_csa_generation_module_perf.parquet", _rows(decode=True, ratio=4))
    out = root / "db"
    return out, import_aic(systems, out, system="h200_sxm", backends=(Backend.TRTLLM,))


def test_hca_rows_land_with_the_geometry_of_their_heads(db):
    out, report = db
    pre = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, VERSION, OpKind.DSV4_MODULE_PREFILL)).to_pandas()
    dec = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, VERSION, OpKind.DSV4_MODULE_DECODE)).to_pandas()
    assert len(pre) == 2 * 3 * 2 * 2 and len(dec) == 2 * 3 * 3
    assert set(pre.hidden) == {7168} and set(pre.compress) == {128} and set(pre.prefix_len) == {0, 4096}
    assert dict(zip(pre.num_heads, pre.o_groups, strict=True)) == {32: 4, 16: 2}     # 128 heads, 16 groups over tp 4 / 8
    assert set(dec.kv_len) == {1024, 8192, 65536} and set(dec.kv_dtype) == {"fp8"} and set(dec.dtype) == {"fp8_block"}
    assert (dec.sol_ms > 0).all() and (dec.sol_ms < dec.latency_ms).all()
    skipped = dict(next(t for t in report.tables if t.op == OpKind.DSV4_MODULE_DECODE).skipped)
    assert skipped == {"num_heads x tp_size 96 matches no DeepSeek-V4 geometry (64 Flash, 128 Pro)": 1}
    csa = [t for t in report.tables if "dsv4_csa" in t.aic_table]
    assert csa and all(t.op is None for t in csa)                                      # skipped as a table


@pytest.mark.parametrize("name,native", [(FLASH, 64), (PRO, 128)])
def test_importer_geometry_is_the_catalog_models(name, native):
    fields = v4_module(load_model(name), 8, native // 8, Dtype.FP8).fields
    geo = dict(DSV4_GEOMETRY[native], o_groups=DSV4_GEOMETRY[native]["o_groups"] // 8)
    assert {k: fields[k] for k in geo} == geo and fields["compress"] == 128


def _step_totals(composer, args) -> np.ndarray:
    out = np.zeros(3)
    for u in composer.ops(*args):
        if u.mask is not None and not np.all(u.mask):
            continue
        out += u.count * np.array([float(np.ravel(u.case.flops())[0]), float(np.ravel(u.case.bytes())[0]),
                                   float(np.ravel(roofline_s(u.case, B200)[0])[0])])
    return out


@pytest.mark.parametrize("name", [FLASH, PRO])
def test_module_roofline_is_the_sum_of_the_hca_layer_pieces(name):
    """Prefill-only and decode-only steps: the module's flops, bytes and compute time equal those of the
    projections, compressor, compressed attention and window prefill it replaces in the HCA layers."""
    m, par = load_model(name), ParallelConfig(tp=8, moe_tp=8)
    pieces = LayerComposer(m, B200, par, Dtype.FP8)
    whole = LayerComposer(m, B200, par, Dtype.FP8, covers=lambda case: case.KIND in DSV4)
    assert pieces.v4_module is None and whole.v4_module is not None and whole.mhc_module is None
    for args in ((2, 3000, 500, 0, 0), (0, 0, 0, 16, 20000)):
        uses = {u.name: u for u in whole.ops(*args)}
        assert "compressor_proj_hca" not in uses and "attn_prefill_compressed" not in uses
        assert uses["attn_q_up"].count == m.num_attn_layers - m.num_compressed_layers
        assert uses["compressor_proj_csa"].count == m.num_sparse_layers                  # CSA keeps its pieces
        assert _step_totals(whole, args) == pytest.approx(_step_totals(pieces, args), rel=1e-12)


def _pro(out, kv_dtype=Dtype.FP8) -> StepModel:
    return StepModel.build(load_model(PRO), load_system("h200_sxm"), ParallelConfig(tp=8, moe_tp=8),
                           EngineConfig(Backend.TRTLLM, kv_dtype=kv_dtype), PerfDB(out).view("h200_sxm", Backend.TRTLLM))


def test_estimator_prices_the_hca_layers_from_the_module_and_says_so(db):
    out, _ = db
    sm = _pro(out)
    assert sm.composer.v4_module is not None
    dec = {o.name: o for o in sm.step(Phase.DECODE, 0, 0, 0, 4, 8192).ops}   # 4 requests at 8,192: a measured row
    assert dec["dsv4_module_decode"].source == Source.MEASURED and "attn_decode_compressed" not in dec
    measured = 0.08 + 1e-3 * 4 * (1 + 8191 / 65536)
    assert float(np.ravel(dec["dsv4_module_decode"].ms)[0]) == pytest.approx(measured * sm.model.num_compressed_layers)
    assert "attn_decode_sparse" in dec                                         # the CSA layers' pieces
    pre = {o.name: o for o in sm.step(Phase.PREFILL, 2, 1000, 0, 0, 0).ops}
    assert pre["dsv4_module_prefill"].source == Source.INTERPOLATED


def test_without_a_matching_table_the_hca_layers_keep_their_pieces(db):
    out, _ = db
    bf16_kv = _pro(out, kv_dtype=Dtype.BF16)                                   # the tables hold fp8-KV modules only
    assert bf16_kv.composer.v4_module is None
    ops = {o.name for o in bf16_kv.step(Phase.DECODE, 0, 0, 0, 4, 8192).ops}
    assert {"attn_decode_compressed", "compressor_proj_hca"} <= ops and "dsv4_module_decode" not in ops


def test_check_interp_runs_on_the_dsv4_tables(db):
    out, _ = db
    view = PerfDB(out).view("h200_sxm", Backend.TRTLLM)
    for op in DSV4:
        report = check_interp(view, op)
        assert report.table_rows == report.results[0].rows > 0 and np.isfinite(report.results[0].median_rel_err)
