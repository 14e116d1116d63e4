"""Simulating rows of the measured-run table format (what calibration uses for runs under load)."""
from __future__ import annotations

import csv
import math

import pytest

from estimator.runs import read_runs
from estimator.sim.runs import simulate_runs
from perfdb.lookup import PerfDB

HEADER = ["id", "silicon_data_source", "backend", "backend_version", "model_path", "system", "precision", "mode",
          "isl", "osl", "gemm_quant_mode", "moe_quant_mode", "batch_size", "tp_size", "pp_size", "attention_dp_size",
          "moe_tp_size", "moe_ep_size", "prefill_batch_size", "prefill_num_workers", "prefill_tp_size",
          "prefill_pp_size", "prefill_attention_dp_size", "prefill_moe_tp_size", "prefill_moe_ep_size",
          "decode_batch_size", "decode_num_workers", "decode_tp_size", "decode_pp_size", "decode_attention_dp_size",
          "decode_moe_tp_size", "decode_moe_ep_size", "silicon_ttft_ms", "silicon_tpot_ms"]


def _row(rid, conc, mode, **kw):
    base = dict.fromkeys(HEADER, "")
    base.update(id=rid, silicon_data_source=f"source_file=x.csv; silicon_concurrency={conc}", backend="trtllm",
                backend_version="1.0.0", model_path="Qwen/Qwen3-8B", system="h200_sxm", precision="bf16", mode=mode,
                isl="1000", osl="64", silicon_ttft_ms="100", silicon_tpot_ms="10", **kw)
    return base


def test_agg_and_disagg_rows(tmp_path, tiny_db):
    path = tmp_path / "runs.csv"
    rows = [_row("a1", 1, "agg", batch_size="1", tp_size="1"), _row("a32", 32, "agg", batch_size="32", tp_size="1"),
            _row("d8", 8, "disagg", prefill_tp_size="1", decode_tp_size="2"),
            _row("bad", 4, "agg", batch_size="4", tp_size="3")]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, HEADER)
        w.writeheader()
        w.writerows(rows)
    runs = simulate_runs(read_runs(path), PerfDB(tiny_db), max_requests=200)
    a1, a32, d8, bad = runs
    assert [r.id for r in runs] == ["a1", "a32", "d8", "bad"]
    assert a1.status == a32.status == d8.status == "ok"
    assert a1.result.completed == 10 and a32.result.completed == 200   # 10 per client, capped
    assert a32.prediction().ttft_ms > a1.prediction().ttft_ms
    assert d8.deployment.decode.parallel.tp == 2 and d8.deployment.prefill.workers >= 1
    assert bad.status.startswith("InfeasibleError") and math.isnan(bad.prediction().ttft_ms)


def _write(path, rows, extra=()):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, [*HEADER, *extra])
        w.writeheader()
        w.writerows(rows)
    return read_runs(path)


ENRICH = ["engine_max_num_tokens", "engine_max_batch_size", "engine_flags", "client_range_ratio",
          "client_num_prompts", "client_num_warmups"]


def test_the_clients_warm_up_drains_before_the_measured_run(tmp_path, tiny_db):
    # InferenceX's client waits for every warm-up request before it starts measuring: the measured
    # run starts on an idle engine, its first wave at once, whatever the warm-up count
    rows = [_row(f"w{w}", 16, "agg", batch_size="16", tp_size="1", client_num_prompts="160",
                 client_num_warmups=str(w)) for w in (0, 32)]
    cold, warmed = simulate_runs(_write(tmp_path / "r.csv", rows, ENRICH), PerfDB(tiny_db))
    assert cold.result.completed == warmed.result.completed == 160
    assert warmed.prediction().ttft_ms == cold.prediction().ttft_ms


def test_recorded_engine_limits_reach_the_replayed_engine(tmp_path, tiny_db):
    from types import SimpleNamespace

    from estimator.deployment import Pool
    from estimator.models import load_model
    from estimator.parallel import ParallelConfig
    from estimator.sim.engine import _limits
    from estimator.sim.policy import policy_for
    from estimator.sim.runs import row_engine
    from perfdb.types import Backend

    rows = [_row("plain", 8, "agg", batch_size="8", tp_size="1"),
            _row("flags", 8, "agg", batch_size="8", tp_size="2", attention_dp_size="2",
                 engine_max_num_tokens="1200", engine_max_batch_size="4",
                 engine_flags="attention_dp_config.enable_balance=True;max_num_tokens=1200")]
    runs = _write(tmp_path / "r.csv", rows, ENRICH)
    model = load_model("Qwen/Qwen3-8B")
    assert row_engine(runs[0], Backend.TRTLLM, model).max_num_tokens is None
    eng = row_engine(runs[1], Backend.TRTLLM, model)
    assert (eng.max_num_tokens, eng.max_batch_size) == (1200, 4)
    assert all(r.status == "ok" for r in simulate_runs(runs, PerfDB(tiny_db), max_requests=80))
    # the recorded flags are per attention-DP rank (TRT-LLM): the worker holds ranks x them
    steps = SimpleNamespace(resolved=SimpleNamespace(max_batch_size=4, max_num_tokens=1200))
    assert _limits(steps, Pool(ParallelConfig(tp=2, attn_dp=2)), policy_for(Backend.TRTLLM))[:2] == (8, 2400)


def test_concurrency_one_simulated_ttft_matches_the_static_estimate(tmp_path, tiny_db):
    from estimator.runs import predict_runs

    runs = _write(tmp_path / "r.csv", [_row("c1", 1, "agg", batch_size="1", tp_size="1")])
    sim, = simulate_runs(runs, PerfDB(tiny_db))
    static, = predict_runs(runs, PerfDB(tiny_db))
    assert sim.prediction().ttft_ms == pytest.approx(static.ttft_ms, rel=0.05)
