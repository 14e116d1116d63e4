"""Load generation, trace replay, step tables and metric definitions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from estimator.parallel import ParallelConfig
from estimator.sim import AnalyticStepModel, Arrival, Deployment, LengthDist, Lengths, LoadSpec, Stats, simulate
from estimator.sim.load import build_requests, read_trace
from estimator.sim.steptable import StepTable, quantise
from perfdb.errors import DataError, InputError
from perfdb.types import Backend


def test_uniform_lengths_follow_the_range_ratio_and_the_seed():
    load = LoadSpec.closed(4, Lengths.of(1000, 0.2), Lengths(100), 5000)
    isl, osl, send = build_requests(load, seed=7)
    assert send is None and (osl == 100).all()
    assert isl.min() >= 800 and isl.max() <= 1200 and abs(isl.mean() - 1000) < 10
    assert (build_requests(load, seed=7)[0] == isl).all()
    assert not (build_requests(load, seed=8)[0] == isl).all()
    normal = build_requests(LoadSpec.closed(1, Lengths(50, LengthDist.NORMAL, stddev=40), 10, 2000), 0)[0]
    assert normal.min() >= 1 and normal.std() > 20


def test_open_loop_arrivals():
    _, _, send = build_requests(LoadSpec.open(4.0, 100, 10, 4000), seed=1)
    assert send[0] == 0 and np.all(np.diff(send) >= 0)
    assert 1 / np.diff(send).mean() == pytest.approx(4.0, rel=0.05)
    _, _, const = build_requests(LoadSpec.open(5.0, 100, 10, 11, arrival=Arrival.CONSTANT), seed=1)
    assert np.allclose(np.diff(const), 0.2) and const[-1] == pytest.approx(2.0)


def test_trace_replay(tmp_path):
    path = tmp_path / "trace.jsonl"
    rows = [{"arrival_s": 1.0, "isl": 300, "osl": 20}, {"timestamp": 0, "input_length": 100, "output_length": 5}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    trace = read_trace(path)
    m = AnalyticStepModel()
    r = simulate(m, Deployment.aggregated(Backend.VLLM, ParallelConfig()), LoadSpec.replay(trace), records=True)
    f = r.records.to_frame()
    assert list(f.isl) == [100, 300] and list(f.send_s) == [0.0, 1.0]
    assert f.ttft_ms.iloc[0] == pytest.approx(float(m.prefill_ms(1, 100, 0)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"isl": 3}\n')
    with pytest.raises(DataError, match="line 1"):
        read_trace(bad)


def test_load_spec_needs_exactly_one_mode():
    with pytest.raises(InputError):
        LoadSpec(Lengths(10), Lengths(10), 5, concurrency=2, request_rate=1.0)
    with pytest.raises(InputError):
        Lengths(10, LengthDist.UNIFORM, range_ratio=1.5)


def test_decode_runs_price_every_step_of_a_curved_step_model():
    class Curved(AnalyticStepModel):
        def decode_ms(self, batch, kv_len):
            b, kv = np.asarray(batch, float), np.asarray(kv_len, float)
            return 5.0 + 0.1 * b + 1e-7 * b * kv ** 1.5

    m = Curved()
    table = StepTable(m, max_ctx=20_000, max_tokens=8192, max_decode=64)
    for batch, kv, k in [(1, 100.0, 1), (16, 3000.5, 700), (64, 15_000.0, 4000)]:
        exact = float(m.decode_ms(batch, kv + np.arange(k)).sum())
        assert table.decode_run_ms(batch, kv, k) == pytest.approx(exact, rel=1e-3)
        # the inverse: after the time of j whole steps, exactly j steps have begun
        j = max(1, k // 3)
        assert table.steps_done_by(batch, kv, table.decode_run_ms(batch, kv, j)) == j
        assert table.steps_done_by(batch, kv, table.decode_run_ms(batch, kv, j) + 1e-3) == j + 1


def test_quantise_is_exact_below_64_and_within_a_sixty_fourth_above():
    assert [quantise(x) for x in range(64)] == list(range(64))
    xs = np.arange(64, 200_000, 37)
    q = np.array([quantise(int(x)) for x in xs])
    assert np.all(np.abs(q - xs) / xs <= 1 / 64)


def test_weighted_percentiles():
    s = Stats.of(np.array([1.0, 10.0]), np.array([99.0, 1.0]))
    assert s.p50 == 1.0 and s.p99 == 1.0 and s.mean == pytest.approx(1.09)
    assert Stats.of(np.array([1.0, 10.0]), np.array([98.0, 2.0])).p99 == 10.0
