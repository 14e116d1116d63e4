"""The op cases collectors must measure for a model: its exact per-GPU shapes at each parallel layout.

One place for the rule (the `collect` command and the GPU sweep both use it): for every tensor-parallel
size (MoE models: both the expert-parallel and the MoE-tensor-parallel split of the same GPUs) the
cases of prefill steps (batch x new tokens) and decode steps (batch x KV length) that StepModel builds.
"""
from __future__ import annotations

from dataclasses import dataclass

from estimator.engine import EngineConfig
from estimator.models.spec import ModelSpec
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.errors import InfeasibleError
from perfdb.lookup import PerfDB
from perfdb.ops import OpCase
from perfdb.specs import SystemSpec
from perfdb.types import Backend, Phase

# (batch, new tokens) and (batch, KV length) of the steps whose shapes are collected by default. Grids,
# not a diagonal: the lookup interpolates attention over (batch, length) between collected neighbours on
# both axes, and a diagonal of steps leaves every off-diagonal step extrapolated. Bounded by the
# collectors' memory limits (prefill tokens, decode KV tokens per GPU).
PREFILL_STEPS = tuple((b, s) for b in (1, 4, 16) for s in (128, 1024, 4096, 16384) if b * s <= 65536)
DECODE_STEPS = tuple((b, kv) for b in (1, 8, 32, 128, 512) for kv in (512, 2048, 8192, 32768) if b * kv <= 1 << 22)


@dataclass(frozen=True)
class ModelCases:
    cases: tuple[OpCase, ...]
    skipped: tuple[str, ...]   # layouts the model cannot run at (why, one line each)


def layouts(model: ModelSpec, tp: int) -> list[ParallelConfig]:
    """The layouts of `tp` GPUs a model is collected for: MoE models as expert-parallel and as
    MoE-tensor-parallel slices of the same GPUs."""
    if model.is_moe and tp > 1:
        return [ParallelConfig(tp=tp, moe_tp=1, moe_ep=tp), ParallelConfig(tp=tp, moe_tp=tp, moe_ep=1)]
    return [ParallelConfig(tp=tp)]


def model_cases(model: ModelSpec, system: SystemSpec, tps: list[int], prefill_steps=PREFILL_STEPS,
                decode_steps=DECODE_STEPS, backend: Backend = Backend.TORCH) -> ModelCases:
    """Per-GPU op cases of the model's steps at every layout of each tensor-parallel size in `tps`."""
    view = PerfDB(None).view(system.name, backend)
    cases: list[OpCase] = []
    skipped: list[str] = []
    for tp in tps:
        for parallel in layouts(model, tp):
            try:
                step = StepModel.build(model, system, parallel, EngineConfig(backend), view)
            except InfeasibleError as exc:
                skipped.append(str(exc))
                continue
            for batch, seq in prefill_steps:
                cases += step.op_cases(Phase.PREFILL, batch, seq, seq)
            for batch, kv in decode_steps:
                cases += step.op_cases(Phase.DECODE, batch, 1, kv)
    return ModelCases(tuple(cases), tuple(skipped))
