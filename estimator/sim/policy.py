"""Scheduler policies: how each serving engine fills one iteration, read from its engine profile
(estimator/engines/<engine>.py, with the source each rule was read from).

The event loop (worker.py) is shared; a policy only states the engine's rules as data:

- vLLM (V1 scheduler): running requests first — every decode takes 1 token of the step's budget
  (`max_num_batched_tokens`), then partially prefilled prompts, then waiting requests, chunked to fit.
  KV blocks are allocated for the tokens scheduled, nothing is reserved for future output, so a
  growing batch can run out of KV: the latest-admitted request is preempted (recompute).
- SGLang: prefill priority — when waiting prompts can be admitted the step is a prefill-only batch
  (chunked at `chunked_prefill_size`) and running decodes pause for it (mixed chunks are off by
  default). Admission reserves a fraction of each request's remaining output (its new_token_ratio,
  which decays at run time; we hold it at `reserve_output`); running out still retracts (recompute).
- TensorRT-LLM (in-flight batching): every iteration carries all in-flight generations plus context
  requests within `max_num_tokens` and `max_batch_size`; the default capacity scheduler
  (GUARANTEED_NO_EVICT) admits a request only when its whole prompt + output fits, so it never evicts.

Engine launch flags that change these rules (a replayed run's, read by each engine file's
`scheduler_flags`): SGLang `--scheduler-recv-interval` (a new request waits for the scheduler's next
poll, every N decode iterations), TRT-LLM batch waiting (`batch_wait_timeout_iters`,
`batch_wait_max_tokens_ratio`: new prompts held while decodes run), chunked-prefill switches.

Limits come from, in order: the Pool's `max_batch` / `max_num_tokens`, the step model's resolved
engine defaults (estimator.engine, which knows the GPU), and the engine profile's defaults (for step
models without an engine, e.g. AnalyticStepModel).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from estimator.engines import profile_for
from perfdb.errors import NotFoundError
from perfdb.types import Backend


@dataclass(frozen=True)
class SchedulerPolicy:
    backend: Backend
    mixes_decode: bool        # decodes ride in the same step as prefill chunks (else they pause)
    reserve_output: float     # fraction of each request's remaining output tokens held in KV at admission
    chunked: bool             # a prompt may be split across steps when it exceeds the step budget
    default_max_batch: int    # requests in flight per worker
    default_max_tokens: int   # tokens per step (prefill tokens + decodes when mixing)
    budget_per_dp_rank: bool = True   # attention DP: each rank has the token budget (else it is split)
    recv_interval: int = 1    # decode steps between looks at new arrivals (SGLang --scheduler-recv-interval)
    wait_iters: int = 0       # steps new prompts may be held while decodes run (TRT-LLM batch waiting)
    wait_tokens_ratio: float = 0.0   # ... unless the step would hold this share of the token budget
    balance_iters: int = 0    # steps new prompts may wait for every attention-DP rank to have one (TRT-LLM)
    dp_rank_by_room: bool = False   # disagg prefill: a request's attention-DP rank is random (SGLang; sim/ranks.py)
    decode_first: bool = False      # disagg: the prefill waits for a decode reservation (SGLang; sim/prealloc.py)
    overlap: bool = False           # the next batch is formed when the current one starts (worker.py)
    overlap_spec: bool = False      # ... also with speculative decoding
    speculative: bool | None = None  # the role's own flags launch speculative decoding (None: unknown)
    reserved_decode_tokens: int = 0  # disagg decode pre-allocation: KV kept free per request held (sim/prealloc.py)


def policy_for(backend: Backend, flags: Mapping[str, str] | None = None) -> SchedulerPolicy:
    """The engine profile's scheduler rules (estimator/engines/<engine>.py) with its default limits,
    under the launch `flags` a run used (the engine's own names, e.g. SGLang `scheduler-recv-interval`).
    TRT-LLM's chunked context is off by default, but a prompt longer than max_num_tokens must still be
    split to run at all, so the simulator chunks only those (see Worker._select)."""
    prof = profile_for(backend)
    if prof.scheduler is None:
        raise NotFoundError(f"backend {backend.value!r} has no serving scheduler to simulate; simulated "
                            "backends: trtllm, sglang, vllm")
    r = prof.scheduler.with_flags(flags)
    return SchedulerPolicy(backend, mixes_decode=r.mixes_decode, reserve_output=r.reserve_output, chunked=r.chunked,
                           default_max_batch=prof.max_batch, default_max_tokens=prof.max_num_tokens,
                           budget_per_dp_rank=r.budget_per_dp_rank, recv_interval=r.recv_interval,
                           wait_iters=r.wait_iters, wait_tokens_ratio=r.wait_tokens_ratio,
                           balance_iters=r.balance_iters, dp_rank_by_room=r.dp_rank_by_room,
                           decode_first=prof.handoff.decode_first, overlap=r.overlap, overlap_spec=r.overlap_spec,
                           speculative=r.speculative, reserved_decode_tokens=r.reserved_decode_tokens)
