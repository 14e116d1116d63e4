"""The issue-17 cases, pinned: each is one `error:` line naming the input and what is accepted, exit 2,
nothing written; typer's usage box is the same one line; `servecast --version`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from estimator.models.catalog import catalog_entry
from servecast.cli import run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients" / "format_samples"
MODEL = ["--model", "Qwen/Qwen3-0.6B", "--system", "h200_sxm", "--backend", "vllm"]
PLAN = ["--isl", "64", "--osl", "16", "--ttft", "200", "--tpot", "5", "--total-gpus", "1", "--no-simulate"]


@pytest.fixture
def bad(tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "adir").mkdir()
    pq.write_table(pa.table({"run_id": ["a"]}), tmp_path / "runs.parquet")
    return tmp_path


def _one_line(capsys, argv, *needles):
    code = run(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("which", ["blob.bin", "adir"])
@pytest.mark.parametrize("argv, accepted", [
    (["estimate", *MODEL, "--calibration", "{p}"], "calibration"),
    (["estimate", "--model", "{p}", "--system", "h200_sxm"], "config.json"),
    (["estimate", "--from-runs", "{p}", "--out", "{tmp}/o.csv"], "CSV of measured runs"),
    (["simulate", *MODEL, "--concurrency", "2", "--trace", "{p}"], "JSON lines"),
    (["simulate", "--plan", "{p}", "--concurrency", "2"], "deployment"),
    (["calibrate", "ingest", "{vllm}", "--out", "{tmp}/r.parquet", "--deployment", "{p}"], "deployment"),
    (["plan", *MODEL, *PLAN, "--calibration", "{p}"], "calibration"),
])
def test_binary_or_directory_paths(capsys, bad, which, argv, accepted):
    p = bad / which
    argv = [a.format(p=p, tmp=bad, vllm=FIXTURES / "vllm_bench_serve.json") for a in argv]
    if which == "adir" and argv[:2] == ["simulate", "--plan"]:
        accepted = "deployment.yaml"   # a directory is read as the plan folder holding deployment.yaml
    if which == "adir" and "--deployment" in argv:
        accepted = "deployment.yaml"
    if which == "adir" and "--calibration" in argv:
        accepted = "calibration"
    _one_line(capsys, argv, accepted)
    assert not (bad / "o.csv").exists() and not (bad / "r.parquet").exists()


def test_out_is_a_directory_and_parquet_to_from_runs(capsys, bad):
    _one_line(capsys, ["estimate", "--from-runs", str(FIXTURES / "silicon_sample.csv"), "--out", str(bad / "adir")], "is a directory")
    _one_line(capsys, ["estimate", "--from-runs", str(bad / "runs.parquet"), "--out", str(bad / "o.csv")],
              "is a Parquet file", "calibrate fit")
    assert not (bad / "o.csv").exists()


def test_values(capsys, tmp_path):
    _one_line(capsys, ["db", "check-interp", "--op", "gemm", "--system", "h200_sxm", "--backend", "trtllm",
                       "--sample", "0"], "--sample 0", ">= 1")
    cfg = catalog_entry("Qwen/Qwen3-8B")["config"]
    for name, patch, needle in (("zero.json", {"num_attention_heads": 0}, "num_heads = 0"),
                                ("neg.json", {"hidden_size": -4096}, "hidden = -4096")):
        (tmp_path / name).write_text(json.dumps({**cfg, **patch}))
        _one_line(capsys, ["estimate", "--model", str(tmp_path / name), "--system", "h200_sxm"], needle, ">= 1")


def test_usage_errors_are_one_line_and_version(capsys):
    _one_line(capsys, ["db", "check-interp", "--sample", "3"], "Missing option '--op'",
              "servecast db check-interp --help")
    _one_line(capsys, ["estimate", "--tp", "two"], "'--tp'")
    assert run(["collect", "run", "--help"]) == 0 and "system/backend" in capsys.readouterr().out
    assert run(["--version"]) == 0 and capsys.readouterr().out.startswith("servecast ")


def test_collect_without_torch(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch raises ImportError, as where it is absent
    _one_line(capsys, ["collect", "run", "--ops", "gemm", "--db", str(tmp_path / "db")], "torch", "pip install")
    _one_line(capsys, ["collect", "plan", "--ops", "gemm"], "torch")
    assert not (tmp_path / "db").exists()


@pytest.mark.parametrize("ratio", ["1", "-0.1", "1.5"])
def test_plan_range_ratio_outside_its_range_is_one_line(capsys, ratio):
    _one_line(capsys, ["plan", *MODEL, *PLAN, "--range-ratio", ratio], f"range-ratio={float(ratio)}", "[0, 1)")
