"""`servecast plan --calibration DIR` (or one stored in --db): the SLA is checked on calibrated predictions.

A real calibration is fitted on the tiny database (tests/fixtures/calfit.py: TTFT x1.5, TPOT x1.25
of the estimator's own predictions), then the same plan is run raw and calibrated."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from fixtures.calfit import fit
from typer.testing import CliRunner

from estimator.calibration_files import load, save
from estimator.calibration_reach import Novelty
from servecast.cli import app

TTFT, TPOT = 800.0, 25.0
ARGS = ["plan", "--model", "Qwen/Qwen3-32B", "--system", "h200_sxm", "--backend", "trtllm", "--total-gpus", "8",
        "--isl", "1024", "--osl", "128", "--ttft", str(TTFT), "--tpot", str(TPOT), "--top-n", "3", "--no-simulate"]
runner = CliRunner()


def _plan(db, out, *extra):
    res = runner.invoke(app, [*ARGS, "--db", str(db), "--save-dir", str(out), *extra])
    assert res.exit_code == 0, res.output
    return res.output, pq.read_table(out / "points.parquet").to_pydict(), json.loads((out / "plan.json").read_text())


@pytest.fixture(scope="module")
def runs(tiny_db, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plancal")
    art, cal = fit(tmp, tiny_db, 1.5, 1.25)
    raw = _plan(tiny_db, tmp / "raw")
    calibrated = _plan(tiny_db, tmp / "cal", "--calibration", str(art))
    return art, cal, raw, calibrated, tmp


def _factor(cal, metric):
    return math.exp(cal.factor(metric, "h200_sxm", "trtllm", "1.0.0", "agg").log_factor)


def test_every_point_is_corrected_in_the_fitted_direction(runs):
    _, cal, (_, raw, _), (_, got, _), _ = runs
    f_ttft, f_tpot = _factor(cal, "ttft"), _factor(cal, "tpot")
    assert 1.3 < f_ttft < 1.7 and 1.1 < f_tpot < 1.4          # what the fit was given
    ok = np.asarray(raw["feasible"])
    r_ttft, r_tpot = np.asarray(raw["ttft_ms"])[ok], np.asarray(raw["tpot_ms"])[ok]
    c_ttft, c_tpot = np.asarray(got["ttft_ms"])[ok], np.asarray(got["tpot_ms"])[ok]
    # the fit saw the model aggregated only: its disagg points are a model new to that mode, corrected only
    # where the held-out evidence lets the factor reach an unseen model (one model here: it does not)
    disagg = np.asarray(raw["mode"])[ok] == "disagg"
    assert disagg.any() and not cal.reaches("ttft", "factor", Novelty.MODEL)
    np.testing.assert_allclose(c_ttft, r_ttft * np.where(disagg, 1.0, f_ttft), rtol=1e-9)
    np.testing.assert_allclose(c_tpot, r_tpot * np.where(disagg, 1.0, f_tpot), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(got["request_latency_ms"])[ok], c_ttft + 127 * c_tpot, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(got["tokens_per_s_per_user"])[ok], 1e3 / c_tpot, rtol=1e-9)
    assert (np.asarray(got["tokens_per_s_per_gpu"])[ok][~disagg] < np.asarray(raw["tokens_per_s_per_gpu"])[ok][~disagg]).all()
    assert set(np.asarray(got["source"])[ok]) == {"calibrated"} and "calibrated" not in set(raw["source"])
    lo, hi = np.asarray(got["ttft_lo_ms"])[ok], np.asarray(got["ttft_hi_ms"])[ok]
    assert (lo <= c_ttft).all() and (c_ttft <= hi).all() and (hi > lo).all()
    assert "ttft_lo_ms" not in raw                              # uncalibrated files are unchanged


def test_sla_is_checked_on_calibrated_values(runs):
    _, cal, (_, raw, raw_plan), (_, got, plan), _ = runs
    ok = np.asarray(got["feasible"])
    c_ttft, c_tpot = np.asarray(got["ttft_ms"]), np.asarray(got["tpot_ms"])
    expect = ok & (c_ttft <= TTFT) & (c_tpot <= TPOT)
    assert (np.asarray(got["meets_sla"]) == expect).all()
    passes_raw_only = np.asarray(raw["meets_sla"]) & ~expect
    assert passes_raw_only.any()                                # the calibration changes the verdict somewhere
    # the raw agg winner misses TPOT once calibrated, so it is not what the calibrated plan reports (agg: the
    # mode the fit saw; its disagg points are a model new to that mode and keep their raw numbers)
    rw = raw_plan["top"]["agg"][0]
    assert rw["metrics"]["tpot_ms"] <= TPOT < rw["metrics"]["tpot_ms"] * _factor(cal, "tpot")
    reported = [c for cs in plan["top"].values() for c in cs]
    assert reported and plan["calibration"] == {"trtllm": runs[1].id}
    for c in reported:
        m = c["metrics"]
        assert m["ttft_ms"] <= TTFT and m["tpot_ms"] <= TPOT and m["source"] == "calibrated"
        assert (c["shape"], c["mode"], m["concurrency"]) != (rw["shape"], rw["mode"], rw["metrics"]["concurrency"])
        lo, hi = c["calibrated"]["tpot_interval_ms"]
        assert lo <= m["tpot_ms"] <= hi and c["calibrated"]["interval_coverage"] == 0.8
        # each reported candidate is a calibrated point that meets the targets
        match = np.isclose(c_ttft, m["ttft_ms"], rtol=1e-5) & np.isclose(c_tpot, m["tpot_ms"], rtol=1e-5)
        assert (match & expect).any()


def test_table_and_artifacts_say_calibrated_with_intervals(runs):
    art, cal, (raw_out, _, _), (out, _, _), tmp = runs
    assert f"calibration {cal.id}" in out and "80% interval" in out and "calibrated" in out
    assert "calibrated" not in raw_out and "interval" not in raw_out
    spec = yaml.safe_load(next((tmp / "cal" / "top").glob("*/deployment.yaml")).read_text())
    pred = spec["predicted"]
    assert pred["source"] == "calibrated" and pred["calibration_id"] == cal.id
    assert pred["ttft_interval_ms"][0] <= pred["ttft_ms"] <= pred["ttft_interval_ms"][1]
    assert "ttft_lo_ms" in (tmp / "cal" / "points.csv").read_text().splitlines()[0]


def test_calibration_stored_in_the_database_is_used(runs, tiny_db, tmp_path):
    art, cal, _, (_, got, _), _ = runs
    db = tmp_path / "db"
    shutil.copytree(tiny_db, db)
    shutil.copytree(art, db / "calibrations" / art.name)
    _simulate_base(art, db / "calibrations")      # newer, but fitted on the simulator: passed over by plan
    _, auto, plan = _plan(db, tmp_path / "out")
    assert plan["calibration"] == {"trtllm": cal.id}
    np.testing.assert_allclose(auto["ttft_ms"], got["ttft_ms"], rtol=1e-12)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "servecast.cli", *args], capture_output=True, text=True, timeout=120)


def _simulate_base(art, where):
    sim = replace(load(art), base="simulate")
    save(sim, where / sim.id)
    return where / sim.id


def test_a_simulate_base_calibration_serves_the_replay_and_the_screen_keeps_its_own(runs, tiny_db, tmp_path):
    # `calibrate fit` writes a simulate-base calibration by default: plan takes it for the simulated picks
    # and screens with the database's estimate-base one (none in tiny_db: the screen stays raw)
    from estimator.calibration_files import resolve_for_base

    art, cal, (raw_out, raw, _), _, _ = runs
    sim = _simulate_base(art, tmp_path / "sim")
    assert resolve_for_base(sim, tiny_db, "h200_sxm", "trtllm", "simulate").id == load(sim).id
    assert resolve_for_base(sim, tiny_db, "h200_sxm", "trtllm", "estimate") is None
    assert resolve_for_base(art, tiny_db, "h200_sxm", "trtllm", "estimate").id == cal.id
    out, got, plan = _plan(tiny_db, tmp_path / "out", "--calibration", str(sim))
    assert plan["calibration"] is None and "interval" not in out
    np.testing.assert_allclose(got["ttft_ms"], raw["ttft_ms"], rtol=1e-12)


def test_a_missing_calibration_dir_is_a_one_line_error(tmp_path):
    proc = _cli(*ARGS, "--calibration", str(tmp_path / "nope"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no calibration here" in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_sla_at_upper_checks_the_upper_end_of_the_intervals(runs, tiny_db, tmp_path):
    """--sla-at upper: a point counts only if the upper ends of its TTFT and TPOT intervals meet the
    targets, so what qualifies is a strict subset of what the calibrated predictions let through, and
    every reported candidate's upper ends are within the targets."""
    art, _, _, (_, median, _), _ = runs
    out, got, plan = _plan(tiny_db, tmp_path / "upper", "--calibration", str(art), "--sla-at", "upper")
    assert "at the upper end of the 80% interval" in out and plan["request"]["sla"]["at"] == "upper"
    ok = np.asarray(got["feasible"])
    hi_ttft, hi_tpot = np.asarray(got["ttft_hi_ms"]), np.asarray(got["tpot_hi_ms"])
    expect = ok & (hi_ttft <= TTFT) & (hi_tpot <= TPOT)
    meets = np.asarray(got["meets_sla"])
    assert (meets == expect).all() and meets.any()
    assert (meets <= np.asarray(median["meets_sla"])).all() and meets.sum() < np.sum(median["meets_sla"])
    for c in (c for cs in plan["top"].values() for c in cs):
        assert c["calibrated"]["ttft_interval_ms"][1] <= TTFT and c["calibrated"]["tpot_interval_ms"][1] <= TPOT
    spec = yaml.safe_load(next((tmp_path / "upper" / "top").glob("*/deployment.yaml")).read_text())
    assert spec["sla"]["at"] == "upper"
    # nothing meets a target at the upper end: the miss says so, and where to look
    args = [a if a != str(TPOT) else "0.5" for a in ARGS]
    res = runner.invoke(app, [*args, "--db", str(tiny_db), "--calibration", str(art), "--sla-at", "upper"])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "at the upper end of the interval" in text and "--sla-at median" in text


def test_sla_at_upper_without_a_calibration_or_an_unknown_value_is_a_one_line_error():
    for extra, needle in ((["--calibration", "none", "--sla-at", "upper"], "has no calibration"),
                          (["--sla-at", "p99"], "unknown sla-at 'p99'; accepted: median, upper")):
        proc = _cli(*ARGS, *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert needle in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
