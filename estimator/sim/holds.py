"""TRT-LLM's holds of new context requests (a Worker's rules for one step; estimator.sim.worker).

Both are PyExecutor's (tensorrt_llm/_torch/pyexecutor/py_executor.py, 1.0-1.1), switched on by launch
flags (estimator/engines/trtllm.py scheduler_flags): attention-DP balancing and batch waiting. Both hold
context requests only; a generation-only (disaggregated decode) worker holds none.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.sim.requests import Role

if TYPE_CHECKING:
    from estimator.sim.worker import Worker


def hold_prompts(w: "Worker") -> bool:
    """Whether to hold the queued prompts for this step (decodes only); sets hold_left.
    TRT-LLM attention-DP balancing (PyExecutor._balance_adp_requests): while every rank runs
    generations, wait until every rank has a new prompt (here: as many queued prompts as ranks) or
    balance_iters steps. TRT-LLM batch waiting (PyExecutor._waiting_requests): hold the prompts the
    step would take until they and the decodes make wait_tokens_ratio x max_num_tokens tokens, or
    the prompts have been held wait_iters steps. Both hold context requests; a decode worker's queue
    holds received ones, which a generation-only worker runs as generations."""
    if not w.n_dec or w.pref or not w.waiting or w.role is Role.DECODE:
        return False
    if (w.balance_iters and w.ranks > 1 and w.n_dec >= w.ranks and len(w.waiting) < w.ranks
            and w.waited < w.balance_iters):
        w.hold_left = w.balance_iters - w.waited
        return True
    if not w.wait_iters or w.waited >= w.wait_iters:
        return False
    w.hold_left = w.wait_iters - w.waited
    r, want = w.reqs, w.wait_ratio * w.max_tokens
    tokens = w.n_dec * w.q_dec
    budget, room = w.max_tokens - tokens, w.max_batch - w.n_dec
    for rid in w.waiting:
        left = r.ctx_total[rid] - r.ctx_done[rid]
        if left > budget or room <= 0 or tokens >= want:
            break
        tokens, budget, room = tokens + left, budget - left, room - 1
    return tokens < want
