import time

import numpy as np
import pytest

from collectors.timer import Hooks, TimerConfig, Timing, achieved, time_cpu, time_op
from perfdb.types import TimingMethod


def test_cpu_timer_statistics_bracket_a_known_sleep():
    cfg = TimerConfig(budget_s=0.03, warmup_s=0.002, min_reps=3, max_reps=50, flush_bytes=1 << 12, use_graph=False)
    t = time_op(lambda: time.sleep(0.002), "cpu", cfg)
    assert t.method == TimingMethod.CPU_PERF_COUNTER
    assert 3 <= t.n <= 50 and len(t.samples_ms) == t.n
    assert t.p10_ms <= t.median_ms <= t.p90_ms
    assert 2.0 <= t.median_ms < 20.0  # a 2 ms sleep never takes less than 2 ms


def test_repetitions_follow_the_time_budget():
    short = time_cpu(lambda: time.sleep(0.001), TimerConfig(budget_s=0.005, warmup_s=0.001, min_reps=1, max_reps=100, flush_bytes=0))
    longer = time_cpu(lambda: time.sleep(0.001), TimerConfig(budget_s=0.05, warmup_s=0.001, min_reps=1, max_reps=100, flush_bytes=0))
    assert short.n < longer.n <= 50


def test_min_and_max_reps_bound_the_count():
    fast = time_cpu(lambda: None, TimerConfig(budget_s=1.0, warmup_s=0.001, min_reps=2, max_reps=7, flush_bytes=0))
    assert fast.n == 7
    slow = time_cpu(lambda: time.sleep(0.01), TimerConfig(budget_s=0.001, warmup_s=0.0, min_reps=4, max_reps=9, flush_bytes=0))
    assert slow.n == 4


def test_hooks_agree_on_reps_run_before_each_rep_and_reduce_samples():
    calls = []
    hooks = Hooks(agree_reps=lambda n: 5, before_rep=lambda: calls.append(1), reduce_samples=lambda a: a * 0 + 42.0)
    t = time_cpu(lambda: None, TimerConfig(budget_s=1.0, warmup_s=0.0, min_reps=1, max_reps=100, flush_bytes=0), hooks)
    assert t.n == 5 and len(calls) == 5 and set(t.samples_ms) == {42.0}


def test_quantiles_of_raw_samples():
    t = Timing(tuple(float(x) for x in range(1, 11)), TimingMethod.CPU_PERF_COUNTER)
    assert t.median_ms == pytest.approx(5.5)
    assert t.p10_ms == pytest.approx(np.quantile(np.arange(1, 11), 0.1))
    assert t.p90_ms == pytest.approx(np.quantile(np.arange(1, 11), 0.9))


def test_achieved_rates():
    tflops, gbs = achieved(2e12, 1e9, 1000.0)
    assert tflops == pytest.approx(2.0) and gbs == pytest.approx(1.0)
    assert achieved(1.0, 1.0, 0.0) == (0.0, 0.0)


def test_device_defaults():
    assert TimerConfig.for_device("cuda").flush_bytes >= 128 << 20  # larger than any target GPU's L2
    assert not TimerConfig.for_device("cpu").use_graph
