"""`servecast calibrate` through the real CLI entry point (typer runner), library errors as one line."""
from __future__ import annotations

import json
import subprocess
import sys
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


HEADER = ("id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,gemm_quant_mode,"
          "moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,moe_ep_size,prefill_batch_size,"
          "prefill_num_workers,prefill_tp_size,prefill_pp_size,prefill_attention_dp_size,prefill_moe_tp_size,"
          "prefill_moe_ep_size,decode_batch_size,decode_num_workers,decode_tp_size,decode_pp_size,"
          "decode_attention_dp_size,decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,silicon_tpot_ms")


def _table(path: Path, tag: str, concs=(1, 4, 16, 64)) -> Path:
    lines = [HEADER]
    for tp in (1, 2, 4, 8):
        for c in concs:
            ttft, tpot = 150.0 + 4.0 * c / tp, 9.0 + 0.08 * c / tp
            lines.append(f"{tag}{tp}c{c},silicon_concurrency={c},trtllm,1.0.0,Qwen/Qwen3-32B,h200_sxm,fp8,agg,1024,256,"
                         f"fp8,fp8,{c},{tp},1,1,{tp},1,,,,,,,,,,,,,,,{ttft},{tpot}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_validate_show_end_to_end(tmp_path, tiny_db):
    train_csv = _table(tmp_path / "train.csv", "t")
    res = runner.invoke(app, ["calibrate", "fit", str(train_csv), "--db", str(tiny_db), "--out", str(tmp_path / "cal"),
                              "--folds", "3", "--residual", "none", "--min-rows", "4", "--min-deployments", "1",
                              "--plot", str(tmp_path / "fit.png")])
    assert res.exit_code == 0, res.output
    assert "calibration " in res.output and (tmp_path / "fit.png").stat().st_size > 1000
    (art,) = [p for p in (tmp_path / "cal").iterdir() if p.is_dir()]
    assert {p.name for p in art.iterdir()} >= {"calibration.json", "training_rows.parquet", "fold_errors.csv"}
    from estimator.calibration_files import load

    assert load(art).base == "simulate"    # the default base: the simulator's replays, what plan decides on
    held = _table(tmp_path / "held.csv", "h", concs=(2, 8, 32))
    res = runner.invoke(app, ["calibrate", "validate", str(held), "--calibration", str(tmp_path / "cal"), "--db",
                              str(tiny_db), "--plot", str(tmp_path / "v.png"), "--json"])
    assert res.exit_code == 0, res.output
    assert '"stage":"after"' in res.output.replace(" ", "") and (tmp_path / "v.png").exists()
    res = runner.invoke(app, ["calibrate", "validate", str(held), "--calibration", str(art), "--db", str(tiny_db),
                              "--plot", "", "--max-error", "0.001"])
    assert res.exit_code == 1 and "median |error| above" in res.output
    res = runner.invoke(app, ["calibrate", "validate", str(held), "--calibration", str(art), "--db", str(tiny_db),
                              "--plot", "", "--max-error", "-5"])
    assert res.exit_code != 0 and "--max-error -5" in str(res.exception)   # a gate that can never pass
    res = runner.invoke(app, ["calibrate", "validate", str(train_csv), "--calibration", str(art), "--db", str(tiny_db),
                              "--plot", ""])
    assert res.exit_code != 0          # every row was used to fit it: nothing held out to report on
    res = runner.invoke(app, ["calibrate", "show", str(art)])
    assert res.exit_code == 0 and "scope factors" in res.output and "cross-validated" in res.output
    # a static-base calibration is validated on static predictions without naming the base again
    res = runner.invoke(app, ["calibrate", "fit", str(train_csv), "--db", str(tiny_db), "--out", str(tmp_path / "c3"),
                              "--base", "estimate", "--folds", "3", "--residual", "none"])
    assert res.exit_code == 0, res.output
    (static,) = [p for p in (tmp_path / "c3").iterdir() if p.is_dir()]
    assert load(static).base == "estimate"
    res = runner.invoke(app, ["calibrate", "validate", str(held), "--calibration", str(static), "--db", str(tiny_db),
                              "--plot", ""])
    assert res.exit_code == 0, res.output
    # the fit's options reach FitOptions, and a bad one is refused before any fitting
    res = runner.invoke(app, ["calibrate", "fit", str(train_csv), "--db", str(tiny_db), "--out", str(tmp_path / "c2"),
                              "--folds", "3", "--residual", "none", "--min-rows", "4", "--rel-weight-ttft", "-1"])
    assert res.exit_code != 0 and "rel_weight=-1" in str(res.exception) and not (tmp_path / "c2").exists()


def test_help_for_every_command():
    for cmd in ("ingest", "fit", "validate", "show", "enrich"):
        res = runner.invoke(app, ["calibrate", cmd, "--help"])
        assert res.exit_code == 0 and "Example: servecast calibrate" in res.output


TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "e2e_train_silicon.csv"


@pytest.mark.skipif(not TRAIN.exists(), reason="../shared/data is not beside the checkout")
def test_validate_against_the_bundled_calibration(tmp_path):
    import json

    import pandas as pd

    rows = pd.read_csv(TRAIN)
    rows = rows[rows["backend"] == "vllm"].head(40).copy()
    rows["id"] = "renamed-" + rows["id"]      # runs the shipped calibration was not fitted on
    path = tmp_path / "mine.csv"
    rows.to_csv(path, index=False)
    res = runner.invoke(app, ["calibrate", "validate", str(path), "--calibration", "stored", "--plot", "", "--json"])
    assert res.exit_code == 0, res.output
    table = json.loads(res.output)
    after = [r for r in table if r["grouping"] == "all" and r["stage"] == "after" and r["metric"] == "tpot"]
    assert after and after[0]["n"] > 30
    # the same training rows under their own ids were fitted on: nothing is left to validate
    rows["id"] = rows["id"].str.removeprefix("renamed-")
    rows.to_csv(path, index=False)
    res = runner.invoke(app, ["calibrate", "validate", str(path), "--calibration", "stored", "--plot", ""])
    assert res.exit_code != 0 and "no held-out row" in str(res.exception)
    from perfdb.storage import init_db

    init_db(tmp_path / "db")     # a database without calibrations/
    res = runner.invoke(app, ["calibrate", "validate", str(path), "--calibration", "stored", "--db", str(tmp_path / "db")])
    assert res.exit_code != 0 and "calibrations does not exist" in str(res.exception)


def test_show_the_bundled_calibration():
    from perfdb.lookup import BUNDLED_ROOT

    res = runner.invoke(app, ["calibrate", "show", str(BUNDLED_ROOT / "calibrations")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "scope factors" in text and "novelty" in text and "on a model it never saw" in text
    assert "base: estimate" in text and "base: simulate" in text      # the folder holds one per base
    res = runner.invoke(app, ["calibrate", "show", str(BUNDLED_ROOT / "calibrations"), "--json"])
    assert res.exit_code == 0 and {c["base"] for c in json.loads(res.output)} == {"estimate", "simulate"}
    # a folder of several is ambiguous where one calibration is applied: a one-line error naming them
    proc = subprocess.run([sys.executable, "-m", "servecast.cli", "calibrate", "validate", "runs.csv",
                           "--calibration", str(BUNDLED_ROOT / "calibrations")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "holds 2 calibrations" in proc.stderr and proc.stderr.count("\n") == 1
