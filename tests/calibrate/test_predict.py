"""Predictions joined to measurements: estimator and simulator bases, predictions files, applying a calibration."""
from __future__ import annotations

import math

import numpy as np

from calibrate.parsers import parse_file
from calibrate.predict import Base, apply_calibration, from_predictions_file, predict, to_run_row
from estimator.calibration import Calibration, Factor, Scope
from perfdb.lookup import PerfDB

HEADER = ("id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,gemm_quant_mode,"
          "moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,moe_ep_size,prefill_batch_size,"
          "prefill_num_workers,prefill_tp_size,prefill_pp_size,prefill_attention_dp_size,prefill_moe_tp_size,"
          "prefill_moe_ep_size,decode_batch_size,decode_num_workers,decode_tp_size,decode_pp_size,"
          "decode_attention_dp_size,decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,silicon_tpot_ms")


def _runs(tmp_path):
    rows = [f"r{c},silicon_concurrency={c},trtllm,1.0.0,Qwen/Qwen3-32B,h200_sxm,fp8,agg,512,32,fp8,fp8,{c},2,1,1,2,1,"
            f",,,,,,,,,,,,,,{100 + c},{9 + c / 10}" for c in (1, 4)]
    rows.append("bad,silicon_concurrency=2,trtllm,1.0.0,Qwen/Qwen3-32B,gb200,fp8,agg,512,32,fp8,fp8,2,72,1,1,72,1,"
                ",,,,,,,,,,,,,,100,9")
    (tmp_path / "runs.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return parse_file(tmp_path / "runs.csv")


def test_estimate_and_simulate_bases(tmp_path, tiny_db):
    runs = _runs(tmp_path)
    assert to_run_row(runs[1]).concurrency == 4 and to_run_row(runs[1]).agg.parallel.tp == 2
    db = PerfDB(tiny_db)
    est = predict(runs, db, Base.ESTIMATE)
    ticks = []   # the simulate base reports each run done (the CLI draws a progress bar from it)
    sim = predict(runs, db, Base.SIMULATE, progress=lambda n: (ticks.append(n), lambda: ticks.append(1))[1])
    assert ticks == [3, 1, 1, 1]
    for f in (est, sim):
        assert list(f["status"][:2]) == ["ok", "ok"] and "not divisible" in f["status"][2]
        assert (f["pred_ttft"][:2] > 0).all() and (f["pred_tpot"][:2] > 0).all()
        assert math.isnan(f["pred_ttft"][2])
    assert (est["measured_ttft"][:2] == [101.0, 104.0]).all() and (est["gpus"] == [2, 2, 72]).all()


def test_predictions_file_and_apply(tmp_path):
    runs = _runs(tmp_path)
    (tmp_path / "pred.csv").write_text("id,pred_ttft_ms,pred_tpot_ms,pred_tokens_per_s_per_gpu,status\n"
                                       "r1,50,4.5,1,ok\nbad,nan,nan,nan,infeasible: tp72\n")
    f = from_predictions_file(runs, tmp_path / "pred.csv")
    assert list(f["status"]) == ["ok", "not in the predictions file", "infeasible: tp72"]
    cal = Calibration((Factor(Scope(), "ttft", math.log(2.0), 10, 3), Factor(Scope(), "tpot", 0.0, 10, 3)), (), ())
    out = apply_calibration(f, cal)
    assert out["cal_ttft"][0] == 100.0 and out["cal_tpot"][0] == 4.5 and np.isnan(out["cal_ttft"][1])
