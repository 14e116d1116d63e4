"""The calibrations shipped in the bundled database must match the estimator and simulator that apply them.

One is fitted to the bundled database's static estimates of the training runs (estimate, plan), one
to its simulations of them (simulate); if those predictions move, the shipped factors correct numbers
that no longer exist. This re-predicts a sample of the stored training rows with each base and fails,
naming the fix, when they drift.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from calibrate.enrich import TRAINING_FACTS, enriched_copy
from calibrate.ingest import read_results
from calibrate.predict import Base, predict
from estimator.calibration import ARTIFACT_FILE, model_key
from estimator.calibration_files import load
from perfdb.lookup import BUNDLED_ROOT, PerfDB

TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "e2e_train_silicon.csv"
REBUILD = ("the estimator or simulator changed: rebuild with `python scripts/build_bundled_calibration.py` "
           "and commit it")


@pytest.fixture(scope="module")
def shipped() -> dict[str, Path]:
    """base -> artifact directory: exactly one per base."""
    found = sorted((BUNDLED_ROOT / "calibrations").glob(f"*/{ARTIFACT_FILE}"))
    by_base = {load(f.parent).base: f.parent for f in found}
    assert len(found) == 2 and set(by_base) == {"estimate", "simulate"}, \
        f"the bundled database should ship one estimate and one simulate calibration, found {len(found)}"
    return by_base


@pytest.mark.parametrize("base", ["estimate", "simulate"])
def test_artifact_is_the_directory_it_claims(shipped, base):
    cal = load(shipped[base])
    assert cal.id == shipped[base].name and cal.base == base
    prov = yaml.safe_load((shipped[base] / "provenance.yaml").read_text())
    assert prov["calibration"] == cal.id and prov["base"] == base and prov["fitted_on"]["file"] == TRAIN.name
    assert cal.training["sources"] == [TRAIN.name]
    stored = pd.read_parquet(shipped[base] / "training_rows.parquet")
    # its model scopes use today's model keys (else those models would silently count as unseen)
    assert {m for *_, m in cal.fitted} == {model_key(m) for m in stored["model"].unique()}, REBUILD


@pytest.mark.skipif(not TRAIN.exists(), reason="../shared/data is not beside the checkout")
@pytest.mark.parametrize("base", ["estimate", "simulate"])
def test_fitted_on_the_training_table_only(shipped, base):
    """... and its committed enrichment facts (public configs), nothing else."""
    prov = yaml.safe_load((shipped[base] / "provenance.yaml").read_text())
    assert prov["fitted_on"]["sha256"] == hashlib.sha256(TRAIN.read_bytes()).hexdigest()
    assert prov["fitted_on"]["enrichment"]["sha256"] == hashlib.sha256(TRAINING_FACTS.read_bytes()).hexdigest()


@pytest.mark.skipif(not TRAIN.exists(), reason="../shared/data is not beside the checkout")
@pytest.mark.parametrize("base, n", [("estimate", 300), ("simulate", 40)])   # a simulated run costs ~0.1 s
def test_stored_predictions_are_what_the_estimator_predicts_now(shipped, base, n, tmp_path):
    stored = pd.read_parquet(shipped[base] / "training_rows.parquet").set_index("run_id")
    runs = read_results([enriched_copy(TRAIN, TRAINING_FACTS, tmp_path)], None)   # as the build script reads it
    rng = np.random.default_rng(0)
    sample = [runs[i] for i in sorted(rng.choice(len(runs), n, replace=False))]
    now = predict(sample, PerfDB(None), Base(base))
    now = now[now["status"] == "ok"].set_index("run_id")
    both = now.index.intersection(stored.index)
    assert len(both) > 0.65 * n
    for m in ("ttft", "tpot"):
        drift = np.abs(now.loc[both, f"pred_{m}"] / stored.loc[both, f"pred_{m}"] - 1.0)
        assert drift.max() < 1e-3, f"{m}: predictions moved by up to {drift.max():.1%}; {REBUILD}"
