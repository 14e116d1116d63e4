"""Adaptive sampling on a synthetic dense grid with a known kink: it finds the kink and beats a
uniform subset of the same size, using the lookup's interpolator."""
import numpy as np

from collectors.adaptive import AdaptiveConfig, AdaptiveSampler, run_offline, util_predictor
from perfdb.ops import GemmCase
from perfdb.roofline import sol_ms
from perfdb.specs import load_system
from perfdb.types import Dtype, OpKind

SPEC = load_system("h100_sxm")


def _grid():
    m = np.unique(np.round(np.geomspace(1, 16384, 60)))
    n = np.array([256, 512, 1024, 2048, 4096, 8192, 16384], float)
    mm, nn = np.meshgrid(m, n, indexing="ij")
    raw = np.stack([mm.ravel(), nn.ravel(), np.full(mm.size, 4096.0)], axis=1)
    sol = _sol(raw)
    # utilisation: smooth ramp in m, plus a 40% drop above m = 3000 (a tile/kernel switch)
    util = 0.8 * raw[:, 0] / (raw[:, 0] + 64) * np.where(raw[:, 0] > 3000, 0.6, 1.0)
    return raw, sol / util


def _sol(raw):
    return sol_ms(GemmCase(Dtype.BF16, m=raw[:, 0], n=raw[:, 1], k=raw[:, 2]), SPEC)


def _mape(pred, true):
    return float(np.mean(np.abs(pred / true - 1)))


def test_adaptive_refines_the_kink_and_beats_a_uniform_subset():
    raw, lat = _grid()
    predict = util_predictor(OpKind.GEMM, ("m", "n", "k"), _sol)
    sampler = run_offline(AdaptiveSampler(raw, predict, AdaptiveConfig(initial_stride=8, max_fraction=0.35)),
                          lambda idx: lat[idx])
    chosen_m = sampler.levels[0][sampler.chosen[0]]
    assert np.any((chosen_m > 2000) & (chosen_m < 4500))  # it went looking near the switch
    assert sampler.measured.sum() <= 0.35 * len(raw)
    have = sampler.measured
    adaptive = _mape(predict(raw[have], lat[have], raw), lat)
    # a uniform subset with the same number of points: evenly spaced m values x every n
    n_levels = len(sampler.levels[1])
    m_count = max(2, int(have.sum()) // n_levels)
    m_pick = sampler.levels[0][np.unique(np.round(np.linspace(0, len(sampler.levels[0]) - 1, m_count)).astype(int))]
    uniform = np.isin(raw[:, 0], m_pick)
    assert uniform.sum() <= have.sum() + n_levels
    assert adaptive < 0.5 * _mape(predict(raw[uniform], lat[uniform], raw), lat)


def test_ask_tell_protocol_and_stopping():
    raw, lat = _grid()
    s = AdaptiveSampler(raw, util_predictor(OpKind.GEMM, ("m", "n", "k"), _sol), AdaptiveConfig(max_fraction=0.2))
    first = s.ask()
    assert first.size and s.ask().size == first.size  # nothing told yet: the same coarse grid again
    s.tell(first, lat[first])
    rounds = 0
    while (idx := s.ask()).size:
        assert not s.measured[idx].any()
        s.tell(idx, np.where(idx % 7 == 0, np.nan, lat[idx]))  # failed points are skipped, not re-asked
        rounds += 1
    assert rounds >= 1 and s.done and s.measured.sum() <= s.budget  # a slab that does not fit is never taken


def test_budget_is_never_overshot_by_a_whole_slab():
    # 3 axes: a new level costs a whole slab (64-96 points) against an 800-point budget
    v = np.geomspace(64, 16384, 20).round()
    raw = np.stack([x.ravel() for x in np.meshgrid(v, v, v, indexing="ij")], axis=1)
    lat = _sol(raw) / (0.8 * raw[:, 0] / (raw[:, 0] + 256) * np.where(raw[:, 1] > 3000, 0.7, 1.0))
    cfg = AdaptiveConfig(initial_stride=3, max_fraction=0.1)
    s = run_offline(AdaptiveSampler(raw, util_predictor(OpKind.GEMM, ("m", "n", "k"), _sol), cfg), lambda i: lat[i])
    assert s.budget - 96 < s.measured.sum() <= s.budget  # filled to within one slab, never past it
