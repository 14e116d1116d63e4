"""Simulating rows of the measured-run table format (what calibration uses for runs under load)."""
from __future__ import annotations

import csv
import math

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
