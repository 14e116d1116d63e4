"""Interval coverage under the three held-out protocols, on a table of runs whose noise is known.

The synthetic runs (a silicon CSV and a predictions CSV, read as `calibrate fit` reads them) are
measured = predicted x a common factor x lognormal noise of known sigma, for three models on three
systems. The correct 80% interval is then calibrated x exp(+-1.2816 sigma) for a seen scope and for a new
model or system alike, so every protocol's nested coverage must come out near 80%, the stored seen-scope
interval must have about that width, and the common factor must reach unseen models and systems.
With a bias of opposite sign per model, the factor must not reach an unseen model.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from calibrate.fit import FitOptions
from calibrate.ingest import read_results
from calibrate.predict import from_predictions_file
from calibrate.train import train
from estimator.calibration import Calibration
from estimator.calibration_reach import Novelty
from servecast.cli import app

HEADER = ("id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,gemm_quant_mode,"
          "moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,moe_ep_size,prefill_batch_size,"
          "prefill_num_workers,prefill_tp_size,prefill_pp_size,prefill_attention_dp_size,prefill_moe_tp_size,"
          "prefill_moe_ep_size,decode_batch_size,decode_num_workers,decode_tp_size,decode_pp_size,"
          "decode_attention_dp_size,decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,silicon_tpot_ms")
MODELS = ("Qwen/Qwen3-32B", "meta-llama/Llama-3.1-70B", "openai/gpt-oss-120b")
SYSTEMS = ("h100_sxm", "h200_sxm", "b200_sxm")
SIGMA_TTFT, SIGMA_TPOT = 0.2, 0.1
Z80 = 1.2816    # standard normal 90% quantile: the 80% interval is +-Z80 sigma in log space
FAST = dict(residual="none", folds=4, inner_folds=3, min_leaf=5)


def _write(tmp_path, model_bias=(1.0, 1.0, 1.0), seed=0, systems=SYSTEMS, tps=(1, 2, 4, 8), concs=(1, 4, 16, 64, 256)):
    """(runs CSV, predictions CSV): models x systems x tensor-parallel sizes x concurrencies."""
    rng = np.random.default_rng(seed)
    runs, preds = [HEADER], ["id,pred_ttft_ms,pred_tpot_ms,status"]
    for model, bias in zip(MODELS[:len(model_bias)], model_bias, strict=True):
        for system in systems:
            for tp in tps:
                for c in concs:
                    rid = f"{model.split('/')[1]}-{system}-tp{tp}-c{c}"
                    pt, pp = 100.0 * (1 + c / 8) / tp, 10.0 + 0.1 * c / tp
                    mt = pt * 1.3 * bias * np.exp(rng.normal(0, SIGMA_TTFT))
                    mp = pp * 0.8 * bias * np.exp(rng.normal(0, SIGMA_TPOT))
                    runs.append(f"{rid},silicon_concurrency={c},vllm,0.11.0,{model},{system},fp8,agg,1024,256,fp8,fp8,"
                                f"{c},{tp},1,1,{tp},1,,,,,,,,,,,,,,,{mt},{mp}")
                    preds.append(f"{rid},{pt},{pp},ok")
    (tmp_path / "runs.csv").write_text("\n".join(runs) + "\n")
    (tmp_path / "pred.csv").write_text("\n".join(preds) + "\n")
    return tmp_path / "runs.csv", tmp_path / "pred.csv"


def _train(tmp_path, **kw):
    runs, pred = _write(tmp_path, **kw)
    return train(from_predictions_file(read_results([runs], None), pred), FitOptions(**FAST), "estimate")


@pytest.fixture(scope="module")
def known_noise(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("known"))


def test_every_protocol_covers_near_80_percent(known_noise):
    tr = known_noise.calibration.training
    assert tr["rows"] == 180
    for m in ("ttft", "tpot"):
        for name in ("cv", "leave_one_system_out"):
            assert 0.70 <= tr[f"{m}_interval_coverage_{name}"] <= 0.90, (m, name)
        # an unseen model's interval is as one model more would spread: wide with a fit's few models
        assert 0.70 <= tr[f"{m}_interval_coverage_leave_one_model_out"] <= 0.97, m
    # the coverage flags are the fraction of held-out rows inside the interval their own fit gave them
    rows = known_noise.rows
    assert rows["cv_covered_ttft"].notna().all() and set(rows["lomo_novelty"]) == {"model"}
    assert set(rows["loso_novelty"]) == {"system"} and set(rows["cv_novelty"]) <= {"scope", "pair"}


def test_stored_intervals_have_the_known_width(known_noise):
    cal = known_noise.calibration
    for m, sigma in (("ttft", SIGMA_TTFT), ("tpot", SIGMA_TPOT)):
        q = cal.interval(m, "agg", "qwen3-32b", "h100_sxm", "vllm")
        assert q.novelty == "scope"
        assert q.hi - q.lo == pytest.approx(2 * Z80 * sigma, rel=0.3)
        assert cal.interval(m, "agg", "mistral-7b", "h100_sxm", "vllm").novelty == "model"
        assert cal.interval(m, "agg", "qwen3-32b", "gb200", "vllm").novelty == "system"


def test_a_common_factor_reaches_unseen_models_and_systems(known_noise):
    cal = known_noise.calibration
    for m in ("ttft", "tpot"):
        for level in (Novelty.MODEL, Novelty.SYSTEM, Novelty.BOTH):
            assert cal.reaches(m, "factor", level), (m, level)
    x = np.zeros((1, 7))
    assert np.exp(cal.correct_log("ttft", ("gb200", "vllm", "0.11.0", "agg", "mistral-7b"), x)[0]) == \
        pytest.approx(1.3, rel=0.1)


def test_a_factor_that_hurts_an_unseen_model_is_withheld(tmp_path):
    cal = _train(tmp_path, model_bias=(2.0, 0.5, 1.0)).calibration
    (r,) = [r for r in cal.reach if (r.novelty, r.metric, r.part) == ("model", "ttft", "factor")]
    assert not r.applied and r.n_rows == 180 and r.with_pct > r.without_pct
    x = np.zeros((1, 7))
    assert cal.correct_log("ttft", ("h100_sxm", "vllm", "0.11.0", "agg", "mistral-7b"), x)[0] == 0.0
    back = Calibration.from_json(cal.to_json())          # the decision and its figures travel with the file
    assert back.reach == cal.reach and back.id == cal.id


def test_validate_prints_every_protocol(tmp_path):
    # a small table (no residual trees below 50 rows): what is checked is the report, not the figures
    runs, pred = _write(tmp_path, model_bias=(1.0, 1.0), systems=SYSTEMS[:2], tps=(1, 2, 4), concs=(1, 16))
    lines = pred.read_text().splitlines()
    pred.write_text("\n".join(lines[:-1]) + "\n")   # one run unpredicted: the report says it was not used, and why
    res = CliRunner().invoke(app, ["calibrate", "validate", str(runs), "--predictions", str(pred), "--plot", "",
                                   "--folds", "3"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for name in ("by deployment", "one model out", "one system out", "80% interval covers",
                 "1 rows not used: 1 x not in the predictions file"):
        assert name in text


def test_an_old_calibration_file_is_a_one_line_error(tmp_path, known_noise):
    d = json.loads(known_noise.calibration.to_json())
    d["format_version"] = 3
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "calibration.json").write_text(json.dumps(d))
    proc = subprocess.run([sys.executable, "-m", "servecast.cli", "calibrate", "show", str(tmp_path / "old")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "format v3" in proc.stderr and "refit" in proc.stderr


def test_bad_coverage_is_refused():
    from perfdb.errors import InputError

    with pytest.raises(InputError, match="coverage=1.5"):
        FitOptions(coverage=1.5)


def test_validate_against_a_calibration_reports_coverage_by_novelty(tmp_path):
    """Fitted on two models, validated on a third: its rows are `model`-new to the calibration, and their
    coverage is that of the interval the calibration gives a new model."""
    (tmp_path / "fit").mkdir()
    runs, pred = _write(tmp_path / "fit", model_bias=(1.0, 1.0), tps=(1, 4), concs=(1, 16, 256))
    res = CliRunner().invoke(app, ["calibrate", "fit", str(runs), "--predictions", str(pred), "--out",
                                   str(tmp_path / "cal"), "--residual", "none", "--folds", "3"])
    assert res.exit_code == 0, res.output
    (art,) = [p for p in (tmp_path / "cal").iterdir() if p.is_dir()]
    runs, pred = _write(tmp_path, tps=(1, 4), concs=(1, 16, 256))
    res = CliRunner().invoke(app, ["calibrate", "validate", str(runs), "--predictions", str(pred), "--calibration",
                                   str(art), "--plot", ""])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "were used to fit" in text and "how new they are to calibration" in text and "│ model │ 18 │" in text
