"""Boundary types of the search: what is asked (PlanRequest, Sla), what one deployment is
(WorkerSetup, Candidate) and what comes back (PlanResult).

Units: milliseconds for latencies, tokens per second for throughputs, GPUs for counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from estimator.parallel import ParallelConfig
from estimator.sim.types import client_spread
from perfdb.errors import InputError
from perfdb.types import Backend, Dtype, Source


class Mode(str, Enum):
    AGG = "agg"          # every replica runs prefill and decode (continuous batching)
    DISAGG = "disagg"    # prefill workers hand the KV cache to decode workers
    BOTH = "both"

    def modes(self) -> tuple["Mode", ...]:
        return (Mode.AGG, Mode.DISAGG) if self == Mode.BOTH else (self,)


class Constraint(str, Enum):
    """The SLA terms, named as the CLI flags that set them."""

    TTFT = "ttft"
    TPOT = "tpot"
    REQUEST_LATENCY = "request-latency"
    MEMORY = "memory"


class SlaAt(str, Enum):
    """Which value of a prediction must meet the targets."""

    MEDIAN = "median"    # the (calibrated) prediction itself: the measured mean lands on either side alike
    UPPER = "upper"      # the upper end of the calibration's prediction interval (80% interval: the
    #                      measured mean meets the target with ~90% probability, from cross-validated residuals)


@dataclass(frozen=True)
class Sla:
    ttft_ms: float
    tpot_ms: float
    request_latency_ms: float | None = None
    at: SlaAt = SlaAt.MEDIAN

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "tpot_ms", "request_latency_ms"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"{name.removesuffix('_ms').replace('_', '-')}={value}: must be > 0 ms")


# Static candidates per mode the load decision may replay (search.decide), whatever `--top-n` shows: with
# `--top-n 1` the plan used to replay one candidate per mode, so a deployment only a back-off (or the walk
# down the static ranking) would have revealed never ran and the answer depended on how many rows were printed.
DECIDE_POOL = 5


# The benchmark protocol a plan replays and writes into its aiperf.sh: request lengths uniform in
# [x(1 - r), x(1 + r)] around the ISL / OSL asked for (`servecast simulate --range-ratio` reads r the same
# way), by default as the InferenceX client spreads them (.github/workflows/benchmark-tmpl.yml and
# benchmark-multinode-tmpl.yml: RANDOM_RANGE_RATIO 0.8, lengths uniform in [0.8 n, n], a half-width of
# (1 - 0.8) / (1 + 0.8) around their mean): the protocol of the public measurements and of every training
# run whose client is recorded, which the shipped calibrations were fitted on. 0 replays fixed lengths,
# where a closed loop runs in lockstep waves (BENCHMARKS.md, the eleventh session).
INFERENCEX_RANGE_RATIO = client_spread(0.8)


@dataclass(frozen=True)
class PlanRequest:
    model: str
    system: str
    backends: tuple[Backend, ...]
    total_gpus: int
    isl: int
    osl: int
    sla: Sla
    prefix: int = 0
    mode: Mode = Mode.BOTH
    top_n: int = 5
    version: str | None = None           # backend version of the database; None = newest available
    gemm_quant: Dtype | None = None      # None keeps the checkpoint's numerics
    moe_quant: Dtype | None = None
    kv_dtype: Dtype | None = None
    db_root: Path | None = None
    calibration: Path | None = None      # explicit calibration directory
    stored_calibration: bool = True      # else apply the newest stored in the database (bundled: shipped one)
    hf_hub: Path | None = None           # local Hugging Face hub cache to find --model in
    range_ratio: float = INFERENCEX_RANGE_RATIO   # replayed / benchmarked lengths in [x(1 - r), x(1 + r)]

    def __post_init__(self) -> None:
        if self.total_gpus < 1:
            raise InputError(f"total-gpus={self.total_gpus}: must be >= 1")
        if self.isl < 1 or self.osl < 1:
            raise InputError(f"isl={self.isl}, osl={self.osl}: both must be >= 1 token")
        if not 0 <= self.prefix < self.isl:
            raise InputError(f"prefix={self.prefix}: must be >= 0 and smaller than isl={self.isl}")
        if self.top_n < 1:
            raise InputError(f"top-n={self.top_n}: must be >= 1")
        if not 0.0 <= self.range_ratio < 1.0:
            raise InputError(f"range-ratio={self.range_ratio}: must be in [0, 1) (request lengths in "
                             "[x(1 - r), x(1 + r)]; 0: fixed lengths)")
        if not self.backends:
            raise InputError("no backend given; accepted: trtllm, sglang, vllm, all")
        if self.mode == Mode.DISAGG and self.total_gpus < 2:
            raise InputError(f"mode disagg needs at least 2 GPUs (one prefill, one decode worker); "
                             f"total-gpus={self.total_gpus}")


@dataclass(frozen=True)
class WorkerSetup:
    """One kind of engine instance in a deployment: its parallelism, how many of them run, the
    largest batch it is allowed (requests per iteration) and its token budget per iteration."""

    parallel: ParallelConfig
    workers: int
    max_batch: int
    max_num_tokens: int

    @property
    def gpus(self) -> int:
        return self.parallel.num_gpus * self.workers


@dataclass(frozen=True)
class Metrics:
    ttft_ms: float
    tpot_ms: float
    request_latency_ms: float
    tokens_per_s_per_gpu: float      # output tokens/s divided by every GPU of the budget
    tokens_per_s_per_user: float     # 1000 / TPOT
    concurrency: float               # requests in flight across the whole budget
    mem_headroom: float              # share of the KV pool left free at this load (0..1)
    source: Source                   # worst data source of the numbers behind this point
    estimated_share: float = 0.0     # share of kernel time from extrapolation or roofline (not tables)


@dataclass(frozen=True)
class Candidate:
    """One evaluated deployment. Aggregated: `prefill` is None and `decode` describes the replicas.
    Disaggregated: both are set; `replicas` copies of the xPyD group run side by side."""

    mode: Mode
    backend: Backend
    version: str | None
    decode: WorkerSetup
    prefill: WorkerSetup | None
    replicas: int
    total_gpus: int                  # the budget, idle GPUs included
    metrics: Metrics
    row: int                         # index into the points table

    @property
    def gpus_used(self) -> int:
        group = self.decode.gpus + (self.prefill.gpus if self.prefill else 0)
        return group * (self.replicas if self.prefill else 1)

    def label(self) -> str:
        if self.prefill is None:
            return f"{self.decode.workers}x {self.decode.parallel.label()}"
        return (f"{self.replicas}x [{self.prefill.workers}P {self.prefill.parallel.label()} + "
                f"{self.decode.workers}D {self.decode.parallel.label()}]")


@dataclass(frozen=True)
class SimCheck:
    """A candidate replayed in the discrete-event simulator: at its static concurrency, or backed off to
    fewer clients per replica / xPyD group when that missed a target (search.decide.back_off); then
    `concurrency` is the backed-off load and `at_static` the replay that missed."""

    row: int
    ttft_ms: float
    tpot_ms: float
    meets_sla: bool
    statistic: str = "mean"      # the client statistic shown: the replay's mean, or the calibration's
    calibrated: bool = False     # corrected by a `--base simulate` calibration
    tokens_per_s_per_gpu: float = float("nan")   # simulated output tokens/s over every GPU of the budget
    ttft_hi_ms: float | None = None   # upper end of the calibration's interval (what --sla-at upper checks)
    tpot_hi_ms: float | None = None
    parts: object = None         # estimator.sim.metrics.TtftParts of the raw simulated mean TTFT
    concurrency: float = float("nan")   # requests in flight over the whole deployment this replay stands for
    runs: int = 1                # simulator runs spent on the candidate (1 + its back-off's)
    at_static: SimCheck | None = None   # the replay at the static concurrency, when this one is backed off

    @property
    def backed_off(self) -> bool:
        return self.at_static is not None
