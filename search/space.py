"""The configuration space: replica parallelisms, batch limits, token budgets and worker counts.

Parallelism per replica (one engine instance):
  dense models: tp in powers of two up to one NVLink domain, pp in powers of two;
  MoE models:   attention tp x attention-DP per stage, and every (moe_tp, moe_ep) split of the
                stage's GPUs that divides the experts (EP, TP, and the mixed splits between);
  a replica never exceeds the GPU budget, and `validate_parallel` (head / expert divisibility,
  node spanning) removes shapes the engines would reject.
(MoE splits: all-TP or all-EP; pipeline depth <= MAX_PP.)
Batch limits are a geometric ladder (about 12 % apart at the top, every integer at the bottom),
scaled by attention-DP since each DP rank batches its own requests. Token budgets per iteration
are the chunked-prefill sizes engines ship with (2k-16k).
"""
from __future__ import annotations

import numpy as np

from estimator.models.spec import ModelSpec
from estimator.parallel import ParallelConfig, validate_parallel
from perfdb.errors import InfeasibleError
from perfdb.specs import SystemSpec

# Requests in flight per replica (agg) or per decode worker (disagg), before the DP scaling.
BATCH_LADDER = (1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128,
                144, 160, 192, 224, 256, 288, 320, 384, 448, 512)
# Tokens per iteration (chunked-prefill budget) tried for aggregated replicas.
AGG_TOKEN_BUDGETS = (2048, 4096, 8192, 16384)
# Requests per prefill batch tried for prefill workers (bounded by the prefill token budget).
PREFILL_BATCHES = (1, 2, 3, 4, 6, 8, 12, 16)
PREFILL_TOKEN_BUDGET = 16384
# Pipeline stages: beyond 4 the bubble and hand-offs cost more than any model here gains in memory.
MAX_PP = 4


def _pow2_upto(n: int) -> list[int]:
    out, v = [], 1
    while v <= n:
        out.append(v)
        v *= 2
    return out


def _moe_splits(stage: int, model: ModelSpec) -> list[tuple[int, int]]:
    """(moe_tp, moe_ep) with moe_tp * moe_ep == stage GPUs: all-TP and all-EP. The mixed splits in
    between land between the two in time (tests/search/test_space.py pins it on a real model), so
    they never win and are left out to halve the space."""
    splits = [(stage, 1)]
    if stage > 1 and model.num_experts % stage == 0:
        splits.append((1, stage))
    return splits


def parallel_configs(model: ModelSpec, system: SystemSpec, max_gpus: int) -> list[ParallelConfig]:
    """Every replica shape of at most `max_gpus` GPUs that the engines accept for this model."""
    max_tp = min(system.nvlink_domain_gpus, max_gpus)
    out: list[ParallelConfig] = []
    for pp in _pow2_upto(min(max_gpus, model.num_layers, MAX_PP)):
        for tp in _pow2_upto(max_tp):
            dps = _pow2_upto(max_gpus // (tp * pp)) if model.is_moe else [1]
            for dp in dps:
                stage = tp * dp
                if stage * pp > max_gpus:
                    continue
                splits = _moe_splits(stage, model) if model.is_moe else [(1, 1)]
                for moe_tp, moe_ep in splits:
                    if model.is_moe and dp > 1 and moe_tp > 1:
                        continue  # attention-DP engines run MoE expert-parallel (TRT-LLM, SGLang DP attention)
                    p = ParallelConfig(tp=tp, pp=pp, attn_dp=dp, moe_tp=moe_tp if model.is_moe else 1,
                                       moe_ep=moe_ep if model.is_moe else 1)
                    try:
                        validate_parallel(model, p, system)
                    except InfeasibleError:
                        continue
                    out.append(p)
    return out


def batch_ladder(parallel: ParallelConfig, cap: int | None = None) -> np.ndarray:
    """Batch limits for a replica: the ladder per DP rank times attention-DP, capped at `cap`."""
    ladder = np.asarray(BATCH_LADDER, dtype=np.int64) * parallel.attn_dp
    if cap is not None:
        ladder = ladder[ladder <= max(cap, 1)]
    return ladder


def prefill_batches(isl_new: int, budget: int = PREFILL_TOKEN_BUDGET) -> np.ndarray:
    """Prefill batch sizes whose new tokens fit the budget (always at least one request)."""
    b = np.asarray(PREFILL_BATCHES, dtype=np.int64)
    keep = b * isl_new <= max(budget, isl_new)
    return b[keep]


def worker_pairs(prefill_gpus: int, decode_gpus: int, budget: int, max_workers: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Every (prefill workers, decode workers) whose xPyD group fits in the budget."""
    xs = np.arange(1, max_workers + 1)
    x, y = np.meshgrid(xs, xs, indexing="ij")
    fit = x * prefill_gpus + y * decode_gpus <= budget
    return x[fit], y[fit]
