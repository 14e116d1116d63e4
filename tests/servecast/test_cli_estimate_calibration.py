"""`servecast estimate --calibration DIR`: calibrated TTFT/TPOT with 80% intervals beside the raw estimate."""
from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from estimator.calibration import ANY, Calibration, Factor, IntervalQuantiles, Scope
from estimator.calibration_files import save
from servecast.cli import app

runner = CliRunner()
ARGS = ["estimate", "--model", "Qwen/Qwen3-32B", "--system", "h200_sxm", "--backend", "trtllm", "--tp", "2",
        "--concurrency", "32", "--isl", "4000", "--osl", "500"]


@pytest.fixture
def cal_dir(tmp_path):
    scope = Scope("h200_sxm", "trtllm", ANY, "agg")
    cal = Calibration(factors=(Factor(scope, "ttft", math.log(2.0), 40, 4), Factor(scope, "tpot", math.log(0.5), 40, 4)),
                      residuals=(), intervals=(IntervalQuantiles("ttft", ANY, -0.1, 0.2, 0.8, 40),
                                               IntervalQuantiles("tpot", ANY, -0.05, 0.05, 0.8, 40)))
    save(cal, tmp_path / cal.id)
    return tmp_path / cal.id, cal.id


def test_json_has_calibrated_values_and_intervals(cal_dir):
    path, cid = cal_dir
    res = runner.invoke(app, [*ARGS, "--json", "--calibration", str(path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    c = out["calibrated"]
    assert c["calibration_id"] == cid and c["scope"] == "h200_sxm/trtllm/*/agg"
    assert c["ttft_ms"] == pytest.approx(2.0 * out["ttft_ms"], rel=1e-9)
    assert c["tpot_ms"] == pytest.approx(0.5 * out["tpot_ms"], rel=1e-9)
    lo, hi = c["ttft_interval_ms"]
    assert lo == pytest.approx(c["ttft_ms"] * math.exp(-0.1)) and hi == pytest.approx(c["ttft_ms"] * math.exp(0.2))
    assert c["interval_coverage"] == 0.8
    # closed loop at fixed concurrency: throughput follows the calibrated request latency
    assert c["request_latency_ms"] == pytest.approx(c["ttft_ms"] + 499 * c["tpot_ms"])


def test_table_says_calibrated_with_interval(cal_dir):
    path, cid = cal_dir
    res = runner.invoke(app, [*ARGS, "--calibration", str(path)])
    assert res.exit_code == 0, res.output
    assert "calibrated" in res.output and cid in res.output and "80% interval" in res.output


def test_calibration_none_nothing_calibrated():
    res = runner.invoke(app, [*ARGS, "--json", "--calibration", "none"])
    assert res.exit_code == 0, res.output
    assert "calibrated" not in json.loads(res.output)


def test_bundled_database_applies_its_shipped_calibration():
    res = runner.invoke(app, [*ARGS, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    raw = json.loads(runner.invoke(app, [*ARGS, "--json", "--calibration", "none"]).output)
    assert out["ttft_ms"] == pytest.approx(raw["ttft_ms"])          # the raw estimate is kept beside
    cal = out["calibrated"]
    assert cal["tpot_ms"] != pytest.approx(raw["tpot_ms"], rel=1e-3)
    lo, hi = cal["tpot_interval_ms"]
    assert lo < cal["tpot_ms"] < hi


def test_explicit_database_without_calibrations_stays_uncalibrated(tmp_path):
    from perfdb.storage import init_db

    init_db(tmp_path / "db")
    res = runner.invoke(app, [*ARGS, "--json", "--db", str(tmp_path / "db")])
    assert res.exit_code == 0, res.output
    assert "calibrated" not in json.loads(res.output)


def test_missing_calibration_is_an_error(tmp_path):
    res = runner.invoke(app, [*ARGS, "--calibration", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "no calibration here" in str(res.exception)


@pytest.mark.parametrize("flag, value", [("--concurrency", "-4"), ("--prefix", "100000")])
def test_impossible_load_is_an_error_not_an_estimate(flag, value):
    res = runner.invoke(app, [*ARGS, flag, value])
    assert res.exit_code != 0 and flag.lstrip("-") in str(res.exception)
