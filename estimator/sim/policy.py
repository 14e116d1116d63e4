"""Scheduler policies: how each serving engine fills one iteration. One small class per backend.

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

Limits come from, in order: the Pool's `max_batch` / `max_num_tokens`, the step model's resolved
engine defaults (estimator.engine, which knows the GPU), and the defaults here (the same constants,
for step models without an engine, e.g. AnalyticStepModel).
"""
from __future__ import annotations

from dataclasses import dataclass

from estimator.engine import (
    MIXES_PREFILL,
    SGLANG_CHUNK_SMALL,
    SGLANG_MAX_RUNNING,
    TRTLLM_MAX_BATCH,
    TRTLLM_MAX_TOKENS,
    VLLM_MAX_SEQS,
    VLLM_MAX_TOKENS,
)
from perfdb.errors import NotFoundError
from perfdb.registry import add
from perfdb.types import Backend


@dataclass(frozen=True)
class SchedulerPolicy:
    backend: Backend
    mixes_decode: bool        # decodes ride in the same step as prefill chunks (else they pause)
    reserve_output: float     # fraction of each request's remaining output tokens held in KV at admission
    chunked: bool             # a prompt may be split across steps when it exceeds the step budget
    default_max_batch: int    # requests in flight per worker
    default_max_tokens: int   # tokens per step (prefill tokens + decodes when mixing)


_POLICIES: dict[Backend, SchedulerPolicy] = {}


def register(policy: SchedulerPolicy) -> SchedulerPolicy:
    return add(_POLICIES, policy.backend, policy, "scheduler policy")


def policy_for(backend: Backend) -> SchedulerPolicy:
    try:
        return _POLICIES[backend]
    except KeyError:
        known = ", ".join(b.value for b in _POLICIES)
        raise NotFoundError(f"no scheduler policy for backend {backend.value!r}; simulated backends: {known}") from None


VLLM = register(SchedulerPolicy(Backend.VLLM, mixes_decode=MIXES_PREFILL[Backend.VLLM], reserve_output=0.0,
                                chunked=True, default_max_batch=VLLM_MAX_SEQS, default_max_tokens=VLLM_MAX_TOKENS))
# SGLang's new_token_ratio starts at 0.7 and decays towards ~0.1 while nothing is retracted; 0.3 is a
# mid-run value (a modelling choice, not fitted).
SGLANG = register(SchedulerPolicy(Backend.SGLANG, mixes_decode=MIXES_PREFILL[Backend.SGLANG], reserve_output=0.3,
                                  chunked=True, default_max_batch=SGLANG_MAX_RUNNING,
                                  default_max_tokens=SGLANG_CHUNK_SMALL))
# TRT-LLM chunked context is off by default, but a prompt longer than max_num_tokens must still be
# split to run at all, so the simulator chunks only those (see Worker._select).
TRTLLM = register(SchedulerPolicy(Backend.TRTLLM, mixes_decode=MIXES_PREFILL[Backend.TRTLLM], reserve_output=1.0,
                                  chunked=False, default_max_batch=TRTLLM_MAX_BATCH,
                                  default_max_tokens=TRTLLM_MAX_TOKENS))
