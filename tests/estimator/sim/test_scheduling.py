"""Scheduler policies, KV capacity, preemption and routing."""
from __future__ import annotations

import pytest

from estimator.parallel import ParallelConfig
from estimator.sim import AnalyticStepModel, Deployment, LoadSpec, Pool, RoutePolicy, policy_for, simulate
from perfdb.errors import InfeasibleError, NotFoundError
from perfdb.types import Backend

TP1 = ParallelConfig()


def model(kv_tokens: int = 1_000_000) -> AnalyticStepModel:
    return AnalyticStepModel(step_fixed_ms=6.0, prefill_ms_per_token=0.02, decode_ms_per_request=0.1,
                             decode_ms_per_kv_token=1e-5, kv_capacity_tokens=kv_tokens)


def test_vllm_preempts_when_kv_runs_out_and_still_finishes_every_request():
    # 32 requests would grow to 32 * 1000 tokens; the pool holds 16,000: vLLM reserves nothing for
    # output, so it admits them all and must recompute-preempt as they grow.
    load = LoadSpec.closed(32, 500, 500, 200)
    r = simulate(model(16_000), Deployment.aggregated(Backend.VLLM, TP1), load, records=True)
    f = r.records.to_frame()
    assert r.preemptions > 0
    assert r.completed == 200 and (f.finish_s >= f.first_token_s).all()
    assert r.prefill_tokens > f.isl.sum()                       # recomputed prompts cost prefill again
    assert r.decode_tokens + r.completed + r.preemptions == f.osl.sum()   # each recompute yields a token
    roomy = simulate(model(), Deployment.aggregated(Backend.VLLM, TP1), load)
    assert roomy.preemptions == 0
    assert roomy.request_throughput > r.request_throughput


def test_trtllm_reserves_the_whole_request_and_never_evicts():
    load = LoadSpec.closed(32, 500, 500, 200)
    r = simulate(model(16_000), Deployment.aggregated(Backend.TRTLLM, TP1), load, records=True)
    assert r.preemptions == 0
    f = r.records.to_frame()
    # at most 16 requests of 1000 tokens fit: the rest queue for admission, so TTFT carries a wait
    assert f.ttft_ms.max() > 10 * float(model().prefill_ms(1, 500, 0))


def test_sglang_prefill_priority_pauses_decodes_where_vllm_mixes_them():
    load = LoadSpec.closed(8, 2000, 200, 200)
    vllm = simulate(model(), Deployment.aggregated(Backend.VLLM, TP1), load)
    sgl = simulate(model(), Deployment.aggregated(Backend.SGLANG, TP1), load)
    assert policy_for(Backend.SGLANG).mixes_decode is False and policy_for(Backend.VLLM).mixes_decode
    assert sgl.decode_tokens == vllm.decode_tokens
    assert sgl.itl.p99 > vllm.itl.p99 or sgl.itl.mean > vllm.itl.mean   # paused decodes see long gaps


def test_max_batch_caps_requests_in_flight_per_worker():
    load = LoadSpec.closed(16, 300, 100, 320)
    capped = simulate(model(), Deployment.aggregated(Backend.TRTLLM, TP1, max_batch=4), load)
    free = simulate(model(), Deployment.aggregated(Backend.TRTLLM, TP1), load)
    assert capped.ttft.mean > 3 * free.ttft.mean
    assert capped.tpot.mean < free.tpot.mean   # smaller batches decode faster


@pytest.mark.parametrize("route", list(RoutePolicy))
def test_routing_spreads_requests_over_replicas(route):
    r = simulate(model(), Deployment.aggregated(Backend.VLLM, TP1, replicas=4, router=route),
                 LoadSpec.closed(8, 300, 50, 400), records=True)
    counts = r.records.to_frame().worker.value_counts()
    assert sorted(counts.index) == [0, 1, 2, 3]
    assert counts.max() - counts.min() <= 0.1 * counts.mean()
    assert r.num_gpus == 4


def test_request_longer_than_kv_capacity_is_infeasible():
    with pytest.raises(InfeasibleError, match="KV tokens"):
        simulate(model(900), Deployment.aggregated(Backend.VLLM, TP1), LoadSpec.closed(1, 800, 200, 2))


def test_unsimulated_backend_is_refused_with_the_known_ones():
    with pytest.raises(NotFoundError, match="vllm"):
        simulate(model(), Deployment.aggregated(Backend.TORCH, TP1), LoadSpec.closed(1, 10, 10, 1))


def test_disagg_pools_route_to_decode_workers_and_count_gpus():
    dep = Deployment(Backend.SGLANG, prefill=Pool(TP1, 2), decode=Pool(ParallelConfig(tp=2), 3))
    from estimator.sim import RoleSteps

    r = simulate(RoleSteps(model(), model()), dep, LoadSpec.closed(12, 1000, 100, 300), records=True)
    assert r.num_gpus == 2 + 6
    assert sorted(r.records.to_frame().worker.unique()) == [0, 1, 2]
    assert r.decode_tokens + r.completed == 300 * 100
