"""Attention-DP workers in the simulator: a request runs on one rank, the worker's iteration holds every
rank's share of the token budget (TRT-LLM, vLLM: a budget per rank; SGLang: the configured budget split
over the ranks)."""
from __future__ import annotations

import numpy as np

from estimator.parallel import ParallelConfig
from estimator.sim import AnalyticStepModel, Deployment, LoadSpec, Pool, RoleSteps, simulate
from estimator.sim.engine import _limits
from estimator.sim.policy import policy_for
from estimator.sim.ranks import draw_rooms
from perfdb.types import Backend

MODEL = AnalyticStepModel(step_fixed_ms=5.0, prefill_ms_per_token=0.01, decode_ms_per_request=0.01,
                          transfer_fixed_ms=0.0, transfer_ms_per_token=0.0, kv_capacity_tokens=10_000_000)
DP4 = ParallelConfig(tp=1, attn_dp=4)


def test_token_budget_per_rank_or_split_as_the_engine_does():
    pool = Pool(DP4, 1, max_batch=64, max_num_tokens=4096)
    assert _limits(MODEL, pool, policy_for(Backend.TRTLLM))[1:] == (4 * 4096, 4096)   # each rank: 4096
    assert _limits(MODEL, pool, policy_for(Backend.VLLM))[1:] == (4 * 4096, 4096)
    assert _limits(MODEL, pool, policy_for(Backend.SGLANG))[1:] == (4096, 1024)       # 4096 split over 4 ranks
    assert _limits(MODEL, Pool(DP4, 1, max_num_tokens=4096), policy_for(Backend.SGLANG))[0] == \
        policy_for(Backend.SGLANG).default_max_batch           # max_running_requests split too, not x4
    tp = Pool(ParallelConfig(tp=4), 1, max_batch=64, max_num_tokens=4096)
    assert _limits(MODEL, tp, policy_for(Backend.SGLANG))[1:] == (4096, 4096)


def _prefill_ends(backend: Backend, isl: int) -> np.ndarray:
    dep = Deployment(backend, prefill=Pool(DP4, 1, max_batch=64, max_num_tokens=4096), decode=Pool(DP4, 1))
    # the first request starts an iteration alone; the next four queue behind it
    r = simulate(RoleSteps(MODEL, MODEL), dep, LoadSpec.closed(5, isl, 2, 5), records=True, frontend_ms=0.0)
    return np.sort(r.records.prefill_end_s)


def test_an_attention_dp_prefill_worker_serves_one_request_per_rank_per_iteration():
    # TRT-LLM: the four queued prompts of 4096 tokens, one per rank, finish in the same iteration
    ends = _prefill_ends(Backend.TRTLLM, 4096)
    assert ends[0] == float(MODEL.prefill_ms(1, 4096, 0)) / 1e3 and np.allclose(ends[1:], ends[1])
    # SGLang: a rank gets 1024 of the 4096 tokens a step, so a lone prompt of 2048 takes two steps
    ends = _prefill_ends(Backend.SGLANG, 2048)
    assert ends[0] >= 2 * float(MODEL.prefill_ms(1, 1024, 0)) / 1e3 > float(MODEL.prefill_ms(1, 2048, 0)) / 1e3


def test_sglang_disagg_prefill_puts_each_request_on_its_bootstrap_rooms_rank():
    """SGLang's PD prefill worker sends a request to rank bootstrap_room % dp (a random room per request),
    not to an idle rank: prompts that draw the same rank take turns while other ranks idle; TRT-LLM's
    balanced placement runs them side by side. 8 prompts of one rank budget each arrive at once."""
    isl, n, pool = 1024, 8, Pool(DP4, 1, max_batch=64, max_num_tokens=4096)
    dep = Deployment(Backend.SGLANG, prefill=pool, decode=Pool(DP4, 1))
    r = simulate(RoleSteps(MODEL, MODEL), dep, LoadSpec.closed(n, isl, 2, n), records=True, frontend_ms=0.0, seed=3)
    rank = np.array(draw_rooms(n, 3 + 1)) % DP4.attn_dp
    ends = r.records.prefill_end_s
    for k in range(DP4.attn_dp):   # one rank's prompts finish one per iteration, in arrival order
        mine = ends[rank == k]
        assert len(np.unique(mine)) == len(mine)
    # the first prompt starts an iteration alone (the worker was idle); the other seven then drain in as many
    # iterations as the busiest rank holds of them
    busiest = np.bincount(rank[1:], minlength=DP4.attn_dp).max()
    assert len(np.unique(ends)) == 1 + busiest > 1 + -(-(n - 1) // DP4.attn_dp)
    balanced = Deployment(Backend.TRTLLM, prefill=Pool(DP4, 1, max_batch=64, max_num_tokens=isl), decode=Pool(DP4, 1))
    t = simulate(RoleSteps(MODEL, MODEL), balanced, LoadSpec.closed(n, isl, 2, n), records=True, frontend_ms=0.0)
    assert len(np.unique(t.records.prefill_end_s)) == 1 + -(-(n - 1) // DP4.attn_dp) < len(np.unique(ends))


def _in_flight_at_prefill_starts(backend: Backend, slots: int) -> int:
    """Most requests at once between their prefill start and their finish, with a decode pool of `slots`."""
    tp1 = ParallelConfig()
    dep = Deployment(backend, prefill=Pool(tp1, 2, max_batch=64, max_num_tokens=4096), decode=Pool(tp1, 1, max_batch=slots))
    r = simulate(RoleSteps(MODEL, MODEL), dep, LoadSpec.closed(3 * slots, 512, 64, 12 * slots), records=True,
                 frontend_ms=0.0).records
    start, finish = r.prefill_start_s, r.finish_s
    return max(int(np.sum((start <= t) & (finish > t))) for t in start)


def test_sglang_prefills_only_what_a_decode_worker_has_reserved_room_for():
    """SGLang's prefill starts once the decode side pre-allocated the request's KV (PrefillBootstrapQueue /
    DecodePreallocQueue): with a full decode pool, new requests wait before their prefill, so never more
    than the decode slots are between prefill start and finish. TRT-LLM's context servers prefill ahead and
    the requests then wait for a generation slot."""
    slots = 4
    assert _in_flight_at_prefill_starts(Backend.SGLANG, slots) <= slots
    assert _in_flight_at_prefill_starts(Backend.TRTLLM, slots) > slots


def test_sglang_decode_preallocation_keeps_its_reserve_free_for_every_request_it_holds():
    """DecodePreallocQueue (sglang 0.5.x): a request is pre-allocated while its prompt + 512 reserved tokens
    fit in the free KV less 512 for every request already held; `--num-reserved-decode-tokens` sets it."""
    from types import SimpleNamespace

    from estimator.sim.policy import policy_for
    from estimator.sim.prealloc import DecodePrealloc
    from estimator.sim.requests import Requests

    assert policy_for(Backend.SGLANG).reserved_decode_tokens == 512
    assert policy_for(Backend.SGLANG, {"num-reserved-decode-tokens": "64"}).reserved_decode_tokens == 64
    assert policy_for(Backend.TRTLLM).reserved_decode_tokens == 0

    def admitted(reserved: int) -> int:
        reqs = Requests([1000] * 20, [1000] * 20)
        w = SimpleNamespace(index=0, n_dec=0, pref=[], waiting=[], inbox=[], max_batch=64, cap=10_000,
                            sum_kv=0, pref_kv=0)
        pre = DecodePrealloc(reqs, reserved)
        return sum(pre.admit(w, rid) for rid in range(20))

    # k held: 10,000 - 1,000 k - 512 k >= 1,000 + 512  ->  k <= 5, so six fit; without a reserve, ten
    assert admitted(512) == 6 and admitted(0) == 10
