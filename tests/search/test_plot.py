"""The Pillow Pareto plot: a valid PNG for ordinary, empty and degenerate inputs; round ticks."""
from __future__ import annotations

import numpy as np
from PIL import Image

from search.plot import SIZE, ParetoData, nice_ticks, write_pareto_png


def _data(**kw) -> ParetoData:
    base = dict(title="t", tpot_ms=16.67, request_latency_user_tps=None,
                clouds={"agg": (np.array([10.0, 20.0, np.nan]), np.array([100.0, 200.0, 5.0])),
                        "disagg": (np.array([30.0]), np.array([300.0]))},
                frontiers={"agg": (np.array([20.0, 60.0]), np.array([200.0, 90.0])), "disagg": (np.array([]), np.array([]))},
                winner=(60.0, 90.0, "agg 1x tp8"))
    base.update(kw)
    return ParetoData(**base)


def test_png_is_written_with_points_lines_and_winner(tmp_path):
    path = write_pareto_png(_data(request_latency_user_tps=40.0), tmp_path / "p.png")
    img = Image.open(path)
    assert img.format == "PNG" and img.size == SIZE
    pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
    assert ((pixels == (255, 215, 0)).all(axis=1)).any()            # the winner's star
    assert ((pixels[:, 0] < 100) & (pixels[:, 2] > 150)).any()     # agg blue (frontier and cloud)


def test_empty_and_degenerate_inputs_still_draw(tmp_path):
    empty = _data(clouds={"agg": (np.array([]), np.array([]))}, frontiers={}, winner=None)
    assert Image.open(write_pareto_png(empty, tmp_path / "e.png")).size == SIZE
    inf = _data(clouds={"agg": (np.array([np.inf, 1.0]), np.array([1.0, np.inf]))})
    assert Image.open(write_pareto_png(inf, tmp_path / "i.png")).size == SIZE


def test_nice_ticks_are_round_and_cover_the_range():
    t = nice_ticks(0.0, 937.0)
    assert t[0] == 0.0 and t[-1] <= 937.0 and 937.0 - t[-1] < (t[1] - t[0])
    assert set(np.diff(t).round(9)) == {200.0}
