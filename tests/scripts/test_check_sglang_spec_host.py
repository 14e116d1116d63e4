"""scripts/check_sglang_spec_host.py: recovers a host cost of either shape planted in a small table, keeps
only SGLang aggregated rows with drafts, and refuses a missing file with one error line."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from estimator.spec import MTP_ACCEPTANCE, accepted_length

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_sglang_spec_host.py"
GAIN = accepted_length(MTP_ACCEPTANCE, 2)


def _script():
    spec = importlib.util.spec_from_file_location("check_sglang_spec_host", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tables(tmp_path: Path, per_iter: float, per_req: float) -> tuple[Path, Path]:
    rows, facts = [], []
    for i, (isl, osl, conc) in enumerate((a, b, c) for a, b in ((1024, 1024), (1024, 8192), (8192, 1024))
                                          for c in (16, 64, 256)):
        sim = 5.0 + 0.02 * conc
        for backend, mode, on in (("sglang", "agg", "on"), ("sglang", "disagg", "on"), ("trtllm", "agg", "on"),
                                  ("sglang", "agg", "off")):
            rid = f"{backend}-{mode}-{on}-{i}"
            meas = sim + (per_iter + per_req * conc) / GAIN if (backend, mode, on) == ("sglang", "agg", "on") else sim
            rows.append({"id": rid, "backend": backend, "mode": mode, "concurrency": conc, "isl": isl, "osl": osl,
                         "tpot_ms": meas, "sim_tpot_mean_ms": sim})
            facts.append({"id": rid, "spec_decoding": on, "spec_tokens": 2})
    r, f = tmp_path / "rows.csv", tmp_path / "enriched.csv"
    pd.DataFrame(rows).to_csv(r, index=False)
    pd.DataFrame(facts).to_csv(f, index=False)
    return r, f


@pytest.mark.parametrize(("per_iter", "per_req", "shape", "value"),
                         [(5.0, 0.0, "iteration", "5.000"), (0.0, 0.1, "request", "0.100")])
def test_recovers_a_planted_host_cost(tmp_path, capsys, per_iter, per_req, shape, value):
    rows, facts = _tables(tmp_path, per_iter, per_req)
    _script().main(["--rows", str(rows), "--runs", str(facts)])
    out = capsys.readouterr().out
    assert "rows: 9 (distinct runs)" in out          # SGLang agg with drafts only
    line = next(x for x in out.splitlines() if x.startswith(f"{shape}:"))
    assert f"fitted {value} ms, in-sample 0.0%, held out by (ISL, OSL) 0.0%" in line


def test_missing_file_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _script().main(["--rows", str(tmp_path / "nope.csv"), "--runs", str(tmp_path / "nope.csv")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
