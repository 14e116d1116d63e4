"""`servecast plan` end to end through the real CLI: tables, files, exit codes, one-line errors."""
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from servecast.cli import app, main

BASE = ["plan", "--model", "Qwen/Qwen3-32B-FP8", "--system", "h200_sxm", "--total-gpus", "8",
        "--isl", "4000", "--osl", "500"]


def _run(args):
    """The console script in a subprocess: exit code and output exactly as a user sees them."""
    return subprocess.run([sys.executable, "-m", "servecast.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_has_examples_and_every_flag():
    result = CliRunner().invoke(app, ["plan", "--help"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "Example: servecast plan" in text
    for flag in ("--model", "--system", "--backend", "--total-gpus", "--isl", "--osl", "--prefix", "--ttft", "--tpot",
                 "--request-latency", "--mode", "--top-n", "--save-dir", "--db", "--calibration", "--version"):
        assert flag in text


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    result = _run(BASE + ["--ttft", "600", "--tpot", "16.67", "--top-n", "2", "--save-dir", str(out)])
    return result, out


def test_plan_prints_both_modes_the_winner_and_the_point_count(planned):
    result, _ = planned
    assert result.returncode == 0, result.stderr
    assert "agg: top" in result.stdout and "disagg: top" in result.stdout
    assert "raw simulated mean TTFT = prefill" in result.stdout and "why: " in result.stdout
    assert "winner:" in result.stdout and "evaluated" in result.stdout and "points" in result.stdout


def test_default_plan_is_calibrated_by_the_bundled_database(planned):
    """No --db: the bundled database's shipped calibration corrects every point, the winner meets the
    targets on the calibrated numbers, and says which calibration with its interval."""
    result, out = planned
    assert "calibrated: TTFT/TPOT of every point corrected by calibration" in result.stdout
    winner = json.loads((out / "plan.json").read_text())["winner"]
    lo, hi = winner["calibrated"]["ttft_interval_ms"]
    assert winner["calibrated"]["calibration_id"] and lo < winner["metrics"]["ttft_ms"] < hi
    raw = _run(BASE + ["--ttft", "600", "--tpot", "16.67", "--top-n", "2", "--calibration", "none"])
    assert raw.returncode == 0 and "calibrated:" not in raw.stdout


def test_plan_writes_points_png_summary_and_artifacts(planned):
    result, out = planned
    table = pq.read_table(out / "points.parquet")
    summary = json.loads((out / "plan.json").read_text())
    assert table.num_rows <= summary["points_evaluated"] and table.num_rows > 1000
    assert (out / "points.csv").stat().st_size > 10_000
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    winner = summary["winner"]
    assert winner["metrics"]["ttft_ms"] <= 600 and winner["metrics"]["tpot_ms"] <= 16.67
    dirs = sorted((out / "top").iterdir())
    # the simulator drops candidates that miss a target under load: every remaining top one has its directory
    assert len(dirs) == sum(len(v) for v in summary["top"].values()) >= 2
    sims = summary["simulated"]
    assert sims and summary["why"] and any(s["meets_sla"] for s in sims.values())
    assert all(set(s["ttft_parts_ms"]) == {"overhead_ms", "queue_ms", "prefill_ms", "kv_transfer_ms"} for s in sims.values())
    for d in dirs:
        spec = yaml.safe_load((d / "deployment.yaml").read_text())
        assert spec["backend"] == "trtllm" and spec["isl"] == 4000 and spec["concurrency"] >= 1
        assert (d / "launch.sh").read_text().count("trtllm-serve") >= 1
        assert list(yaml.safe_load_all((d / "k8s" / "dynamo.yaml").read_text()))
        assert "aiperf profile" in (d / "aiperf.sh").read_text()


def _main(args, monkeypatch, capsys):
    """The console script's entry point in-process: (exit code, stdout, stderr). An exception other
    than SystemExit (a traceback for the user) fails the test by propagating."""
    monkeypatch.setattr(sys, "argv", ["servecast", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_impossible_sla_exits_one_with_the_binding_constraint_and_closest_points(monkeypatch, capsys):
    code, out, err = _main(BASE + ["--ttft", "600", "--tpot", "0.5", "--mode", "agg"], monkeypatch, capsys)
    assert code == 1
    assert "no configuration meets every target" in out
    assert "binding constraint: tpot" in out and "closest points" in out


@pytest.mark.parametrize("args,needle", [
    (["--model", "deepseek-ai/DeepSeek-R1", "--total-gpus", "2"], "fits nowhere"),
    (["--version", "9.9.9"], "no version '9.9.9'"),
    (["--backend", "tgi"], "unknown backend 'tgi'"),
    (["--model", "nope/none"], "unknown model"),
    (["--system", "tpu_v9"], "unknown system"),
    (["--ttft", "-1"], "ttft=-1.0: must be > 0"),
    (["--dynamo-version", "1.6 1"], "dynamo version '1.6 1' is not an image tag"),
])
def test_errors_are_one_line_without_traceback(args, needle, monkeypatch, capsys):
    argv = BASE + ["--ttft", "600", "--tpot", "16.67"]
    for flag, value in zip(args[::2], args[1::2], strict=False):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    code, out, err = _main(argv, monkeypatch, capsys)
    assert code == 2, out + err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_a_reused_save_dir_holds_exactly_the_new_plan(tmp_path, monkeypatch, capsys):
    args = BASE + ["--ttft", "600", "--tpot", "16.67", "--no-simulate", "--save-dir", str(tmp_path)]
    code, _, _ = _main(args + ["--top-n", "2"], monkeypatch, capsys)
    first = sorted(p.name for p in (tmp_path / "top").iterdir())
    assert code == 0 and len(first) == 4
    (tmp_path / "top" / first[-1] / "my-notes.txt").write_text("mine")
    code, _, _ = _main(args + ["--top-n", "1", "--mode", "agg", "--dynamo-version", "1.7.0"], monkeypatch, capsys)
    summary = json.loads((tmp_path / "plan.json").read_text())
    now = sorted(p.name for p in (tmp_path / "top").iterdir())
    assert code == 0 and now == sorted([summary["top"]["agg"][0]["artifacts"].split("/")[-1], first[-1]])
    assert sorted(p.name for p in (tmp_path / "top" / first[-1]).iterdir()) == ["my-notes.txt"]   # only the user's file
    dynamo = (tmp_path / summary["top"]["agg"][0]["artifacts"] / "k8s" / "dynamo.yaml").read_text()
    assert "tensorrtllm-runtime:1.7.0" in dynamo


def test_deepseek_v4_artifacts_carry_the_engines_kv_cache_dtype(tmp_path, monkeypatch, capsys):
    """SGLang stores DeepSeek-V4's KV in fp8_e4m3 unless told otherwise: the plan prices that cache and its
    launch flags, Dynamo args and deployment spec say so; --kv-dtype bf16 is written as bfloat16."""
    args = ["plan", "--model", "deepseek-ai/DeepSeek-V4-Pro", "--system", "b200_sxm", "--backend", "sglang",
            "--isl", "4000", "--osl", "500", "--ttft", "3000", "--tpot", "50", "--mode", "agg", "--top-n", "1",
            "--no-simulate"]
    for extra, flag, kv in (([], "fp8_e4m3", "fp8"), (["--kv-dtype", "bf16"], "bfloat16", "bf16")):
        out = tmp_path / flag
        code, _, _ = _main(args + extra + ["--save-dir", str(out)], monkeypatch, capsys)
        (top,) = (out / "top").iterdir()
        assert code == 0 and f"--kv-cache-dtype {flag}" in (top / "launch.sh").read_text()
        text = (top / "k8s" / "dynamo.yaml").read_text()
        assert "- --kv-cache-dtype\n" in text and text.split("- --kv-cache-dtype\n", 1)[1].split()[1] == flag
        assert yaml.safe_load((top / "deployment.yaml").read_text())["engine"]["kv_cache_dtype"] == kv


def test_glm5_sglang_artifacts_write_the_kv_dtype_priced_on_each_gpu(tmp_path, monkeypatch, capsys):
    """SGLang stores DSA models' KV in fp8_e4m3 at auto on Blackwell and bfloat16 on Hopper: on b200 the plan
    prices fp8 and says so with --kv-cache-dtype fp8_e4m3; on h200 it prices bf16 and leaves auto."""
    args = ["plan", "--model", "zai-org/GLM-5-FP8", "--backend", "sglang", "--isl", "4000", "--osl", "500",
            "--ttft", "3000", "--tpot", "50", "--mode", "agg", "--top-n", "1", "--no-simulate"]
    for system, flag, kv in (("b200_sxm", "fp8_e4m3", "fp8"), ("h200_sxm", "auto", "bf16")):
        out = tmp_path / system
        code, _, _ = _main(args + ["--system", system, "--save-dir", str(out)], monkeypatch, capsys)
        (top,) = (out / "top").iterdir()
        assert code == 0 and f"--kv-cache-dtype {flag}" in (top / "launch.sh").read_text()
        assert yaml.safe_load((top / "deployment.yaml").read_text())["engine"]["kv_cache_dtype"] == kv
