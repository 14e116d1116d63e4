"""Each engine's scheduler against a schedule computed by hand from its source's rules (estimator/engines/
<engine>.py), on a linear step model so every step time is exact: no fitted constant can move these.

Step model: 6 ms per iteration + 0.02 ms per prompt token + 0.1 ms per decoding request.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from estimator.parallel import ParallelConfig
from estimator.run_facts import RoleFlags
from estimator.sim import AnalyticStepModel, Deployment, LoadSpec, simulate
from estimator.sim.types import TraceRequest
from perfdb.types import Backend

STEP = AnalyticStepModel(step_fixed_ms=6.0, prefill_ms_per_token=0.02, decode_ms_per_request=0.1,
                         decode_ms_per_kv_token=0.0, kv_capacity_tokens=1_000_000)
TP1 = ParallelConfig()


class _Drafting(AnalyticStepModel):
    """The same steps, with an engine that verifies 3 draft tokens per decoding request (all rejected)."""

    resolved = SimpleNamespace(spec_tokens=3, tokens_per_step=1.0, max_batch_size=None, max_num_tokens=None,
                               ttft_overhead_ms=0.0)


DRAFTING = _Drafting(step_fixed_ms=6.0, prefill_ms_per_token=0.02, decode_ms_per_request=0.1,
                     decode_ms_per_kv_token=0.0, kv_capacity_tokens=1_000_000)


def prefill(tokens: float) -> float:
    return 6.0 + 0.02 * tokens


def mixed(tokens: float, decodes: int) -> float:
    return 6.0 + 0.02 * tokens + 0.1 * decodes


def decode(decodes: int) -> float:
    return 6.0 + 0.1 * decodes


def ttfts(backend, trace, flags=None, **pool) -> list[float]:
    dep = Deployment.aggregated(backend, TP1, **pool)
    r = simulate(STEP, dep, LoadSpec.replay(tuple(trace)), records=True, frontend_ms=0.0, engine_flags=RoleFlags.same(flags) if flags else None)
    f = r.records.to_frame()
    return f.ttft_ms.tolist()


def test_vllm_token_budget_running_first_and_chunk_sizes():
    # budget 1000; two 1500-token prompts at t=0, two output tokens each.
    # step 1: A's first chunk, 1000 tokens; step 2: A's remaining 500 first (running), then B's 500;
    # step 3: A decodes (1 token of the budget), B takes 999; step 4: B's last token.
    got = ttfts(Backend.VLLM, [TraceRequest(0.0, 1500, 2), TraceRequest(0.0, 1500, 2)], max_num_tokens=1000)
    a = prefill(1000) + prefill(1000)
    b = a + mixed(999, 1) + prefill(1)
    assert got == pytest.approx([a, b], rel=1e-6)


def test_trtllm_whole_prompts_within_what_the_decodes_leave():
    # budget 1000, no chunking: A (600) runs alone (B's 600 would pass 1000: MicroBatchScheduler breaks);
    # step 2: A decodes and takes 1 token, B's 600 fit beside it.
    got = ttfts(Backend.TRTLLM, [TraceRequest(0.0, 600, 3), TraceRequest(0.0, 600, 3)], max_num_tokens=1000)
    assert got == pytest.approx([prefill(600), prefill(600) + mixed(600, 1)], rel=1e-6)
    # a decode with draft tokens takes 1 + drafts of the budget: C (498) no longer fits beside B (499)
    # and A's 4-token decode, so it waits a step where without drafts it would ride along
    trace = [TraceRequest(0.0, 3, 50), TraceRequest(0.001, 499, 2), TraceRequest(0.001, 498, 2)]
    plain = ttfts(Backend.TRTLLM, trace, max_num_tokens=1000)
    assert plain[2] == pytest.approx(plain[1], rel=1e-9)   # 1 + 499 + 498 <= 1000: one step
    r = simulate(DRAFTING, Deployment.aggregated(Backend.TRTLLM, TP1, max_num_tokens=1000),
                 LoadSpec.replay(tuple(trace)), records=True, frontend_ms=0.0)
    f = r.records.to_frame().ttft_ms
    assert f[2] > f[1] + 6.0   # 4 + 499 + 498 > 1000: C goes a step later


def test_sglang_prefill_priority_pauses_decodes_and_chunks_at_the_budget():
    # budget 1000. A (600) starts the idle engine alone; B (1500, same instant) then prefills in chunks
    # of 1000 and 500 while A's decode waits (prefill priority; mixed chunks off by default).
    dep = Deployment.aggregated(Backend.SGLANG, TP1, max_num_tokens=1000)
    trace = (TraceRequest(0.0, 600, 3), TraceRequest(0.0, 1500, 3))
    r = simulate(STEP, dep, LoadSpec.replay(trace), records=True, frontend_ms=0.0)
    f = r.records.to_frame()
    assert f.ttft_ms.tolist() == pytest.approx([prefill(600), prefill(600) + prefill(1000) + prefill(500)], rel=1e-6)
    a_second_token = (prefill(1000) + prefill(500) + decode(2)) / 1e3   # paused for both chunks of B
    assert f.finish_s[0] - f.first_token_s[0] == pytest.approx(a_second_token + decode(2) / 1e3, rel=1e-6)
    # --enable-mixed-chunk lets A's decode ride with B's chunks instead
    mixed_run = simulate(STEP, dep, LoadSpec.replay(trace), records=True, frontend_ms=0.0,
                         engine_flags=RoleFlags.same({"enable-mixed-chunk": "true"}))
    assert mixed_run.records.to_frame().ttft_ms[1] == pytest.approx(
        prefill(600) + mixed(999, 1) + mixed(501, 1), rel=1e-6)


def test_sglang_recv_interval_delays_a_new_request_to_the_schedulers_next_poll():
    # A (100 tokens) prefills in 8 ms, then decodes alone in 6.1 ms steps; B arrives at 50 ms.
    # Without the overlap scheduler (its own test below) the poll's batch starts at once.
    trace = [TraceRequest(0.0, 100, 1000), TraceRequest(0.050, 100, 2)]
    plain = {"disable-overlap-schedule": "true"}
    every = ttfts(Backend.SGLANG, trace, plain)[1]
    # polled every step: B prefills at the first boundary after 50 ms (step 7 of the run)
    assert every == pytest.approx(prefill(100) + 7 * decode(1) + prefill(100) - 50.0, rel=1e-6)
    # --scheduler-recv-interval 30: the prefill makes the next boundary poll (A's own), then every 30
    # decode steps: B is seen after the 30th
    late = ttfts(Backend.SGLANG, trace, {"scheduler-recv-interval": "30", **plain})[1]
    assert late == pytest.approx(prefill(100) + 30 * decode(1) + prefill(100) - 50.0, rel=1e-6)
    # with the overlap scheduler (the default) the batch after the poll was already formed: one step more
    assert ttfts(Backend.SGLANG, trace, {"scheduler-recv-interval": "30"})[1] == pytest.approx(late + decode(1), rel=1e-6)


def test_sglang_overlap_scheduler_forms_the_next_batch_while_the_current_one_runs():
    # scheduler.py event_loop_overlap (0.5.9): each iteration polls, forms and launches batch n+1 when
    # batch n starts, so a request seen after that start waits for batch n+1 too, whenever there is one
    trace = [TraceRequest(0.0, 100, 1000), TraceRequest(0.050, 100, 2)]
    on, off = ttfts(Backend.SGLANG, trace), ttfts(Backend.SGLANG, trace, {"disable-overlap-schedule": "true"})
    assert on[0] == pytest.approx(off[0], rel=1e-9) == pytest.approx(prefill(100), rel=1e-9)   # idle: at once
    assert on[1] == pytest.approx(off[1] + decode(1), rel=1e-6)   # A's next decode step was already launched
    # a prompt that arrives during another's prefill with nothing else to run starts when that one ends
    # (the scheduler found no batch n+1 and polled again after batch n), and rides ahead of A's decodes:
    # C (200) at 1 ms, during B0's 8 ms prefill; no decodes yet
    solo = [TraceRequest(0.0, 100, 1), TraceRequest(0.001, 200, 1)]
    assert ttfts(Backend.SGLANG, solo)[1] == pytest.approx(prefill(100) + prefill(200) - 1.0, rel=1e-6)
    # with a decode running (A), a prompt arriving mid-prefill waits for A's already formed decode step
    busy = [TraceRequest(0.0, 100, 1000), TraceRequest(0.0081, 100, 2), TraceRequest(0.0082, 100, 2)]
    t_on = ttfts(Backend.SGLANG, busy)
    t_off = ttfts(Backend.SGLANG, busy, {"disable-overlap-schedule": "true"})
    assert t_on[2] - t_off[2] == pytest.approx(decode(1), rel=1e-6)
    # EAGLE / MTP drafts turn it off (server_args.py: speculative decoding without SGLANG_ENABLE_SPEC_V2)
    spec = simulate(DRAFTING, Deployment.aggregated(Backend.SGLANG, TP1), LoadSpec.replay(tuple(trace)),
                    records=True, frontend_ms=0.0)
    spec_off = simulate(DRAFTING, Deployment.aggregated(Backend.SGLANG, TP1), LoadSpec.replay(tuple(trace)),
                        records=True, frontend_ms=0.0, engine_flags=RoleFlags.same({"disable-overlap-schedule": "true"}))
    assert spec.records.to_frame().ttft_ms.tolist() == pytest.approx(spec_off.records.to_frame().ttft_ms.tolist())


def test_trtllm_overlap_executor_forms_the_next_batch_while_the_current_one_runs():
    # _torch/pyexecutor/py_executor.py _executor_loop_overlap (disable_overlap_scheduler False by default,
    # llmapi/llm_args.py): batch n+1 is scheduled and launched before batch n's results are read, so a
    # prompt that arrives while A decodes waits for the step already formed; idle, it starts at once
    trace = [TraceRequest(0.0, 100, 1000), TraceRequest(0.050, 100, 2)]
    off_flags = {"disable_overlap_scheduler": "True"}
    on = ttfts(Backend.TRTLLM, trace, max_num_tokens=1000)
    off = ttfts(Backend.TRTLLM, trace, off_flags, max_num_tokens=1000)
    assert on[0] == pytest.approx(off[0], rel=1e-9) == pytest.approx(prefill(100), rel=1e-9)
    assert off[1] == pytest.approx(prefill(100) + 7 * decode(1) + mixed(100, 1) - 50.0, rel=1e-6)
    assert on[1] == pytest.approx(off[1] + decode(1), rel=1e-6)
    # MTP keeps it on (py_executor_creator.py turns it off only for a separate draft-model engine)
    spec = simulate(DRAFTING, Deployment.aggregated(Backend.TRTLLM, TP1, max_num_tokens=1000),
                    LoadSpec.replay(tuple(trace)), records=True, frontend_ms=0.0)
    spec_off = simulate(DRAFTING, Deployment.aggregated(Backend.TRTLLM, TP1, max_num_tokens=1000),
                        LoadSpec.replay(tuple(trace)), records=True, frontend_ms=0.0,
                        engine_flags=RoleFlags.same(off_flags))
    assert spec.records.to_frame().ttft_ms[1] > spec_off.records.to_frame().ttft_ms[1] + 6.0


def test_trtllm_batch_waiting_holds_new_prompts_until_the_timeout_or_the_token_share():
    # without the overlap executor (its own test above), whose extra step would shift each boundary
    trace = [TraceRequest(0.0, 100, 1000), TraceRequest(0.050, 100, 2)]
    flags = {"batch_wait_timeout_iters": "20", "batch_wait_max_tokens_ratio": "0.9", "disable_overlap_scheduler": "True"}
    # B is first seen at boundary 7; 101 tokens < 0.9 x 1000: held 20 iterations, then runs with A's decode
    got = ttfts(Backend.TRTLLM, trace, flags, max_num_tokens=1000)[1]
    assert got == pytest.approx(prefill(100) + 27 * decode(1) + mixed(100, 1) - 50.0, rel=1e-6)
    # a prompt that fills the share goes at once
    big = ttfts(Backend.TRTLLM, [TraceRequest(0.0, 100, 1000), TraceRequest(0.050, 950, 2)], flags,
                max_num_tokens=1000)[1]
    assert big == pytest.approx(prefill(100) + 7 * decode(1) + mixed(950, 1) - 50.0, rel=1e-6)


def test_trtllm_attention_dp_balancing_waits_for_a_prompt_per_rank():
    dp2 = ParallelConfig(tp=2, attn_dp=2)
    flags = {"attention_dp_config.enable_balance": "True", "attention_dp_config.timeout_iters": "10",
             "disable_overlap_scheduler": "True"}

    def run(trace):
        r = simulate(STEP, Deployment.aggregated(Backend.TRTLLM, dp2), LoadSpec.replay(tuple(trace)),
                     records=True, frontend_ms=0.0, engine_flags=RoleFlags.same(flags) if flags else None)
        return r.records.to_frame().ttft_ms.tolist()

    # two long decodes on two ranks; one new prompt: held 10 iterations (one rank has none), then runs
    base = [TraceRequest(0.0, 100, 1000), TraceRequest(0.0, 100, 1000)]
    one = run([*base, TraceRequest(0.050, 100, 2)])[2]
    two = run([*base, TraceRequest(0.050, 100, 2), TraceRequest(0.050, 100, 2)])[2]
    assert one > two + 9 * decode(2)   # a prompt per rank goes at once; a lone one waits the timeout
