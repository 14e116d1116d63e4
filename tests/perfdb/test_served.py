"""perfdb.served: rows whose collector flow holds work the served engine skips are priced without it.

Real Parquet databases written through perfdb.storage: a TensorRT-LLM fp8 GEMM table timed the way the
reference tool's collector times it (kernel_source torch_flow: the dynamic activation quantization
inside) beside a vLLM fp8 table of the same shapes, and the lookup must take the per-call difference
off the TensorRT-LLM price, never below the roofline, and leave everything else as stored."""
import numpy as np
import pyarrow as pa
import pytest

from perfdb import served
from perfdb.lookup import PerfDB
from perfdb.ops import GemmCase
from perfdb.roofline import sol_ms
from perfdb.schema import SCHEMAS
from perfdb.specs import load_system
from perfdb.storage import TableKey, init_db, write_shard
from perfdb.types import Backend, Dtype, OpKind

SYSTEM = "h200_sxm"
EXCESS_MS = 0.007   # what the collector's dynamic quantization adds per call in this fixture


def _grid():
    m, n, k = np.meshgrid([1, 4, 16, 64, 256, 1024, 4096], [1024, 2048, 4096, 8192], [1024, 2048, 4096, 8192],
                          indexing="ij")
    return m.ravel(), n.ravel(), k.ravel()


def _kernel_ms(dtype, m, n, k):
    """A plausible kernel time: 5 us to launch plus the roofline at 60% utilisation."""
    sol = sol_ms(GemmCase(dtype, m.astype(float), n.astype(float), k.astype(float)), load_system(SYSTEM))
    return 0.005 + np.ravel(sol) / 0.6


def _write(root, backend, rows):
    """rows: [(dtype, kernel_source, extra_ms)] on the shared grid."""
    m, n, k = _grid()
    cols = {f.name: [] for f in SCHEMAS[OpKind.GEMM]}
    for dtype, source, extra in rows:
        lat = _kernel_ms(dtype, m, n, k) + extra
        cols["sol_ms"] += np.ravel(sol_ms(GemmCase(dtype, m.astype(float), n.astype(float), k.astype(float)),
                                          load_system(SYSTEM))).tolist()
        cols["dtype"] += [dtype.value] * m.size
        cols["m"] += m.tolist()
        cols["n"] += n.tolist()
        cols["k"] += k.tolist()
        cols["latency_ms"] += lat.tolist()
        cols["kernel_source"] += [source] * m.size
    size = len(cols["m"])
    data = {}
    for f in SCHEMAS[OpKind.GEMM]:
        if cols[f.name]:
            data[f.name] = pa.array(cols[f.name], f.type)
        elif f.name == "system":
            data[f.name] = pa.array([SYSTEM] * size)
        elif f.name == "backend":
            data[f.name] = pa.array([backend.value] * size)
        elif f.name == "backend_version":
            data[f.name] = pa.array(["1.0"] * size)
        else:
            data[f.name] = pa.nulls(size, f.type)
    write_shard(root, TableKey(SYSTEM, backend, "1.0", OpKind.GEMM), pa.table(data), 0)


@pytest.fixture
def db(tmp_path):
    init_db(tmp_path)
    _write(tmp_path, Backend.TRTLLM, [(Dtype.FP8, "torch_flow", EXCESS_MS), (Dtype.BF16, "torch_flow", 0.0)])
    _write(tmp_path, Backend.VLLM, [(Dtype.FP8, "CutlassFP8ScaledMMLinearKernel", 0.0), (Dtype.BF16, "torch", 0.0)])
    return tmp_path


def test_trtllm_fp8_rows_hold_the_collectors_per_call_excess(db):
    """The view measures the excess against vLLM's rows and leaves its own price as stored; served.adjust
    takes it off."""
    view = PerfDB(db).view(SYSTEM, Backend.TRTLLM)
    case = GemmCase(Dtype.FP8, np.array([4.0, 64.0]), np.array([4096.0, 8192.0]), np.array([8192.0, 4096.0]))
    assert view.flow_excess_ms(case) == pytest.approx(EXCESS_MS, rel=1e-6)
    kernel = _kernel_ms(Dtype.FP8, np.array([4, 64]), np.array([4096, 8192]), np.array([8192, 4096]))
    stored = view.latency(case).ms
    np.testing.assert_allclose(stored, kernel + EXCESS_MS, rtol=1e-6)
    np.testing.assert_allclose(served.adjust(stored, case, EXCESS_MS, view.system), kernel, rtol=1e-6)


def test_the_adjustment_never_goes_below_the_roofline(db):
    view = PerfDB(db).view(SYSTEM, Backend.TRTLLM)
    case = GemmCase(Dtype.FP8, 1024.0, 8192.0, 8192.0)
    got = served.adjust(view.latency(case).ms, case, 10.0, view.system)   # an excess larger than any row
    assert got.item() == pytest.approx(np.ravel(sol_ms(case, view.system)).item())


def test_other_dtypes_backends_and_collectors_are_left_as_stored(db, tmp_path_factory):
    pdb = PerfDB(db)
    bf16 = GemmCase(Dtype.BF16, 4.0, 4096.0, 8192.0)
    assert pdb.view(SYSTEM, Backend.TRTLLM).flow_excess_ms(bf16) == 0.0
    fp8 = GemmCase(Dtype.FP8, 4.0, 4096.0, 8192.0)
    assert pdb.view(SYSTEM, Backend.VLLM).flow_excess_ms(fp8) == 0.0
    # rows timed by another flow (the GEMM alone): nothing to take off
    other = tmp_path_factory.mktemp("own")
    init_db(other)
    _write(other, Backend.TRTLLM, [(Dtype.FP8, "cublaslt_fp8", EXCESS_MS)])
    _write(other, Backend.VLLM, [(Dtype.FP8, "CutlassFP8ScaledMMLinearKernel", 0.0)])
    assert PerfDB(other).view(SYSTEM, Backend.TRTLLM).flow_excess_ms(fp8) == 0.0


def test_the_bundled_curves_carry_the_excess_and_say_so():
    """The bundled database prices from curves fitted to the reference tool's rows: its TensorRT-LLM fp8
    curve sits above vLLM's at decode sizes, and the estimate's breakdown names the adjustment."""
    view = PerfDB().view("b200_sxm", Backend.TRTLLM)
    case = GemmCase(Dtype.FP8, 4.0, 8192.0, 8192.0)
    excess = view.flow_excess_ms(case)
    assert excess > 0.001
    assert served.rule_for(Backend.TRTLLM, case) is not None
    assert served.rule_for(Backend.TRTLLM, GemmCase(Dtype.FP8_BLOCK, 4.0, 8192.0, 8192.0)) is None


def test_only_models_with_static_fp8_scales_lose_the_excess():
    """A per-tensor FP8 checkpoint with static input scales (what --gemm-quant fp8 asks for) is priced
    without the collector's dynamic quantization; the same model whose FP8 activations are quantized
    on every call keeps the rows as they are."""
    from dataclasses import replace

    from estimator.engine import EngineConfig
    from estimator.estimate import estimate
    from estimator.models import load_model
    from estimator.parallel import ParallelConfig
    from estimator.workload import Workload

    static = load_model("meta-llama/Llama-3.1-70B", gemm_quant=Dtype.FP8)
    dynamic = replace(static, fp8_dynamic_activations=True)
    db = PerfDB()

    view = db.view("b200_sxm", Backend.TRTLLM)

    def tpot(model):
        return float(estimate(model, view.system, ParallelConfig(tp=4), EngineConfig(Backend.TRTLLM),
                              Workload(isl=1024, osl=1024, concurrency=4), view).tpot_ms)

    excess = view.flow_excess_ms(GemmCase(Dtype.FP8, 4.0, 8192.0, 8192.0))
    # four GEMMs per layer, 80 layers: the static model's step is about that many excesses shorter
    assert tpot(dynamic) - tpot(static) == pytest.approx(4 * 80 * excess, rel=0.2)


def test_estimate_breakdown_names_the_adjusted_ops():
    from typer.testing import CliRunner

    from servecast.cli import app

    res = CliRunner().invoke(app, ["estimate", "--model", "meta-llama/Llama-3.1-70B", "--system", "b200_sxm",
                                   "--backend", "trtllm", "--tp", "4", "--concurrency", "4", "--gemm-quant", "fp8",
                                   "--calibration", "none", "--json"])
    assert res.exit_code == 0, res.output
    import json

    ops = json.loads(res.output)["breakdown"]
    noted = {o["op"] for o in ops if "dynamic activation quantization" in o.get("note", "")}
    assert {"qkv_proj", "o_proj", "mlp_gate_up", "mlp_down"} <= noted
    assert not any("note" in o for o in ops if o["op"] in ("attn_decode", "tp_allreduce"))


def test_db_info_reports_the_excess_per_table(db):
    from typer.testing import CliRunner

    from servecast.cli import app

    res = CliRunner().invoke(app, ["db", "info", "--db", str(db)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "gemm fp8: rows hold 7.0 us/call the served engine may skip" in text
    assert text.count("us/call") == 1          # vLLM's rows time the served flow: nothing to report
