"""Fitting on a frame with a known truth: factors recovered, CV error drops, fallbacks said, intervals honest."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from synth import TRUE_FACTORS, frame

from calibrate.fit import FitOptions, fit_point, fold_ids, usable
from calibrate.train import train
from estimator.calibration import Calibration
from estimator.calibration_reach import Novelty
from perfdb.errors import DataError, InputError

# a small, fast configuration for 75 synthetic rows (5 deployments per scope), fixed here so the tests do
# not move with the production defaults (the synthetic noise is symmetric in log space, so no TTFT weights:
# test_ttft_trees_weight_rows_by_predicted_over_measured checks those)
FAST = dict(trees=12, depth=2, learning_rate=0.08, min_leaf=5, min_rows=10, min_deployments=2, inner_folds=2, folds=3,
            shrink_ttft=4.0, shrink_tpot=1.0, rel_weight_ttft=0.0)


@pytest.fixture(scope="module")
def trained():
    return train(frame(), FitOptions(residual="gbm", **FAST), "estimate")


def test_factors_recover_the_truth():
    f = usable(frame(noise=0.0))
    cal = fit_point(f, FitOptions(**{**FAST, "residual": "none", "shrink_ttft": 0.0, "shrink_tpot": 0.0}), "estimate")
    for (system, backend, mode), truth in TRUE_FACTORS.items():
        tpot = cal.factor("tpot", system, backend, "1.0", mode, "m")
        # the narrowest scope that adds deployments beyond its parent's: the scope's own 5
        assert tpot.scope.matches(system, backend, "1.0", mode, "m") and tpot.n_deployments == 5
        assert math.exp(tpot.log_factor) == pytest.approx(truth ** 0.5, rel=1e-9)
    # a scope never seen falls back to the widest factor that matches; one model holds each mode here, so
    # the mode's factor is that model's (in that mode) and a model new to the mode gets none
    assert cal.factor("ttft", "gb200", "sglang", "9", "agg", "m").scope.label() == "*/*/*/agg/m"
    new = cal.factor("ttft", "gb200", "sglang", "9", "agg", "other")
    assert new.scope.label() == "*/*/*/agg" and new.log_factor == 0.0


def test_cv_error_drops_and_intervals_cover(trained):
    res = trained
    tr = res.calibration.training
    for m in ("ttft", "tpot"):
        assert tr[f"{m}_after_cv"]["median_abs_pct"] < tr[f"{m}_before"]["median_abs_pct"] / 3
        assert 0.6 <= tr[f"{m}_interval_coverage_cv"] <= 0.97
        # one model in the table: no leave-one-model-out, so nothing is decided for an unseen model
        assert f"{m}_interval_coverage_leave_one_model_out" not in tr
        assert not res.calibration.reaches(m, "factor", Novelty.MODEL)
    assert tr["rows"] == 75 and tr["excluded_rows"] == 1 and len(res.excluded) == 1
    assert set(res.fold_errors["fold"]) == set(range(3))
    # every deployment sits in exactly one fold
    assert res.rows.groupby("deployment_key")["fold"].nunique().max() == 1


def test_scope_with_too_little_data_falls_back_and_says_so():
    f = usable(frame(deployments_per_scope=1, concs=(1, 4, 16)))
    cal = fit_point(f, FitOptions(residual="none", **FAST), "estimate")
    assert cal.factor("ttft", "h200_sxm", "vllm", "1.0", "agg").scope.width >= 1
    assert any("uses the wider scope" in n and "h200_sxm/vllm/1.0/agg" in n for n in cal.notes)


def test_artifact_round_trip_predicts_identically(trained):
    res = trained
    cal = res.calibration
    back = Calibration.from_json(cal.to_json())
    assert back.id == cal.id and back == cal
    from calibrate.fit import corrected_logs

    rows = res.rows
    assert np.allclose(corrected_logs(back, rows, "ttft"), corrected_logs(cal, rows, "ttft"))


def test_shrinkage_moves_a_thin_scope_part_way_from_its_parent():
    f = usable(frame(noise=0.0))
    thin = f[(f["system"] != "h200_sxm") | (f["backend"] != "vllm") | f["deployment_key"].str.endswith("|0")]
    opts = FitOptions(residual="none", shrink_tpot=1.0, folds=3)
    cal = fit_point(thin.reset_index(drop=True), opts, "estimate")
    own = cal.factor("tpot", "h200_sxm", "vllm", "1.0", "agg", "m")
    # unseen backend: the mode scope, which, one model holding the mode, is that model's in the mode
    parent = cal.factor("tpot", "gb200", "sglang", "1.0", "agg", "m")
    assert own.n_deployments == 1 and own.scope.label() == "h200_sxm/vllm/*/agg/m"
    assert parent.scope.label() == "*/*/*/agg/m"
    # one deployment, shrink 1: half way from the parent's factor towards its own median (the truth,
    # noise-free); the narrower scopes hold the same deployment and add no factor of their own
    assert own.log_factor == pytest.approx(parent.log_factor + 0.5 * (math.log(1.5 ** 0.5) - parent.log_factor))
    assert any("rests on 1 deployment" in n for n in cal.notes)
    with pytest.raises(InputError, match="shrink"):
        FitOptions(shrink_ttft=-1)
    with pytest.raises(InputError, match="unknown loss"):
        FitOptions(loss="hinge")


@pytest.mark.parametrize("loss", ["huber", "absolute_error"])
def test_exported_trees_match_sklearn(loss):
    from sklearn.ensemble import GradientBoostingRegressor

    from calibrate.fit import _export_trees

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 7))
    y = np.sin(x[:, 0]) + 0.3 * x[:, 2] ** 2
    m = GradientBoostingRegressor(loss=loss, n_estimators=10, max_depth=3, random_state=0).fit(x, y)
    assert np.allclose(_export_trees(m).predict(x), m.predict(x), atol=1e-10)


def test_folds_and_options():
    f = usable(frame())
    folds = fold_ids(f, 5, 0)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    with pytest.raises(InputError, match="cannot fill"):
        fold_ids(f.head(5), 5, 0)
    with pytest.raises(InputError, match="unknown residual"):
        FitOptions(residual="forest")


def test_unseen_model_and_system_get_only_what_held_out_evidence_supports():
    f = frame()
    f["model"] = np.where(f["deployment_key"].str[-1].astype(int) % 2 == 0, "org/Alpha-7B", "org/Beta-7B-FP8")
    res = train(f, FitOptions(residual="gbm", **FAST), "estimate")
    cal = res.calibration
    # quantisation suffix stripped from the scope key; scopes recorded per (system, backend, mode, model)
    assert {m for *_, m in cal.fitted} == {"alpha-7b", "beta-7b"}
    assert ("h200_sxm", "vllm", "agg", "alpha-7b") in cal.fitted
    for m in ("ttft", "tpot"):
        for name in ("cv", "leave_one_model_out", "leave_one_system_out"):
            assert f"{m}_after_{name}" in cal.training and 0.0 <= cal.training[f"{m}_interval_coverage_{name}"] <= 1.0
    assert {"lomo_ttft", "lomo_covered_tpot", "loso_novelty", "cv_covered_ttft"} <= set(res.rows.columns)
    x = np.zeros((1, 7))
    key = ("h200_sxm", "vllm", "1.0", "agg")
    # every decided (novelty, metric, part) is recorded with its held-out figures; applied = what reaches
    assert {(r.novelty, r.metric, r.part) for r in cal.reach} == \
        {(n, m, p) for n in ("system", "model") for m in ("ttft", "tpot") for p in ("factor", "residual")}
    for r in cal.reach:
        if r.applied:   # a part reaches only with a clear held-out gain (calibrate.heldout.MARGIN)
            assert r.with_pct < r.without_pct
    unseen = cal.correct_log("ttft", (*key, "gamma-9b"), x)[0]
    mode_factor = cal.factor("ttft", *key, "gamma-9b")
    assert mode_factor.scope.label() == "*/*/*/agg"
    expected = mode_factor.log_factor if cal.reaches("ttft", "factor", Novelty.MODEL) else 0.0
    if cal.reaches("ttft", "residual", Novelty.MODEL):
        expected += cal.residual("ttft").predict(x)[0]
    assert unseen == pytest.approx(expected)
    # a new model on a new system gets a part only where both an unseen model and an unseen system do
    both = all(cal.reaches("tpot", "factor", n) for n in (Novelty.MODEL, Novelty.SYSTEM))
    assert cal.reaches("tpot", "factor", Novelty.BOTH) == both
    assert cal.novelty("b300_sxm", "vllm", "agg", "alpha-7b") is Novelty.SYSTEM
    assert cal.novelty("h200_sxm", "vllm", "agg", "gamma-9b") is Novelty.MODEL
    assert cal.novelty("b300_sxm", "vllm", "agg", "gamma-9b") is Novelty.BOTH
    assert cal.novelty("h200_sxm", "sglang", "agg", "alpha-7b") is Novelty.PAIR
    assert cal.novelty("h200_sxm", "vllm", "agg", "alpha-7b") is Novelty.SCOPE
    # a model counts as seen per serving mode: on b200 it ran only disaggregated, so an agg query there is
    # as new as a system it never ran on (the h200 agg runs are its evidence), a disagg one with another
    # backend a pair
    assert cal.novelty("b200_sxm", "vllm", "agg", "alpha-7b") is Novelty.SYSTEM
    assert cal.novelty("b200_sxm", "sglang", "disagg", "alpha-7b") is Novelty.PAIR
    assert cal.novelty("h200_sxm", "vllm", "disagg", "alpha-7b") is Novelty.SYSTEM
    # each query's interval comes from held-out rows as new to their fit as it is (or the next wider)
    narrow = cal.interval("ttft", "agg", "alpha-7b", "h200_sxm", "vllm")
    assert narrow.novelty == "scope"
    assert cal.interval("ttft", "agg", "gamma-9b", "h200_sxm", "vllm").novelty in ("model", "both")
    assert cal.interval("ttft", "agg", "alpha-7b", "b300_sxm", "vllm").novelty in ("system", "both")


def test_one_far_off_deployment_pulls_its_scope_at_most_the_clip():
    """A deployment the estimator misses 12x, alone in its scope, moves that scope's factor by at most
    d/(d+shrink) * clip from the parent's; unclipped it moves it d/(d+shrink) * log 12."""
    f = usable(frame(noise=0.0))
    lone = f[(f["system"] != "h200_sxm") | (f["backend"] != "vllm") | f["deployment_key"].str.endswith("|0")].copy()
    odd = ((lone["system"] == "h200_sxm") & (lone["backend"] == "vllm")).to_numpy()
    lone.loc[odd, "measured_ttft"] = lone.loc[odd, "pred_ttft"] * 12.0
    lone = lone.reset_index(drop=True)
    moved = {}
    for clip in (math.log(2.0), 0.0):
        cal = fit_point(lone, FitOptions(residual="none", shrink_ttft=1.0, folds=3, clip=clip), "estimate")
        own = cal.factor("ttft", "h200_sxm", "vllm", "1.0", "agg", "m")
        parent = cal.factor("ttft", "gb200", "sglang", "1.0", "agg", "m")
        assert own.n_deployments == 1
        moved[clip] = own.log_factor - parent.log_factor
    assert moved[math.log(2.0)] == pytest.approx(0.5 * math.log(2.0), abs=1e-9)
    assert moved[0.0] > 0.5 * math.log(6.0)
    with pytest.raises(InputError, match="clip"):
        FitOptions(clip=-0.1)


def test_ttft_trees_weight_rows_by_predicted_over_measured():
    """Half the rows measured as predicted, half 2.7x slower: the log median sits between them, but the
    error users read, |predicted / measured - 1|, is smaller when the fit leans to the rows it would
    over-predict. TTFT is weighted that way (bounded); TPOT keeps the plain log median."""
    from calibrate.fit import FEATURES, fit_residual

    y = np.array([0.0] * 45 + [0.3] * 10 + [1.0] * 45)
    x = np.zeros((len(y), len(FEATURES)))
    opts = FitOptions(trees=5, min_leaf=5)
    ttft = fit_residual(x, y, "ttft", opts).predict(x)
    tpot = fit_residual(x, y, "tpot", opts).predict(x)
    assert np.allclose(tpot, 0.3) and np.allclose(ttft, 0.0)
    unweighted = fit_residual(x, y, "ttft", FitOptions(trees=5, min_leaf=5, rel_weight_ttft=0.0)).predict(x)
    assert np.allclose(unweighted, 0.3)
    err = lambda pred: np.median(np.abs(np.exp(pred - y) - 1))   # noqa: E731 - |predicted / measured - 1|
    assert err(ttft) < err(unweighted)
    with pytest.raises(InputError, match="rel_weight"):
        FitOptions(rel_weight_ttft=-0.5)


def test_the_simulate_base_withholds_what_does_not_carry():
    """Three models on three systems whose runs share one miss: on the static base the held-out models and
    systems show the gain and the parts reach new ones; on the simulate base (calibrate.heldout.WITHHELD)
    nothing reaches an unseen model or an unseen system, their held-out figures still recorded; what
    reaches a seen scope is the same on both bases."""
    import pandas as pd

    rng = np.random.default_rng(3)
    rows = []
    for system in ("h100_sxm", "h200_sxm", "b200_sxm"):
        for model in ("org/Alpha-7B", "org/Beta-8B", "org/Gamma-9B"):
            for d in range(3):
                for c in (1, 4, 16, 64):
                    ttft, tpot = 50.0 * (1 + d) * (1 + 0.01 * c), 8.0 + 0.05 * c
                    rows.append({"run_id": f"{system}-{model}-{d}-c{c}", "deployment_key": f"{system}|{model}|{d}",
                                 "model": model, "system": system, "backend": "vllm", "version": "1.0", "mode": "agg",
                                 "isl": 1024.0, "osl": 256.0, "concurrency": float(c), "gpus": 2 ** d,
                                 "weight_bits": 16.0, "pred_ttft": ttft, "pred_tpot": tpot, "status": "ok",
                                 # one miss shared by every model and system: it carries to new ones
                                 "measured_ttft": ttft * 1.6 * c ** 0.15 * np.exp(rng.normal(0, 0.05)),
                                 "measured_tpot": tpot * 1.3 * np.exp(rng.normal(0, 0.05))})
    f = pd.DataFrame(rows)
    reach = {base: {(r.novelty, r.metric, r.part): r for r in train(f, FitOptions(residual="gbm", **FAST),
                                                                     base).calibration.reach}
             for base in ("estimate", "simulate")}
    assert [k for k, r in reach["estimate"].items() if k[0] == "model" and r.applied]   # it would carry ...
    assert [k for k, r in reach["estimate"].items() if k[:2] == ("system", "ttft") and r.applied]
    for k, r in reach["simulate"].items():
        if k[0] in ("model", "system"):   # ... but not on the simulate base
            assert not r.applied and r.with_pct is not None and r.without_pct is not None
        else:
            assert r.applied == reach["estimate"][k].applied


def test_the_residual_corrects_what_differs_with_the_weights_numerics():
    """One scope, two checkpoints of a family: the FP8 runs measured 1.6x their prediction, the FP4 runs as
    predicted. The scope factor alone splits the difference; with log_weight_bits the residual gives each
    its own correction (BENCHMARKS.md, the twenty-third session: SGLang's DeepSeek-R1 FP8 prefill on
    Blackwell against FP4)."""
    from calibrate.fit import corrected_logs

    f = frame(noise=0.0)
    f = f[(f["system"] == f["system"].iloc[0]) & (f["backend"] == f["backend"].iloc[0])
          & (f["mode"] == f["mode"].iloc[0])].reset_index(drop=True)
    f = usable(pd.concat([f.assign(weight_bits=4.5, run_id=f["run_id"] + "-fp4"),
                          f.assign(weight_bits=8.0, run_id=f["run_id"] + "-fp8",
                                   measured_ttft=f["pred_ttft"] * 1.6 * np.exp(np.log(f["measured_ttft"] / f["pred_ttft"])))],
                         ignore_index=True))
    cal = fit_point(f, FitOptions(**{**FAST, "residual": "gbm", "shrink_ttft": 0.0, "min_leaf": 3}), "estimate")
    got = corrected_logs(cal, f, "ttft") - np.log(f["measured_ttft"] / f["pred_ttft"]).to_numpy()
    fp8 = (f["weight_bits"] == 8.0).to_numpy()
    # each checkpoint's remaining error is a fraction of the gap between them (log 1.6 = 0.47)
    assert np.median(np.abs(got[fp8])) < 0.15 and np.median(np.abs(got[~fp8])) < 0.15


def test_each_numerics_of_a_model_gets_its_own_scope_factor():
    """Two checkpoints of one model in one (system, backend, version, mode), each on its own deployments:
    the FP8 ones measured 1.6x their prediction, the FP4 ones as predicted. The narrowest scope names the
    weights (Scope.weights), so each gets its own factor without a residual; numerics the fit never saw
    get the model's scope (the two pooled), and a calibration file that predates the field is refused. The
    static base's TTFT keeps one scope per model (calibrate.fit.NUMERICS_SCOPED)."""
    f = frame(noise=0.0)
    f = f[(f["system"] == f["system"].iloc[0]) & (f["backend"] == f["backend"].iloc[0])
          & (f["mode"] == f["mode"].iloc[0])].reset_index(drop=True)
    f = usable(pd.concat([f.assign(weight_bits=4.5, deployment_key=f["deployment_key"] + "|nvfp4"),
                          f.assign(weight_bits=8.0, deployment_key=f["deployment_key"] + "|fp8",
                                   measured_ttft=f["measured_ttft"] * 1.6)], ignore_index=True))
    opts = FitOptions(**{**FAST, "residual": "none", "shrink_ttft": 0.0})
    cal = fit_point(f, opts, "simulate")
    key = (f["system"].iloc[0], f["backend"].iloc[0], "1.0", f["mode"].iloc[0], "m")
    static = fit_point(f, opts, "estimate")
    assert static.factor("ttft", *key, "8").scope.weights == "*" and static.factor("tpot", *key, "8").scope.weights == "8"
    fp4, fp8, other = (cal.factor("ttft", *key, w) for w in ("4.5", "8", "16"))
    assert fp4.scope.weights == "4.5" and fp8.scope.label().endswith("/m 8b")
    assert math.exp(fp8.log_factor - fp4.log_factor) == pytest.approx(1.6, rel=1e-6)
    assert other.scope.weights == "*" and fp4.log_factor < other.log_factor < fp8.log_factor
    d = json.loads(cal.to_json())
    d["format_version"] = 5
    with pytest.raises(DataError, match="format v5.*refit"):
        Calibration.from_json(json.dumps(d))
