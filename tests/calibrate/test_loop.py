"""The loop closes: plan -> its aiperf.sh run for real -> `calibrate ingest` of the artifact directory exactly as
aiperf wrote it -> `calibrate fit` -> `calibrate validate`, and the calibration folder fit wrote is accepted.

In CI the aiperf runs are the ones scripts/make_client_fixtures.py --loop recorded (aiperf 0.13 is not a test
dependency: 142 packages, ~6 min to install here); the plan is made afresh and must still write the aiperf.sh
that was run. With aiperf installed, the `clients`-marked test records the whole loop afresh and checks it the
same way.
"""
from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from servecast.cli import run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_client_fixtures.py"


def _recorder():
    spec = importlib.util.spec_from_file_location("make_client_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _options(script: Path) -> dict[str, str]:
    """--flag -> value of the aiperf command in an aiperf.sh (the URL and the extra arguments aside)."""
    line = next(ln for ln in script.read_text().splitlines() if ln.startswith("aiperf "))
    words = shlex.split(line.replace('"$@"', ""))
    out, i = {}, 2
    while i < len(words):
        flag, value = words[i], (words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else "")
        out[flag] = value
        i += 2 if value else 1
    out.pop("--url", None)
    return out


def check_loop(loop: Path, tmp_path: Path) -> None:
    tops = sorted(p for p in loop.iterdir() if p.is_dir())
    assert len(tops) >= 3
    plan_dir = tmp_path / "plan"
    assert run([*_recorder().LOOP_PLAN, "--save-dir", str(plan_dir)]) == 0
    for top in tops:   # the plan still writes the very benchmark that was run
        assert _options(plan_dir / "top" / top.name / "aiperf.sh") == _options(top / "aiperf.sh")
    runs = tmp_path / "runs.parquet"
    for i, top in enumerate(tops):
        art = next(top.glob("aiperf-*"))
        assert (art / "phase_manifest.json").is_file() and (art / "phases" / "warmup").is_dir()
        code = run(["calibrate", "ingest", str(art), "--deployment", str(top / "deployment.yaml"), "--out", str(runs),
                    *(["--append"] if i else [])])
        assert code == 0
    table = pd.read_parquet(runs).sort_values("run_id")
    for top, (_, row) in zip(tops, table.iterrows(), strict=True):
        flags = _options(top / "aiperf.sh")
        assert row["concurrency"] == float(flags["--concurrency"])
        assert row["num_requests"] == int(flags["--request-count"]), "warm-up requests were ingested as measured"
    cal = tmp_path / "cal"
    assert run(["calibrate", "fit", str(runs), "--out", str(cal), "--folds", str(len(tops))]) == 0
    assert run(["calibrate", "validate", str(runs), "--folds", str(len(tops)), "--plot", ""]) == 0
    # fitted on the default base, the simulator's replays: what `simulate` (and the plan's decision) corrects
    assert run(["simulate", "--plan", str(tops[0] / "deployment.yaml"), "--num-requests", "20", "--plot", "",
                "--calibration", str(cal)]) == 0, "the folder calibrate fit wrote is accepted as written"


def test_loop_on_the_recorded_aiperf_runs(fixtures, tmp_path):
    check_loop(fixtures / "aiperf_loop", tmp_path)


@pytest.mark.clients
@pytest.mark.slow
def test_loop_live_with_aiperf(tmp_path):
    aiperf = shutil.which("aiperf") or str(Path(sys.executable).parent / "aiperf")
    servecast = shutil.which("servecast") or str(Path(sys.executable).parent / "servecast")
    if not Path(aiperf).exists():
        pytest.skip("aiperf is not installed (pip install 'aiperf==0.13.*')")
    _recorder().record_loop(aiperf, servecast, tmp_path / "loop")
    check_loop(tmp_path / "loop", tmp_path / "check")
