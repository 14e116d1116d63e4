"""Queueing behaviour that theory fixes, on a closed-form step model of known behaviour."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.parallel import ParallelConfig
from estimator.sim import AnalyticStepModel, Deployment, LoadSpec, Pool, RoleSteps, simulate
from perfdb.types import Backend

MODEL = AnalyticStepModel(step_fixed_ms=8.0, prefill_ms_per_token=0.02, attn_ms_per_token_pair=1e-6,
                          decode_ms_per_request=0.05, decode_ms_per_kv_token=2e-5,
                          transfer_fixed_ms=40.0, transfer_ms_per_token=0.01, kv_capacity_tokens=2_000_000)
TP2 = ParallelConfig(tp=2)
BACKENDS = [Backend.VLLM, Backend.SGLANG, Backend.TRTLLM]


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrency_one_ttft_is_the_prefill_and_tpot_the_decode_step(backend):
    isl, osl = 1000, 50
    r = simulate(MODEL, Deployment.aggregated(backend, TP2), LoadSpec.closed(1, isl, osl, 20), records=True)
    assert r.ttft.p50 == pytest.approx(float(MODEL.prefill_ms(1, isl, 0)), rel=1e-9)
    assert r.ttft.p99 == pytest.approx(r.ttft.p50, rel=1e-9)
    # request alone: its decode steps see KV isl, isl+1, ..., isl+osl-2
    expected_tpot = float(MODEL.decode_ms(1, isl + np.arange(osl - 1)).mean())
    assert r.tpot.mean == pytest.approx(expected_tpot, rel=1e-9)
    frame = r.records.to_frame()
    assert (frame["send_s"].diff().iloc[1:] > 0).all()   # one client: strictly sequential


def test_ttft_grows_with_concurrency_once_prefill_saturates():
    dep = Deployment.aggregated(Backend.VLLM, TP2, max_num_tokens=2048)
    ttft = [simulate(MODEL, dep, LoadSpec.closed(c, 2000, 10, 40 * c)).ttft.mean for c in (1, 4, 16, 64)]
    assert all(b >= a for a, b in zip(ttft, ttft[1:], strict=False))
    assert ttft[-1] > 4 * ttft[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_littles_law_closed_loop(backend):
    """Clients x (throughput x latency): a closed loop keeps exactly N requests in flight."""
    n_clients = 16
    r = simulate(MODEL, Deployment.aggregated(backend, TP2, replicas=2),
                 LoadSpec.closed(n_clients, 800, 120, 3000), records=True)
    assert r.request_throughput * r.latency.mean / 1e3 == pytest.approx(n_clients, rel=0.02)
    # and directly: requests in flight never exceed the clients
    f = r.records.to_frame()
    events = np.concatenate([np.stack([f.send_s, np.ones(len(f))], 1), np.stack([f.finish_s, -np.ones(len(f))], 1)])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]   # finishes before sends at equal times
    assert np.cumsum(events[:, 1]).max() == n_clients


@pytest.mark.parametrize("backend", BACKENDS)
def test_tokens_are_conserved(backend):
    r = simulate(MODEL, Deployment.aggregated(backend, TP2, replicas=3),
                 LoadSpec.closed(24, LoadSpec.closed(1, 1, 1, 1).isl.of(600, 0.5), LoadSpec.closed(1, 1, 1, 1).osl.of(80, 0.5), 500),
                 seed=3, records=True)
    f = r.records.to_frame()
    assert r.completed == 500
    assert r.prefill_tokens == f.isl.sum()                 # no preemption here: every prompt computed once
    assert r.decode_tokens + r.completed == f.osl.sum()   # one token per prefill, the rest from decode steps
    assert r.output_tokens_per_s * r.duration_s == pytest.approx(f.osl.sum())


def test_disagg_ttft_includes_the_kv_transfer():
    isl, osl = 3000, 40
    dep = Deployment(Backend.TRTLLM, prefill=Pool(TP2, 1), decode=Pool(TP2, 1))
    r = simulate(RoleSteps(MODEL, MODEL), dep, LoadSpec.closed(1, isl, osl, 10))
    transfer = float(MODEL.kv_transfer_ms(isl, TP2, False))
    assert transfer > 40.0
    assert r.ttft.mean == pytest.approx(float(MODEL.prefill_ms(1, isl, 0)) + transfer, rel=1e-9)
    assert r.num_gpus == 4
    assert r.decode_tokens + r.completed == 10 * osl


def test_disagg_decode_tpot_is_free_of_prefill_interference():
    """A decode pool never runs prompts, so at load its TPOT stays at the decode step while the
    aggregated engine's TPOT carries the prefill chunks mixed into its steps."""
    load = LoadSpec.closed(16, 3000, 200, 400)
    agg = simulate(MODEL, Deployment.aggregated(Backend.VLLM, TP2, replicas=2), load)
    dis = simulate(RoleSteps(MODEL, MODEL), Deployment(Backend.VLLM, prefill=Pool(TP2, 1), decode=Pool(TP2, 1)), load)
    assert dis.tpot.p50 < agg.tpot.p50
    assert dis.tpot.p50 == pytest.approx(float(MODEL.decode_ms(16, 3100)), rel=0.1)


def test_open_loop_below_capacity_has_no_queueing_and_above_it_queues():
    dep = Deployment.aggregated(Backend.VLLM, TP2)
    prefill = float(MODEL.prefill_ms(1, 1000, 0))
    light = simulate(MODEL, dep, LoadSpec.open(0.2, 1000, 20, 200), seed=1)
    assert light.ttft.p50 < 1.5 * prefill
    heavy_short = simulate(MODEL, dep, LoadSpec.open(200.0, 1000, 20, 200), seed=1)
    heavy_long = simulate(MODEL, dep, LoadSpec.open(200.0, 1000, 20, 800), seed=1)
    assert heavy_long.ttft.mean > 2 * heavy_short.ttft.mean > 4 * light.ttft.mean   # the queue keeps growing


def test_frontend_overhead_delays_first_token_not_tokens_after_it():
    """A step model's resolved.ttft_overhead_ms (per-request time outside the engine) adds to TTFT and
    latency, leaves TPOT alone, and a closed-loop client waits for it."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Resolved:
        ttft_overhead_ms: float

    class WithFrontend(AnalyticStepModel):
        resolved = Resolved(100.0)

    fe = WithFrontend(**{k: getattr(MODEL, k) for k in MODEL.__dataclass_fields__})
    dep = Deployment.aggregated(Backend.VLLM, TP2)
    base = simulate(MODEL, dep, LoadSpec.closed(1, 1000, 50, 10))
    slow = simulate(fe, dep, LoadSpec.closed(1, 1000, 50, 10))
    assert slow.ttft.mean == pytest.approx(base.ttft.mean + 100.0, rel=1e-9)
    assert slow.tpot.mean == pytest.approx(base.tpot.mean, rel=1e-9)
    assert slow.duration_s == pytest.approx(base.duration_s + 10 * 0.1, rel=1e-9)
    off = simulate(fe, dep, LoadSpec.closed(1, 1000, 50, 10), frontend_ms=0.0)   # explicit override
    assert off.ttft.mean == pytest.approx(base.ttft.mean, rel=1e-12)


def test_warmup_requests_are_sent_first_and_left_out_of_the_metrics():
    """aiperf --warmup-request-count: the closed loop's opening wave (every client at once) is
    absorbed by the warm-up, so the measured TTFT is the steady state's."""
    dep = Deployment.aggregated(Backend.VLLM, TP2)
    cold = simulate(MODEL, dep, LoadSpec.closed(32, 2000, 100, 320), records=True)
    warm = simulate(MODEL, dep, LoadSpec.closed(32, 2000, 100, 320, warmup=64), records=True)
    f = warm.records.to_frame()
    assert len(f) == 384 and (~f.measured).sum() == 64 and not f.measured.iloc[:64].any()
    assert warm.completed == cold.completed == 320
    assert warm.ttft.p99 < cold.ttft.p99   # the opening wave's long waits are gone
    assert warm.decode_tokens + 384 == 384 * 100   # every request, warm-up included, was served


def test_speculative_decoding_emits_tokens_per_step_per_request():
    """A step model whose resolved engine emits 2 tokens per decode step (speculation) finishes a
    101-token answer in 50 decode steps: TPOT halves at concurrency 1, KV grows 2 tokens a step."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Resolved:
        tokens_per_step: float
        ttft_overhead_ms: float = 0.0

    class Speculative(AnalyticStepModel):
        resolved = Resolved(2.0)

    m = AnalyticStepModel(step_fixed_ms=10.0, decode_ms_per_request=0.0, decode_ms_per_kv_token=0.0)
    spec = Speculative(step_fixed_ms=10.0, decode_ms_per_request=0.0, decode_ms_per_kv_token=0.0)
    dep = Deployment.aggregated(Backend.VLLM, TP2)
    plain = simulate(m, dep, LoadSpec.closed(1, 500, 101, 4))
    fast = simulate(spec, dep, LoadSpec.closed(1, 500, 101, 4))
    assert plain.tpot.mean == pytest.approx(10.0, rel=1e-9)
    assert fast.tpot.mean == pytest.approx(5.0, rel=1e-9)
    assert fast.decode_tokens == 4 * 50


def test_uncoordinated_routers_collide_on_batch_one_decode_workers():
    # 3 closed-loop clients, 3 decode workers of batch 1: one round-robin router hands each freed worker
    # the next request (no waiting); 7 routers that share no state (Deployment.routers: nginx in front of
    # several frontends) each spread their requests evenly, but put two requests on one worker as often as
    # chance says, and the second waits for the first's whole decode
    from estimator.deployment import RoutePolicy

    isl, osl, n = 1000, 200, 300
    lifetime = float(MODEL.decode_ms(1, isl + osl // 2)) * (osl - 1)

    def run(routers, seed=0):
        dep = Deployment(Backend.TRTLLM, prefill=Pool(TP2, 1), decode=Pool(TP2, 3, max_batch=1),
                         router=RoutePolicy.ROUND_ROBIN, routers=routers)
        return simulate(RoleSteps(MODEL, MODEL), dep, LoadSpec.closed(3, isl, osl, n), seed=seed, records=True)

    one, seven = run(1), run(7)
    alone = float(MODEL.prefill_ms(1, isl, 0) + MODEL.kv_transfer_ms(isl, TP2, False))
    assert one.ttft.p90 < alone + 0.05 * lifetime
    assert seven.ttft.mean > 0.25 * lifetime                 # collisions: a lifetime each, for a quarter or more
    picks = np.bincount(seven.records.to_frame()["worker"], minlength=3)
    assert picks.min() > n / 3 * 0.8                         # each router spreads its requests evenly
    assert run(7).ttft.mean == seven.ttft.mean                # seeded
    assert run(7, seed=1).ttft.mean != seven.ttft.mean
