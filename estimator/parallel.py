"""Parallelism of one model replica (one serving engine instance).

Convention (as TensorRT-LLM, SGLang and the measured-run table use it): within one pipeline stage,
attention runs on `tp * attn_dp` GPUs (tp-way tensor parallel, attn_dp-way data parallel) and the
MoE layers on `moe_tp * moe_ep` GPUs; both products are the stage's GPU count. Dense models have
moe_tp = tp * attn_dp, moe_ep = 1. A replica uses tp * attn_dp * pp GPUs.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParallelConfig:
    tp: int = 1
    pp: int = 1
    attn_dp: int = 1
    moe_tp: int = 1
    moe_ep: int = 1

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
