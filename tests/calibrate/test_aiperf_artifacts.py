"""aiperf 0.13 artifact directories as aiperf wrote them (warm-up on, GPU telemetry on), and genai-perf 0.0.16's
input_config: the measured phase only, with its configured load."""
from __future__ import annotations

import json
import shutil

import pytest

from calibrate.deployment import DeploymentFlags, resolve
from calibrate.ingest import expand, read_results
from calibrate.parsers import Format, detect, parse_file
from perfdb.errors import DataError, InputError

DEP = resolve(None, DeploymentFlags(model="Qwen/Qwen3-32B", system="h200_sxm", backend="vllm", mode="agg", agg="tp=2"))


@pytest.mark.parametrize("run, load", [("concurrency4", ("concurrency", 4.0)), ("rate20", ("request_rate", 20.0))])
def test_artifact_directory_ingests_the_profiling_phase_only(fixtures, run, load):
    art = fixtures / "aiperf" / run
    manifest = json.loads((art / "phase_manifest.json").read_text())
    assert {p["phase_kind"] for p in manifest["phases"]} == {"warmup", "profiling"}, "recorded with warm-up on"
    runs = read_results([art], DEP)
    assert len(runs) == 1
    assert getattr(runs[0].load, load[0]) == load[1]
    assert runs[0].load.num_requests == 24, "the 4 warm-up requests are not part of the measured run"
    assert runs[0].run_id == f"{run}/profiling/profile_export_aiperf.json"


def test_csv_with_its_gpu_telemetry_table_parses(fixtures):
    csv = fixtures / "aiperf" / "concurrency4" / "profile_export_aiperf.csv"
    assert "\nEndpoint,GPU_Index," in csv.read_text(), "the fixture has aiperf's telemetry table"
    res = parse_file(csv)[0]
    js = parse_file(fixtures / "aiperf" / "concurrency4" / "profile_export_aiperf.json")[0]
    assert res.metrics.ttft.mean == pytest.approx(js.metrics.ttft.mean, rel=1e-3)


def test_warmup_phase_is_never_a_measured_run(fixtures, tmp_path):
    art = fixtures / "aiperf" / "concurrency4"
    with pytest.raises(InputError, match="warm-up"):
        expand([art / "phases" / "warmup" / "profile_export_aiperf.json"])
    bare = tmp_path / "run"   # the same directory without its manifest: still no warm-up phase
    shutil.copytree(art, bare)
    (bare / "phase_manifest.json").unlink()
    assert [p.name for p in expand([bare])] == ["profile_export_aiperf.json"]


def test_a_manifest_naming_a_missing_phase_file_is_one_line(fixtures, tmp_path):
    bare = tmp_path / "run"
    shutil.copytree(fixtures / "aiperf" / "concurrency4", bare)
    shutil.rmtree(bare / "phases" / "profiling")
    with pytest.raises(DataError, match="names no summary file") as err:
        expand([bare])
    assert "\n" not in str(err.value)


def test_genai_perf_0_0_16_is_not_read_as_aiperf_and_keeps_its_concurrency(fixtures, tmp_path):
    # input_config as genai-perf 0.0.16's own ConfigCommand.to_json_dict() wrote it (--concurrency 3, ISL 32, OSL 8)
    cfg = json.loads((fixtures / "format_samples" / "genai_perf_0.0.16_input_config.json").read_text())
    stats = json.loads((fixtures / "format_samples" / "profile_export_genai_perf.json").read_text())
    stats.pop("input_config")
    path = tmp_path / "profile_export_genai_perf.json"
    path.write_text(json.dumps({**stats, "input_config": cfg}))
    assert detect(path) is Format.GENAI_PERF_JSON
    res = parse_file(path)[0]
    assert res.client.value == "genai-perf" and res.load.concurrency == 3.0 and res.model == "tiny-fake"
