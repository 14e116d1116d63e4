"""`servecast calibrate` through the real CLI entry point (typer runner), library errors as one line."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from calibrate.table import read_runs
from servecast.cli import app

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
runner = CliRunner()


def test_help_has_examples():
    for cmd in ("ingest",):
        res = runner.invoke(app, ["calibrate", cmd, "--help"])
        assert res.exit_code == 0 and "Example: servecast calibrate" in res.output


def test_ingest_with_flags(tmp_path):
    out = tmp_path / "runs.parquet"
    res = runner.invoke(app, ["calibrate", "ingest", str(FIX / "aiperf"), "--model", "Qwen/Qwen3-32B", "--system",
                              "h200_sxm", "--backend", "vllm", "--mode", "agg", "--agg", "tp=2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 runs" in res.output and read_runs(out).num_rows == 2


def test_ingest_spec_and_load_override(tmp_path):
    spec = tmp_path / "dep.yaml"
    spec.write_text("model: Qwen/Qwen3-32B\nsystem: h100_sxm\nbackend: sglang\nmode: agg\nagg: {tp: 4}\n")
    out = tmp_path / "runs.parquet"
    res = runner.invoke(app, ["calibrate", "ingest", str(FIX / "aiperf" / "concurrency4" / "profile_export_aiperf.csv"),
                              "--deployment", str(spec), "--concurrency", "4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    row = read_runs(out).to_pylist()[0]
    assert row["concurrency"] == 4.0 and row["num_gpus"] == 4 and row["system"] == "h100_sxm"


@pytest.mark.parametrize("args, needle", [
    (["--out", "X"], "do not say what was deployed"),
    (["--format", "nope", "--out", "X"], "unknown format 'nope'"),
])
def test_ingest_errors_are_one_line(tmp_path, args, needle):
    import subprocess
    import sys

    from servecast.cli import main  # noqa: F401  (the console script wraps ServecastError)

    args = [a.replace("X", str(tmp_path / "o.parquet")) for a in args]
    proc = subprocess.run([sys.executable, "-c", "from servecast.cli import main; main()", "calibrate", "ingest",
                           str(FIX / "format_samples" / "vllm_bench_serve.json"), *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert needle in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
