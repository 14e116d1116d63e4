"""The Pillow Pareto plot: a readable PNG with TTFT shown, backends marked, every mark in the legend and a
note when nothing meets the targets; valid for empty and degenerate inputs; round ticks."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perfdb.lookup import PerfDB
from perfdb.types import Backend
from search.outputs import pareto_data
from search.plan import plan
from search.plot import BACKEND_MARKERS, SIZE, TTFT_COLOR, ParetoData, Series, _entries, nice_ticks, write_pareto_png
from search.types import PlanRequest, Sla

GOLD, NOTE_FILL = (255, 215, 0), (255, 240, 240)


def _s(x, y, ttft, backend):
    return Series.of(x, y, ttft, backend)


def _data(**kw) -> ParetoData:
    base = dict(title="t", tpot_ms=16.67, ttft_ms=600.0, request_latency_user_tps=None, backends=("trtllm", "sglang"),
                clouds={"agg": _s([10.0, 20.0, np.nan], [100.0, 200.0, 5.0], [300.0, 900.0, 50.0], [0, 1, 0]),
                        "disagg": _s([30.0], [300.0], [700.0], [1])},
                frontiers={"agg": _s([20.0, 60.0], [200.0, 90.0], [500.0, 400.0], [0, 1]),
                           "disagg": _s([], [], [], [])},
                winner=(60.0, 90.0, 400.0, "agg sglang 1x tp8"))
    base.update(kw)
    return ParetoData(**base)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)


def _has(px: np.ndarray, color, tol: int = 6) -> bool:
    """Some pixel of about this colour (the PNG is written with a 256-colour palette)."""
    return bool((np.abs(px.astype(np.int64) - np.array(color)) <= tol).all(axis=1).any())


def test_png_is_readable_with_ttft_panel_winner_and_targets(tmp_path):
    path = write_pareto_png(_data(request_latency_user_tps=40.0), tmp_path / "p.png")
    img = Image.open(path)
    assert img.format == "PNG" and img.size == SIZE and SIZE[0] >= 1200
    px = _pixels(path)
    assert _has(px, GOLD)                                         # the winner's star
    assert _has(px, TTFT_COLOR)                                   # the TTFT target line of the TTFT panel
    assert ((px[:, 0] < 100) & (px[:, 2] > 150)).any()           # agg blue (frontier and cloud)
    assert not _has(px, NOTE_FILL)                                # targets met: no note


def test_every_drawn_mark_is_in_the_legend():
    d = _data(best={"trtllm": (20.0, 200.0, 500.0, "agg")}, request_latency_user_tps=40.0,
              missed={"disagg": _s([1.0], [2.0], [3.0], [0])})
    texts = [t for t, _, _ in _entries(d)]
    kinds = {k for _, _, k in _entries(d)}
    assert {"agg: every feasible point", "disagg: every feasible point", "agg frontier (meets targets)",
            "disagg: best, misses a target", "trtllm", "large mark: a backend's best",
            "request latency (meets: right)", "winner: agg sglang 1x tp8"} <= set(texts)
    assert "disagg frontier (meets targets)" not in texts        # an empty frontier is not drawn, nor listed
    assert "sglang: nothing meets the targets" in texts         # a backend without a best point says so
    assert any(t.startswith("TPOT 16.67 ms") for t in texts) and any(t.startswith("TTFT 600 ms") for t in texts)
    assert {BACKEND_MARKERS["trtllm"], BACKEND_MARKERS["sglang"], "star", "cloud", "line", "dash", "dot"} <= kinds


def test_empty_and_degenerate_inputs_still_draw(tmp_path):
    empty = _data(clouds={"agg": _s([], [], [], [])}, frontiers={}, winner=None)
    assert Image.open(write_pareto_png(empty, tmp_path / "e.png")).size == SIZE
    inf = _data(clouds={"agg": _s([np.inf, 1.0], [1.0, np.inf], [np.nan, 0.0], [0, 0])})
    assert Image.open(write_pareto_png(inf, tmp_path / "i.png")).size == SIZE


@pytest.fixture(scope="module")
def missed():
    req = PlanRequest(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", backends=(Backend.TRTLLM, Backend.SGLANG),
                      total_gpus=8, isl=4000, osl=500, sla=Sla(50, 5), stored_calibration=False)
    return plan(req, PerfDB(None))


def test_a_plan_that_meets_nothing_says_so_and_draws_the_closest_frontier(missed, tmp_path):
    assert missed.winner is None
    d = pareto_data(missed)
    assert d.note.startswith("Nothing meets the targets (TTFT <= 50 ms, TPOT <= 5 ms)") and "TTFT target" in d.note
    assert any(len(s) for s in d.missed.values()) and not any(len(s) for s in d.frontiers.values())
    assert set(d.backends) == {"trtllm", "sglang"}
    px = _pixels(write_pareto_png(d, tmp_path / "m.png"))
    assert _has(px, NOTE_FILL) and not _has(px, GOLD)


def test_nice_ticks_are_round_and_cover_the_range():
    t = nice_ticks(0.0, 937.0)
    assert t[0] == 0.0 and t[-1] <= 937.0 and 937.0 - t[-1] < (t[1] - t[0])
    assert set(np.diff(t).round(9)) == {200.0}
