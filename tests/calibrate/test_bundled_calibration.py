"""The calibration shipped in the bundled database must match the estimator that applies it.

It was fitted to the bundled database's predictions of the training runs; if the estimator's
predictions move, the shipped factors correct numbers that no longer exist. This re-predicts a
sample of the stored training rows and fails, naming the fix, when they drift.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from calibrate.ingest import read_results
from calibrate.predict import Base, predict
from estimator.calibration import ARTIFACT_FILE, model_key
from estimator.calibration_files import load
from perfdb.lookup import BUNDLED_ROOT, PerfDB

TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "e2e_train_silicon.csv"
REBUILD = "the estimator changed: rebuild with `python scripts/build_bundled_calibration.py` and commit it"


@pytest.fixture(scope="module")
def shipped() -> Path:
    found = sorted((BUNDLED_ROOT / "calibrations").glob(f"*/{ARTIFACT_FILE}"))
    assert len(found) == 1, f"the bundled database should ship exactly one calibration, found {len(found)}"
    return found[0].parent


def test_artifact_is_the_directory_it_claims(shipped):
    cal = load(shipped)
    assert cal.id == shipped.name and cal.base == "estimate"
    prov = yaml.safe_load((shipped / "provenance.yaml").read_text())
    assert prov["calibration"] == cal.id and prov["fitted_on"]["file"] == TRAIN.name
    assert cal.training["sources"] == [TRAIN.name]
    stored = pd.read_parquet(shipped / "training_rows.parquet")
    # its model scopes use today's model keys (else those models would silently count as unseen)
    assert cal.models == {model_key(m) for m in stored["model"].unique()}, REBUILD


@pytest.mark.skipif(not TRAIN.exists(), reason="../shared/data is not beside the checkout")
def test_fitted_on_the_training_table_only(shipped):
    prov = yaml.safe_load((shipped / "provenance.yaml").read_text())
    assert prov["fitted_on"]["sha256"] == hashlib.sha256(TRAIN.read_bytes()).hexdigest()


@pytest.mark.skipif(not TRAIN.exists(), reason="../shared/data is not beside the checkout")
def test_stored_predictions_are_what_the_estimator_predicts_now(shipped):
    stored = pd.read_parquet(shipped / "training_rows.parquet").set_index("run_id")
    runs = read_results([TRAIN], None)
    rng = np.random.default_rng(0)
    sample = [runs[i] for i in sorted(rng.choice(len(runs), 300, replace=False))]
    now = predict(sample, PerfDB(None), Base.ESTIMATE)
    now = now[now["status"] == "ok"].set_index("run_id")
    both = now.index.intersection(stored.index)
    assert len(both) > 200
    for m in ("ttft", "tpot"):
        drift = np.abs(now.loc[both, f"pred_{m}"] / stored.loc[both, f"pred_{m}"] - 1.0)
        assert drift.max() < 1e-3, f"{m}: predictions moved by up to {drift.max():.1%}; {REBUILD}"
