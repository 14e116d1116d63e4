"""Typed inputs of the serving simulator: the load to offer (the deployment is estimator.deployment).

Everything here is a frozen dataclass or a str Enum so the CLI, the search and calibration pass the
same values into `simulate()` without dicts of strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from perfdb.errors import InputError


class Arrival(str, Enum):
    """How an open-loop load spaces its requests in time."""

    POISSON = "poisson"     # exponential gaps (aiperf --request-rate default, vllm bench serve burstiness=1)
    CONSTANT = "constant"   # equal gaps of 1/rate seconds


class LengthDist(str, Enum):
    """How ISL/OSL are drawn per request."""

    FIXED = "fixed"
    UNIFORM = "uniform"     # integers in [mean*(1-r), mean*(1+r)] as vLLM/aiperf "random" datasets (r = range ratio)
    NORMAL = "normal"       # mean and stddev as aiperf --synthetic-input-tokens-stddev, clipped to >= 1


# Bounds on what one simulated run can hold (the arrays are sized by them): 10M tokens per request is beyond
# every model's context window, 10M requests beyond any benchmark run.
MAX_TOKENS = 10_000_000
MAX_REQUESTS = 10_000_000


def client_spread(r: float) -> float:
    """The half-width, relative to their mean, of lengths a client draws uniformly in [r x n, n] (InferenceX's
    benchmark client: `--random-range-ratio r`): (1 - r) / (1 + r) around the mean n (1 + r) / 2."""
    return (1 - r) / (1 + r)


@dataclass(frozen=True)
class Lengths:
    """Distribution of a per-request token count (input or output length)."""

    mean: int
    dist: LengthDist = LengthDist.FIXED
    range_ratio: float = 0.0   # UNIFORM only, in [0, 1)
    stddev: float = 0.0        # NORMAL only, tokens

    def __post_init__(self) -> None:
        if not 1 <= self.mean <= MAX_TOKENS:
            raise InputError(f"length mean must be 1 to {MAX_TOKENS:,} tokens, got {self.mean}")
        if not 0.0 <= self.range_ratio < 1.0:
            raise InputError(f"range ratio must be in [0, 1), got {self.range_ratio}")
        if self.stddev < 0:
            raise InputError(f"length stddev must be >= 0, got {self.stddev}")

    @staticmethod
    def of(mean: int, range_ratio: float = 0.0) -> "Lengths":
        return Lengths(mean, LengthDist.UNIFORM if range_ratio > 0 else LengthDist.FIXED, range_ratio)


@dataclass(frozen=True)
class TraceRequest:
    arrival_s: float     # seconds from the start of the trace
    isl: int
    osl: int


@dataclass(frozen=True)
class LoadSpec:
    """The offered load. Exactly one of `concurrency`, `request_rate` and `trace` is set.

    Closed loop (`concurrency`): that many clients each send a request, wait for its last token,
    and send the next at once (aiperf --concurrency, vllm bench serve --max-concurrency with
    an infinite rate). Open loop (`request_rate`, requests/s): arrivals independent of completions.
    Trace: replay the given arrivals and lengths (isl/osl/num_requests come from the trace).
    `warmup` requests are sent first and left out of the metrics (aiperf --warmup-request-count): a
    closed loop's opening wave, where every client sends at once, then does not weigh on them.
    `num_requests` counts the measured ones (the trace's requests include its warm-up).
    """

    isl: Lengths
    osl: Lengths
    num_requests: int
    concurrency: int | None = None
    request_rate: float | None = None
    arrival: Arrival = Arrival.POISSON
    trace: tuple[TraceRequest, ...] | None = None
    warmup: int = 0

    def __post_init__(self) -> None:
        modes = [self.concurrency is not None, self.request_rate is not None, self.trace is not None]
        if sum(modes) != 1:
            raise InputError("a load needs exactly one of concurrency, request rate or trace")
        if self.num_requests < 1:
            raise InputError(f"num_requests must be >= 1, got {self.num_requests}")
        if self.num_requests + self.warmup > MAX_REQUESTS:
            raise InputError(f"num_requests + warmup must be <= {MAX_REQUESTS:,}, got {self.num_requests + self.warmup}")
        if self.warmup < 0 or (self.trace is not None and self.warmup >= len(self.trace)):
            raise InputError(f"warmup must be >= 0 and leave requests to measure, got {self.warmup}")
        if self.concurrency is not None and self.concurrency < 1:
            raise InputError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.request_rate is not None and not self.request_rate > 0:
            raise InputError(f"request rate must be > 0 requests/s, got {self.request_rate}")

    @staticmethod
    def closed(concurrency: int, isl: int | Lengths, osl: int | Lengths, num_requests: int,
               warmup: int = 0) -> "LoadSpec":
        return LoadSpec(_lengths(isl), _lengths(osl), num_requests, concurrency=concurrency, warmup=warmup)

    @staticmethod
    def open(rate: float, isl: int | Lengths, osl: int | Lengths, num_requests: int,
             arrival: Arrival = Arrival.POISSON, warmup: int = 0) -> "LoadSpec":
        return LoadSpec(_lengths(isl), _lengths(osl), num_requests, request_rate=rate, arrival=arrival,
                        warmup=warmup)

    @staticmethod
    def replay(trace: tuple[TraceRequest, ...], warmup: int = 0) -> "LoadSpec":
        if not trace:
            raise InputError("a trace needs at least one request")
        isl = round(sum(r.isl for r in trace) / len(trace))
        osl = round(sum(r.osl for r in trace) / len(trace))
        return LoadSpec(Lengths(max(isl, 1)), Lengths(max(osl, 1)), max(len(trace) - warmup, 1), trace=trace,
                        warmup=warmup)

    @property
    def total_requests(self) -> int:
        """Requests sent: warm-up plus measured."""
        return len(self.trace) if self.trace is not None else self.warmup + self.num_requests

    def label(self) -> str:
        if self.concurrency is not None:
            return f"concurrency {self.concurrency}"
        if self.request_rate is not None:
            return f"{self.request_rate:g} req/s ({self.arrival.value})"
        return f"trace of {self.num_requests} requests"


def _lengths(value: int | Lengths) -> Lengths:
    return value if isinstance(value, Lengths) else Lengths(int(value))

