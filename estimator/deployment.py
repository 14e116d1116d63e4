"""One deployment, one description: roles, workers, parallelism per role, the KV path, engine flags.

The estimator, the simulator, the search and calibration all take `Deployment`; two functions build
it, `from_row` (a measured run) and `Deployment.disaggregated` / `Deployment.aggregated` (a plan
candidate, a CLI flag set), and no module re-derives a layout rule:

- `within_domain(parallel, system)`: the run tables' `tp` counts every GPU of a multi-node replica, but
  the engines' multi-node recipes never stretch a tensor-parallel group over the network; beyond one
  NVLink domain attention runs data-parallel across domains with TP inside each.
- `kv_same_node(...)`: a disaggregated deployment is `groups` copies of an xPyD group (x prefill and y
  decode workers behind one router). Deployment tools place a group's workers together, so the KV
  cache moves over NVLink when the whole group fits one NVLink domain, and over the inter-node
  network otherwise (one path per group: a group that spans domains sends most of its pairs' KV over
  the network, and the model takes the network for all of them).
- `agg_layout(row, system)`: an aggregated run's engine as its launch flags state it (TP, EP, attention DP; the tables record
  tp x ep in `tp_size` for single-node EP runs), then within one domain.
- `launched_stage(par, gpus)`: a role's GPUs as its launch states them where the table writes another
  count (the calibration's run reader takes them from here too).
- `role_layout(...)` / `row_layouts(row, system)`: a disaggregated run's per-role attention DP and EP as
  its config states them (the enrichment's columns), then within one domain; `role_batch_cap(row, role)`:
  a worker's batch cap (per attention rank x the engine's ranks); `RUN_ROUTER` / `run_routers(row)`: the
  measured runs' router (Dynamo frontends, round-robin) and how many of them stand behind srtctl's nginx.
  Recorded worker counts are never re-derived.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from estimator.engines import profile_for
from estimator.engines.profile import DpMoeExchange, flag_bool, flag_int
from estimator.parallel import ParallelConfig
from perfdb.errors import InputError
from perfdb.specs import SystemSpec
from perfdb.types import Backend, Dtype, MoeKernel, Transport

if TYPE_CHECKING:
    from estimator.engine import EngineConfig
    from estimator.runs import RunRow


class Mode(str, Enum):
    AGG = "agg"
    DISAGG = "disagg"


class RoutePolicy(str, Enum):
    """How a pool's router picks a worker for a new request."""

    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"   # fewest requests waiting + in flight; ties to the lowest index


@dataclass(frozen=True)
class Pool:
    """Identical workers (engine instances) of one role.

    `max_batch` / `max_num_tokens` None = the backend's documented default (estimator.engines).
    """

    parallel: ParallelConfig
    workers: int = 1
    max_batch: int | None = None        # max requests in flight per worker (max_num_seqs / max_batch_size / max_running_requests)
    max_num_tokens: int | None = None   # tokens per engine step (max_num_batched_tokens / max_num_tokens / chunked_prefill_size)
    mem_fraction: float | None = None   # the engine's memory knob as launched, in its own sense (estimator.memory)
    expert_slots: int | None = None     # physical expert slots per MoE layer as launched (estimator.parallel.placed_experts)
    moe_exchange: DpMoeExchange | None = None   # attention-DP MoE exchange as launched (None: the engine's default)
    moe_kernel: MoeKernel | None = None         # MoE kernel its launch settings name (EngineProfile.moe_kernel)
    kv_tokens: int | None = None                # KV-pool cap per attention rank as launched (EngineProfile.kv_tokens)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InputError(f"a pool needs >= 1 worker, got {self.workers}")

    @property
    def num_gpus(self) -> int:
        return self.workers * self.parallel.num_gpus

    def engine_for(self, engine: "EngineConfig") -> "EngineConfig":
        """`engine` with this pool's limits where it states them, so memory (activations, KV pool) and
        the scheduler see the same engine; `max_batch` counts the worker's requests, the engine's
        max_batch_size is per attention rank."""
        per_rank = -(-self.max_batch // self.parallel.attn_dp) if self.max_batch else None
        return replace(engine, max_batch_size=per_rank or engine.max_batch_size,
                       max_num_tokens=self.max_num_tokens or engine.max_num_tokens,
                       mem_fraction=self.mem_fraction or engine.mem_fraction,
                       expert_slots=self.expert_slots or engine.expert_slots,
                       dp_moe_exchange=self.moe_exchange or engine.dp_moe_exchange,
                       moe_kernel=self.moe_kernel or engine.moe_kernel,
                       kv_tokens=self.kv_tokens or engine.kv_tokens)


def kv_same_node(domain_gpus: int, prefill_gpus: int, p_workers, decode_gpus: int, d_workers):
    """True where an xPyD group of `p_workers` prefill workers of `prefill_gpus` GPUs and `d_workers`
    decode workers of `decode_gpus` GPUs fits one NVLink domain (its KV moves over NVLink); worker
    counts may be arrays (the result broadcasts)."""
    group = np.asarray(p_workers) * prefill_gpus + np.asarray(d_workers) * decode_gpus
    out = group <= domain_gpus
    return bool(out) if np.ndim(out) == 0 else out


def launched_stage(par: ParallelConfig, gpus: int | None) -> ParallelConfig:
    """A run table's stage layout, or `gpus` GPUs at TP where the launch states another count (the
    enrichment's prefill_gpus / decode_gpus: the dynamo-sglang configs' placeholder tp 1, and the early
    multi-node rows' tp columns that hold the whole deployment's GPUs, calibrate.inferencex.match)."""
    if gpus and gpus != par.gpus_per_stage:
        return ParallelConfig(tp=gpus, pp=par.pp, moe_tp=gpus)
    return par


def role_layout(par: ParallelConfig, dp_attn: bool | None, ep: int | None, gpus: int | None = None) -> ParallelConfig:
    """A run table's role layout with the enrichment's attention-DP flag and EP size (either None: the
    table's columns stand); `gpus`, the GPUs of a stage as the launch states them, replaces the table's
    count where they differ (launched_stage). The table's `tp_size` counts the worker's GPUs in a stage. With attention DP
    every GPU is one attention rank running attention at TP 1 on its own requests (TRT-LLM
    `enable_attention_dp: true` with `tensor_parallel_size` N; SGLang `--enable-dp-attention
    --data-parallel-size N --tensor-parallel-size N`, as every InferenceX recipe sets it), and the MoE
    layers split `ep` ways over the same GPUs with the rest as expert TP. An `ep` that does not divide
    the GPUs is ignored (the table's split stands)."""
    par = launched_stage(par, gpus)
    if dp_attn is None and ep is None:
        return par
    gpus = par.gpus_per_stage
    attn_dp = gpus if dp_attn else (1 if dp_attn is not None else par.attn_dp)
    moe_ep = ep if ep and gpus % ep == 0 else par.moe_ep
    if gpus % moe_ep:
        moe_ep = 1
    return ParallelConfig(tp=gpus // attn_dp, pp=par.pp, attn_dp=attn_dp, moe_tp=gpus // moe_ep, moe_ep=moe_ep)


def within_domain(par: ParallelConfig, system: SystemSpec) -> ParallelConfig:
    """A run table's layout as the engines run it: TP capped at one NVLink domain (attention DP across
    domains, the experts keeping the recorded EP split)."""
    dom = system.nvlink_domain_gpus
    if par.tp <= dom or par.tp % dom:
        return par
    gpus = par.tp * par.attn_dp
    moe_tp = gpus // par.moe_ep if par.moe_ep > 1 and gpus % par.moe_ep == 0 else gpus
    return ParallelConfig(tp=dom, pp=par.pp, attn_dp=gpus // dom, moe_tp=moe_tp,
                          moe_ep=par.moe_ep if moe_tp != gpus else 1)


@dataclass(frozen=True)
class Deployment:
    """`agg` replicas, or `groups` copies of an xPyD group whose prefill pool feeds its decode pool
    (the pools count the workers of every group). `kv_path`: how the KV cache moves from a prefill to
    a decode worker (decided per group by `disaggregated`). `routers`: independent routers in front of
    the pools (srtctl's Dynamo frontends behind nginx, `run_routers`): each request reaches one of them
    at random and that one's `router` policy, with its own state, picks the worker (1: one router)."""

    backend: Backend
    agg: Pool | None = None
    prefill: Pool | None = None
    decode: Pool | None = None
    router: RoutePolicy = RoutePolicy.LEAST_LOADED
    kv_path: Transport = Transport.NETWORK
    groups: int = 1
    label: str = field(default="", compare=False)
    routers: int = 1

    def __post_init__(self) -> None:
        if self.agg is not None and (self.prefill is not None or self.decode is not None):
            raise InputError("a deployment is either aggregated (agg pool) or disaggregated (prefill + decode pools)")
        if self.agg is None and (self.prefill is None or self.decode is None):
            raise InputError("a disaggregated deployment needs both a prefill and a decode pool")
        if self.groups < 1:
            raise InputError(f"a deployment needs >= 1 xPyD group, got {self.groups}")
        if self.routers < 1:
            raise InputError(f"a deployment needs >= 1 router, got {self.routers}")

    @property
    def mode(self) -> Mode:
        return Mode.AGG if self.agg is not None else Mode.DISAGG

    @property
    def same_node(self) -> bool:
        return self.kv_path == Transport.NVLINK

    @property
    def num_gpus(self) -> int:
        if self.agg is not None:
            return self.agg.num_gpus
        return self.prefill.num_gpus + self.decode.num_gpus

    @property
    def unit_gpus(self) -> int:
        """GPUs of one agg replica or one xPyD group: what calibration features and invariance see."""
        if self.agg is not None:
            return self.agg.parallel.num_gpus
        return self.num_gpus // self.groups

    @property
    def units(self) -> int:
        """Agg replicas, or xPyD groups."""
        return self.agg.workers if self.agg is not None else self.groups

    @staticmethod
    def aggregated(backend: Backend, parallel: ParallelConfig, replicas: int = 1, **kw) -> "Deployment":
        return Deployment(backend, agg=Pool(parallel, replicas, kw.pop("max_batch", None),
                                            kw.pop("max_num_tokens", None)), **kw)

    @staticmethod
    def disaggregated(backend: Backend, prefill: Pool, decode: Pool, domain_gpus: int, groups: int = 1,
                      **kw) -> "Deployment":
        """`groups` copies of an xPyD group; `prefill` / `decode` count every group's workers. The KV
        path is NVLink when one group fits one NVLink domain of `domain_gpus` GPUs."""
        if prefill.workers % groups or decode.workers % groups:
            raise InputError(f"{prefill.workers} prefill and {decode.workers} decode workers do not split "
                             f"into {groups} equal xPyD groups")
        same = kv_same_node(domain_gpus, prefill.parallel.num_gpus, prefill.workers // groups,
                            decode.parallel.num_gpus, decode.workers // groups)
        kw.setdefault("kv_path", Transport.NVLINK if same else Transport.NETWORK)
        return Deployment(backend, prefill=prefill, decode=decode, groups=groups, **kw)


# The launch flags that state an engine's layout (SGLang / vLLM, TRT-LLM LLM-API spellings): its
# tensor-parallel size (the engine's GPUs), its expert-parallel size, and attention data parallelism.
TP_FLAGS = ("tensor-parallel-size", "tp-size", "tensor_parallel_size", "tp_size")
EP_FLAGS = ("ep-size", "expert-parallel-size", "ep_size", "moe_expert_parallel_size")
# SGLang's spelling before --ep-size: `--enable-ep-moe` makes the EP size the TP size (sglang 0.4.x
# srt/server_args.py ServerArgs.__post_init__: `if self.enable_ep_moe: self.ep_size = self.tp_size`);
# InferenceX's dsr1_fp4_b200_docker.sh passed it whatever the config's `ep` said.
EP_IS_TP_FLAG = "enable-ep-moe"
# Attention data parallelism as launched (TRT-LLM enable_attention_dp, SGLang --enable-dp-attention): every
# GPU of the engine an attention rank (role_layout).
DP_ATTN_FLAGS = ("enable_attention_dp", "enable-dp-attention")


def launched_layout(flags: dict[str, str], dp_attn: bool | None, ep: int | None) -> ParallelConfig | None:
    """An engine's layout as its launch flags state it: TP size = the engine's GPUs, EP from the flags
    (else `ep`, the config's), attention DP from the flags (else `dp_attn`, the config's); None where the
    flags give no TP size or nothing says whether attention ran data-parallel. What the launch script
    passed stands over the config: InferenceX's TRT-LLM scripts pick EP and attention DP from the
    concurrency and lengths (dsr1_fp4_b200_trt_slurm.sh: EP_SIZE=$TP above 8-32 clients, DP_ATTENTION
    at 256), whatever the config's `ep` / `dp-attn` say."""
    world = next((flag_int(flags, k, 0) for k in TP_FLAGS if k in flags), 0)
    on = next((b for b in (flag_bool(flags, k) for k in DP_ATTN_FLAGS) if b is not None), None)
    dp_on = on if on is not None else dp_attn
    if world < 1 or dp_on is None:
        return None
    launched_ep = next((flag_int(flags, k, 0) for k in EP_FLAGS if k in flags), 0)
    if flag_bool(flags, EP_IS_TP_FLAG):
        launched_ep = world
    return role_layout(ParallelConfig(tp=world, moe_tp=world), dp_on, launched_ep or ep or 1)


def agg_layout(row: "RunRow", system: SystemSpec) -> ParallelConfig:
    """An aggregated run's layout as its engine was launched (launched_layout), then within one NVLink
    domain. The launch flags' TP size is the engine's GPU count where it divides the table's (the InferenceX
    tables record tp x ep in `tp_size` for single-node EP runs, tp16 for `--tp 4 --ep 4`, and tp x ep in
    `attention_dp_size` for attention-DP ones, dp64 for `tp_size 8, ep_size 8, enable_attention_dp`);
    else, and without flags, the table's columns stand."""
    par = row.agg.parallel
    launched = launched_layout(row.facts.role_flags("agg"), row.facts.agg.dp_attn, row.facts.agg.ep)
    if launched is not None and par.pp == 1 and par.num_gpus % launched.num_gpus == 0:
        par = launched
    return within_domain(par, system)


def row_layouts(row: "RunRow", system: SystemSpec) -> tuple[ParallelConfig, ParallelConfig]:
    """(prefill, decode) layouts of a disaggregated run row: the enrichment's attention DP and EP per role
    (role_layout; the table's decode_moe_* columns repeat the prefill split in many rows, the config's
    decode EP does not), then within one NVLink domain."""
    f = row.facts
    return (within_domain(role_layout(row.prefill.parallel, f.prefill.dp_attn, f.prefill.ep, f.prefill.gpus), system),
            within_domain(role_layout(row.decode.parallel, f.decode.dp_attn, f.decode.ep, f.decode.gpus), system))


def role_batch_cap(row: "RunRow", role: str = "decode") -> int | None:
    """Requests one worker of `role` holds at most: the table's decode batch (decode only), else the
    recipe's max batch per attention rank (TRT-LLM's max_batch_size applies per attention-DP rank:
    pyexecutor's scheduler runs on each rank; SGLang's max_running_requests is recorded divided over its
    DP ranks) times the engine's attention ranks (as configured, before within_domain's cost layout);
    None = the engine's default."""
    if role == "decode" and row.decode.batch:
        return int(row.decode.batch)
    facts = getattr(row.facts, role)
    ranks = role_layout(getattr(row, role).parallel, facts.dp_attn, facts.ep, facts.gpus).attn_dp
    return facts.max_batch * ranks if facts.max_batch else None


# How the InferenceX multi-node harness routes: srt-slurm starts Dynamo frontends (docs: "By default,
# srtctl uses Dynamo frontends"), and `python -m dynamo.frontend` routes round-robin unless told
# otherwise (components/src/dynamo/frontend/main.py: --router-mode default "round-robin", Dynamo 0.5-0.8).
RUN_ROUTER = RoutePolicy.ROUND_ROBIN


def run_routers(row: "RunRow") -> int:
    """How many routers stand in front of a measured disaggregated run's workers. srtctl's multiple
    frontends (the enrichment's `frontends`: nginx on the head node in front of up to 10 Dynamo frontends;
    srtctl cli/mixins/frontend_stage.py and templates/nginx.conf.j2, 2026-01 on) make a request pass two
    round-robins that share no state: nginx's, kept per nginx worker process (`worker_processes auto`, an
    upstream without a shared `zone`, so which frontend a request reaches is unrelated to the last one:
    a random pick in the model), then the chosen frontend's own over the workers. Each frontend spreads its
    requests evenly, but which worker a request lands on is unrelated to which one is free, so two
    closed-loop clients meet on one worker (batch-1 decode workers: a whole request lifetime of TTFT)
    where one round-robin would hand each freed worker the next request. Unknown: one router."""
    return int(row.facts.frontends or 1)


def role_slots(row: "RunRow", role: str, experts: int) -> int | None:
    """Physical expert slots per MoE layer the row's `role` engine (agg, prefill or decode) was launched
    with: its engine profile's expert_slot_flags read from that engine's flags; None: one per expert."""
    return profile_for(Backend(row.backend)).expert_slots(row.facts.role_flags(role), experts)


def role_exchange(row: "RunRow", role: str) -> DpMoeExchange | None:
    """The attention-DP MoE exchange the row's `role` engine was launched with (EngineProfile.moe_exchange
    read from that engine's flags); None: the engine's default."""
    return profile_for(Backend(row.backend)).moe_exchange(row.facts.role_flags(role))


def role_kv_tokens(row: "RunRow", role: str) -> int | None:
    """The KV-pool cap per attention rank the row's `role` engine was launched with (EngineProfile.kv_tokens
    read from that engine's flags: SGLang --max-total-tokens); None: memory alone sizes its pool."""
    return profile_for(Backend(row.backend)).kv_tokens(row.facts.role_flags(role))


def role_moe_kernel(row: "RunRow", role: str, moe_dtype: Dtype | None, system: SystemSpec) -> MoeKernel | None:
    """The MoE kernel the row's `role` engine was launched to run for experts of `moe_dtype` on the row's GPU:
    its engine profile's moe_kernel_switches read from that engine's flags and the run's engine environment
    (vLLM's VLLM_MXFP4_USE_MARLIN, TensorRT-LLM's moe_config.backend); None: what the tables price anyway."""
    if moe_dtype is None:
        return None
    return profile_for(Backend(row.backend)).moe_kernel(row.facts.role_flags(role), row.facts.role_env(role), moe_dtype,
                                                        system.gpu.sm_version)


# --moe-a2a values the estimator prices (DeepEP's low-latency and normal kernels, estimator.layers)
MOE_A2A_CHOICES = ("none", "deepep")


def moe_a2a_exchange(backend: Backend, value: str | None) -> DpMoeExchange | None:
    """The MoE exchange a `--moe-a2a` option asks of `backend`'s attention-DP workers: None for none (the
    engine's default exchange), the engine's all-to-all where its launch flag picks one (SGLang
    --moe-a2a-backend); an InputError for an engine whose profile reads no such flag or a value not priced."""
    v = (value or "none").strip().lower()
    if v not in MOE_A2A_CHOICES:
        raise InputError(f"--moe-a2a {value!r}: accepted: {', '.join(MOE_A2A_CHOICES)}")
    if v == "none":
        return None
    prof = profile_for(backend)
    if prof.moe_a2a_flag is None:
        raise InputError(f"--moe-a2a {v} applies to sglang (its --moe-a2a-backend); {backend.value} picks its "
                         "MoE exchange itself (estimator/engines/" + backend.value + ".py)")
    return prof.moe_exchange({prof.moe_a2a_flag: v})


def role_pools(row: "RunRow", system: SystemSpec, experts: int = 0,
               moe_dtype: Dtype | None = None) -> tuple[Pool, Pool]:
    """A disaggregated row's prefill and decode pools of one worker each: layouts (row_layouts) and the
    limits its recipe states, expert slots included (`experts`: the model's routed experts, 0 for a
    dense model), each engine's MoE kernel (`moe_dtype`: the model's experts' format); the static estimate
    and the simulator both price these."""
    p_par, d_par = row_layouts(row, system)
    f = row.facts
    return (Pool(p_par, 1, role_batch_cap(row, "prefill"), f.prefill.max_num_tokens, f.prefill.mem_fraction,
                 role_slots(row, "prefill", experts), role_exchange(row, "prefill"),
                 role_moe_kernel(row, "prefill", moe_dtype, system), role_kv_tokens(row, "prefill")),
            Pool(d_par, 1, role_batch_cap(row), f.decode.max_num_tokens, f.decode.mem_fraction,
                 role_slots(row, "decode", experts), role_exchange(row, "decode"),
                 role_moe_kernel(row, "decode", moe_dtype, system), role_kv_tokens(row, "decode")))


def from_row(row: "RunRow", system: SystemSpec, p_workers: int | None = None,
             d_workers: int | None = None, experts: int = 0, moe_dtype: Dtype | None = None) -> Deployment:
    """The deployment a measured run describes: its layouts within an NVLink domain, its worker counts
    as recorded (or, where the table omits them, the counts the caller derived by the estimator's
    rules), each role's batch cap, tokens per step and memory share as its recipe states (run_facts:
    max_num_tokens and mem_fraction in the engine's own sense, as Pool takes them; a recipe that sets
    SGLang's chunked-prefill-size also sets mem-fraction-static, so the role never falls back on the
    default fraction SGLang would derive from that chunk), each engine's expert slots (`experts`: the
    model's routed experts; role_slots) and MoE kernel (`moe_dtype`; role_moe_kernel), one agg replica or
    one xPyD group."""
    backend = Backend(row.backend)
    if row.mode != "disagg":
        if row.agg is None:
            raise InputError(f"run {row.id}: an agg row needs its tp_size")
        return Deployment(backend, agg=Pool(agg_layout(row, system), row.agg.workers or 1,
                                            expert_slots=role_slots(row, "agg", experts),
                                            moe_exchange=role_exchange(row, "agg"),
                                            moe_kernel=role_moe_kernel(row, "agg", moe_dtype, system),
                                            kv_tokens=role_kv_tokens(row, "agg")))
    if row.prefill is None or row.decode is None:
        raise InputError(f"run {row.id}: a disagg row needs prefill_tp_size and decode_tp_size")
    p = row.prefill.workers or p_workers
    d = row.decode.workers or d_workers
    if p is None or d is None:
        raise InputError(f"run {row.id} does not record its worker counts and none were derived")
    pre, dec = role_pools(row, system, experts, moe_dtype)
    return Deployment.disaggregated(
        backend, replace(pre, workers=int(p)), replace(dec, workers=int(d)), system.nvlink_domain_gpus,
        router=RUN_ROUTER, routers=run_routers(row))
