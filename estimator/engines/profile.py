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
from dataclasses import dataclass, fields

from perfdb.types import Backend


@dataclass(frozen=True)
class SchedulerRules:
    """How the engine fills one iteration (the simulator's policy; estimator.sim.policy)."""

    mixes_decode: bool        # decodes ride in the same iteration as prefill chunks (else they pause)
    reserve_output: float     # share of each request's remaining output held in KV at admission
    chunked: bool             # a prompt may be split across iterations by default
    # with attention DP: True = every rank has its own token budget and batch cap (the worker runs
    # ranks x budget per iteration); False = the engine splits the configured ones over the ranks
    budget_per_dp_rank: bool = True


@dataclass(frozen=True)
class KvHandoff:
    """What a disaggregated request pays between its prefill and its first decode besides the bytes.

    `frontend_hops`: extra passes through an HTTP frontend per request, each priced at the engine's
    per-request frontend time (`ttft_overhead_ms`): the router waits for the prefill server's answer and
    then sends a second request to the decode server (TRT-LLM, vLLM), or sends both at once (SGLang: 0).
    The bytes themselves go over the deployment's path (NVLink inside an NVLink domain, the network
    across; estimator.deployment decides it per xPyD group) and the decode worker picks the request up
    at its next iteration boundary (the simulator's step loop; half a decode step in the static model).
    """

    frontend_hops: int
    connector: str            # the default KV connector, for the record


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
    fuses_allreduce_norm: bool
    overlaps_shared_experts: bool
    group_wait_weight: float             # closed-loop packed-group return (estimator.serving)
    scheduler: SchedulerRules | None     # None: not simulated (plain torch)
    handoff: KvHandoff
    spec_acceptance: float               # per draft token, when not given
    provenance: Mapping[str, str]
    # (system, tp, pp, attn_dp, chunk) -> (mem_fraction, max_num_tokens) where the defaults depend on the
    # GPU and layout (SGLang); None: the fixed fields above
    layout_defaults: Callable | None = None

    def __post_init__(self) -> None:
        missing = [f.name for f in fields(self) if f.name not in ("backend", "provenance", "layout_defaults")
                   and f.name not in self.provenance]
        if missing:
            raise RuntimeError(f"engine profile {self.backend.value}: no provenance for {', '.join(missing)}")
