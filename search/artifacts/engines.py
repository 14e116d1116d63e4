"""What every engine's launch builder shares, and the registry of the builders (one file per engine:
engine_vllm.py, engine_sglang.py, engine_trtllm.py, each with the same functions).

An engine builder turns one placed worker (search.artifacts.layout.Placement) into the commands that
start it, one per node it spans, and a deployment's placed workers into the router in front of them:

    serve_args(w, role, s) -> list[str]            the engine's own flags of one worker (no host/port)
    options(w, role, s) -> dict                    the config file it reads beside them ({}: none)
    node_commands(p, s) -> list[Command]           the worker's command on each of its nodes
    router(placements, s) -> Router                the front door of a multi-worker deployment
    supports(parallel, role) -> bool               shapes the engine can run (the search skips the rest)
    dynamo_args(w, role, s, config) -> list[str]   the worker's args under NVIDIA Dynamo (k8s manifests)

Node addresses are bash expressions (`${ADDR[k]}`, the k-th address of NODE_ADDRS in launch.sh);
`address(k)` writes one, and tests substitute real addresses before parsing the commands.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from estimator.engine import EngineConfig, kv_cache_dtype, resolve
from estimator.engines import profile_for
from estimator.parallel import ParallelConfig
from estimator.run_facts import flatten_options
from perfdb.types import Backend, Dtype
from search.types import Mode


class Role(str, Enum):
    AGG = "agg"
    PREFILL = "prefill"
    DECODE = "decode"


@dataclass(frozen=True)
class EngineSettings:
    """What every worker of a deployment shares."""

    model: str
    max_model_len: int          # isl + osl: the longest request the plan serves
    kv_dtype: Dtype
    mem_fraction: float         # the engine's memory knob the estimate used (see estimator.engine)
    # what the engine stores with its KV-dtype flag at auto (estimator.engine.kv_cache_dtype); None: kv_dtype
    kv_auto: Dtype | None = None
    is_moe: bool = False        # MoE flags are only emitted for models with experts
    port: int = 8000            # the deployment's front door: the router, or the only worker
    # hybrid (linear-attention / Mamba) models: the recurrent-state dtype the estimate sized the state
    # pool with ("float32" / "bfloat16"); "" for models without linear layers (no flag emitted)
    mamba_ssm_dtype: str = ""
    # the launch settings that run the MoE kernel the estimate priced (EngineProfile.moe_launch), in
    # engine_flags form (nested config keys joined by `.`); () where the engine's default runs it
    moe_launch: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Command:
    """One process to start on one node. argv may hold `${ADDR[k]}` node addresses."""

    node: int
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    comment: str = ""
    prelude: tuple[str, ...] = ()      # shell lines run before it (e.g. rendering a config file)
    worker: int | None = None          # the Placement.order of the worker it starts (None: the router)


@dataclass(frozen=True)
class Router:
    command: Command
    files: dict = field(default_factory=dict)   # file name -> text written beside launch.sh


def address(node: int) -> str:
    return "${ADDR[%d]}" % node


def is_fp8_kv(kv: Dtype) -> bool:
    return kv in (Dtype.FP8, Dtype.FP8_BLOCK)


def kv_flag(s: EngineSettings, fp8: str, bf16: str) -> str:
    """The engine's KV-cache dtype value for s.kv_dtype, in its own spelling: `fp8` for an FP8 cache, else
    auto, unless auto would store FP8 (SGLang and vLLM for DeepSeek-V4): then `bf16` says so."""
    if is_fp8_kv(s.kv_dtype):
        return fp8
    return bf16 if s.kv_auto is not None and is_fp8_kv(s.kv_auto) else "auto"


def per_rank(total: int, dp: int) -> int:
    return max(1, -(-total // dp))


def _builders() -> dict:
    from search.artifacts import engine_sglang, engine_trtllm, engine_vllm

    return {Backend.VLLM: engine_vllm, Backend.SGLANG: engine_sglang, Backend.TRTLLM: engine_trtllm}


def builder(backend: Backend):
    """The launch builder module of an engine."""
    try:
        return _builders()[backend]
    except KeyError:
        raise ValueError(f"no launch builder for backend {backend.value}; "
                         f"available: {', '.join(b.value for b in _builders())}") from None


def supports(backend: Backend, p: ParallelConfig, role: Role | None = None) -> bool:
    """Whether the engine can run this parallelism in this role (None: in some role)."""
    b = _builders().get(backend)
    if b is None:
        return True
    roles = (role,) if role is not None else tuple(Role)
    return any(b.supports(p, r) for r in roles)


def settings_for(request, model, system, c) -> EngineSettings:
    """What every worker of plan candidate `c` shares (request: search.types.PlanRequest, model: the
    ModelSpec the plan priced, system: its SystemSpec)."""
    engine = EngineConfig(c.backend, c.version, kv_dtype=request.kv_dtype)
    resolved = resolve(engine, system, c.decode.parallel)
    state = {Dtype.FP32: "float32", Dtype.BF16: "bfloat16"}.get(model.linear.state_dtype, "") if model.linear else ""
    moe = profile_for(c.backend).moe_launch_flags(model.moe_quant, system.gpu.sm_version) if model.is_moe else {}
    return EngineSettings(model=request.model, max_model_len=request.isl + request.osl,
                          kv_dtype=kv_cache_dtype(engine, model, system),
                          kv_auto=kv_cache_dtype(EngineConfig(c.backend, c.version), model, system),
                          mem_fraction=resolved.mem_fraction, is_moe=model.is_moe, mamba_ssm_dtype=state,
                          moe_launch=tuple(sorted(moe.items())))


def launch_flags(backend: Backend, w, role: Role, s: EngineSettings) -> dict[str, str]:
    """The flags one worker is launched with, in the engine's own names: its command line (`--key value`,
    a bare `--key` as true) and the config file its builder writes (nested keys joined with `.`), the
    form a measured run's recorded flags take (estimator.run_facts.RoleFlags). The plan's simulator
    replays these, so it replays what the plan launches."""
    b = builder(backend)
    return {**_argv_flags(b.serve_args(w, role, s)), **flatten_options(b.options(w, role, s))}


def candidate_launch_flags(c, s: EngineSettings) -> dict[str, dict[str, str]]:
    """Role ('agg', or 'prefill' and 'decode') -> the launch flags of plan candidate `c`'s workers there:
    what deployment.yaml keeps and the plan's simulator replays (RoleFlags.of_roles)."""
    roles = {Role.AGG: c.decode} if c.mode == Mode.AGG else {Role.PREFILL: c.prefill, Role.DECODE: c.decode}
    return {role.value: launch_flags(c.backend, w, role, s) for role, w in roles.items()}


def _argv_flags(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, tok in enumerate(argv):
        if tok.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else "--"
            out[tok[2:]] = "true" if nxt.startswith("--") else nxt
    return out

