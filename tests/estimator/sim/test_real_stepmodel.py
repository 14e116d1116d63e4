"""The simulator on the estimator's real StepModel over the tiny real Parquet database."""
from __future__ import annotations

import time

import numpy as np
import pytest

from estimator.engine import EngineConfig
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.sim import Deployment, LoadSpec, Pool, RoleSteps, simulate
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend

TP2 = ParallelConfig(tp=2)


@pytest.fixture(scope="module")
def step_model(tiny_db):
    view = PerfDB(tiny_db).view("h200_sxm", Backend.TRTLLM, "1.0.0")
    return StepModel.build(load_model("Qwen/Qwen3-8B"), load_system("h200_sxm"), TP2, EngineConfig(Backend.TRTLLM), view)


def test_concurrency_one_matches_the_step_model(step_model):
    isl, osl = 2000, 64
    r = simulate(step_model, Deployment.aggregated(Backend.TRTLLM, TP2), LoadSpec.closed(1, isl, osl, 8))
    frontend = step_model.resolved.ttft_overhead_ms   # per-request time outside the engine's steps
    assert r.ttft.p50 == pytest.approx(float(step_model.prefill_ms(1, isl, 0)) + frontend, rel=1e-9)
    expected = float(step_model.decode_ms(1, isl + np.arange(osl - 1)).mean())
    assert r.tpot.mean == pytest.approx(expected, rel=5e-3)   # decode priced from a 64-point KV grid


def test_load_raises_ttft_and_throughput(step_model):
    dep = Deployment.aggregated(Backend.TRTLLM, TP2, replicas=4)
    low = simulate(step_model, dep, LoadSpec.closed(4, 2000, 200, 200))
    high = simulate(step_model, dep, LoadSpec.closed(128, 2000, 200, 2000))
    assert high.ttft.mean > low.ttft.mean and high.tpot.mean > low.tpot.mean
    assert high.tokens_per_s_per_gpu > 5 * low.tokens_per_s_per_gpu
    assert high.num_gpus == 8 and high.preemptions == 0


def test_disagg_on_the_real_model(step_model):
    dep = Deployment(Backend.TRTLLM, prefill=Pool(TP2, 1), decode=Pool(TP2, 1))
    r = simulate(RoleSteps(step_model, step_model), dep, LoadSpec.closed(1, 1000, 20, 4))
    expected = (float(step_model.prefill_ms(1, 1000, 0)) + float(step_model.kv_transfer_ms(1000, TP2, False))
                + step_model.resolved.ttft_overhead_ms)
    assert r.ttft.mean == pytest.approx(expected, rel=1e-6)


def test_ten_thousand_requests_on_eight_gpus_is_fast(step_model):
    dep = Deployment.aggregated(Backend.TRTLLM, TP2, replicas=4)
    t0 = time.process_time()   # CPU time: wall time on a shared CI runner measures the neighbours
    r = simulate(step_model, dep, LoadSpec.closed(256, 4000, 500, 10_000), seed=0)
    cpu = time.process_time() - t0
    assert r.completed == 10_000
    assert cpu < 2.0   # the budget (docs/bench/simulator.md: ~0.3 s measured)
