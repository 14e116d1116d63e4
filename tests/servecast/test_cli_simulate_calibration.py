"""`servecast simulate --calibration DIR` (or a --base simulate one stored in --db): calibrated mean
TTFT/TPOT per sweep point with 80% intervals, from a real calibration fitted on the tiny database."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
from fixtures.calfit import fit
from typer.testing import CliRunner

from servecast.cli import app

ARGS = ["simulate", "--model", "Qwen/Qwen3-32B", "--system", "h200_sxm", "--backend", "trtllm", "--tp", "2",
        "--isl", "1024", "--osl", "128", "--concurrency", "1,8", "--plot", ""]
runner = CliRunner()


@pytest.fixture(scope="module")
def fitted(tiny_db, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simcal")
    (tmp / "sim").mkdir()
    (tmp / "est").mkdir()
    sim = fit(tmp / "sim", tiny_db, 3.0, 2.0, base="simulate", concs=(1, 4, 16))
    est = fit(tmp / "est", tiny_db, 3.0, 2.0, concs=(1, 4, 16))
    return sim, est


def _json(*extra):
    res = runner.invoke(app, [*ARGS, "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_sweep_points_are_calibrated_in_the_fitted_direction(fitted, tiny_db):
    (art, cal), _ = fitted
    assert cal.base == "simulate"
    raw = _json("--db", str(tiny_db))
    got = _json("--db", str(tiny_db), "--calibration", str(art))
    assert all("calibrated" not in row for row in raw)
    f = {m: math.exp(cal.factor(m, "h200_sxm", "trtllm", "1.0.0", "agg").log_factor) for m in ("ttft", "tpot")}
    assert f["ttft"] > 1.5 and f["tpot"] > 1.2             # measured was 3x / 2x the static estimate
    for r, g in zip(raw, got, strict=True):
        c = g["calibrated"]
        assert c["calibration_id"] == cal.id and c["statistic"] == "mean"
        assert c["ttft_ms"] == pytest.approx(r["ttft"]["mean"] * f["ttft"], rel=1e-9)
        assert c["tpot_ms"] == pytest.approx(r["tpot"]["mean"] * f["tpot"], rel=1e-9)
        lo, hi = c["ttft_interval_ms"]
        assert lo <= c["ttft_ms"] <= hi and c["interval_coverage"] == 0.8


def test_table_says_calibrated_with_intervals(fitted, tiny_db):
    (art, cal), _ = fitted
    res = runner.invoke(app, [*ARGS, "--db", str(tiny_db), "--calibration", str(art)])
    assert res.exit_code == 0, res.output
    assert f"calibrated (calibration {cal.id}" in res.output and "80% interval" in res.output


def test_stored_simulate_calibration_is_used_estimate_one_passed_over(fitted, tiny_db, tmp_path):
    (sim_art, cal), (est_art, _) = fitted
    db = tmp_path / "db"
    shutil.copytree(tiny_db, db)
    shutil.copytree(sim_art, db / "calibrations" / sim_art.name)
    shutil.copytree(est_art, db / "calibrations" / est_art.name)     # newer, but not fitted on the simulator
    got = _json("--db", str(db))
    assert got[0]["calibrated"]["calibration_id"] == cal.id


def test_estimate_base_and_missing_dir_are_one_line_errors(fitted, tiny_db, tmp_path):
    _, (est_art, _) = fitted
    for path, needle in ((est_art, "accepts only --base simulate"), (tmp_path / "nope", "no calibration here")):
        proc = subprocess.run([sys.executable, "-m", "servecast.cli", *ARGS, "--db", str(tiny_db), "--calibration",
                               str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert needle in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
