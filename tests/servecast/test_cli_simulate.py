"""The `servecast simulate` surface: sweeps, records, plots, plan artifacts, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from servecast.cli import app

REPO = Path(__file__).resolve().parents[2]
BASE = ["simulate", "--model", "Qwen/Qwen3-8B", "--system", "h200_sxm", "--backend", "vllm", "--tp", "1",
        "--isl", "1000", "--osl", "50"]


def test_help_has_an_example():
    result = CliRunner().invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "Example: servecast simulate" in " ".join(result.output.split())


def test_concurrency_sweep_prints_a_table_writes_records_and_a_plot(tmp_path):
    records, plot = tmp_path / "rec.parquet", tmp_path / "sweep.png"
    result = CliRunner().invoke(app, BASE + ["--replicas", "2", "--concurrency", "1,8", "--num-requests", "40",
                                             "--records", str(records), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "TTFT p50" in result.output and "concurrency" in result.output
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    low, high = (pd.read_parquet(tmp_path / f"rec-c{c}.parquet") for c in (1, 8))
    assert len(low) == len(high) == 40
    assert high.ttft_ms.mean() > low.ttft_ms.mean()


def test_json_rate_sweep_and_disagg():
    result = CliRunner().invoke(app, ["simulate", "--model", "Qwen/Qwen3-8B", "--system", "h200_sxm", "--backend",
                                      "sglang", "--mode", "disagg", "--prefill-workers", "2", "--decode-tp", "2",
                                      "--isl", "2000", "--osl", "20", "--request-rate", "1,50", "--num-requests", "60",
                                      "--json", "--plot", ""])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["load"] for r in rows] == [1.0, 50.0]
    assert rows[0]["num_gpus"] == 4 and rows[1]["ttft"]["mean"] > rows[0]["ttft"]["mean"]


def test_plan_artifact_is_simulated_at_its_concurrency(tmp_path):
    from perfdb.types import Backend
    from search.artifacts.deployment import DeploymentSpec, WorkerEntry
    from search.artifacts.engines import Role
    from search.types import Mode

    spec = DeploymentSpec(
        model="Qwen/Qwen3-8B", system="h200_sxm", backend=Backend.TRTLLM, version=None, mode=Mode.AGG, isl=800,
        osl=40, prefix=0, concurrency=6, total_gpus=2, gpus_used=2,
        workers=(WorkerEntry(Role.AGG, 2, 1, 1, 1, 1, 1, 1, 64, 4096),),
        engine={"kv_cache_dtype": "bf16", "mem_fraction": 0.9, "max_model_len": 2048}, sla={}, predicted={})
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(spec.to_dict()))
    result = CliRunner().invoke(app, ["simulate", "--plan", str(tmp_path), "--json", "--num-requests", "30"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["load"] == 6 and row["num_gpus"] == 2 and row["completed"] == 30


def test_a_plan_artifact_is_replayed_with_the_plans_spread_of_lengths(tmp_path):
    """deployment.yaml's range_ratio (the plan's client protocol) is `simulate --plan`'s default; an explicit
    --range-ratio wins."""
    from dataclasses import replace

    from perfdb.types import Backend
    from search.artifacts.deployment import DeploymentSpec, WorkerEntry
    from search.artifacts.engines import Role
    from search.types import Mode

    spec = DeploymentSpec(
        model="Qwen/Qwen3-8B", system="h200_sxm", backend=Backend.TRTLLM, version=None, mode=Mode.AGG, isl=2000,
        osl=100, prefix=0, concurrency=16, total_gpus=1, gpus_used=1,
        workers=(WorkerEntry(Role.AGG, 1, 1, 1, 1, 1, 1, 1, 64, 8192),),
        engine={"kv_cache_dtype": "bf16", "mem_fraction": 0.9, "max_model_len": 4096}, sla={}, predicted={})
    runs = {}
    for name, s in (("fixed", spec), ("spread", replace(spec, range_ratio=0.2))):
        d = tmp_path / name
        d.mkdir()
        (d / "deployment.yaml").write_text(yaml.safe_dump(s.to_dict()))
        for extra in ([], ["--range-ratio", "0"]):
            result = CliRunner().invoke(app, ["simulate", "--plan", str(d), "--json", "--num-requests", "160",
                                              "--calibration", "none", *extra])
            assert result.exit_code == 0, result.output
            runs[name, bool(extra)] = json.loads(result.output)[0]["ttft"]["mean"]
    assert runs["fixed", False] == runs["fixed", True] == runs["spread", True] != runs["spread", False]


@pytest.mark.parametrize("flags, needle", [
    (["--concurrency", "4", "--request-rate", "2"], "--concurrency or --request-rate"),
    (["--osl", "0", "--concurrency", "1"], "--osl 0"),                       # not replaced by the default
    (["--concurrency", "4", "--num-requests", "0"], "--num-requests 0"),     # not replaced by the default
])
def test_bad_loads_fail_on_one_line(flags, needle):
    code = "import sys; from servecast.cli import main; sys.argv = ['servecast'] + sys.argv[1:]; main()"
    proc = subprocess.run([sys.executable, "-c", code, *BASE, *flags], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and needle in proc.stderr


def test_moe_a2a_deepep_prices_sglang_wide_ep_decode_with_the_all_to_all(capsys):
    """`--moe-a2a deepep` (SGLang launched with --moe-a2a-backend deepep): a DEP16 decode worker's tokens go to
    their experts' ranks instead of every rank gathering every token, so its decode steps change; the same
    option on an engine that picks its own exchange, or an unpriced value, is a one-line error."""
    dep16 = ["--model", "deepseek-ai/DeepSeek-R1", "--system", "gb200", "--backend", "sglang", "--mode", "disagg",
             "--prefill-tp", "1", "--prefill-dp", "8", "--prefill-moe-ep", "8", "--decode-tp", "1", "--decode-dp",
             "16", "--decode-moe-ep", "16", "--isl", "1024", "--osl", "64", "--concurrency", "256",
             "--num-requests", "256", "--json", "--plot", "", "--calibration", "none"]
    tpot = {}
    for a2a in ("none", "deepep"):
        result = CliRunner().invoke(app, ["simulate", *dep16, "--moe-a2a", a2a])
        assert result.exit_code == 0, result.output
        tpot[a2a] = json.loads(result.output)[0]["tpot"]["mean"]
    assert tpot["deepep"] != pytest.approx(tpot["none"], rel=0.01)
    est = {}
    for a2a in ("none", "deepep"):   # the static estimate of the same decode worker
        result = CliRunner().invoke(app, ["estimate", "--model", "deepseek-ai/DeepSeek-R1", "--system", "gb200",
                                          "--backend", "sglang", "--tp", "1", "--dp", "16", "--moe-ep", "16",
                                          "--concurrency", "256", "--calibration", "none", "--json", "--moe-a2a", a2a])
        assert result.exit_code == 0, result.output
        est[a2a] = json.loads(result.output)["tpot_ms"]
    assert est["deepep"] != pytest.approx(est["none"], rel=0.01)
    from servecast.cli import run

    for cmd in ("simulate", "estimate"):
        for argv, needle in ((["--backend", "trtllm", "--moe-a2a", "deepep"], "applies to sglang"),
                             (["--backend", "sglang", "--moe-a2a", "pplx"], "accepted: none, deepep")):
            load = ["--concurrency", "4"] if cmd == "simulate" else []
            assert run([cmd, "--model", "deepseek-ai/DeepSeek-R1", "--system", "gb200", *load, *argv]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and needle in err, err
