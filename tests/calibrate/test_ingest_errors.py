"""Malformed or truncated result files: one-line error naming the file and the problem, never a partial table."""
from __future__ import annotations

import shutil

import pytest

from calibrate.deployment import DeploymentFlags, resolve
from calibrate.ingest import ingest
from calibrate.parsers import parse_file
from calibrate.table import read_runs
from perfdb.errors import DataError, InputError

DEP = DeploymentFlags(model="Qwen/Qwen3-32B", system="h200_sxm", backend="vllm", mode="agg", agg="tp=2")


def _truncate(src, dst, keep=0.6):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize("name", [
    "aiperf/concurrency4/profile_export_aiperf.json", "aiperf/concurrency4/profile_export_aiperf.csv",
    "aiperf/concurrency4/profile_export.jsonl", "format_samples/vllm_bench_serve.json",
    "format_samples/vllm_bench_serve_append.jsonl", "format_samples/sglang_bench_serving.jsonl",
    "format_samples/inferencex_rows.json", "format_samples/profile_export_genai_perf.json",
    "format_samples/silicon_sample.csv",
])
def test_truncated_file_is_one_line_error_naming_it(fixtures, tmp_path, name):
    bad = _truncate(fixtures / name, tmp_path / name.replace("/", "_"))
    with pytest.raises(DataError) as err:
        parse_file(bad)
    msg = str(err.value)
    assert str(bad) in msg and "\n" not in msg


def test_missing_metric_and_bad_number(fixtures, tmp_path):
    text = (fixtures / "format_samples" / "vllm_bench_serve.json").read_text()
    (tmp_path / "a.json").write_text(text.replace('"mean_tpot_ms"', '"mean_tpot_msX"'))
    with pytest.raises(DataError, match="missing required field 'mean_tpot_ms'"):
        parse_file(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(text.replace('"completed": 200', '"completed": "many"'))
    with pytest.raises(DataError, match="'completed'.*expected a number"):
        parse_file(tmp_path / "b.json")
    (tmp_path / "c.json").write_text('{"hello": 1}')
    with pytest.raises(DataError, match="no known benchmark-client format"):
        parse_file(tmp_path / "c.json")
    (tmp_path / "d.json").write_text("")
    with pytest.raises(DataError, match="empty file"):
        parse_file(tmp_path / "d.json")


def test_unknown_latency_unit_is_an_error(fixtures, tmp_path):
    text = (fixtures / "aiperf" / "rate20" / "profile_export_aiperf.json").read_text()
    (tmp_path / "p.json").write_text(text.replace('"unit": "ms"', '"unit": "fortnights"', 1))
    with pytest.raises(DataError, match="fortnights"):
        parse_file(tmp_path / "p.json")


def test_one_bad_file_writes_nothing(fixtures, tmp_path):
    res = tmp_path / "results"
    shutil.copytree(fixtures / "aiperf", res)
    out = tmp_path / "runs.parquet"
    table = ingest([res], out, resolve(None, DEP))
    assert table.num_rows == 2 and read_runs(out).num_rows == 2      # JSON summaries win over CSV/JSONL siblings
    before = out.read_bytes()
    _truncate(fixtures / "format_samples" / "vllm_bench_serve.json", res / "late.json")
    with pytest.raises(DataError, match="late.json"):
        ingest([res], out, resolve(None, DEP))
    assert out.read_bytes() == before                                   # old table untouched
    fresh = tmp_path / "fresh.parquet"
    with pytest.raises(DataError):
        ingest([res], fresh, resolve(None, DEP))
    assert not fresh.exists() and not list(tmp_path.glob(".tmp-*"))


def test_client_results_need_a_deployment(fixtures, tmp_path):
    with pytest.raises(InputError, match="do not say what was deployed"):
        ingest([fixtures / "format_samples" / "vllm_bench_serve.json"], tmp_path / "r.parquet", None)
    # files that name their deployment need none
    t = ingest([fixtures / "format_samples" / "inferencex_rows.json"], tmp_path / "r.parquet", None)
    assert t.num_rows == 2


def test_append_and_duplicates(fixtures, tmp_path):
    out = tmp_path / "runs.parquet"
    dep = resolve(None, DEP)
    ingest([fixtures / "format_samples" / "vllm_bench_serve_append.jsonl"], out, dep)
    ingest([fixtures / "format_samples" / "sglang_bench_serving.jsonl"], out, dep, append=True)
    assert read_runs(out).num_rows == 5
    with pytest.raises(DataError, match="appear twice"):
        ingest([fixtures / "format_samples" / "sglang_bench_serving.jsonl"], out, dep, append=True)
    assert read_runs(out).num_rows == 5


def test_impossible_load_values_are_errors_naming_the_file(fixtures, tmp_path):
    lines = (fixtures / "format_samples" / "silicon_sample.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("isl")] = "-5"
    bad = tmp_path / "neg.csv"
    bad.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    with pytest.raises(DataError, match=r"neg\.csv: isl is -5"):
        parse_file(bad)
