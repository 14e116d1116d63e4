"""The load a deployment serves: sequence lengths, cached prefix, and requests in flight."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdb.errors import InputError

# The closed-loop benchmark servecast predicts: a fixed-length client sends this many requests per
# request in flight (the InferenceX sweeps behind the training runs, and the `aiperf profile
# --request-count` every plan writes). Its mean TTFT carries the opening burst and, with fixed output
# lengths, the waves that come back together; plan and estimate predict that benchmark, so that what
# they print is what the written aiperf command measures, and the calibration fitted on such runs
# corrects the same quantity.
BENCH_REQUESTS_PER_CONCURRENCY = 10


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

    def __post_init__(self) -> None:
        # fields may be arrays (vectorised sweeps): every element must be valid
        if np.any(np.asarray(self.isl) < 1) or np.any(np.asarray(self.osl) < 1):
            raise InputError(f"isl={self.isl}, osl={self.osl}: both must be >= 1 token")
        if np.any(np.asarray(self.prefix) < 0) or np.any(np.asarray(self.prefix) >= np.asarray(self.isl)):
            raise InputError(f"prefix={self.prefix}: must be >= 0 and below isl={self.isl}")
        if not np.all(np.asarray(self.concurrency) > 0):
            raise InputError(f"concurrency={self.concurrency}: must be >= 1 request in flight")
        if self.num_requests is not None and not np.all(np.asarray(self.num_requests) > 0):
            raise InputError(f"num_requests={self.num_requests}: must be >= 1")

    @staticmethod
    def benchmark(isl, osl, prefix=0, concurrency=1) -> "Workload":
        """The load of the closed-loop benchmark (BENCH_REQUESTS_PER_CONCURRENCY requests per one in flight)."""
        return Workload(isl, osl, prefix, concurrency, num_requests=concurrency * BENCH_REQUESTS_PER_CONCURRENCY)
