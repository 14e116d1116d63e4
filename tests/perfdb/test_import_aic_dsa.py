"""The reference tool's DSA module tables (sparse_attention/dsa_*_module_perf) become dsa_module_prefill /
dsa_module_decode rows, and the estimator prices a DSA layer's attention block from them when the database
holds them (the separate pieces otherwise), saying which in the op breakdown."""
import numpy as np
import pytest
from fixtures.aic_layout import DEVICE, _write, build_aic

from estimator.engine import EngineConfig
from estimator.layers_hybrid import dsa_module_fields
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.importers import import_aic
from perfdb.importers.aic_module import DSA_GEOMETRY
from perfdb.lookup import PerfDB
from perfdb.ops import DsaModuleDecodeCase, DsaModulePrefillCase
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


def _rows(decode: bool):
    op, arch = ("dsa_generation_module" if decode else "dsa_context_module"), "GlmMoeDsaForCausalLM"
    rows = []
    for heads in (8, 16):
        for batch in (1, 4, 16):
            if decode:
                for step in (1023, 4095, 16383):
                    rows.append(_row(op, arch, heads, batch, 1, step, 0.1 + 0.002 * heads * batch * (1 + step / 8192)))
            else:
                for isl in (128, 1024):
                    for step in (0, 128):
                        rows.append(_row(op, arch, heads, batch, isl, step, 0.2 + 1e-5 * heads * batch * (isl + step)))
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
    fields = dsa_module_fields(load_model(name), 8, Dtype.BF16)
    assert {k: fields[k] for k in DSA_GEOMETRY[arch]} == DSA_GEOMETRY[arch]


def test_module_roofline_is_the_sum_of_the_layer_pieces():
    """The module's flops / bytes are exactly those of the ops servecast prices a DSA layer with when no
    module table exists (prefill-only and decode-only steps, no speculative tokens)."""
    m = load_model(GLM5)
    par = ParallelConfig(tp=8, moe_tp=8)
    sm = StepModel.build(m, H200, par, EngineConfig(Backend.TRTLLM), PerfDB().view("h200_sxm", Backend.TRTLLM))
    assert sm.composer.dsa_module is None                                    # bundled db: no module tables
    fields = dsa_module_fields(m, m.num_heads // 8, sm.kv_dtype)
    pieces = ("mla_down_proj", "mla_q_up_proj", "mla_absorb_bmm", "indexer_proj", "attn_prefill_sparse",
              "attn_decode_sparse", "mla_out_bmm", "o_proj")
    for args, case in (((2, 3000, 500, 0, 0), DsaModulePrefillCase(batch=2, seq_len=3000, prefix_len=500, **fields)),
                       ((0, 0, 0, 16, 20000), DsaModuleDecodeCase(batch=16, kv_len=20000, **fields))):
        uses = [u for u in sm.composer.ops(*args) if u.name in pieces and (u.mask is None or np.all(u.mask))]
        assert {u.count for u in uses} == {m.num_layers}
        for what in ("flops", "bytes"):
            total = sum(float(np.ravel(getattr(u.case, what)())[0]) for u in uses)
            assert float(getattr(case, what)()) == pytest.approx(total, rel=1e-12)
        compute, memory = roofline_s(case, H200)
        assert float(compute) == pytest.approx(sum(float(np.ravel(roofline_s(u.case, H200)[0])[0]) for u in uses))


def test_module_decode_grows_with_topk_and_indexer_not_the_full_context():
    fields = dsa_module_fields(load_model(GLM5), 8, Dtype.BF16)
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
    assert sm.composer.dsa_module is not None
    dec = sm.step(Phase.DECODE, 0, 0, 0, 4, 4096)          # 4 requests at 4,096 tokens: a measured row
    ops = {o.name: o for o in dec.ops}
    assert ops["dsa_module_decode"].source == Source.MEASURED
    assert not {"indexer_proj", "attn_decode_sparse", "mla_down_proj", "o_proj"} & set(ops)
    measured = 0.1 + 0.002 * 8 * 4 * (1 + 4095 / 8192)
    assert float(np.ravel(ops["dsa_module_decode"].ms)[0]) == pytest.approx(measured * sm.model.num_layers)
    pre = {o.name: o for o in sm.step(Phase.PREFILL, 2, 600, 0, 0, 0).ops}
    assert pre["dsa_module_prefill"].source == Source.INTERPOLATED and "dsa_module_decode" not in pre


def test_estimator_falls_back_to_the_pieces_without_a_matching_module_table(db):
    out, _ = db
    fp8_kv = _glm5(out, kv_dtype=Dtype.FP8)                # the table holds bf16-KV modules only
    assert fp8_kv.composer.dsa_module is None
    ops = {o.name for o in fp8_kv.step(Phase.DECODE, 0, 0, 0, 4, 4096).ops}
    assert {"indexer_proj", "attn_decode_sparse", "mla_down_proj", "o_proj"} <= ops and "dsa_module_decode" not in ops
    dense = StepModel.build(load_model("deepseek-ai/DeepSeek-V3"), H200, ParallelConfig(tp=8, moe_tp=8),
                            EngineConfig(Backend.TRTLLM), PerfDB(out).view("h200_sxm", Backend.TRTLLM))
    assert dense.composer.dsa_module is None               # not a DSA model
