"""Re-record the aiperf fixtures with the real client and check they still have the committed layout."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calibrate.parsers import parse_file

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_client_fixtures.py"


def _csv_labels(path: Path) -> set[str]:
    return {line.split(",")[0] for line in path.read_text().splitlines() if line.strip()}


@pytest.mark.clients
@pytest.mark.slow
def test_fixtures_match_a_fresh_aiperf_run(fixtures, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for run in ("concurrency4", "rate20"):
        fresh, committed = tmp_path / run, fixtures / "aiperf" / run
        new_json = json.loads((fresh / "profile_export_aiperf.json").read_text())
        old_json = json.loads((committed / "profile_export_aiperf.json").read_text())
        assert set(new_json) == set(old_json), "aiperf JSON keys drifted: re-run scripts/make_client_fixtures.py"
        assert set(new_json["input_config"]) == set(old_json["input_config"])
        assert _csv_labels(fresh / "profile_export_aiperf.csv") == _csv_labels(committed / "profile_export_aiperf.csv")
        new_rec = json.loads((fresh / "profile_export.jsonl").read_text().splitlines()[0])
        old_rec = json.loads((committed / "profile_export.jsonl").read_text().splitlines()[0])
        assert set(new_rec["metrics"]) == set(old_rec["metrics"]) and set(new_rec["metadata"]) == set(old_rec["metadata"])
        for name in ("profile_export_aiperf.json", "profile_export_aiperf.csv", "profile_export.jsonl"):
            r = parse_file(fresh / name)[0]
            assert (r.load.isl, r.load.osl) == (64.0, 16.0) and r.metrics.ttft.mean > 0 and r.metrics.tpot.mean > 0
