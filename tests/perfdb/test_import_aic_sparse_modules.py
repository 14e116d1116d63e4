"""The reference tool's DSA and MSA module tables (dsa_* / msa_*_module_perf) become dsa_module_* /
msa_module_* rows, and the estimator prices a sparse layer's attention block from them when the database
holds them (the separate pieces otherwise), saying which in the op breakdown."""
import numpy as np
import pytest
from fixtures.aic_layout import DEVICE, _write, build_aic

from estimator.engine import EngineConfig
from estimator.layers import LayerComposer
from estimator.layers_hybrid import sparse_module
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.importers import import_aic
from perfdb.importers.aic_module import DSA_GEOMETRY, MSA_GEOMETRY
from perfdb.lookup import PerfDB
from perfdb.ops import DsaModuleDecodeCase
from perfdb.roofline import roofline_s
from perfdb.specs import load_system
from perfdb.storage import TableKey, read_table
from perfdb.types import Backend, Dtype, OpKind, Phase, Source

GLM5 = "zai-org/GLM-5-FP8"
H200 = load_system("h200_sxm")
VERSION = "1.3.0rc20"


def _row(op, arch, heads, batch, isl, step, latency, kv="bfloat16", gemm="fp8_block"):
    return {"framework": "TRTLLM", "version": VERSION, "device": DEVICE, "op_name": op, "kernel_source": "default",
            "model": "zai-org/GLM-5", "architecture": arch, "mla_dtype": "bfloat16", "kv_cache_dtype": kv,
            "gemm_type": gemm, "num_heads": heads, "batch_size": batch, "isl": isl, "tp_size": 1, "step": step,
            "latency": latency}


def _rows(decode: bool, family="dsa", arch="GlmMoeDsaForCausalLM", gemm="fp8_block"):
    op = f"{family}_generation_module" if decode else f"{family}_context_module"
    rows = []
    for heads in (8, 16):
        for batch in (1, 4, 16):
            if decode:
                for step in (1023, 4095, 16383):
                    rows.append(_row(op, arch, heads, batch, 1, step, 0.1 + 0.002 * heads * batch * (1 + step / 8192),
                                     gemm=gemm))
            else:
                for isl in (128, 1024):
                    for step in (0, 128):
                        rows.append(_row(op, arch, heads, batch, isl, step, 0.2 + 1e-5 * heads * batch * (isl + step),
                                         gemm=gemm))
    rows.append(_row(op + "_skip_indexer", arch, 8, 1, 1 if decode else 128, 1023 if decode else 0, 0.1))
    rows.append(_row(op, "SomeFutureDsaForCausalLM", 8, 1, 1 if decode else 128, 1023 if decode else 0, 0.1))
    return rows


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("aic_dsa")
    systems = build_aic(root / "src")
    folder = systems / "data/h200_sxm/sparse_attention/trtllm" / VERSION
    _write(folder / "dsa_context_module_perf.parquet", _rows(decode=False))
    _write(folder / "dsa_generation_module_perf.parquet", _rows(decode=True))
    msa = systems / "data/h200_sxm/msa/trtllm" / VERSION
    m3 = dict(family="msa", arch="MiniMaxM3ForCausalLM", gemm="bfloat16")
    _write(msa / "msa_context_module_perf.parquet", _rows(decode=False, **m3))
    _write(msa / "msa_generation_module_perf.parquet", _rows(decode=True, **m3))
    out = root / "db"
    return out, import_aic(systems, out, system="h200_sxm", backends=(Backend.TRTLLM,))


def test_module_rows_land_with_the_architecture_geometry(db):
    out, report = db
    pre = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, VERSION, OpKind.DSA_MODULE_PREFILL)).to_pandas()
    dec = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, VERSION, OpKind.DSA_MODULE_DECODE)).to_pandas()
    assert len(pre) == 2 * 3 * 2 * 2 and len(dec) == 2 * 3 * 3
    assert set(pre.hidden) == {6144} and set(pre.index_heads) == {32} and set(pre.v_head_dim) == {256}
    assert set(pre.dtype) == {"fp8_block"} and set(pre.kv_dtype) == {"bf16"} and set(pre.prefix_len) == {0, 128}
    assert set(dec.kv_len) == {1024, 4096, 16384}   # isl 1 + step cached tokens
    assert (dec.sol_ms > 0).all() and (dec.sol_ms < dec.latency_ms).all()
    skipped = dict(next(t for t in report.tables if t.op == OpKind.DSA_MODULE_DECODE).skipped)
    assert skipped == {"op_name 'dsa_generation_module_skip_indexer' (layers that reuse another layer's top-k) "
                       "has no servecast op": 1,
                       "architecture 'SomeFutureDsaForCausalLM' has no DSA geometry in servecast": 1}


@pytest.mark.parametrize("name,arch", [("deepseek-ai/DeepSeek-V3.2", "DeepseekV32ForCausalLM"),
                                       ("zai-org/GLM-5", "GlmMoeDsaForCausalLM")])
def test_importer_geometry_is_the_catalog_models(name, arch):
    fields = sparse_module(load_model(name), 8, 8, Dtype.BF16).fields
    assert {k: fields[k] for k in DSA_GEOMETRY[arch]} == DSA_GEOMETRY[arch]
    m3 = sparse_module(load_model("MiniMaxAI/MiniMax-M3"), 8, 1, Dtype.BF16).fields
    assert {k: m3[k] for k in MSA_GEOMETRY["MiniMaxM3ForCausalLM"]} == MSA_GEOMETRY["MiniMaxM3ForCausalLM"]


def _step_totals(composer, args) -> tuple[float, float, float]:
    """Layer-weighted flops, bytes and roofline compute seconds of every op a step runs."""
    out = np.zeros(3)
    for u in composer.ops(*args):
        if u.mask is not None and not np.all(u.mask):
            continue
        out += u.count * np.array([float(np.ravel(u.case.flops())[0]), float(np.ravel(u.case.bytes())[0]),
                                   float(np.ravel(roofline_s(u.case, H200)[0])[0])])
    return tuple(out)


@pytest.mark.parametrize("name,module", [(GLM5, "dsa_module"), ("MiniMaxAI/MiniMax-M3", "msa_module")])
def test_module_roofline_is_the_sum_of_the_layer_pieces(name, module):
    """A module's flops, bytes and compute time are exactly those of the ops servecast prices the sparse
    layers' attention block with when no module table exists (prefill-only and decode-only steps)."""
    m, par = load_model(name), ParallelConfig(tp=8, moe_tp=8)
    pieces = LayerComposer(m, H200, par, Dtype.BF16)
    whole = LayerComposer(m, H200, par, Dtype.BF16, covers=lambda case: True)
    assert pieces.sparse_module is None and whole.sparse_module is not None
    for args in ((2, 3000, 500, 0, 0), (0, 0, 0, 16, 20000)):
        names = {u.name for u in whole.ops(*args)}
        assert {f"{module}_prefill", f"{module}_decode"} <= names and "indexer_q_proj" not in names
        assert _step_totals(whole, args) == pytest.approx(_step_totals(pieces, args), rel=1e-12)


def test_module_decode_grows_with_topk_and_indexer_not_the_full_context():
    fields = sparse_module(load_model(GLM5), 8, 8, Dtype.BF16).fields
    kv = np.array([4096.0, 65536.0])
    case = DsaModuleDecodeCase(batch=1, kv_len=kv, **fields)
    no_index = DsaModuleDecodeCase(batch=1, kv_len=kv, **dict(fields, index_heads=0))
    assert no_index.flops()[1] == no_index.flops()[0]         # projections fixed, attention capped at top-k
    assert case.flops()[1] - case.flops()[0] == pytest.approx(2 * 32 * 128 * (kv[1] - kv[0]))


def _glm5(out, kv_dtype=None):
    engine = EngineConfig(Backend.TRTLLM, kv_dtype=kv_dtype)
    return StepModel.build(load_model(GLM5), H200, ParallelConfig(tp=8, moe_tp=8), engine,
                           PerfDB(out).view("h200_sxm", Backend.TRTLLM))


def test_estimator_prices_the_attention_block_from_the_module_and_says_so(db):
    out, _ = db
    sm = _glm5(out)
    assert sm.composer.sparse_module is not None
    dec = sm.step(Phase.DECODE, 0, 0, 0, 4, 4096)          # 4 requests at 4,096 tokens: a measured row
    ops = {o.name: o for o in dec.ops}
    assert ops["dsa_module_decode"].source == Source.MEASURED
    assert not {"indexer_q_proj", "attn_decode_sparse", "mla_down_proj", "o_proj"} & set(ops)
    measured = 0.1 + 0.002 * 8 * 4 * (1 + 4095 / 8192)
    assert float(np.ravel(ops["dsa_module_decode"].ms)[0]) == pytest.approx(measured * sm.model.num_layers)
    pre = {o.name: o for o in sm.step(Phase.PREFILL, 2, 600, 0, 0, 0).ops}
    assert pre["dsa_module_prefill"].source == Source.INTERPOLATED and "dsa_module_decode" not in pre


def test_estimator_falls_back_to_the_pieces_without_a_matching_module_table(db):
    out, _ = db
    fp8_kv = _glm5(out, kv_dtype=Dtype.FP8)                # the table holds bf16-KV modules only
    assert fp8_kv.composer.sparse_module is None
    ops = {o.name for o in fp8_kv.step(Phase.DECODE, 0, 0, 0, 4, 4096).ops}
    assert {"indexer_q_proj", "attn_decode_sparse", "mla_down_proj", "o_proj"} <= ops and "dsa_module_decode" not in ops
    dense = StepModel.build(load_model("deepseek-ai/DeepSeek-V3"), H200, ParallelConfig(tp=8, moe_tp=8),
                            EngineConfig(Backend.TRTLLM), PerfDB(out).view("h200_sxm", Backend.TRTLLM))
    assert dense.composer.sparse_module is None               # not a DSA model


def test_msa_rows_carry_the_kv_heads_of_their_tensor_parallel_slice(db):
    out, _ = db
    dec = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, VERSION, OpKind.MSA_MODULE_DECODE)).to_pandas()
    assert len(dec) == 2 * 3 * 3 and set(dec.head_dim) == {128} and set(dec.topk) == {2048}
    # M3's 64 query / 4 KV heads: 8 query heads a GPU is tp 8 (one KV head, replicated), 16 is tp 4
    assert dict(zip(dec.num_heads, dec.num_kv_heads, strict=True)) == {8: 1, 16: 1}


def test_estimator_prices_minimax_m3_sparse_layers_from_the_msa_module(db):
    out, _ = db
    sm = StepModel.build(load_model("MiniMaxAI/MiniMax-M3"), H200, ParallelConfig(tp=8, moe_tp=8),
                         EngineConfig(Backend.TRTLLM), PerfDB(out).view("h200_sxm", Backend.TRTLLM))
    uses = {u.name: u for u in sm.composer.ops(0, 0, 0, 4, 4096)}
    assert uses["msa_module_decode"].count == 57                       # its sparse layers
    assert uses["qkv_proj"].count == uses["o_proj"].count == 3        # the 3 full-attention layers keep theirs
    assert "indexer_q_proj" not in uses and "attn_decode_sparse" not in uses
    ops = {o.name: o for o in sm.step(Phase.DECODE, 0, 0, 0, 4, 4096).ops}
    assert ops["msa_module_decode"].source == Source.MEASURED


def test_another_dsa_geometry_borrows_the_stored_one_and_is_labelled_extrapolated(db):
    out, _ = db                                            # the table holds GLM-5 rows only
    sm = StepModel.build(load_model("deepseek-ai/DeepSeek-V3.2"), H200, ParallelConfig(tp=8, moe_tp=8),
                         EngineConfig(Backend.TRTLLM), PerfDB(out).view("h200_sxm", Backend.TRTLLM))
    assert sm.composer.sparse_module is not None
    ops = {o.name: o for o in sm.step(Phase.DECODE, 0, 0, 0, 4, 4096).ops}
    assert ops["dsa_module_decode"].source == Source.EXTRAPOLATED


def test_check_interp_runs_on_the_module_tables(db):
    from perfdb.checkinterp import check_interp

    out, _ = db
    view = PerfDB(out).view("h200_sxm", Backend.TRTLLM)
    for op in (OpKind.DSA_MODULE_PREFILL, OpKind.DSA_MODULE_DECODE, OpKind.MSA_MODULE_DECODE):
        report = check_interp(view, op)
        overall = report.results[0]
        assert report.table_rows == overall.rows > 0 and np.isfinite(overall.median_rel_err)
