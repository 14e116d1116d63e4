"""The reference tool's linear-attention tables (gdn / kda / mamba2 kernel rows) become linear_prefill and
linear_decode rows: conv1d + scan kernels of one shape added, the fastest of several scan kernels kept."""
import pytest
from fixtures.aic_layout import DEVICE, _write, build_aic

from perfdb.importers import import_aic
from perfdb.lookup import PerfDB
from perfdb.ops import LinearDecodeCase
from perfdb.storage import TableKey, read_table
from perfdb.types import Backend, Dtype, LinearKind, OpKind, Source

SHAPE = {"d_model": 4096, "d_conv": 4, "num_k_heads": 2, "head_k_dim": 128, "num_v_heads": 8, "head_v_dim": 128,
         "model_name": "Qwen/Qwen3.5-397B-A17B"}


def _row(ks, phase, batch, seq, latency, op="gdn"):
    return {"framework": "TRTLLM", "version": "1.3.0rc20", "device": DEVICE, "op_name": op, "kernel_source": ks,
            "phase": phase, "batch_size": batch, "seq_len": seq, "num_tokens": batch * seq, **SHAPE, "latency": latency}


def _gdn_rows():
    rows = []
    for b in (1, 4, 16, 64):
        rows.append(_row("causal_conv1d_update", "generation", b, 1, 0.004))
        rows.append(_row("fused_recurrent_gated_delta_rule", "generation", b, 1, 0.01 + 0.001 * b))
        rows.append(_row("slow_decode", "generation", b, 1, 1.0))                      # a slower alternative
        for s in (128, 1024):
            rows.append(_row("causal_conv1d_fn", "context", b, s, 0.005 + 1e-6 * b * s))
            rows.append(_row("chunk_gated_delta_rule", "context", b, s, 0.02 + 1e-5 * b * s))
    rows.append(_row("chunk_gated_delta_rule", "verify", 1, 4, 0.02))                   # speculative: no op
    rows.append(_row("causal_conv1d_fn", "context", 2, 128, 0.006))                    # conv without scan
    return rows


def _mamba2_conv_rows():
    """The 0.12.0 mamba2 tables' content: conv1d rows only, no scan kernel."""
    shape = {"d_model": 8192, "d_state": 128, "d_conv": 4, "nheads": 64, "head_dim": 64, "n_groups": 8,
             "chunk_size": 256, "model_name": "MAMBA2_GENERIC_4K"}
    rows = []
    for b in (1, 8):
        base = {"framework": "TRTLLM", "version": "1.3.0rc20", "device": DEVICE, "op_name": "mamba2", "batch_size": b, **shape}
        rows.append({**base, "kernel_source": "causal_conv1d_update", "phase": "generation", "seq_len": 1, "num_tokens": b,
                     "latency": 0.004})
        rows.append({**base, "kernel_source": "causal_conv1d_fn", "phase": "context", "seq_len": 1024, "num_tokens": b * 1024,
                     "latency": 0.01})
    return rows


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("aic_linear")
    systems = build_aic(root / "src")
    _write(systems / "data/h200_sxm/linear_attention/trtllm/1.3.0rc20/gdn_perf.parquet", _gdn_rows())
    _write(systems / "data/h200_sxm/linear_attention/trtllm/1.3.0rc20/mamba2_perf.parquet", _mamba2_conv_rows())
    out = root / "db"
    report = import_aic(systems, out, system="h200_sxm", backends=(Backend.TRTLLM,))
    return out, report


def test_conv_and_scan_are_one_row_and_both_phases_land(db):
    out, _ = db
    pre = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, "1.3.0rc20", OpKind.LINEAR_PREFILL)).to_pandas()
    dec = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, "1.3.0rc20", OpKind.LINEAR_DECODE)).to_pandas()
    assert len(pre) == 8 and len(dec) == 4
    assert set(pre["kind"]) == {"gdn"} and set(pre["state_dtype"]) == {"fp32"} and set(pre["chunk"]) == {64}
    row = pre[(pre.batch == 4) & (pre.seq_len == 1024)].iloc[0]
    assert row.latency_ms == pytest.approx(0.005 + 4096e-6 + 0.02 + 4096e-5)
    assert row.kernel_source == "causal_conv1d_fn+chunk_gated_delta_rule"
    d = dec[dec.batch == 16].iloc[0]
    assert d.latency_ms == pytest.approx(0.004 + 0.026) and d.kernel_source.endswith("fused_recurrent_gated_delta_rule")
    assert (dec["sol_ms"] > 0).all() and (dec["sol_ms"] < dec["latency_ms"]).all()


def test_dropped_rows_are_reported(db):
    _, report = db
    gdn = [t for t in report.tables if t.aic_table.endswith("gdn_perf.parquet") and t.op == OpKind.LINEAR_PREFILL]
    skipped = dict(gdn[0].skipped)
    assert skipped == {"phase 'verify' has no servecast op": 1,
                       "context: shape has a conv1d row but no scan kernel row": 1}


def test_estimator_cases_hit_the_imported_rows(db):
    out, _ = db
    view = PerfDB(out).view("h200_sxm", Backend.TRTLLM, "1.3.0rc20")
    case = LinearDecodeCase(kind=LinearKind.GDN, dtype=Dtype.BF16, state_dtype=Dtype.FP32, num_k_heads=2, num_v_heads=8,
                            head_k_dim=128, head_v_dim=128, conv_kernel=4, batch=[16.0, 8.0])
    lat = view.latency(case)
    assert lat.ms[0] == pytest.approx(0.030) and Source.from_code(int(lat.source[0])) == Source.MEASURED
    assert Source.from_code(int(lat.source[1])) == Source.INTERPOLATED


def test_mamba2_conv_only_rows_are_dropped_and_the_scan_stays_on_the_roofline(db):
    """No scan kernel in the table: nothing lands for Mamba-2, its rows are counted as dropped, and
    Nemotron-3's mixers answer from the roofline rung (the GDN rows do not stand in for them)."""
    from estimator.engine import EngineConfig
    from estimator.models import load_model
    from estimator.parallel import ParallelConfig
    from estimator.steps import StepModel
    from perfdb.specs import load_system
    from perfdb.types import Phase

    out, report = db
    mamba = {t.op: dict(t.skipped) for t in report.tables if t.aic_table.endswith("mamba2_perf.parquet")}
    assert mamba[OpKind.LINEAR_PREFILL] == {"context: shape has a conv1d row but no scan kernel row": 2}
    assert mamba[OpKind.LINEAR_DECODE] == {"generation: shape has a conv1d row but no scan kernel row": 2}
    pre = read_table(out, TableKey("h200_sxm", Backend.TRTLLM, "1.3.0rc20", OpKind.LINEAR_PREFILL)).to_pandas()
    assert set(pre["kind"]) == {"gdn"}
    sm = StepModel.build(load_model("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8"), load_system("h200_sxm"),
                         ParallelConfig(tp=8, moe_tp=8), EngineConfig(Backend.TRTLLM),
                         PerfDB(out).view("h200_sxm", Backend.TRTLLM))
    for phase, args, name in ((Phase.PREFILL, (1, 2000, 0, 0, 0), "linear_prefill"), (Phase.DECODE, (0, 0, 0, 8, 2000), "linear_decode")):
        ops = {o.name: o for o in sm.step(phase, *args).ops}
        assert ops[name].source == Source.ROOFLINE
