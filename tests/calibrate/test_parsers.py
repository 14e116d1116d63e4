"""Each parser on real client output (aiperf) and on format samples; metric definitions normalised."""
from __future__ import annotations

import json
import math

import pytest

from calibrate.parsers import Format, detect, parse_file
from calibrate.runs import Client, Mode


def _aiperf(fixtures, run, name):
    return fixtures / "aiperf" / run / name


@pytest.mark.parametrize("run", ["concurrency4", "rate20"])
def test_aiperf_three_exports_agree(fixtures, run):
    js = parse_file(_aiperf(fixtures, run, "profile_export_aiperf.json"))[0]
    csv = parse_file(_aiperf(fixtures, run, "profile_export_aiperf.csv"))[0]
    jl = parse_file(_aiperf(fixtures, run, "profile_export.jsonl"))[0]
    raw = json.loads(_aiperf(fixtures, run, "profile_export_aiperf.json").read_text())
    assert js.client is Client.AIPERF
    assert js.metrics.ttft.mean == pytest.approx(raw["time_to_first_token"]["avg"])
    # aiperf's inter_token_latency is servecast's TPOT; inter_chunk_latency is ITL
    assert js.metrics.tpot.p90 == pytest.approx(raw["inter_token_latency"]["p90"])
    assert js.metrics.itl.p50 == pytest.approx(raw["inter_chunk_latency"]["p50"])
    assert csv.metrics.ttft.mean == pytest.approx(js.metrics.ttft.mean, abs=0.006)   # CSV rounds to 0.01 ms
    assert csv.metrics.tpot.p99 == pytest.approx(js.metrics.tpot.p99, abs=0.006)
    assert jl.metrics.ttft.mean == pytest.approx(js.metrics.ttft.mean, rel=1e-9)     # same requests, recomputed
    assert jl.metrics.tpot.mean == pytest.approx(js.metrics.tpot.mean, rel=1e-9)
    assert (js.load.isl, js.load.osl) == (64.0, 16.0) == (jl.load.isl, jl.load.osl) == (csv.load.isl, csv.load.osl)
    assert js.metrics.total_token_throughput == pytest.approx(raw["total_token_throughput"]["avg"])
    assert jl.metrics.request_throughput == pytest.approx(js.metrics.request_throughput, rel=0.1)
    assert js.model == "tiny-fake"


def test_aiperf_load_knob(fixtures):
    closed = parse_file(_aiperf(fixtures, "concurrency4", "profile_export_aiperf.json"))[0].load
    opened = parse_file(_aiperf(fixtures, "rate20", "profile_export_aiperf.json"))[0].load
    assert (closed.concurrency, closed.request_rate) == (4.0, None)
    assert (opened.concurrency, opened.request_rate) == (None, 20.0)
    assert 0 < closed.measured_concurrency <= 4.0


def test_aiperf_warm_up_count(fixtures, tmp_path):
    """aiperf 0.13 lists every phase it ran: the warm-up phase's requests, 0 where it ran none; the older flat
    layout writes loadgen.warmup_request_count only when set, so its absence stays unknown (None)."""
    path = _aiperf(fixtures, "concurrency4", "profile_export_aiperf.json")
    assert parse_file(path)[0].load.num_warmups == 4
    raw = json.loads(path.read_text())
    raw["input_config"]["phases"] = [p for p in raw["input_config"]["phases"] if p["kind"] != "warmup"]
    (tmp_path / "profile_export_aiperf.json").write_text(json.dumps(raw))
    assert parse_file(tmp_path / "profile_export_aiperf.json")[0].load.num_warmups == 0
    assert parse_file(fixtures / "format_samples" / "aiperf_flat_loadgen_layout.json")[0].load.num_warmups is None


def test_aiperf_older_layouts(fixtures):
    old = parse_file(fixtures / "format_samples" / "aiperf_records_layout.json")[0]
    mid = parse_file(fixtures / "format_samples" / "aiperf_flat_loadgen_layout.json")[0]
    assert old.load.concurrency == 4.0 and mid.load.request_rate == 20.0
    assert old.metrics.ttft == mid.metrics.ttft and not math.isnan(old.metrics.ttft.p99)
    assert old.model == "tiny-fake"


def test_genai_perf(fixtures):
    path = fixtures / "format_samples" / "profile_export_genai_perf.json"
    assert detect(path) is Format.GENAI_PERF_JSON
    r = parse_file(path)[0]
    assert r.client is Client.GENAI_PERF and r.load.concurrency == 32.0
    assert (r.metrics.ttft.mean, r.metrics.tpot.mean) == (212.5, 15.62)
    # total = output tokens/s + requests/s x mean ISL when the file has no total
    assert r.metrics.total_token_throughput == pytest.approx(1998.7 + 3.91 * 2048.0)


def test_vllm_json_and_appended_lines(fixtures):
    one = parse_file(fixtures / "format_samples" / "vllm_bench_serve.json")
    many = parse_file(fixtures / "format_samples" / "vllm_bench_serve_append.jsonl")
    assert len(one) == 1 and [r.load.concurrency for r in many] == [8.0, 16.0, 64.0]
    r = one[0]
    assert r.client is Client.VLLM and r.load.request_rate is None      # "inf" = unbounded
    assert (r.metrics.tpot.mean, r.metrics.itl.mean) == pytest.approx((11.84, 11.84 * 1.02))
    assert r.load.isl == 1024.0 and r.metrics.ttft.p90 == pytest.approx(183.2 * 1.12)


def test_sglang_concurrency_is_measured(fixtures):
    runs = parse_file(fixtures / "format_samples" / "sglang_bench_serving.jsonl")
    assert [(r.load.concurrency, r.load.measured_concurrency) for r in runs] == [(16.0, 15.7), (64.0, 62.1)]
    r = runs[0]
    assert r.metrics.total_token_throughput == pytest.approx(r.metrics.output_throughput * 2)  # isl == osl
    assert math.isnan(r.metrics.ttft.p90) and r.metrics.e2el.p99 > r.metrics.e2el.mean


def test_inferencex_units_and_per_gpu_throughput(fixtures):
    agg, dis = parse_file(fixtures / "format_samples" / "inferencex_rows.json")
    assert agg.metrics.ttft.mean == pytest.approx(412.1)          # seconds -> ms
    assert agg.deployment.num_gpus == 8 and agg.deployment.version == "0.5.9"
    assert agg.metrics.total_token_throughput == pytest.approx(1702.4 * 8)
    assert dis.deployment.mode is Mode.DISAGG and dis.deployment.system == "gb200"
    assert dis.deployment.num_gpus == 12 + 16
    assert dis.metrics.total_token_throughput == pytest.approx(3105.9 * 28)   # tput_per_gpu: all GPUs
    assert dis.metrics.output_throughput == pytest.approx(2411.6 * 16)        # output: decode GPUs only
    assert dis.deployment.decode.parallel.attn_dp == 16 and dis.deployment.prefill.workers == 3


def test_silicon_csv(fixtures, silicon_csv):
    sample = parse_file(fixtures / "format_samples" / "silicon_sample.csv")
    assert [r.load.concurrency for r in sample] == [16.0, 256.0, 512.0]
    assert sample[1].deployment.agg.parallel.attn_dp == 8 and sample[1].deployment.agg.batch_size == 32
    assert sample[2].deployment.decode.workers is None and sample[2].deployment.num_gpus is None
    runs = parse_file(silicon_csv)
    assert len(runs) == 2437 and all(r.metrics.ttft.mean > 0 and r.metrics.tpot.mean > 0 for r in runs)
    assert sum(r.load.concurrency is None for r in runs) <= 5
