"""Mixture-of-experts FFN on one GPU of an expert-parallel x MoE-tensor-parallel group.

`num_tokens` counts the tokens entering the MoE layer across the whole EP group (after the
attention-DP gather), so each GPU holds num_experts/moe_ep experts, each sliced 1/moe_tp along the
intermediate dimension. Experts are gated (gate+up then down: 3 * hidden * inter weights).
`distribution` names the routing model the latency was measured under ("balanced", "power_law_<alpha>").
flops()/bytes() describe the balanced average; imbalance is what the measured latency adds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import OUT_BYTES, OpCase, act_bytes, register, weight_bytes
from perfdb.types import Dtype, OpKind

# The routing the estimator prices MoE layers under, and so the one collectors must measure: real routers
# are skewed, and a power law with exponent 1.01 over experts is the mild skew the reference tool's kernel
# tables are collected with (aiconfigurator-core 0.12.0 moe_perf.txt, `distribution` column).
DEFAULT_DISTRIBUTION = "power_law_1.01"


def a2a_copies_per_token(ep, topk, low_latency):
    """Copies of one token an all-to-all MoE exchange sends (dispatch; combine returns as many). DeepEP's
    low-latency kernels (decode) send one per routed expert; its normal kernels (prompts) one per
    destination rank: of topk uniform picks over ep ranks, ep (1 - (1 - 1/ep)^topk) are distinct. One
    definition for the estimator's exchange (estimator.layers) and the import of DeepEP's timed
    dispatch / combine (perfdb.importers.aic_tables)."""
    ep, k = np.maximum(np.asarray(ep, dtype=np.float64), 1.0), np.asarray(topk, dtype=np.float64)
    return np.where(low_latency, k, ep * (1.0 - (1.0 - 1.0 / ep) ** k))


@register
@dataclass(frozen=True)
class MoeCase(OpCase):
    KIND: ClassVar = OpKind.MOE
    NUMERIC: ClassVar = ("num_tokens",)
    dtype: Dtype
    hidden: int
    inter: int                  # per-expert intermediate size (before moe_tp slicing)
    topk: int
    num_experts: int
    moe_tp: int
    moe_ep: int
    distribution: str
    num_tokens: np.ndarray

    def _routed_per_gpu(self) -> np.ndarray:
        return self.num_tokens * self.topk / self.moe_ep

    def experts_touched(self) -> np.ndarray:
        """Expected distinct local experts hit by uniformly routed tokens (their weights are read)."""
        local = self.num_experts / self.moe_ep
        draws = self.num_tokens * self.topk
        return local * (1.0 - np.power(1.0 - 1.0 / self.num_experts, draws))

    def flops(self) -> np.ndarray:
        return 2.0 * self._routed_per_gpu() * 3.0 * self.hidden * self.inter / self.moe_tp

    def bytes(self) -> np.ndarray:
        weights = self.experts_touched() * 3.0 * self.hidden * self.inter / self.moe_tp * weight_bytes(self.dtype)
        acts = self._routed_per_gpu() * self.hidden * (act_bytes(self.dtype) + OUT_BYTES)
        return weights + acts
