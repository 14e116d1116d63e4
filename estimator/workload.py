"""The load a deployment serves: sequence lengths, cached prefix, and requests in flight."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    isl: int                # input tokens per request (including the cached prefix)
    osl: int                # output tokens per request
    prefix: int = 0         # input tokens already in the KV cache (prefix caching hit)
    concurrency: int = 1    # requests in flight per replica (agg) / per decode worker (disagg)
    # Requests in a finite benchmark run (None: steady state only). A closed-loop client starts all
    # `concurrency` requests at once, so the run's mean TTFT includes that first burst's prefill queue,
    # weighted by concurrency / num_requests (InferenceX runs 10 x concurrency requests).
    num_requests: int | None = None
