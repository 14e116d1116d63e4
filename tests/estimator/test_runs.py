"""Run-table batch prediction: parsing, statuses, output format, and the CLI --from-runs path."""
from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from estimator.runs import predict_runs, read_runs, write_predictions
from perfdb.errors import DataError
from perfdb.lookup import PerfDB

HEADER = ("id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,gemm_quant_mode,"
          "moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,moe_ep_size,prefill_batch_size,"
          "prefill_num_workers,prefill_tp_size,prefill_pp_size,prefill_attention_dp_size,prefill_moe_tp_size,"
          "prefill_moe_ep_size,decode_batch_size,decode_num_workers,decode_tp_size,decode_pp_size,"
          "decode_attention_dp_size,decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,silicon_tpot_ms")
ROWS = [
    "a1,silicon_concurrency=16; x=1,trtllm,1.0.0,Qwen/Qwen3-32B,h200_sxm,fp8,agg,1024,256,fp8,fp8,16,2,1,1,2,1,,,,,,,,,,,,,,,300,10",
    "a2,silicon_concurrency=64,vllm,,meta-llama/Llama-3.1-70B,h200_sxm,fp8,agg,2048,512,fp8,fp8,64,4,1,,1,1,,,,,,,,,,,,,,,400,20",
    "a3,silicon_concurrency=8,sglang,0.5.9,openai/gpt-oss-120b,h200_sxm,fp4,agg,1024,1024,nvfp4,nvfp4,8,1,1,1,1,1,,,,,,,,,,,,,,,100,5",
    ("d1,silicon_concurrency=128,trtllm,1.0.0,deepseek-ai/DeepSeek-R1,h200_sxm,fp8,disagg,8192,1024,fp8,fp8_block,,,,,,,"
     ",,8,1,1,1,8,,,8,1,1,1,8,2000,20"),
    "x1,silicon_concurrency=4,trtllm,1.0.0,deepseek-ai/DeepSeek-R1,gb200,fp4,agg,1024,1024,nvfp4,nvfp4,4,72,1,1,72,1,,,,,,,,,,,,,,,100,5",
    "x2,silicon_concurrency=4,mystery,1.0,Qwen/Qwen3-32B,h200_sxm,fp8,agg,1024,1024,fp8,fp8,4,1,1,1,1,1,,,,,,,,,,,,,,,100,5",
]


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    return path


def test_parse(table):
    rows = read_runs(table)
    assert [r.id for r in rows] == ["a1", "a2", "a3", "d1", "x1", "x2"]
    assert rows[0].concurrency == 16 and rows[0].agg.parallel.tp == 2
    assert rows[1].agg.parallel.attn_dp == 1 and rows[1].backend_version is None
    assert rows[3].decode.parallel.moe_ep == 8 and rows[3].decode.workers is None and rows[3].agg is None


def test_predict_statuses_and_output(table, tmp_path, tiny_db):
    preds = predict_runs(read_runs(table), PerfDB(tiny_db))
    by = {p.id: p for p in preds}
    for i in ("a1", "a2", "a3", "d1"):
        assert by[i].status == "ok", by[i].status
        assert by[i].ttft_ms > 0 and by[i].tpot_ms > 0 and by[i].tokens_per_s_per_gpu > 0
    assert "not divisible by tp=72" in by["x1"].status and math.isnan(by["x1"].ttft_ms)
    assert "unsupported backend 'mystery'" in by["x2"].status
    out = tmp_path / "pred.csv"
    write_predictions(preds, out)
    got = list(csv.DictReader(out.open()))
    assert list(got[0]) == ["id", "pred_ttft_ms", "pred_tpot_ms", "pred_tokens_per_s_per_gpu", "status", "base"]
    assert {r["base"] for r in got} == {"estimate"}          # what made them: a simulate-base fit refuses the file
    assert [g["id"] for g in got] == [p.id for p in preds]


def test_missing_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,backend\nx,trtllm\n")
    with pytest.raises(DataError, match="lacks columns"):
        read_runs(bad)


def test_cli_from_runs(table, tmp_path, tiny_db):
    out = tmp_path / "pred.csv"
    res = subprocess.run([sys.executable, "-m", "servecast.cli", "estimate", "--from-runs", str(table), "--db", str(tiny_db),
                          "--out", str(out)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    assert "6 rows, 4 predicted" in res.stdout
    assert out.is_file()


def test_cli_from_runs_on_the_bundled_database_adds_calibrated_columns(table, tmp_path):
    """No --db: the bundled database's calibration adds cal_* and interval columns; pred_* stay raw (the
    input of `calibrate fit --predictions`); --calibration none leaves the plain format."""
    from typer.testing import CliRunner

    from servecast.cli import app

    out, raw = tmp_path / "pred.csv", tmp_path / "raw.csv"
    res = CliRunner().invoke(app, ["estimate", "--from-runs", str(table), "--out", str(out)])
    assert res.exit_code == 0 and "no calibrated columns" in res.output and "unknown backend 'mystery'" in res.output
    assert list(csv.DictReader(out.open()))[0]["pred_ttft_ms"]          # the raw predictions are written
    table.write_text(table.read_text().replace(",mystery,", ",trtllm,"))
    res = CliRunner().invoke(app, ["estimate", "--from-runs", str(table), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "calibrated columns from calibration" in res.output
    res = CliRunner().invoke(app, ["estimate", "--from-runs", str(table), "--out", str(raw), "--calibration", "none"])
    assert res.exit_code == 0, res.output
    cal, plain = list(csv.DictReader(out.open())), list(csv.DictReader(raw.open()))
    assert list(plain[0]) == ["id", "pred_ttft_ms", "pred_tpot_ms", "pred_tokens_per_s_per_gpu", "status", "base"]
    assert plain[0]["base"] == cal[0]["base"] == "simulate"      # the default base, in both formats
    assert {"cal_ttft_ms", "cal_tpot_ms", "ttft_lo_ms", "ttft_hi_ms", "tpot_lo_ms", "tpot_hi_ms"} <= set(cal[0])
    for c, p in zip(cal, plain, strict=True):
        assert c["pred_ttft_ms"] == p["pred_ttft_ms"]
        if c["status"] == "ok" and c["cal_tpot_ms"] != "nan":
            assert float(c["tpot_lo_ms"]) <= float(c["cal_tpot_ms"]) <= float(c["tpot_hi_ms"])   # an end may sit on it (heldout._quantiles)
    assert any(c["cal_tpot_ms"] != "nan" for c in cal)


def test_cli_single_and_errors(tiny_db):
    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run([sys.executable, "-m", "servecast.cli", "estimate", "--model", "Qwen/Qwen3-8B", "--system", "h200_sxm",
                         "--db", str(tiny_db), "--json", "--concurrency", "8"], capture_output=True, text=True, cwd=root)
    assert ok.returncode == 0, ok.stderr
    assert '"ttft_ms"' in ok.stdout and '"breakdown"' in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "servecast.cli", "estimate", "--model", "Qwen/Qwen3-8B", "--system", "h200_sxm",
                          "--tp", "3"], capture_output=True, text=True, cwd=root)
    assert bad.returncode != 0 and "not divisible by tp=3" in bad.stdout + bad.stderr


def test_header_only_run_table_is_an_error_not_an_empty_prediction(tmp_path):
    from estimator.runs import read_runs
    from perfdb.errors import DataError

    path = tmp_path / "runs.csv"
    path.write_text("id,backend,model_path,system,isl,osl\n")
    with pytest.raises(DataError, match="no rows"):
        read_runs(path)


def test_quantized_trtllm_rows_run_an_fp8_kv_cache_other_engines_the_model_dtype(table):
    """TRT-LLM follows a ModelOpt checkpoint's kv_cache_quant_algo (FP8); vLLM and SGLang keep bf16."""
    from estimator.runs import model_for
    from perfdb.specs import load_system
    from perfdb.types import Dtype

    rows = {r.id: r for r in read_runs(table)}
    h200 = load_system("h200_sxm")
    assert model_for(rows["a1"], h200).kv_dtype == Dtype.FP8            # trtllm, fp8 GEMMs
    assert model_for(rows["a2"], h200).kv_dtype == Dtype.BF16           # vllm, fp8 GEMMs
    assert model_for(rows["a3"], h200).kv_dtype == Dtype.BF16           # sglang, nvfp4
    # with the fp8 pool a TRT-LLM replica admits twice the requests of the same memory in bf16
    from estimator.engine import EngineConfig, resolve
    from estimator.memory import memory_report
    from estimator.parallel import ParallelConfig
    from perfdb.types import Backend

    par = ParallelConfig(tp=2)
    eng = resolve(EngineConfig(Backend.TRTLLM), h200, par)
    fp8 = memory_report(model_for(rows["a1"], h200), h200, par, eng, Dtype.FP8)
    bf16 = memory_report(model_for(rows["a1"], h200), h200, par, eng, Dtype.BF16)
    assert fp8.kv_capacity_tokens == pytest.approx(2 * bf16.kv_capacity_tokens)


def test_a_kv_dtype_the_launch_flags_state_is_what_the_row_runs(table):
    """`--kv-cache-dtype fp8` (vLLM), `decode.kv-cache-dtype=fp8_e4m3` (an SGLang recipe's decode engine),
    `kv_cache_config.dtype` (TRT-LLM): what ran, whatever the engine's default; `auto` and an unresolved
    value leave the default rule (the test above) standing."""
    from dataclasses import replace

    from estimator.run_facts import RunFacts
    from estimator.runs import model_for
    from perfdb.specs import load_system
    from perfdb.types import Dtype

    rows = {r.id: r for r in read_runs(table)}
    h200 = load_system("h200_sxm")

    def kv(row, *flags):
        return model_for(replace(row, facts=RunFacts(flags=flags)), h200).kv_dtype

    assert kv(rows["a2"], ("kv-cache-dtype", "fp8")) == Dtype.FP8
    assert kv(rows["a2"], ("kv-cache-dtype", "auto")) == Dtype.BF16
    assert kv(rows["a2"], ("kv-cache-dtype", "?")) == Dtype.BF16
    assert kv(rows["a3"], ("kv-cache-dtype", "fp8_e4m3")) == Dtype.FP8
    assert kv(rows["a1"], ("kv_cache_config.dtype", "auto")) == Dtype.FP8       # the checkpoint's FP8
    assert kv(rows["a1"], ("kv_cache_config.dtype", "bf16")) == Dtype.BF16
    sglang_disagg = replace(rows["d1"], backend="sglang")
    assert kv(sglang_disagg, ("prefill.kv-cache-dtype", "fp8_e4m3"), ("decode.kv-cache-dtype", "fp8_e4m3")) == Dtype.FP8
    assert kv(sglang_disagg, ("prefill.kv-cache-dtype", "fp8_e4m3")) == Dtype.FP8
    assert kv(sglang_disagg) == Dtype.BF16


def test_the_static_estimate_and_the_simulator_price_the_lengths_the_client_sent(table):
    """InferenceX's client draws integers in [r x nominal, nominal] (client_range_ratio r): both paths
    take the mean nominal x (1 + r) / 2 (estimator.runs.client_mean_lengths), the simulator drawing around
    it; with no recorded r both take the nominal lengths."""
    from dataclasses import replace

    from estimator.run_facts import RunFacts
    from estimator.runs import client_mean_lengths
    from estimator.sim.runs import _lengths

    row = {r.id: r for r in read_runs(table)}["a2"]          # isl 2048, osl 512
    assert client_mean_lengths(row) == (2048, 512)
    assert (_lengths(row, 0.0)[0].mean, _lengths(row, 0.0)[1].mean) == (2048, 512)
    spread = replace(row, facts=RunFacts(range_ratio=0.8))
    assert client_mean_lengths(spread) == (1843, 461)
    isl, osl = _lengths(spread, 0.0)
    assert (isl.mean, osl.mean) == client_mean_lengths(spread) and isl.range_ratio == pytest.approx(0.2 / 1.8)
    # the static estimate prices those means: the prefill of the shorter mean prompt is cheaper
    plain = predict_runs([row], PerfDB(None))[0]
    drawn = predict_runs([spread], PerfDB(None))[0]
    assert drawn.ttft_ms < plain.ttft_ms


def test_cli_from_runs_through_the_simulator(table, tmp_path):
    """The default base, simulate: each row is the simulator's replay of it (estimator.sim.runs, as `plan`
    decides on), not the static estimate (--base estimate), and the calibration fitted on that base adds its
    columns; --base outside --from-runs and an unknown base are one-line errors."""
    from typer.testing import CliRunner

    from estimator.sim.runs import simulate_runs
    from servecast.cli import app

    table.write_text(table.read_text().replace(",mystery,", ",trtllm,"))
    sim, named, est = tmp_path / "sim.csv", tmp_path / "named.csv", tmp_path / "est.csv"
    res = CliRunner().invoke(app, ["estimate", "--from-runs", str(table), "--out", str(sim)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["estimate", "--from-runs", str(table), "--out", str(named), "--base", "simulate"])
    assert res.exit_code == 0 and named.read_text() == sim.read_text()
    res = CliRunner().invoke(app, ["estimate", "--from-runs", str(table), "--out", str(est), "--base", "estimate"])
    assert res.exit_code == 0, res.output
    got, static = list(csv.DictReader(sim.open())), list(csv.DictReader(est.open()))
    expect = {s.id: s.prediction("mean") for s in simulate_runs(read_runs(table), PerfDB(None))}
    ok = [g for g in got if g["status"] == "ok"]
    assert ok and len(ok) == sum(p.status == "ok" for p in expect.values())
    for g in ok:
        assert float(g["pred_ttft_ms"]) == pytest.approx(expect[g["id"]].ttft_ms, rel=1e-5)
        assert float(g["pred_tpot_ms"]) == pytest.approx(expect[g["id"]].tpot_ms, rel=1e-5)
    assert any(g["pred_ttft_ms"] != s["pred_ttft_ms"] for g, s in zip(got, static, strict=True) if g["status"] == "ok")
    ids = {g["calibration_id"] for g in ok} | {s["calibration_id"] for s in static if s["status"] == "ok"}
    assert len(ids) == 2                                    # each base with its own shipped calibration
    root = Path(__file__).resolve().parents[2]
    for args, msg in ((["--from-runs", str(table), "--out", str(sim), "--base", "queue"],
                       "error: unknown --base 'queue'; accepted: estimate, simulate"),
                      (["--model", "Qwen/Qwen3-32B", "--system", "h200_sxm", "--base", "simulate"],
                       "error: --base simulate applies to --from-runs")):
        bad = subprocess.run([sys.executable, "-m", "servecast.cli", "estimate", *args], capture_output=True,
                             text=True, cwd=root)
        assert bad.returncode == 2 and msg in bad.stderr + bad.stdout and "Traceback" not in bad.stderr



def test_the_static_estimate_takes_the_memory_share_the_row_was_launched_with(tmp_path):
    """DeepSeek-R1 FP8 on four B200s under SGLang: at the memory share SGLang computes for that layout the
    weights leave no KV pool; launched with --mem-fraction-static 0.95 (InferenceX's dsr1_fp8_b200.sh) it
    ran, and the static estimate, like the replay (sim.runs.row_engine), prices it with that share."""
    from dataclasses import replace

    from estimator.run_facts import RunFacts

    path = tmp_path / "runs.csv"
    path.write_text(HEADER + "\n" + "m1,silicon_concurrency=16,sglang,0.5.9,deepseek-ai/DeepSeek-R1,b200_sxm,fp8,"
                    "agg,8192,1024,fp8,fp8_block,16,4,1,1,4,1,,,,,,,,,,,,,,,997,22\n")
    row = read_runs(path)[0]
    assert "no KV-cache memory left" in predict_runs([row], PerfDB(None))[0].status
    got = predict_runs([replace(row, facts=RunFacts(mem_fraction=0.95))], PerfDB(None))[0]
    assert got.status == "ok" and got.ttft_ms > 0 and got.tpot_ms > 0


def test_a_run_measured_on_a_cold_server_is_not_compared(tmp_path):
    """A client that sent no warm-up prompts to a server whose engine warms only decode shapes at start
    (SGLang) measured first-use kernel costs: such a row is predicted but not compared. A warmed run, an
    engine that runs its prefill shapes before serving (TRT-LLM, vLLM), or an unknown warm-up count is."""
    from estimator.engines import profile_for
    from estimator.set_aside import cold_start
    from perfdb.types import Backend

    head = HEADER + ",client_num_warmups"
    lines = [f"{i},silicon_concurrency=8,{backend},0.5.9,deepseek-ai/DeepSeek-R1,b200_sxm,fp8,agg,1024,1024,fp8,fp8,"
             f"8,8,1,1,1,8,,,,,,,,,,,,,,,300,20,{warm}"
             for i, backend, warm in (("s0", "sglang", 0), ("s8", "sglang", 8), ("s?", "sglang", ""),
                                      ("t0", "trtllm", 0), ("v0", "vllm", 0), ("m0", "mystery", 0))]
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([head, *lines]) + "\n")
    why = {r.id: cold_start(r) for r in read_runs(path)}
    assert why["s0"].startswith("cold start") and "sglang" in why["s0"]
    assert why["s8"] is why["s?"] is why["t0"] is why["v0"] is why["m0"] is None
    assert not profile_for(Backend.SGLANG).warms_prefill_at_start
    assert profile_for(Backend.TRTLLM).warms_prefill_at_start and profile_for(Backend.VLLM).warms_prefill_at_start
    # predicted all the same: `estimate --from-runs` answers for the row, only comparisons skip it
    assert predict_runs([r for r in read_runs(path) if r.id == "s0"], PerfDB(None))[0].status == "ok"


def test_a_run_whose_speculative_decoding_is_not_known_is_not_compared(tmp_path):
    """A row whose configs list its point both with and without speculative decoding (spec_decoding
    ambiguous) is of a deployment the row does not pin down: predicted, not compared (set_aside says why);
    on, off and unknown rows are compared, and a cold start is said first."""
    from estimator.set_aside import set_aside, unknown_deployment

    head = HEADER + ",client_num_warmups,spec_decoding"
    lines = [f"{i},silicon_concurrency=8,{backend},0.5.9,deepseek-ai/DeepSeek-R1,b200_sxm,fp8,agg,1024,1024,fp8,fp8,"
             f"8,8,1,1,1,8,,,,,,,,,,,,,,,300,20,{warm},{spec}"
             for i, backend, warm, spec in (("a", "trtllm", 8, "ambiguous"), ("on", "trtllm", 8, "on"),
                                            ("off", "trtllm", 8, "off"), ("u", "trtllm", 8, ""),
                                            ("ca", "sglang", 0, "ambiguous"))]
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([head, *lines]) + "\n")
    rows = {r.id: r for r in read_runs(path)}
    assert unknown_deployment(rows["a"]).startswith("speculative decoding not known") and "speculative" in set_aside(rows["a"])
    assert set_aside(rows["on"]) is set_aside(rows["off"]) is set_aside(rows["u"]) is None
    assert set_aside(rows["ca"]).startswith("cold start")
    assert predict_runs([rows["a"]], PerfDB(None))[0].status == "ok"


def test_a_disaggregated_run_whose_configs_disagree_on_its_worker_counts_is_not_compared(tmp_path):
    """A disaggregated row the enrichment found configs for (matched or ambiguous) that still lacks a worker
    count is one the configs list with different counts (1P1D or 1P4D): predicted, not compared. With both
    counts, or where no config describes it (unmatched, or a table never enriched: the estimator's fill-in
    stands), it is compared; an aggregated row has no worker counts to miss."""
    from estimator.run_facts import ConfigMatch
    from estimator.set_aside import set_aside, unknown_deployment

    head = HEADER + ",client_num_warmups,spec_decoding,enrich_status"
    cases = (("amb", "", "", "ambiguous"), ("half", "1", "", "ambiguous"), ("both", "1", "4", "ambiguous"),
             ("match", "1", "4", "matched"), ("unm", "", "", "unmatched"), ("plain", "", "", ""))
    lines = [f"{i},silicon_concurrency=64,sglang,0.5.8,deepseek-ai/DeepSeek-R1,b200_sxm,fp8,disagg,8192,1024,fp8,"
             f"fp8_block,,,,,,,,{p},8,1,1,1,8,,{d},8,1,1,1,8,3700,23,128,off,{st}" for i, p, d, st in cases]
    lines.append("agg,silicon_concurrency=8,sglang,0.5.9,deepseek-ai/DeepSeek-R1,b200_sxm,fp8,agg,1024,1024,fp8,fp8,"
                 "8,8,1,1,1,8,,,,,,,,,,,,,,,300,20,8,off,ambiguous")
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([head, *lines]) + "\n")
    rows = {r.id: r for r in read_runs(path)}
    assert rows["amb"].facts.configs is ConfigMatch.AMBIGUOUS and rows["plain"].facts.configs is ConfigMatch.UNKNOWN
    for rid in ("amb", "half"):
        assert unknown_deployment(rows[rid]).startswith("worker counts not known") and set_aside(rows[rid])
    for rid in ("both", "match", "unm", "plain", "agg"):
        assert set_aside(rows[rid]) is None, rid
    assert predict_runs([rows["amb"]], PerfDB(None))[0].status == "ok"   # the fill-in still predicts it


@pytest.mark.parametrize("column, accepted", [("enrich_status", "matched, ambiguous, unmatched, other-harness"),
                                              ("spec_decoding", "on, off, ambiguous, unknown")])
def test_an_enrichment_status_outside_its_values_is_a_clear_error(tmp_path, column, accepted):
    path = tmp_path / "runs.csv"
    path.write_text(f"{HEADER},{column}\nx,silicon_concurrency=8,sglang,0.5.9,deepseek-ai/DeepSeek-R1,b200_sxm,fp8,"
                    "agg,1024,1024,fp8,fp8,8,8,1,1,1,8,,,,,,,,,,,,,,,300,20,bogus\n")
    with pytest.raises(DataError, match=f"line 2: .*{column} 'bogus': expected one of {accepted}"):
        read_runs(path)


def test_a_row_labelled_fp8_of_a_block_scaled_family_quantizes_its_activations_every_call(table):
    """Qwen3-32B's and DeepSeek-R1's FP8 checkpoints are block-scaled (weights per 128x128, activations per
    1x128 group at every call), so a row labelled fp8 of either prices its GEMMs with the per-tensor rows as
    they are; Llama-3.1-70B's FP8 checkpoint (ModelOpt, static input scales) loses the reference
    collector's dynamic quantization (perfdb.served)."""
    from estimator.runs import model_for
    from perfdb.specs import load_system
    from perfdb.types import Dtype

    h200 = load_system("h200_sxm")
    rows = {r.id: r for r in read_runs(table)}
    assert model_for(rows["a1"], h200).fp8_dynamic_activations          # Qwen3-32B, fp8
    assert model_for(rows["d1"], h200).fp8_dynamic_activations          # DeepSeek-R1, fp8
    llama = model_for(rows["a2"], h200)
    assert llama.gemm_quant == Dtype.FP8 and not llama.fp8_dynamic_activations
    assert not model_for(rows["a3"], h200).fp8_dynamic_activations     # nvfp4: not an FP8 GEMM


def test_gpt_oss_labelled_fp4_runs_its_own_mxfp4_experts(table):
    """gpt-oss's checkpoint holds mxfp4 experts and bf16 attention; a row labelled nvfp4 runs those:
    without fp4 tensor cores at 16-bit activations (w4a16), on Blackwell under TRT-LLM and vLLM at mxfp8
    activations (InferenceX's launches), under SGLang as labelled (no such runs to say otherwise)."""
    from dataclasses import replace

    from estimator.runs import model_for
    from perfdb.specs import load_system
    from perfdb.types import Dtype

    row = {r.id: r for r in read_runs(table)}["a3"]            # sglang, gpt-oss-120b, nvfp4, h200
    hopper = model_for(row, load_system("h200_sxm"))
    assert (hopper.moe_quant, hopper.attn_quant) == (Dtype.MXFP4, Dtype.BF16)
    b200 = load_system("b200_sxm")
    for backend in ("trtllm", "vllm"):
        m = model_for(replace(row, backend=backend, system="b200_sxm"), b200)
        assert (m.moe_quant, m.attn_quant, m.gemm_quant) == (Dtype.W4A8_MXFP4, Dtype.BF16, Dtype.BF16), backend
    assert model_for(replace(row, system="b200_sxm"), b200).moe_quant == Dtype.NVFP4     # sglang: the label
