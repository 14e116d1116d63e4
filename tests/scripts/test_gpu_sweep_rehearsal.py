"""The device run rehearsed on CPU through the same harness: scripts/gpu_sweep.py with tiny models collects
the chain check's kernels, times the models' steps, packs the database, and scripts/chain_check.py then
compares every step with the estimator's composition from the kernels just collected."""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the chain check builds models with transformers")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.mark.slow
def test_gpu_sweep_rehearsal_measures_and_the_chain_check_compares(tmp_path):
    out, db = tmp_path / "out", tmp_path / "db"
    res = subprocess.run([sys.executable, "scripts/gpu_sweep.py", "--out", str(out), "--db", str(db), "--device", "cpu",
                          "--tiny", "--skip", "tests,sweep,sglang", "--minutes", "6"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "FAILED" not in (out / "log.txt").read_text(), (out / "log.txt").read_text()
    records = [json.loads(line) for line in (out / "chain.jsonl").read_text().splitlines()]
    import gpu_sweep
    assert len(records) == len(gpu_sweep.CHAIN_MODELS) * 2 and all("ms" in r for r in records), records
    with tarfile.open(out / "db.tar.gz") as tar:
        assert any(name.endswith(".parquet") for name in tar.getnames())
    assert "=== " in (out / "profile.txt").read_text()

    import chain_check
    df = chain_check.estimate(records, db, "cpu_host")
    assert len(df) == len(records)
    assert set(df.source) <= {"measured"}   # the chain's own kernels were collected: exact hits
    assert (df.predicted_ms > 0).all() and (df.measured_ms > 0).all()
    assert set(chain_check.summary(df).index.get_level_values("family")) == {"dense_gqa", "moe", "mla"}
