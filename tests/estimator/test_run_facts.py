"""Enrichment columns (estimator.run_facts) reach the run predictors: recorded speculative decoding and
worker counts replace the estimator's assumptions; a table without them predicts exactly as before."""
from __future__ import annotations

import numpy as np
import pytest

from calibrate.parsers.silicon_csv import parse as parse_silicon
from calibrate.predict import to_run_row
from estimator.run_facts import COLUMNS, RoleFlags, RunFacts, SpecStatus
from estimator.runs import predict_runs, read_runs, spec_tokens
from estimator.sim.runs import _lengths
from perfdb.lookup import PerfDB
from tests.estimator.test_runs import HEADER, ROWS

DISAGG = ROWS[3]          # TRT-LLM DeepSeek disagg: the estimator assumes one MTP draft token when unknown


def _table(tmp_path, extra: dict[str, str], workers: tuple[str, str] = ("", "")):
    cols = list(COLUMNS)
    cells = DISAGG.split(",")
    cells[19], cells[26] = workers                                   # prefill_num_workers, decode_num_workers
    path = tmp_path / "runs.csv"
    path.write_text(",".join([HEADER, *cols]) + "\n" + ",".join(cells + [extra.get(c, "") for c in cols]) + "\n")
    return path


def test_spec_decoding_status_decides_the_draft_tokens(tmp_path):
    from estimator.models import load_model
    from perfdb.types import Backend

    model = load_model("deepseek-ai/DeepSeek-R1")
    for extra, want in (({}, 1), ({"spec_decoding": "ambiguous"}, 1), ({"spec_decoding": "off"}, 0),
                        ({"spec_decoding": "on", "spec_tokens": "3"}, 3), ({"spec_decoding": "on"}, 1)):
        row = read_runs(_table(tmp_path, extra))[0]
        assert spec_tokens(row, Backend.TRTLLM, model) == want, extra


def test_enriched_rows_predict_with_their_facts_and_plain_rows_as_before(tmp_path, tiny_db):
    db = PerfDB(tiny_db)
    plain = predict_runs(read_runs(_table(tmp_path, {})), db)[0]
    (tmp_path / "runs.csv").unlink()
    empty = predict_runs(read_runs(_table(tmp_path, {"spec_decoding": "unknown"})), db)[0]
    assert (empty.ttft_ms, empty.tpot_ms) == (plain.ttft_ms, plain.tpot_ms)
    off = predict_runs(read_runs(_table(tmp_path, {"spec_decoding": "off"})), db)[0]
    assert off.status == "ok" and off.tpot_ms != plain.tpot_ms
    recorded = predict_runs(read_runs(_table(tmp_path, {}, workers=("3", "5"))), db)[0]
    assert recorded.status == "ok" and recorded.ttft_ms != plain.ttft_ms


def test_calibrate_reads_the_columns_into_the_run_and_back(tmp_path):
    extra = {"spec_decoding": "on", "spec_tokens": "2", "client_num_prompts": "1280", "client_num_warmups": "256",
             "client_range_ratio": "0.8", "engine_max_batch_size": "64", "engine_kv_dtype": "fp8"}
    run = parse_silicon(_table(tmp_path, extra, workers=("1", "4")))[0]
    assert run.deployment.decode.workers == 4 and run.load.num_requests == 1280
    assert run.deployment.engine.max_batch_size == 64 and run.deployment.engine.kv_dtype == "fp8"
    facts = to_run_row(run).facts
    # the engine's recorded limits reach the facts as `estimate --from-runs` reads them (calibrate.predict.run_facts)
    assert facts == RunFacts(SpecStatus.ON, 2, 1280, 256, 0.8, max_batch=64)
    plain = parse_silicon(_table(tmp_path, {}))[0]
    assert plain.deployment.engine.extra == "" and to_run_row(plain).facts == RunFacts()


def test_replay_draws_lengths_as_the_recorded_client():
    from estimator.runs import RunRow

    base = dict(id="r", backend="trtllm", backend_version=None, model="m", system="h200_sxm", mode="agg", isl=1000,
                osl=500, gemm_quant=None, moe_quant=None, concurrency=4, agg=None, prefill=None, decode=None,
                ttft_ms=None, tpot_ms=None)
    isl, osl = _lengths(RunRow(**base, facts=RunFacts(range_ratio=0.8)), 0.0)
    lo, hi = isl.mean * (1 - isl.range_ratio), isl.mean * (1 + isl.range_ratio)
    assert np.isclose(lo, 800) and np.isclose(hi, 1000) and osl.mean == 450      # [0.8 x nominal, nominal]
    assert _lengths(RunRow(**base), 0.0)[0].mean == 1000                           # un-enriched: nominal


def test_aiconfigurator_gap_analysis_runs_get_its_launch_token_budget():
    src = "source_file=/x/aic-auto-gap-analysis/data/h100_sxm/trtllm/1.0.0rc3/Qwen.csv; silicon_concurrency=32"
    raw = {"silicon_data_source": src, "mode": "agg", "backend": "trtllm", "batch_size": "32", "isl": "1024"}
    assert RunFacts.from_row(raw).max_num_tokens == 32 + 1024 + 1500        # its generator's agg rule
    assert RunFacts.from_row({**raw, "engine_max_num_tokens": "8192"}).max_num_tokens == 8192   # recorded wins
    assert RunFacts.from_row({**raw, "backend": "sglang"}).max_num_tokens is None
    assert RunFacts.from_row({**raw, "silicon_data_source": "source_file=2026-04-06.csv"}).max_num_tokens is None


def test_engine_flags_read_as_pairs():
    facts = RunFacts.from_row({"engine_flags": "scheduler-recv-interval=30;tp=?;bare;max_num_tokens=1152"})
    assert dict(facts.flags) == {"scheduler-recv-interval": "30", "tp": "?", "max_num_tokens": "1152"}


def test_a_disaggregated_runs_flags_split_into_its_two_engines():
    """engine_flags records a disaggregated run's two engines as prefill.key / decode.key; a key without a
    role prefix applies to both, a role's own value winning; an aggregated run's flags are its one engine's."""
    facts = RunFacts.from_row({"engine_flags": "prefill.disable_overlap_scheduler=true;decode.max_batch_size=64;"
                                               "stream_interval=20;decode.stream_interval=100;"
                                               "decode.attention_dp_config.enable_balance=true"})
    split = facts.per_role(disagg=True)
    assert split.of("prefill") == {"disable_overlap_scheduler": "true", "stream_interval": "20"}
    assert split.of("decode") == {"max_batch_size": "64", "stream_interval": "100",
                                  "attention_dp_config.enable_balance": "true"}
    assert split.of("agg") == {}
    assert facts.role_flags("decode") == split.of("decode")
    agg = RunFacts.from_row({"engine_flags": "scheduler-recv-interval=30;tp=4"}).per_role(disagg=False)
    assert agg.of("agg") == {"scheduler-recv-interval": "30", "tp": "4"} and agg.of("prefill") == {}
    assert RoleFlags.same({"a": "1"}).of("decode") == {"a": "1"}
    with pytest.raises(ValueError, match="roles: agg, prefill, decode"):
        split.of("router")
