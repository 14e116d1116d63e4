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


def test_a_calibration_sees_the_rows_as_estimate_from_runs_does(tmp_path):
    """The calibration's path (parse_file -> MeasuredRun -> to_run_row) used to rebuild the estimator's
    facts from `engine_extra` alone, dropping the launch flags and an agg engine's recorded limits: the
    shipped calibrations were fitted on predictions without per-role flags or expert slots, while
    `estimate --from-runs` (and the nested figures) had them. Both paths now give one RunRow's facts."""
    from calibrate.table import runs_to_table, table_to_runs
    from estimator.runs import read_runs

    flags = "prefill.tp-size=4;decode.ep-num-redundant-experts=32;decode.scheduler-recv-interval=10"
    agg = ("a1,silicon_concurrency=8,sglang,0.5.5,deepseek-ai/DeepSeek-R1,b200_sxm,fp8,agg,1024,1024,fp8,fp8,8,8,1,1,"
           "1,8,,,,,,,,,,,,,,,300,20")
    dis = ("d1,silicon_concurrency=64,sglang,0.5.5,deepseek-ai/DeepSeek-R1,gb200,fp4,disagg,1024,1024,fp4,fp4,,,,,,,"
           ",1,4,1,1,1,4,,1,48,1,1,1,48,900,15")
    head = HEADER + ",engine_max_batch_size,engine_max_num_tokens,engine_mem_fraction,engine_flags,decode_dp_attn,decode_ep"
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([head, agg + ",64,16384,0.8,scheduler-recv-interval=30,,", dis + f",,,,{flags},true,48"]) + "\n")
    direct = {r.id: r for r in read_runs(path)}
    measured = parse_file(path)
    for run in (*measured, *table_to_runs(runs_to_table(measured))):   # also through the Parquet table
        row = to_run_row(run)
        want = direct[row.id].facts
        assert (row.facts.flags, row.facts.max_batch, row.facts.max_num_tokens, row.facts.mem_fraction) == \
            (want.flags, want.max_batch, want.max_num_tokens, want.mem_fraction)
    assert direct["a1"].facts.max_batch == 64 and dict(direct["d1"].facts.flags)["decode.ep-num-redundant-experts"] == "32"


def _frame(tmp_path, tiny_db, column: str, rows: list[str]):
    """The static base's calibration frame of a run table with one enrichment `column` after the table's own."""
    (tmp_path / "runs.csv").write_text("\n".join([f"{HEADER},{column}", *rows]) + "\n")
    return predict(parse_file(tmp_path / "runs.csv"), PerfDB(tiny_db), Base.ESTIMATE)


def test_a_cold_server_run_is_in_the_frame_but_not_fitted(tmp_path, tiny_db):
    """An SGLang run measured without warm-up prompts (estimator.set_aside.cold_start) keeps its row in the
    calibration frame with the reason as its status, so fitting and validation skip it; its warmed twin
    is fitted."""
    frame = _frame(tmp_path, tiny_db, "client_num_warmups", [
        f"w{n},silicon_concurrency=4,sglang,0.5.9,Qwen/Qwen3-32B,h200_sxm,fp8,agg,512,32,fp8,fp8,4,2,1,1,2,1,"
        f",,,,,,,,,,,,,,120,9,{n}" for n in (0, 8)])
    assert frame["status"][0].startswith("cold start") and math.isnan(frame["pred_ttft"][0])
    assert frame["status"][1] == "ok" and frame["pred_ttft"][1] > 0


def test_a_run_of_unknown_speculative_decoding_is_in_the_frame_but_not_fitted(tmp_path, tiny_db):
    """A run whose configs list its point with and without speculative decoding (estimator.runs.
    unknown_deployment) keeps its row with the reason as its status; the same run known to be off is fitted."""
    frame = _frame(tmp_path, tiny_db, "spec_decoding", [
        f"{spec},silicon_concurrency=4,sglang,0.5.9,Qwen/Qwen3-32B,h200_sxm,fp8,agg,512,32,fp8,fp8,4,2,1,1,2,1,"
        f",,,,,,,,,,,,,,120,9,{spec}" for spec in ("ambiguous", "off")])
    assert frame["status"][0].startswith("speculative decoding not known") and math.isnan(frame["pred_ttft"][0])
    assert frame["status"][1] == "ok" and frame["pred_ttft"][1] > 0


def test_a_disaggregated_run_whose_configs_disagree_on_its_workers_is_in_the_frame_but_not_fitted(tmp_path, tiny_db):
    """The enrichment's finding travels with a run into calibration (engine_extra): a disaggregated run whose
    configs were found but leave its worker counts open is set aside there too; the same run no config
    describes keeps the estimator's fill-in and is compared."""
    frame = _frame(tmp_path, tiny_db, "enrich_status", [
        f"{st},silicon_concurrency=4,sglang,0.5.9,Qwen/Qwen3-32B,h200_sxm,fp8,disagg,512,32,fp8,fp8,,,,,,,"
        f",,2,1,1,1,1,,,2,1,1,1,1,120,9,{st}" for st in ("ambiguous", "unmatched")])
    assert frame["status"][0].startswith("worker counts not known") and math.isnan(frame["pred_ttft"][0])
    assert not frame["status"][1].startswith("worker counts not known")


def test_a_client_file_that_reports_no_warm_up_marks_an_sglang_run_cold(tmp_path, tiny_db):
    """Where the enrichment says nothing, the warm-up count the client's own file reported (aiperf's phases:
    calibrate.runs.Load.num_warmups) decides: 0 before an SGLang run sets it aside; unknown does not."""
    from dataclasses import replace

    row = ("c1,silicon_concurrency=4,sglang,0.5.9,Qwen/Qwen3-32B,h200_sxm,fp8,agg,512,32,fp8,fp8,4,2,1,1,2,1,"
           ",,,,,,,,,,,,,,120,9")
    (tmp_path / "runs.csv").write_text(HEADER + "\n" + row + "\n")
    (run,) = parse_file(tmp_path / "runs.csv")
    runs = [run, replace(run, run_id="c0", load=replace(run.load, num_warmups=0))]
    frame = predict(runs, PerfDB(tiny_db), Base.ESTIMATE)
    assert frame["status"][0] == "ok" and frame["status"][1].startswith("cold start")
