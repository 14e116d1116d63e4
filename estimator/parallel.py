"""Parallelism of one model replica (one serving engine instance).

Convention (as TensorRT-LLM, SGLang and the measured-run table use it): within one pipeline stage,
attention runs on `tp * attn_dp` GPUs (tp-way tensor parallel, attn_dp-way data parallel) and the
MoE layers on `moe_tp * moe_ep` GPUs; both products are the stage's GPU count. Dense models have
moe_tp = tp * attn_dp, moe_ep = 1. A replica uses tp * attn_dp * pp GPUs.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from perfdb.errors import InfeasibleError, InputError

if TYPE_CHECKING:
    from estimator.models.spec import ModelSpec
    from perfdb.specs import SystemSpec


@dataclass(frozen=True)
class ParallelConfig:
    tp: int = 1
    pp: int = 1
    attn_dp: int = 1
    moe_tp: int = 1
    moe_ep: int = 1

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "attn_dp", "moe_tp", "moe_ep"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise InputError(f"parallel {name}={value!r}: must be an integer >= 1")

    @property
    def gpus_per_stage(self) -> int:
        return self.tp * self.attn_dp

    @property
    def num_gpus(self) -> int:
        return self.tp * self.attn_dp * self.pp

    def label(self) -> str:
        parts = [f"tp{self.tp}"]
        if self.pp > 1:
            parts.append(f"pp{self.pp}")
        if self.attn_dp > 1:
            parts.append(f"dp{self.attn_dp}")
        if self.moe_ep > 1 or self.moe_tp not in (1, self.gpus_per_stage):
            parts.append(f"etp{self.moe_tp}ep{self.moe_ep}")
        return "-".join(parts)


def moe_split(parallel: ParallelConfig) -> tuple[int, int]:
    """(moe_tp, moe_ep) as used: an unset MoE split (1, 1) on a multi-GPU stage means the engines'
    default of slicing every expert across the stage (moe_tp = tp * attn_dp)."""
    if parallel.moe_tp * parallel.moe_ep == 1:
        return parallel.gpus_per_stage, 1
    return parallel.moe_tp, parallel.moe_ep


def validate_parallel(model: "ModelSpec", parallel: ParallelConfig, system: "SystemSpec | None" = None) -> None:
    """Raise InfeasibleError naming the first divisibility or world-size constraint that fails."""
    p, label = parallel, parallel.label()
    if model.num_heads % p.tp:
        raise InfeasibleError(f"{label}: {model.num_heads} attention heads are not divisible by tp={p.tp}")
    kv = model.num_kv_heads
    if kv % p.tp and p.tp % kv:
        raise InfeasibleError(f"{label}: {kv} KV heads and tp={p.tp}: one must divide the other "
                              "(KV heads are split, or replicated when tp exceeds them)")
    if model.num_layers < p.pp:
        raise InfeasibleError(f"{label}: pp={p.pp} exceeds the {model.num_layers} layers")
    if model.is_moe:
        moe_tp, moe_ep = moe_split(p)
        if moe_tp * moe_ep != p.gpus_per_stage:
            raise InfeasibleError(f"{label}: moe_tp*moe_ep = {moe_tp}*{moe_ep} must equal tp*attn_dp = "
                                  f"{p.gpus_per_stage} (the MoE layers run on the stage's GPUs)")
        if model.num_experts % moe_ep:
            raise InfeasibleError(f"{label}: {model.num_experts} experts are not divisible by moe_ep={moe_ep}")
        if model.moe_inter % moe_tp:
            raise InfeasibleError(f"{label}: expert intermediate size {model.moe_inter} is not divisible "
                                  f"by moe_tp={moe_tp}")
    elif p.moe_ep > 1:
        raise InfeasibleError(f"{label}: moe_ep={p.moe_ep} on a dense model ({model.name} has no experts)")
    if system is not None and p.num_gpus > system.gpus_per_node and p.gpus_per_stage > system.nvlink_domain_gpus \
            and p.gpus_per_stage % system.gpus_per_node:
        raise InfeasibleError(f"{label}: a stage of {p.gpus_per_stage} GPUs spans nodes of "
                              f"{system.gpus_per_node} GPUs unevenly")


def placed_experts(model: "ModelSpec", slots: int | None) -> "ModelSpec":
    """The model as an engine launched with `slots` physical expert slots per MoE layer runs it (redundant
    copies of experts for expert-parallel load balancing: SGLang --ep-num-redundant-experts, TRT-LLM
    moe_config.load_balancer.num_slots; estimator.engines' expert_slot_flags): every count that places
    experts becomes the slot count, so the EP split must divide the slots (288 over 48 ranks for
    DeepSeek-R1's 256 experts + 32), each rank holds slots / ep experts' weights, and a layer's routed
    tokens spread over every slot (the copies exist to even the load). The router still scores the
    model's experts; its GEMM priced at the slot width is off by the copies' share of a sub-1% op.
    None, or no more slots than experts: the model as it is."""
    if not slots or not model.is_moe or slots == model.num_experts:
        return model
    if slots < model.num_experts:
        raise InputError(f"{slots} expert slots cannot place the {model.num_experts} experts of {model.name}")
    return replace(model, num_experts=int(slots))
