"""Serving arithmetic that is backend-specific: KV admission, the SGLang wave burst, the disaggregated
hand-off and the batching prefill worker (bundled database, roofline rungs)."""
import numpy as np
import pytest

from estimator.engine import EngineConfig
from estimator.engines import profile_for
from estimator.estimate import WorkerSpec, estimate_disagg
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.serving import agg_metrics, max_batch
from estimator.steps import StepModel
from estimator.workload import Workload
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend

SYS = "h200_sxm"


@pytest.fixture(scope="module")
def db():
    return PerfDB()


def _sm(db, backend, model="Qwen/Qwen3-32B", par=ParallelConfig(tp=2)):  # noqa: B008 - frozen dataclass
    return StepModel.build(load_model(model), load_system(SYS), par, EngineConfig(backend), db.view(SYS, backend))


@pytest.mark.parametrize("backend,held", [(Backend.TRTLLM, 1.0), (Backend.SGLANG, 0.5), (Backend.VLLM, 0.5)])
def test_kv_admission_reserves_full_sequences_only_on_trtllm(db, backend, held):
    sm = _sm(db, backend)
    isl, osl = np.float64(4000), np.float64(4000)
    per_req = (isl + held * osl) * sm.memory.full_bytes_per_token
    assert float(max_batch(sm, isl, osl)) == min(np.floor(sm.memory.kv_pool_bytes / per_req), sm.memory.max_batch)


def test_sglang_pays_the_burst_every_wave_mixing_engines_once(db):
    conc = np.array([64.0])
    for backend, every_wave in ((Backend.SGLANG, True), (Backend.TRTLLM, False)):
        sm = _sm(db, backend)
        few, many = (agg_metrics(sm, Workload(isl=2048, osl=256, concurrency=conc, num_requests=conc * n)).ttft
                     for n in (2, 50))
        steady = agg_metrics(sm, Workload(isl=2048, osl=256, concurrency=conc)).ttft
        if every_wave:   # synchronised waves: the run length does not dilute the burst
            assert few == pytest.approx(many) and many[0] > 1.5 * steady[0]
        else:            # one opening burst, diluted over the run
            assert few[0] > many[0] > steady[0]


def test_a_wave_of_prompts_pauses_sglangs_decodes_for_its_share_of_the_waves_prefill_iterations(db):
    """SGLang's closed-loop waves arrive together (the burst above), so their prompts are prefilled many to an
    iteration that pays its host time once: the decodes wait each prompt's share of the wave's iterations,
    less than a lone prompt's whole iteration (what an open-ended load, prompts arriving apart, costs)."""
    sm = _sm(db, Backend.SGLANG, "deepseek-ai/DeepSeek-R1", ParallelConfig(tp=8, moe_ep=8))
    assert sm.resolved.context_step_ms > 0
    conc = np.array([64.0])
    closed = agg_metrics(sm, Workload(isl=1024, osl=1024, concurrency=conc, num_requests=conc * 10)).tpot
    apart = agg_metrics(sm, Workload(isl=1024, osl=1024, concurrency=conc)).tpot
    assert closed[0] < apart[0]


def test_disagg_handoff_is_the_engines_extra_frontend_pass_on_top_of_the_bytes(db):
    for backend in (Backend.TRTLLM, Backend.SGLANG, Backend.VLLM):
        sm = _sm(db, backend)
        prof = profile_for(backend)
        assert sm.resolved.kv_handoff_ms == prof.handoff.frontend_hops * prof.ttft_overhead_ms
        one = float(sm.kv_transfer_ms(np.float64(1), ParallelConfig(tp=2), False))
        assert one >= sm.resolved.kv_handoff_ms
    # SGLang's load balancer sends to prefill and decode at once: no second pass; TRT-LLM's router does
    assert _sm(db, Backend.SGLANG).resolved.kv_handoff_ms == 0 < _sm(db, Backend.TRTLLM).resolved.kv_handoff_ms


def test_batching_prefill_worker_waits_for_its_batch_under_load(db):
    model, system = load_model("Qwen/Qwen3-32B"), load_system(SYS)
    eng = EngineConfig(Backend.TRTLLM)
    par = ParallelConfig(tp=2)
    conc = np.array([1.0, 32.0])   # one prefill worker, idle and about half busy
    load = Workload(isl=1024, osl=256, concurrency=conc)
    batched = estimate_disagg(model, system, WorkerSpec(par, eng, 1, None), WorkerSpec(par, eng, 1), load, db.view(SYS, Backend.TRTLLM))
    single = estimate_disagg(model, system, WorkerSpec(par, eng, 1, 1), WorkerSpec(par, eng, 1), load, db.view(SYS, Backend.TRTLLM))
    assert batched.ttft_ms[0] == pytest.approx(single.ttft_ms[0], rel=0.05)   # idle: a batch of one
    assert batched.ttft_ms[1] > single.ttft_ms[1]                              # loaded: a full batch finishes together
    assert np.allclose(batched.tpot_ms, single.tpot_ms)


def test_trtllm_returning_group_waits_for_its_packed_prefill(db):
    """Fixed-length closed loop: the requests TRT-LLM packs into one prefill iteration come back together,
    so with short prompts (several per iteration) TTFT moves towards the packed iteration's time; with a
    prompt that fills the iteration alone there is no group and nothing changes."""
    from dataclasses import replace

    sm = _sm(db, Backend.TRTLLM)
    eng = sm.resolved
    assert eng.group_wait_weight == 0.5 and _sm(db, Backend.VLLM).resolved.group_wait_weight == 0.0
    conc = np.array([8.0])
    for isl, grouped in ((1024, True), (8192, False)):
        load = Workload(isl=isl, osl=512, concurrency=conc, num_requests=conc * 10)
        with_wait = agg_metrics(sm, load).ttft[0]
        sm.resolved = replace(eng, group_wait_weight=0.0)
        try:
            without = agg_metrics(sm, load).ttft[0]
        finally:
            sm.resolved = eng
        if grouped:   # 8 prompts of 1024 share one 8192-token iteration
            packed = float(sm.prefill_ms(8, 1024))
            assert with_wait > without and with_wait == pytest.approx(without + 0.5 * (packed - without), rel=0.25)
        else:
            assert with_wait == pytest.approx(without)


def test_a_batching_prefill_worker_pays_an_iterations_fixed_time_once_per_batch():
    """estimator.serving._batched_extra: with no fixed part it is the plain batched queue; a fixed part
    (host time an iteration pays whatever it holds) shortens the wait under load, never below the
    queue with that part removed from every request, and changes nothing without queueing."""
    import numpy as np

    from estimator.serving import _batched_extra

    p1, kmax = 100.0, 8.0
    rho = np.array([0.0, 0.3, 0.6, 0.9])
    plain = _batched_extra(rho, p1, kmax)
    amortised = _batched_extra(rho, p1, kmax, fixed=60.0)
    assert amortised[0] == pytest.approx(plain[0]) == pytest.approx(0.0)
    assert np.all(amortised[1:] < plain[1:])
    # a batch of k costs k (p1 - fixed) + fixed: at least the variable work of the k - 1 others
    k = np.clip(1.0 / (1.0 - rho * (p1 - 60.0 + 60.0 / np.clip(1.0 / (1.0 - rho), 1.0, kmax)) / p1), 1.0, kmax)
    assert np.all(amortised >= (k - 1.0) * (p1 - 60.0) - 1e-9)


def test_fewer_clients_than_workers_put_only_the_clients_in_flight(db):
    """One client over nine decode workers (InferenceX's low-concurrency DeepSeek-R1 disagg points) is one
    request in flight, not one per worker: its TTFT is that of one client over one decode worker (the
    prefill side sees the same single request; both groups cross the network), its throughput a ninth of
    a fully busy pool's. Agg: one client over four replicas is one busy replica."""
    model, system = load_model("Qwen/Qwen3-32B"), load_system(SYS)
    eng = EngineConfig(Backend.SGLANG)
    par = ParallelConfig(tp=8)   # 1P + 1D already span two 8-GPU nodes: the KV path is the network in both
    view = db.view(SYS, Backend.SGLANG)

    def disagg(d_workers, per_worker):
        load = Workload(isl=2048, osl=256, concurrency=per_worker, num_requests=10 * per_worker)
        return estimate_disagg(model, system, WorkerSpec(par, eng, 1, None), WorkerSpec(par, eng, d_workers), load, view)

    alone, spread = disagg(1, 1.0), disagg(9, 1.0 / 9.0)
    assert float(spread.ttft_ms) == pytest.approx(float(alone.ttft_ms), rel=1e-6)
    assert float(spread.tpot_ms) == pytest.approx(float(alone.tpot_ms), rel=1e-6)
    busy = disagg(9, 1.0)
    assert float(busy.ttft_ms) > float(spread.ttft_ms)   # nine clients queue at the one prefill worker
    sm = _sm(db, Backend.SGLANG)
    one = agg_metrics(sm, Workload(isl=2048, osl=256, concurrency=1.0))
    quarter = agg_metrics(sm, Workload(isl=2048, osl=256, concurrency=0.25))
    assert float(quarter.ttft) == pytest.approx(float(one.ttft)) and float(quarter.tpot) == pytest.approx(float(one.tpot))
    assert float(quarter.req_per_ms) == pytest.approx(float(one.req_per_ms) / 4)
