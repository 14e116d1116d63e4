"""Physics no fitted constant can move: link bandwidth, queueing limits, M/D/1, replica invariance,
and the simulator agreeing with the static estimate where there is nothing to queue (concurrency 1)."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.engine import EngineConfig
from estimator.estimate import WorkerSpec, estimate, estimate_disagg
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.sim import AnalyticStepModel, Deployment, LoadSpec, Pool, RoleSteps, build_steps, simulate
from estimator.steps import StepModel
from estimator.workload import Workload
from perfdb.lookup import PerfDB
from perfdb.roofline import link_bw_bytes_per_s
from perfdb.specs import load_system
from perfdb.types import Backend, Transport

TP2 = ParallelConfig(tp=2)


@pytest.fixture(scope="module")
def qwen():
    db = PerfDB(None)   # the bundled database: what a fresh install plans on
    return load_model("Qwen/Qwen3-32B"), load_system("h200_sxm"), db.view("h200_sxm", Backend.TRTLLM)


def test_kv_transfer_takes_at_least_bytes_over_the_link(qwen):
    model, system, view = qwen
    for par in (ParallelConfig(tp=1), TP2, ParallelConfig(tp=4)):
        sm = StepModel.build(model, system, par, EngineConfig(Backend.TRTLLM), view)
        tokens = np.array([1.0, 1024.0, 8192.0, 65536.0])
        per_token = model.kv_elems_per_token_layer() * 2 * model.num_layers   # bf16 KV, every layer
        for same, tr in ((True, Transport.NVLINK), (False, Transport.NETWORK)):
            senders = min(par.num_gpus, TP2.num_gpus)   # every prefill GPU sends its shard in parallel
            floor = tokens * per_token / senders / link_bw_bytes_per_s(system, tr) * 1e3
            got = sm.kv_transfer_ms(tokens, TP2, same) - sm.resolved.kv_handoff_ms
            assert np.all(got >= floor * (1 - 1e-9))
        nv = sm.kv_transfer_ms(tokens, TP2, True)
        assert np.all(sm.kv_transfer_ms(tokens, TP2, False) >= nv)   # the network is never faster than NVLink


# one prefill worker serving one prompt per iteration (token budget = the prompt): a deterministic server
PREFILL = AnalyticStepModel(step_fixed_ms=5.0, prefill_ms_per_token=0.05, decode_ms_per_request=0.01,
                            transfer_fixed_ms=0.0, transfer_ms_per_token=0.0, kv_capacity_tokens=10_000_000)
ISL = 1000
SERVICE_MS = float(PREFILL.prefill_ms(1, ISL, 0))   # 55 ms
POOL = Deployment(Backend.VLLM, prefill=Pool(TP2, 1, max_batch=1, max_num_tokens=ISL), decode=Pool(TP2, 4))


def _queue_wait_ms(rho: float, n: int, seed: int = 0) -> float:
    rate = rho / SERVICE_MS * 1e3   # requests per s
    r = simulate(RoleSteps(PREFILL, PREFILL), POOL, LoadSpec.open(rate, ISL, 2, n), seed=seed, records=True,
                 frontend_ms=0.0)
    rec = r.records
    wait = (rec.prefill_start_s - rec.send_s)[rec.measured] * 1e3
    assert r.ttft_parts.queue_ms >= wait.mean() - 1e-6   # the TTFT split counts the same wait (+ decode admission)
    return float(wait.mean())


def test_prefill_pool_under_poisson_load_matches_md1():
    for rho in (0.5, 0.8):
        expected = rho / (2.0 * (1.0 - rho)) * SERVICE_MS          # Pollaczek-Khinchine, deterministic service
        got = np.mean([_queue_wait_ms(rho, 20_000, seed) for seed in (0, 1)])
        assert got == pytest.approx(expected, rel=0.05)


def test_queue_wait_vanishes_at_no_load_and_grows_without_bound_near_saturation():
    assert _queue_wait_ms(0.01, 2_000) < 0.01 * SERVICE_MS
    waits = [_queue_wait_ms(rho, 4_000) for rho in (0.6, 0.9, 0.99)]
    assert waits[0] < waits[1] < waits[2] and waits[2] > 10 * SERVICE_MS
    # at utilisation >= 1 the wait has no steady state: it grows with the length of the run
    assert _queue_wait_ms(1.2, 2_000) > 3 * _queue_wait_ms(1.2, 500) > 3 * 10 * SERVICE_MS


@pytest.mark.parametrize("backend", [Backend.TRTLLM, Backend.VLLM, Backend.SGLANG])
def test_simulator_and_estimator_agree_at_concurrency_one(qwen, backend):
    model, system, _ = qwen
    view = PerfDB(None).view("h200_sxm", backend)
    eng = EngineConfig(backend)
    isl, osl = 4000, 200
    static = estimate(model, system, TP2, eng, Workload(isl=isl, osl=osl, concurrency=1), view)
    dep = Deployment.aggregated(backend, TP2)
    sim = simulate(build_steps(model, system, dep, eng, view), dep, LoadSpec.closed(1, isl, osl, 6))
    assert sim.ttft.mean == pytest.approx(float(static.ttft_ms), rel=0.05)
    assert sim.tpot.mean == pytest.approx(float(static.tpot_ms), rel=0.05)
    # disaggregated: prefill, the KV over the group's path, the hand-off, the first decode
    spec = WorkerSpec(TP2, eng, 1, 1)
    static = estimate_disagg(model, system, spec, WorkerSpec(TP2, eng, 1), Workload(isl=isl, osl=osl, concurrency=1), view)
    dep = Deployment.disaggregated(backend, Pool(TP2, 1), Pool(TP2, 1), system.nvlink_domain_gpus)
    sim = simulate(build_steps(model, system, dep, eng, view), dep, LoadSpec.closed(1, isl, osl, 6))
    assert sim.ttft.mean == pytest.approx(float(static.ttft_ms), rel=0.05)
    assert sim.tpot.mean == pytest.approx(float(static.tpot_ms), rel=0.05)
    # one client over four decode workers (a quarter of a client each) is still one request in flight
    static = estimate_disagg(model, system, spec, WorkerSpec(TP2, eng, 4),
                             Workload(isl=isl, osl=osl, concurrency=0.25, num_requests=1.5), view)
    dep = Deployment.disaggregated(backend, Pool(TP2, 1), Pool(TP2, 4), system.nvlink_domain_gpus)
    sim = simulate(build_steps(model, system, dep, eng, view), dep, LoadSpec.closed(1, isl, osl, 6))
    assert sim.ttft.mean == pytest.approx(float(static.ttft_ms), rel=0.05)
    assert sim.tpot.mean == pytest.approx(float(static.tpot_ms), rel=0.05)


@pytest.fixture(scope="module")
def dsr1():
    return load_model("deepseek-ai/DeepSeek-R1"), load_system("b200_sxm"), PerfDB(None).view("b200_sxm", Backend.TRTLLM)


TP8_EP8 = ParallelConfig(tp=8, moe_tp=1, moe_ep=8)
DEP8 = ParallelConfig(tp=1, attn_dp=8, moe_tp=1, moe_ep=8)   # attention DP over 8 ranks, experts EP 8


def test_kv_transfer_of_an_mla_request_moves_its_whole_latent_over_one_link(dsr1):
    """MLA keeps one latent per token on every attention rank: the request's whole cache leaves one GPU
    (the rank that prefilled it), whatever the layouts, so bytes / one link's bandwidth is the floor."""
    model, system, view = dsr1
    tokens = np.array([1024.0, 8192.0, 131072.0])
    for par in (TP8_EP8, DEP8):
        sm = StepModel.build(model, system, par, EngineConfig(Backend.TRTLLM), view)
        per_token = (model.kv_lora_rank + model.qk_rope_head_dim) * (1 if sm.kv_dtype.value.startswith("fp8") else 2) \
            * model.num_layers
        for dec in (TP8_EP8, DEP8):
            for same, tr in ((True, Transport.NVLINK), (False, Transport.NETWORK)):
                floor = tokens * per_token / link_bw_bytes_per_s(system, tr) * 1e3
                got = sm.kv_transfer_ms(tokens, dec, same) - sm.resolved.kv_handoff_ms
                assert np.all(got >= floor * (1 - 1e-9)), (par.label(), dec.label(), tr)


def test_sglang_attention_dp_prefill_rank_sends_the_latent_to_every_decode_tp_rank(dsr1):
    """SGLang (disaggregation/common/conn.py, nixl|mooncake/conn.py add_transfer_request, 0.5.9): each
    attention-TP rank of the decode worker pulls its own copy of the MLA latent from one prefill rank, so an
    attention-DP prefill rank (attention TP 1) feeding a TP8 decode worker sends 8 copies over its link, a
    TP4 prefill rank 2; with equal TP, or an attention-DP decode worker, each sender sends one."""
    model, system, _ = dsr1
    view = PerfDB(None).view("b200_sxm", Backend.SGLANG)
    tokens = np.array([1024.0, 8192.0])
    latent = (model.kv_lora_rank + model.qk_rope_head_dim) * model.num_layers
    tp4 = ParallelConfig(tp=4, moe_tp=1, moe_ep=4)
    for par, dec, copies in ((DEP8, TP8_EP8, 8), (tp4, TP8_EP8, 2), (TP8_EP8, TP8_EP8, 1), (DEP8, DEP8, 1)):
        sm = StepModel.build(model, system, par, EngineConfig(Backend.SGLANG), view)
        per_token = latent * (1 if sm.kv_dtype.value.startswith("fp8") else 2)
        got = sm.kv_transfer_ms(tokens, dec, False) - sm.resolved.kv_handoff_ms
        floor = tokens * per_token * copies / link_bw_bytes_per_s(system, Transport.NETWORK) * 1e3
        assert np.all(got >= floor * (1 - 1e-9)), (par.label(), dec.label())
        # TRT-LLM's transceiver sends the same copies (test_trtllm_sends_an_mla_latent_to_every_decode_attention_rank)


def test_trtllm_sends_an_mla_latent_to_every_decode_attention_rank(dsr1):
    """TRT-LLM's MLA cache formatter (mlaCacheFormatter.cpp, 1.0-1.1): each generation attention-TP rank
    pulls the whole latent from one context rank that holds it. An attention-DP prefill worker holds a
    request on one rank, so a tp8 decode worker's 8 copies all leave that rank's link: 8 x bytes / link
    over the network; a TP8 prefill worker's 8 ranks send one copy each; an attention-DP decode worker
    (a request on one rank) takes one copy."""
    model, system, view = dsr1
    tokens = np.array([1024.0, 8192.0])
    per_token = (model.kv_lora_rank + model.qk_rope_head_dim) * model.num_layers
    for engine_tp, dec, copies in ((DEP8, TP8_EP8, 8), (TP8_EP8, TP8_EP8, 1), (DEP8, DEP8, 1)):
        sm = StepModel.build(model, system, engine_tp, EngineConfig(Backend.TRTLLM), view)
        got = sm.kv_transfer_ms(tokens, dec, False) - sm.resolved.kv_handoff_ms
        byte = 1 if sm.kv_dtype.value.startswith("fp8") else 2
        floor = copies * tokens * per_token * byte / link_bw_bytes_per_s(system, Transport.NETWORK) * 1e3
        assert np.all(got >= floor * (1 - 1e-9)), (engine_tp.label(), dec.label())
        if copies == 1:
            assert np.all(got < 2 * floor), (engine_tp.label(), dec.label())


def test_attention_dp_prefill_of_one_request_is_slower_than_tp_but_a_full_iteration_is_faster(dsr1):
    """One request on an attention-DP worker runs its attention (and its projections) on one rank at TP 1:
    for long prompts, where attention dominates, that is slower than TP 8; with every rank busy the
    worker prefills 8 requests in less time than TP 8 takes for the same 8."""
    model, system, view = dsr1
    tp = StepModel.build(model, system, TP8_EP8, EngineConfig(Backend.TRTLLM), view)
    dp = StepModel.build(model, system, DEP8, EngineConfig(Backend.TRTLLM), view)
    for isl in (8192, 32768):
        assert float(dp.prefill_ms(1, isl)) > 1.5 * float(tp.prefill_ms(1, isl))
        assert float(dp.prefill_ms(8, isl)) < float(tp.prefill_ms(8, isl))
    # attention-bound: the DP penalty grows with the prompt (quadratic attention on one GPU)
    ratio = [float(dp.prefill_ms(1, s) / tp.prefill_ms(1, s)) for s in (1024, 8192, 32768)]
    assert ratio[0] < ratio[1] < ratio[2]


def test_a_full_decode_pool_holds_requests_back_and_the_wait_is_ttft(qwen):
    """Closed loop of 2 x the decode slots: half the requests wait for a slot, about one decode lifetime
    each (Little's law: the pool turns over `slots` requests per lifetime); both predictors see it."""
    model, system, view = qwen
    eng = EngineConfig(Backend.TRTLLM)
    isl, osl, slots = 1000, 400, 8
    free = estimate_disagg(model, system, WorkerSpec(TP2, eng, 1), WorkerSpec(TP2, eng, 1, None),
                           Workload(isl=isl, osl=osl, concurrency=2 * slots), view)
    full = estimate_disagg(model, system, WorkerSpec(TP2, eng, 1), WorkerSpec(TP2, eng, 1, slots),
                           Workload(isl=isl, osl=osl, concurrency=2 * slots), view)
    life = (osl - 1) * float(full.tpot_ms)
    assert float(full.ttft_ms) > 0.9 * life > 2 * float(free.ttft_ms)
    dep = Deployment.disaggregated(Backend.TRTLLM, Pool(TP2, 1), Pool(TP2, 1, max_batch=slots),
                                   system.nvlink_domain_gpus)
    sim = simulate(build_steps(model, system, dep, eng, view), dep, LoadSpec.closed(2 * slots, isl, osl, 20 * slots,
                                                                                   warmup=2 * slots))
    assert sim.ttft.mean > 0.8 * (osl - 1) * sim.tpot.mean
