"""A disaggregated replay runs each role under its own launch flags (estimator.run_facts.RoleFlags), and a
request that reaches a busy decode worker waits for that worker's iteration boundary, as the engines do.
Linear step model: 6 ms per iteration + 0.02 ms per prompt token + 0.1 ms per decoding request; every
expected time below is computed by hand from the engine rules named in each test."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from estimator.parallel import ParallelConfig
from estimator.run_facts import RoleFlags
from estimator.sim import AnalyticStepModel, Deployment, LoadSpec, Pool, RoleSteps, simulate
from estimator.sim.types import TraceRequest
from perfdb.types import Backend


def _model(transfer_ms: float) -> AnalyticStepModel:
    return AnalyticStepModel(step_fixed_ms=6.0, prefill_ms_per_token=0.02, decode_ms_per_request=0.1,
                             decode_ms_per_kv_token=0.0, transfer_fixed_ms=transfer_ms, transfer_ms_per_token=0.0,
                             kv_capacity_tokens=1_000_000)


class _Drafting(AnalyticStepModel):
    """The same steps, with an engine that drafts 3 tokens per decode step (the row's speculative decoding)."""

    resolved = SimpleNamespace(spec_tokens=3, tokens_per_step=1.0, max_batch_size=None, max_num_tokens=None,
                               ttft_overhead_ms=0.0)


def _run(backend: Backend, trace, flags: str = "", transfer_ms: float = 0.0, max_num_tokens: int = 2000,
         drafting: bool = False):
    m = _model(transfer_ms)
    if drafting:
        m = _Drafting(**vars(m))
    dep = Deployment(backend, prefill=Pool(ParallelConfig(), 1, max_batch=64, max_num_tokens=max_num_tokens),
                     decode=Pool(ParallelConfig(), 1, max_batch=64))
    pairs = tuple(tuple(kv.split("=", 1)) for kv in flags.split(";") if kv)
    return simulate(RoleSteps(m, m), dep, LoadSpec.replay(tuple(trace)), records=True, frontend_ms=0.0,
                    engine_flags=RoleFlags.split(pairs, disagg=True))


def test_a_prefill_worker_without_the_overlap_scheduler_takes_a_late_arrival_into_its_next_batch():
    """SGLang disaggregated prefill (disaggregation/prefill.py event_loop_overlap_disagg_prefill vs
    event_loop_normal_disagg_prefill, 0.5.x): with overlap the batch starting at 26 ms was formed at 0 ms,
    before r2 arrived (10 ms), so r2 waits for the batch after r1's; without it r1 and r2 share one batch.
    r0 starts alone at 0 (26 ms); budget 2000 tokens."""
    trace = [TraceRequest(0.0, 1000, 2), TraceRequest(0.0, 1000, 2), TraceRequest(0.010, 1000, 2)]
    overlap = _run(Backend.SGLANG, trace).records.prefill_end_s
    assert overlap == pytest.approx([0.026, 0.052, 0.078])          # r1 alone, then r2 alone
    off = _run(Backend.SGLANG, trace, "prefill.disable-overlap-schedule=true").records.prefill_end_s
    assert off == pytest.approx([0.026, 0.072, 0.072])              # r1 + r2: 6 + 0.02 x 2000 ms
    # the decode engine's flag is the decode engine's: the prefill worker keeps its overlap scheduler
    decode_only = _run(Backend.SGLANG, trace, "decode.disable-overlap-schedule=true").records.prefill_end_s
    assert decode_only == pytest.approx(overlap)


def test_a_prefill_server_launched_without_drafts_keeps_its_overlap_scheduler():
    """SGLang turns a server's overlap scheduler off when it drafts (server_args.py, speculative EAGLE);
    recipes often launch only the decode server with --speculative-algorithm. The replay's engine drafts
    (the row's speculative decoding), but each server follows its own flags: the schedule of the test
    above, with overlap when only the decode server drafts, without when both do."""
    trace = [TraceRequest(0.0, 1000, 2), TraceRequest(0.0, 1000, 2), TraceRequest(0.010, 1000, 2)]
    launched = "prefill.disaggregation-mode=prefill;decode.disaggregation-mode=decode;"
    decode_only = _run(Backend.SGLANG, trace, launched + "decode.speculative-algorithm=EAGLE", drafting=True)
    assert decode_only.records.prefill_end_s == pytest.approx([0.026, 0.052, 0.078])
    both = _run(Backend.SGLANG, trace, launched + "speculative-algorithm=EAGLE", drafting=True)
    assert both.records.prefill_end_s == pytest.approx([0.026, 0.072, 0.072])
    # a server whose flags are not recorded: the drafts decide, as before
    assert _run(Backend.SGLANG, trace, drafting=True).records.prefill_end_s == pytest.approx([0.026, 0.072, 0.072])


def _second_ttft_ms(backend: Backend, flags: str = "", transfer_ms: float = 0.0) -> tuple[float, object]:
    """r0 (100 tokens, 50 out) decodes alone from its KV's arrival; r1 (100 tokens) is sent at 20 ms."""
    r = _run(backend, [TraceRequest(0.0, 100, 50), TraceRequest(0.020, 100, 2)], flags, transfer_ms)
    rec = r.records
    return float(rec.first_token_s[1] - rec.send_s[1]) * 1e3, r


def test_sglang_recv_interval_delays_the_decode_side_pre_allocation_not_the_kv_pickup():
    """SGLang decode-first hand-off: r1 reaches its decode worker on arrival (20 ms), which pre-allocates
    it at its next loop iteration (process_decode_queue after recv_requests, every iteration); only then
    does the prefill (8 ms) run. r0 decodes from 8 ms in steps of 6.1 ms (boundaries 8 + 6.1 k ms).
    Default: pre-allocated at k=2 (20.2 ms), prefill to 28.2, joins at k=4 (32.4): TTFT 12.4 ms.
    `decode.scheduler-recv-interval=4` (managers/scheduler_recv_skipper.py: a decode iteration adds 1, the
    socket is read at 4): the decode server reads r1 at k=4 (32.4), prefill to 40.4, and the transferred
    KV joins at the next boundary k=6 (44.6; the transfer queue is polled every iteration, not at k=8):
    TTFT 24.6 ms. The prefill engine's recv interval changes nothing: a prefill batch adds 1000, so it
    reads its socket after every batch (and at once when idle). Both engines run without the overlap
    scheduler here (an unprefixed flag: both roles), which would add one decode step to each join."""
    off = "disable-overlap-schedule=true;"
    base, _ = _second_ttft_ms(Backend.SGLANG, off)
    assert base == pytest.approx(12.4)
    assert _second_ttft_ms(Backend.SGLANG, off + "decode.scheduler-recv-interval=4")[0] == pytest.approx(24.6)
    assert _second_ttft_ms(Backend.SGLANG, off + "prefill.scheduler-recv-interval=4")[0] == pytest.approx(base)
    # with its overlap scheduler the decode worker admits the received KV one step later (k=5, then k=7)
    assert _second_ttft_ms(Backend.SGLANG)[0] == pytest.approx(18.5)
    assert _second_ttft_ms(Backend.SGLANG, "decode.scheduler-recv-interval=4")[0] == pytest.approx(30.7)


def test_trtllm_generation_worker_starts_the_pull_at_its_next_iteration():
    """TRT-LLM (_torch/pyexecutor/py_executor.py, 1.0-1.1): the generation request is taken at the decode
    worker's next iteration, which allocates its KV and starts the receive (_prepare_disagg_gen_init); the
    request joins at the first iteration after the bytes arrived (_check_disagg_gen_transfer_status).
    r0: prefill 0-8 ms, pull 1 ms, decodes from 9 ms in 6.1 ms steps. r1: prefill 20-28 ms; the decode
    worker's next boundary is 33.4 ms (k=4), the bytes land at 34.4, it joins at 39.5 (k=5): TTFT 19.5 ms,
    of which 5.4 ms waiting for the boundary that starts the pull. That is without the overlap executor
    (`decode.disable_overlap_scheduler`); with it (the default) the batch starting at 39.5 was formed at
    33.4, before the bytes landed, so r1 joins at 45.6 (k=6): 25.6 ms. The context server's flag changes
    nothing here."""
    off = "decode.disable_overlap_scheduler=true"
    ttft, r = _second_ttft_ms(Backend.TRTLLM, off, transfer_ms=1.0)
    assert ttft == pytest.approx(19.5)
    rec = r.records
    assert float(rec.kv_ready_s[1] - rec.prefill_end_s[1]) * 1e3 == pytest.approx(6.4)   # 5.4 wait + 1 ms bytes
    assert r.ttft_parts.kv_transfer_ms == pytest.approx(1.0)                              # the wait is queueing
    assert _second_ttft_ms(Backend.TRTLLM, transfer_ms=1.0)[0] == pytest.approx(25.6)
    assert _second_ttft_ms(Backend.TRTLLM, "prefill.disable_overlap_scheduler=true", 1.0)[0] == pytest.approx(25.6)


def test_trtllm_holds_of_context_requests_do_not_hold_a_generation_workers_transfers():
    """TRT-LLM's batch waiting and attention-DP balancing hold context requests (PyExecutor._waiting_requests,
    _balance_adp_requests); a generation-only worker schedules received requests as generations, so the
    decode role's flags leave the replay as it is."""
    flags = "decode.batch_wait_timeout_iters=20;decode.batch_wait_max_tokens_ratio=0.9"
    assert _second_ttft_ms(Backend.TRTLLM, flags, 1.0)[0] == pytest.approx(_second_ttft_ms(Backend.TRTLLM, "", 1.0)[0])
