"""The point sampler: hard budget, a space-filling start, more points where the table is rough, and
a sparse sample that the completion interpolator turns into a small error on the unmeasured rest."""
import numpy as np

from collectors.adaptive_points import (
    PointConfig,
    PointSampler,
    completion_predictor,
    default_scorer,
    roughness_scorer,
    run_points_offline,
    spacing_scorer,
)
from perfdb.ops import GemmCase
from perfdb.roofline import sol_ms
from perfdb.specs import load_system
from perfdb.types import Dtype, OpKind

SPEC = load_system("h200_sxm")
AXES = ("m", "n", "k")


def _sol(raw):
    return sol_ms(GemmCase(Dtype.BF16, m=raw[:, 0], n=raw[:, 1], k=raw[:, 2]), SPEC)


def _table(rough_corner=False):
    m = np.geomspace(1, 16384, 16).round()
    n = k = np.geomspace(256, 32768, 10).round()
    raw = np.stack([g.ravel() for g in np.meshgrid(m, n, k, indexing="ij")], axis=1)
    util = 0.85 * raw[:, 0] / (raw[:, 0] + 96) * raw[:, 1] / (raw[:, 1] + 700) * raw[:, 2] / (raw[:, 2] + 300)
    if rough_corner:   # kernel switches every other level of m where m, n >= 2048: a 40% zigzag
        pos = np.searchsorted(m, raw[:, 0])
        util = util * np.where((raw[:, 0] >= 2048) & (raw[:, 1] >= 2048) & (pos % 2 == 1), 0.6, 1.0)
    return raw, _sol(raw) / util


def _mape(pred, true):
    err = np.abs(pred / true - 1)
    return float(np.mean(np.where(np.isfinite(err), err, 1.0)))


def test_protocol_budget_is_a_ceiling_and_nothing_is_asked_twice():
    raw, lat = _table()
    s = PointSampler(raw, spacing_scorer([np.unique(raw[:, j]) for j in range(3)]), PointConfig(max_fraction=0.1))
    first = s.ask()
    top = [len(np.unique(raw[:, j])) - 1 for j in range(3)]
    for j in range(3):   # the start covers every level of every axis, corners included
        assert set(s.pos[first, j]) == set(range(top[j] + 1))
    assert np.all([np.any(np.all(s.pos[first] == c, axis=1)) for c in [(0, 0, 0), tuple(top)]])
    s.tell(first, lat[first])
    seen = set(first.tolist())
    while (idx := s.ask()).size:
        assert not seen & set(idx.tolist())
        seen |= set(idx.tolist())
        s.tell(idx, np.where(idx % 5 == 0, np.nan, lat[idx]))   # failed points are not asked again
    assert s.done and s.measured.sum() == s.budget == int(0.1 * len(raw))


def test_roughness_puts_more_points_where_the_table_is_rough():
    raw, lat = _table(rough_corner=True)
    levels = [np.unique(raw[:, j]) for j in range(3)]
    s = run_points_offline(PointSampler(raw, roughness_scorer(OpKind.GEMM, AXES, _sol, levels),
                                        PointConfig(max_fraction=0.15)), lambda i: lat[i])
    rough = (raw[:, 0] >= 2048) & (raw[:, 1] >= 2048)
    assert s.measured[rough].mean() > 1.3 * s.measured[~rough].mean()


def test_a_tenth_of_the_table_predicts_the_rest_closely():
    raw, lat = _table()
    s = run_points_offline(PointSampler(raw, default_scorer(OpKind.GEMM, AXES, _sol, raw),
                                        PointConfig(max_fraction=0.1)), lambda i: lat[i])
    have = s.measured
    pred = completion_predictor(OpKind.GEMM, AXES, _sol)(raw[have], lat[have], raw[~have])
    assert _mape(pred, lat[~have]) < 0.02
