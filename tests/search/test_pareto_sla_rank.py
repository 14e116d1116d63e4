"""Pareto frontier, strict SLA filter, diagnosis and ranking on small hand-made point tables."""
import numpy as np

from search.pareto import frontier
from search.points import MODES, PointTable
from search.rank import rank, top_shapes
from search.sla import diagnose, meets
from search.types import Constraint, Mode, Sla


def _table(ttft, tpot, gpu_tps, mode=None, feasible=None, d_tp=None, batch=None):
    n = len(ttft)
    return PointTable.block(
        n, mode=mode if mode is not None else np.zeros(n, int), ttft_ms=np.array(ttft, float),
        tpot_ms=np.array(tpot, float), request_latency_ms=np.array(ttft, float) + 99 * np.array(tpot, float),
        tokens_per_s_per_gpu=np.array(gpu_tps, float), tokens_per_s_per_user=1000.0 / np.array(tpot, float),
        feasible=np.ones(n, bool) if feasible is None else np.array(feasible), total_gpus=8, gpus_used=8,
        d_tp=d_tp if d_tp is not None else np.arange(n) + 1, d_batch=batch if batch is not None else np.ones(n, int),
        d_workers=1)


def test_frontier_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.random(300), rng.random(300)
    got = set(frontier(x, y).tolist())
    brute = {i for i in range(300) if not np.any((x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i])))}
    assert got == brute
    f = frontier(x, y)
    assert np.all(np.diff(x[f]) > 0) and np.all(np.diff(y[f]) < 0)   # drawn left to right, trading off


def test_frontier_respects_the_mask_and_ignores_nan():
    x, y = np.array([1.0, 2.0, np.nan]), np.array([5.0, 1.0, 9.0])
    assert frontier(x, y, np.array([False, True, True])).tolist() == [1]


def test_meets_is_strict_on_every_target_and_memory():
    t = _table([100, 700, 100, 100], [10, 10, 20, 10], [1, 2, 3, 4], feasible=[True, True, True, False])
    assert meets(t, Sla(600, 16.67)).tolist() == [True, False, False, False]
    assert meets(t, Sla(600, 16.67, request_latency_ms=1000)).tolist() == [False, False, False, False]


def test_diagnosis_names_the_binding_constraint_and_the_closest_points():
    t = _table([100, 200, 900], [30, 40, 12], [5, 6, 7])
    d = diagnose(t, Sla(600, 16.67))
    assert d.closest_rows[0] == 2 and d.binding == Constraint.TTFT   # 900/600 = 1.5 < 30/16.67 = 1.8
    assert d.meeting_each == {Constraint.TTFT: 2, Constraint.TPOT: 1}
    none_fit = diagnose(_table([1], [1], [1], feasible=[False]), Sla(600, 16.67))
    assert none_fit.binding == Constraint.MEMORY and none_fit.closest_rows == ()


def test_ranking_never_crowns_a_violator_and_keeps_one_row_per_shape():
    # the fastest row violates TTFT; two rows share a shape (same tp) at different batches
    t = _table([900, 100, 100, 100], [10, 10, 10, 10], [99, 50, 40, 30], d_tp=[1, 2, 2, 4], batch=[1, 8, 4, 1])
    ok = meets(t, Sla(600, 16.67))
    r = rank(t, ok, (Mode.AGG,), n=5)
    assert r.winner == 1 and r.top[Mode.AGG] == (1, 3)
    assert top_shapes(t, ok, 1) == (1,)


def test_ranking_compares_modes_and_reports_the_speedup():
    t = _table([100, 100], [10, 10], [100, 150], mode=[MODES.index(Mode.AGG), MODES.index(Mode.DISAGG)])
    r = rank(t, meets(t, Sla(600, 16.67)), (Mode.AGG, Mode.DISAGG), n=3)
    assert r.winner_mode == Mode.DISAGG and abs(r.speedup - 1.5) < 1e-12


def test_nothing_meeting_gives_no_winner():
    t = _table([900], [10], [100])
    r = rank(t, meets(t, Sla(600, 16.67)), (Mode.AGG,), n=3)
    assert r.winner is None and r.top[Mode.AGG] == ()
