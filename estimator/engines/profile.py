"""EngineProfile: what one serving engine does, as data, with where each value came from.

One file per engine in this package registers one profile (vllm.py, sglang.py, trtllm.py, torch_eager.py);
`profile_for(backend)` reads the registry. The estimator's engine resolution (estimator.engine), the
simulator's scheduler (estimator.sim.policy) and the disaggregated hand-off all read these profiles,
so an engine's rules live in one place. Every field is named in `provenance` with the engine source
file and version it was read from, or the fit that produced it and its cross-validated figure
(tests/estimator/test_engines.py fails on a field without one).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum

from perfdb.types import Backend, Dtype, MoeKernel


@dataclass(frozen=True)
class SchedulerRules:
    """How the engine fills one iteration (the simulator's policy; estimator.sim.policy).

    The defaults are the engine's own; `from_flags` (one per engine file) reads the launch flags that
    change them, under the engine's own flag names, so a replayed run uses what it was launched with."""

    mixes_decode: bool        # decodes ride in the same iteration as prefill chunks (else they pause)
    reserve_output: float     # share of each request's remaining output held in KV at admission
    chunked: bool             # a prompt may be split across iterations by default
    # with attention DP: True = every rank has its own token budget and batch cap (the worker runs
    # ranks x budget per iteration); False = the engine splits the configured ones over the ranks
    budget_per_dp_rank: bool = True
    recv_interval: int = 1    # decode iterations between two looks at newly arrived requests (1: every one)
    wait_iters: int = 0       # iterations new prompts may be held back while decodes run, to batch more (0: never)
    wait_tokens_ratio: float = 0.0   # ... unless the iteration would already hold this share of max_num_tokens
    balance_iters: int = 0    # attention DP: iterations new prompts may wait for every rank to have one (0: never)
    # attention DP in a disaggregated prefill worker: each request lands on a rank drawn from its
    # bootstrap room (uniform, blind to the ranks' queues) instead of the least-loaded one
    dp_rank_by_room: bool = False
    # overlap scheduler: the batch that starts when one ends was formed when that one started (the CPU
    # schedules one batch ahead), so a request that arrives during a batch waits one more iteration
    # whenever the engine had other work; `overlap_spec`: it stays on with speculative decoding
    overlap: bool = False
    overlap_spec: bool = False
    # whether this engine was launched with speculative decoding, as its own flags state it (None: they do
    # not say; the step model's drafts decide). A disaggregated run's servers can differ: drafts on the
    # decode server only, its prefill server launched without them.
    speculative: bool | None = None
    # a disaggregated decode server's pre-allocation (decode_first hand-offs, estimator.sim.prealloc): KV
    # tokens it keeps free for the future output of every request it holds (running, waiting to join,
    # or with its KV in flight), and asks beyond a new request's prompt (SGLang num_reserved_decode_tokens)
    reserved_decode_tokens: int = 0
    from_flags: Callable[["SchedulerRules", Mapping[str, str]], "SchedulerRules"] | None = None

    def with_flags(self, flags: Mapping[str, str] | None) -> "SchedulerRules":
        """These rules under a run's launch flags (`key` -> value as launched); unknown keys are ignored."""
        return self.from_flags(self, flags) if flags and self.from_flags else self


def flag_int(flags: Mapping[str, str], key: str, default: int) -> int:
    """An integer launch flag, `default` when absent or unresolved (`?`)."""
    try:
        return int(float(flags[key]))
    except (KeyError, ValueError):
        return default


def flag_bool(flags: Mapping[str, str], key: str) -> bool | None:
    """A boolean launch flag as launched; None when absent or unresolved (`?`)."""
    v = flags.get(key, "").strip().lower()
    return True if v in ("true", "1", "yes") else False if v in ("false", "0", "no") else None


def flag_float(flags: Mapping[str, str], key: str, default: float) -> float:
    try:
        return float(flags[key])
    except (KeyError, ValueError):
        return default


class DpMoeExchange(str, Enum):
    """How an attention-DP worker moves hidden states between its ranks' attention and the MoE layers
    (estimator.layers prices it)."""

    # all-gather of every rank's (quantised) activations before the experts, reduce-scatter (bf16) after
    GATHER_SCATTER = "gather_scatter"
    # steps with prompt tokens: the ranks' tokens written into a zeroed buffer of the summed length and
    # all-reduced in bf16 before the experts, and the experts' output all-reduced again before each rank
    # copies its rows back; decode-only steps: bf16 all-gather padded to the busiest rank, reduce-scatter
    SUM_LEN_ALL_REDUCE = "sum_len_all_reduce"
    # an all-to-all backend (DeepEP and the like): each rank sends each of its tokens to the ranks of the
    # token's top-k experts (one copy per routed expert, in the experts' activation dtype) and the experts'
    # outputs come back the same way in bf16; no rank receives the tokens its experts were not routed
    ALL_TO_ALL = "all_to_all"


@dataclass(frozen=True)
class KvHandoff:
    """What a disaggregated request pays between its prefill and its first decode besides the bytes.

    `frontend_hops`: extra passes through an HTTP frontend per request, each priced at the engine's
    per-request frontend time (`ttft_overhead_ms`): the router waits for the prefill server's answer and
    then sends a second request to the decode server (TRT-LLM, vLLM), or sends both at once (SGLang: 0).
    The bytes themselves go over the deployment's path (NVLink inside an NVLink domain, the network
    across; estimator.deployment decides it per xPyD group). The decode worker takes the request at its
    next iteration (pre-allocation with `decode_first`, else the start of the pull) and admits the received
    KV at the first iteration after it arrived (the simulator's step loop, estimator.sim.engine; half a
    decode step in the static model).
    """

    frontend_hops: int
    connector: str            # the default KV connector, for the record
    # the prefill starts only once the decode worker has reserved the request's KV (estimator.sim.prealloc)
    decode_first: bool = False
    # MLA: every attention-TP rank of the decode worker holds its own copy of the latent and pulls it from
    # one prefill rank, so a prefill rank serving k decode ranks sends k copies (else one copy moves)
    mla_copy_per_decode_rank: bool = False


@dataclass(frozen=True)
class ExpertSlotFlag:
    """A launch flag that places more physical expert slots per MoE layer than the model has experts
    (redundant copies of hot experts, for expert-parallel load balancing): `total` True when its value
    counts every slot, False when it counts the slots beyond the model's experts."""

    key: str
    total: bool


class SettingKind(str, Enum):
    ENV = "env"      # an environment variable the server starts with (estimator.run_facts engine_env)
    FLAG = "flag"    # a launch flag or config-file option of one engine (engine_flags, per role)


@dataclass(frozen=True)
class MoeKernelSwitch:
    """A launch setting that makes the engine run a named MoE kernel for one weight format on GPUs whose SM
    version lies in [sm_from, sm_below), where the tables time more than one kernel for it."""

    kind: SettingKind
    name: str
    value: str            # compared lower-case
    moe_dtype: Dtype
    kernel: MoeKernel
    sm_from: int = 0
    sm_below: int = 1_000
    requires: tuple[tuple[str, str], ...] = ()   # other launch flags (name, lower-case value) the kernel needs


@dataclass(frozen=True)
class MoeLaunch:
    """The launch setting that runs, for one weight format on GPUs from an SM version, the MoE kernel the
    tables price by default (their fastest at a shape: perfdb.interp), where the engine's own default may
    run another: what a plan's launch files state, so that the kernel it priced is the one that runs."""

    name: str             # a launch flag / config-file option (engine_flags form: nested keys joined by `.`)
    value: str
    moe_dtype: Dtype
    sm_from: int = 0


@dataclass(frozen=True)
class KvDefault:
    """The KV-cache dtype an engine stores for an architecture when its KV-dtype flag is left at auto, on GPUs
    whose SM version lies in [sm_from, sm_below) (SGLang stores DSA models' KV in FP8 on Blackwell only)."""

    dtype: Dtype
    sm_from: int = 0
    sm_below: int = 1_000

    def applies(self, sm_version: int) -> bool:
        return self.sm_from <= sm_version < self.sm_below


# KV-cache dtype flag values (vllm/config/cache.py CacheDType, sglang/srt/server_args.py --kv-cache-dtype
# choices, tensorrt_llm/llmapi/llm_args.py KvCacheConfig.dtype) -> the dtype stored; `auto` and anything
# else: not stated
_KV_FLAG_DTYPES = {"fp8": Dtype.FP8, "fp8_e4m3": Dtype.FP8, "fp8_e5m2": Dtype.FP8, "fp8_inc": Dtype.FP8,
                   "bf16": Dtype.BF16, "bfloat16": Dtype.BF16, "fp16": Dtype.FP16, "float16": Dtype.FP16,
                   "half": Dtype.FP16}


@dataclass(frozen=True)
class EngineProfile:
    backend: Backend
    max_num_tokens: int                  # tokens per iteration by default
    max_batch: int                       # requests per iteration by default
    mem_fraction: float                  # the engine's memory knob default (see memory_rule)
    memory_rule: str                     # what mem_fraction is a share of (estimator.memory)
    reserves_full_sequence: bool         # admission reserves isl + osl (else the tokens present)
    step_overhead_ms: float              # host time per iteration outside kernels
    ttft_overhead_ms: float              # per-request frontend time before the first token
    # the engine, before it serves, runs forward passes at prefill shapes (up to its token budget), so the
    # kernels a benchmark's first prompts need are compiled, tuned and loaded; False: only decode shapes
    # are, and a run whose client sent no warm-up measured first-use costs (estimator.set_aside.cold_start)
    warms_prefill_at_start: bool
    fuses_allreduce_norm: bool
    overlaps_shared_experts: bool
    group_wait_weight: float             # closed-loop packed-group return (estimator.serving)
    scheduler: SchedulerRules | None     # None: not simulated (plain torch)
    handoff: KvHandoff
    provenance: Mapping[str, str]
    # (system, tp, pp, attn_dp, chunk) -> (mem_fraction, max_num_tokens) where the defaults depend on the
    # GPU and layout (SGLang); None: the fixed fields above
    layout_defaults: Callable | None = None
    dp_moe_exchange: DpMoeExchange = DpMoeExchange.GATHER_SCATTER
    expert_slot_flags: tuple[ExpertSlotFlag, ...] = ()
    # the launch flag that picks an all-to-all MoE backend for attention-DP workers (DpMoeExchange.ALL_TO_ALL
    # unless it is absent, unresolved or `none`); None: the engine has no such flag here
    moe_a2a_flag: str | None = None
    # the launch flag that sets the KV-cache dtype; a value _KV_FLAG_DTYPES names overrides the default below
    kv_dtype_flag: str | None = None
    # the launch flag that caps the KV pool at a number of tokens per attention rank (below what memory
    # allows); None: the engine has no such flag here
    kv_tokens_flag: str | None = None
    # KV-cache dtype the engine stores for an architecture (HF `architectures[0]`) when its KV-dtype flag is
    # left at its default: the first rule that applies to the GPU; architectures or GPUs no rule names follow
    # the checkpoint (estimator.engine.kv_cache_dtype)
    kv_dtype_by_arch: Mapping[str, tuple[KvDefault, ...]] = field(default_factory=dict)
    # ms an iteration that carries prompt tokens takes beyond its kernels, per architecture (HF
    # `architectures[0]`), added to step_overhead_ms there: the worker is busy, so it queues what follows
    # (unlike ttft_overhead_ms). Fitted where an architecture's measured TTFT shows a per-step excess
    # that no kernel table explains; architectures no entry names pay nothing (no evidence there)
    context_step_ms_by_arch: Mapping[str, float] = field(default_factory=dict)
    # the same cost for a disaggregated prefill server's iterations, in place of context_step_ms_by_arch
    # there (an architecture no entry names pays that one): a prefill server runs its own loop
    # (bootstrap, KV sends, transfer polling) and its measured TTFT shows its own excess
    prefill_server_step_ms_by_arch: Mapping[str, float] = field(default_factory=dict)
    # launch settings that make the engine run a named MoE kernel (estimator.steps prices it)
    moe_kernel_switches: tuple[MoeKernelSwitch, ...] = ()
    # launch settings that run the kernel the tables price by default (search.artifacts writes them)
    moe_launch: tuple[MoeLaunch, ...] = ()

    def expert_slots(self, flags: Mapping[str, str], num_experts: int) -> int | None:
        """Physical expert slots per MoE layer one engine was launched with (`flags`: that engine's own,
        estimator.run_facts.RunFacts.role_flags); None when no flag adds any or the model has no experts."""
        for f in self.expert_slot_flags:
            n = flag_int(flags, f.key, 0)
            if num_experts and n > 0:
                slots = n if f.total else num_experts + n
                return slots if slots > num_experts else None
        return None

    def moe_exchange(self, flags: Mapping[str, str]) -> DpMoeExchange | None:
        """The attention-DP MoE exchange one engine was launched with (`flags`: that engine's own); None:
        its flags do not change the profile's dp_moe_exchange."""
        value = flags.get(self.moe_a2a_flag, "").strip().lower() if self.moe_a2a_flag else ""
        return DpMoeExchange.ALL_TO_ALL if value not in ("", "?", "none") else None

    def moe_kernel(self, flags: Mapping[str, str], env: Mapping[str, str], moe_dtype: Dtype,
                   sm_version: int) -> MoeKernel | None:
        """The MoE kernel one engine launched with `flags` (its own) and `env` (engine_env) runs for experts
        of `moe_dtype` on a GPU of `sm_version` (moe_kernel_switches); None: what the tables price anyway
        (their fastest kernel at the shape), also where a setting is absent or unresolved."""
        for rule in self.moe_kernel_switches:
            setting = (env if rule.kind is SettingKind.ENV else flags).get(rule.name, "")
            if (setting.strip().lower() == rule.value and moe_dtype == rule.moe_dtype
                    and rule.sm_from <= sm_version < rule.sm_below
                    and all(flags.get(k, "").strip().lower() == v for k, v in rule.requires)):
                return rule.kernel
        return None

    def moe_launch_flags(self, moe_dtype: Dtype | None, sm_version: int) -> dict[str, str]:
        """The launch settings (engine_flags form) that run the MoE kernel the tables price by default for
        experts of `moe_dtype` on a GPU of `sm_version` (moe_launch); {} where the engine's default is it."""
        return {r.name: r.value for r in self.moe_launch if r.moe_dtype == moe_dtype and sm_version >= r.sm_from}

    def context_step_ms(self, architecture: str | None, prefill_server: bool) -> float:
        """The cost per prompt-carrying iteration beyond its kernels for an architecture: a disaggregated
        prefill server's own where the profile names one (prefill_server_step_ms_by_arch), else the
        engine's (context_step_ms_by_arch), else 0."""
        arch = architecture or ""
        if prefill_server and arch in self.prefill_server_step_ms_by_arch:
            return self.prefill_server_step_ms_by_arch[arch]
        return self.context_step_ms_by_arch.get(arch, 0.0)

    def kv_tokens(self, flags: Mapping[str, str]) -> int | None:
        """The KV-pool cap in tokens per attention rank one engine was launched with (`flags`: its own,
        kv_tokens_flag); None: absent, unresolved or not positive (memory alone sizes the pool)."""
        n = flag_int(flags, self.kv_tokens_flag, 0) if self.kv_tokens_flag else 0
        return n if n > 0 else None

    def kv_dtype(self, flags: Mapping[str, str]) -> Dtype | None:
        """The KV-cache dtype one engine was launched with (`flags`: that engine's own); None: absent,
        unresolved or `auto` (the engine's default stands: kv_dtype_by_arch, else the checkpoint)."""
        value = flags.get(self.kv_dtype_flag, "") if self.kv_dtype_flag else ""
        return _KV_FLAG_DTYPES.get(value.strip().lower())

    def __post_init__(self) -> None:
        missing = [f.name for f in fields(self) if f.name not in ("backend", "provenance", "layout_defaults")
                   and f.name not in self.provenance]
        if missing:
            raise RuntimeError(f"engine profile {self.backend.value}: no provenance for {', '.join(missing)}")
