"""One measured benchmark run: what was deployed, the load it served, and what the client measured.

Metric definitions are normalised here, whatever client wrote the file (REFERENCE.md):
- TTFT: request start to first output token, ms.
- TPOT: (request latency - TTFT) / (output tokens - 1), ms, averaged per request. aiperf and
  genai-perf call it `inter_token_latency`; vLLM and SGLang call it `tpot`.
- ITL: gap between consecutive streamed chunks, ms. aiperf: `inter_chunk_latency`; vLLM/SGLang: `itl`.
- E2EL: request latency, ms.
- Throughputs are whole-deployment figures: requests/s, output tokens/s, and total (input + output)
  tokens/s. Per-GPU figures are derived from the deployment's GPU count, never stored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from estimator.parallel import ParallelConfig
from perfdb.types import Backend


class Mode(str, Enum):
    AGG = "agg"          # prefill and decode in the same engine (continuous batching)
    DISAGG = "disagg"    # separate prefill and decode worker pools with KV transfer


class Client(str, Enum):
    """The program that wrote a result file (the parser that read it)."""

    AIPERF = "aiperf"
    GENAI_PERF = "genai-perf"
    VLLM = "vllm-bench-serve"
    SGLANG = "sglang-bench-serving"
    INFERENCEX = "inferencex"
    SILICON_CSV = "silicon-csv"      # the e2e_train_silicon.csv layout (AIConfigurator silicon dumps)


class Statistic(str, Enum):
    MEAN = "mean"
    P50 = "p50"
    P90 = "p90"
    P99 = "p99"


@dataclass(frozen=True)
class Stat:
    """Summary of one latency metric over the run's requests, ms. NaN where the client did not report it."""

    mean: float = math.nan
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan

    def get(self, which: Statistic) -> float:
        return float(getattr(self, which.value))

    @property
    def empty(self) -> bool:
        return all(math.isnan(v) for v in (self.mean, self.p50, self.p90, self.p99))


@dataclass(frozen=True)
class Role:
    """One pool of identical engine instances: the whole deployment (agg) or its prefill / decode side."""

    parallel: ParallelConfig
    workers: int | None = 1          # engine instances in the pool; None = the source does not say
    batch_size: int | None = None    # requests in flight per attention-DP rank, when the source says

    @property
    def num_gpus(self) -> int | None:
        return None if self.workers is None else self.parallel.num_gpus * self.workers


@dataclass(frozen=True)
class EngineSettings:
    """Engine knobs the run was launched with; None = the engine's documented default."""

    max_batch_size: int | None = None
    max_num_tokens: int | None = None
    mem_fraction: float | None = None
    kv_dtype: str | None = None
    extra: str = ""                  # free-form `key=value;...` for knobs the estimator does not model
    # every launch flag as the enrichment read it (`engine_flags`: `key=value;...`, a disaggregated run's
    # two engines as `prefill.key=...;decode.key=...`): the estimator's per-role rules read them
    flags: str = ""


@dataclass(frozen=True)
class Deployment:
    model: str                       # HF id or local path, as the estimator's load_model accepts
    system: str                      # perfdb system name, e.g. h200_sxm
    backend: Backend
    version: str                     # backend version; "" when unknown
    mode: Mode
    agg: Role | None = None          # set iff mode is AGG
    prefill: Role | None = None      # set iff mode is DISAGG
    decode: Role | None = None
    precision: str = ""              # headline recipe, e.g. fp8 / fp4
    gemm_quant: str = ""             # perfdb Dtype value of dense GEMMs ("" = model default)
    moe_quant: str = ""
    engine: EngineSettings = field(default_factory=EngineSettings)

    def __post_init__(self) -> None:
        from perfdb.errors import InputError
        from perfdb.specs import list_systems

        if self.system not in list_systems():
            raise InputError(f"unknown system {self.system!r} of {self.model}; known systems: {', '.join(list_systems())}")
        if self.mode is Mode.AGG and (self.agg is None or self.prefill or self.decode):
            raise InputError(f"agg deployment of {self.model} needs exactly the agg role (no prefill/decode roles)")
        if self.mode is Mode.DISAGG and (self.prefill is None or self.decode is None or self.agg):
            raise InputError(f"disagg deployment of {self.model} needs prefill and decode roles (no agg role)")

    @property
    def num_gpus(self) -> int | None:
        """GPUs of the whole deployment; None when a pool's worker count is unknown."""
        if self.mode is Mode.AGG:
            return self.agg.num_gpus
        p, d = self.prefill.num_gpus, self.decode.num_gpus
        return None if p is None or d is None else p + d

    @property
    def decode_gpus(self) -> int | None:
        return self.agg.num_gpus if self.mode is Mode.AGG else self.decode.num_gpus

    def key(self) -> str:
        """Stable text identity of the deployment (the grouping key for cross-validation)."""
        def role(r: Role | None) -> str:
            return "-" if r is None else f"{r.parallel.label()}x{r.workers if r.workers is not None else '?'}"

        return "|".join((self.model, self.system, self.backend.value, self.version, self.mode.value,
                         self.precision, self.gemm_quant, self.moe_quant,
                         role(self.agg), role(self.prefill), role(self.decode)))


@dataclass(frozen=True)
class Load:
    """The load the client offered. Exactly one of concurrency / request_rate is the control knob."""

    isl: float                              # mean input tokens per request
    osl: float                              # mean output tokens per request
    concurrency: float | None = None        # configured closed-loop cap (aiperf --concurrency, --max-concurrency)
    request_rate: float | None = None       # configured open-loop arrival rate, requests/s (None = unbounded)
    measured_concurrency: float | None = None   # average requests in flight as the client measured it
    isl_std: float = 0.0
    osl_std: float = 0.0
    num_requests: int | None = None
    num_warmups: int | None = None          # warm-up requests sent before measuring (None: the file does not say)

    def __post_init__(self) -> None:
        from perfdb.errors import InputError

        # NaN stays allowed (a client file that does not report it); a negative or zero length is a broken file
        for name in ("isl", "osl"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} is {getattr(self, name):g}, expected a mean token count > 0")
        for name in ("concurrency", "request_rate", "measured_concurrency"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise InputError(f"{name.replace('_', ' ')} is {getattr(self, name):g}, expected > 0")

    @property
    def effective_concurrency(self) -> float | None:
        """Requests in flight: the configured cap, else the measured average."""
        return self.concurrency if self.concurrency is not None else self.measured_concurrency


@dataclass(frozen=True)
class Metrics:
    ttft: Stat = field(default_factory=Stat)
    tpot: Stat = field(default_factory=Stat)
    itl: Stat = field(default_factory=Stat)
    e2el: Stat = field(default_factory=Stat)
    request_throughput: float = math.nan        # requests/s, whole deployment
    output_throughput: float = math.nan         # output tokens/s, whole deployment
    total_token_throughput: float = math.nan    # input + output tokens/s, whole deployment

    def __post_init__(self) -> None:
        """A latency the client reported is a finite number of ms > 0; NaN only where it reported none. The
        one exception: percentiles of the gaps between tokens (TPOT, ITL) may be 0, as a client reads several
        tokens sent close together in one network read and times them at once."""
        from perfdb.errors import InputError

        for name in ("ttft", "tpot", "itl", "e2el"):
            stat = getattr(self, name)
            for which in Statistic:
                value = stat.get(which)
                least_ok = 0.0 if name in ("tpot", "itl") and which is not Statistic.MEAN else math.ulp(0.0)
                if not math.isnan(value) and not (least_ok <= value < math.inf):
                    raise InputError(f"{name} {which.value} is {value:g} ms; a measured latency must be a finite "
                                     "number > 0")


@dataclass(frozen=True)
class ClientResult:
    """What a benchmark client file says: the load and the measurements, not what was deployed."""

    client: Client
    load: Load
    metrics: Metrics
    source_file: str
    model: str = ""                  # model name the client sent requests for, when recorded
    measured_at: str = ""            # ISO timestamp when the file says


@dataclass(frozen=True)
class MeasuredRun:
    run_id: str
    deployment: Deployment
    load: Load
    metrics: Metrics
    client: Client
    source_file: str
    measured_at: str = ""

    def __post_init__(self) -> None:
        from perfdb.errors import InputError

        for name in ("ttft", "tpot"):   # what calibration compares with the prediction
            if getattr(self.metrics, name).empty:
                raise InputError(f"run {self.run_id}: no {name.upper()} measured (NaN); a run needs TTFT and TPOT")

    @staticmethod
    def from_result(result: ClientResult, deployment: Deployment, run_id: str) -> "MeasuredRun":
        return MeasuredRun(run_id=run_id, deployment=deployment, load=result.load, metrics=result.metrics,
                           client=result.client, source_file=result.source_file, measured_at=result.measured_at)
