"""Planning: which cases a run measures and how long it should take.

Cases = the base grids of the chosen op families (collectors/ops/*) plus any model-driven cases the
CLI passes in (from the estimator: a model's exact GEMM, attention and MoE shapes). They are
de-duplicated into point cases and ordered coarse-first, so that a run cut short by its budget has
still covered every axis. Durations are estimated from the roofline time of each case at a modest
utilisation plus the timer's fixed costs.
"""
from __future__ import annotations

from dataclasses import dataclass

from collectors.cases import coarse_first, dedupe
from collectors.registry import DeviceCtx, GridSize, load_all
from collectors.timer import TimerConfig
from perfdb.ops import OpCase
from perfdb.roofline import sol_ms
from perfdb.specs import SystemSpec
from perfdb.types import OpKind

_ASSUMED_UTIL = 0.3          # planning guess of achieved/roofline; errs towards longer estimates
_SETUP_S = {"cuda": 0.05, "cpu": 0.005}  # allocation, random init and graph capture per case


@dataclass(frozen=True)
class FamilyPlan:
    kind: OpKind
    cases: int
    est_seconds: float


@dataclass(frozen=True)
class CollectPlan:
    cases: tuple[OpCase, ...]
    families: tuple[FamilyPlan, ...]
    est_seconds: float
    dropped_by_budget: int   # cases beyond --budget-minutes (measured by a later run)


def case_seconds(case: OpCase, system: SystemSpec, timer: TimerConfig, device: str) -> float:
    """Expected wall time to measure one case with `timer`."""
    per_call = max(float(sol_ms(case, system)) / _ASSUMED_UTIL / 1e3, 5e-6)
    reps = min(max(timer.budget_s / per_call, timer.min_reps), timer.max_reps)
    return _SETUP_S[device] + max(timer.warmup_s, 2 * per_call) + reps * per_call


def base_cases(ops: list[OpKind], size: GridSize, ctx: DeviceCtx) -> list[OpCase]:
    registry = load_all()
    return [c for kind in ops for c in registry[kind].grid(size, ctx)]


def make_plan(ops: list[OpKind], size: GridSize, ctx: DeviceCtx, system: SystemSpec, timer: TimerConfig,
              extra: list[OpCase] = (), budget_s: float | None = None, base: bool = True) -> CollectPlan:
    """The ordered point cases of a run, bounded by budget_s when given."""
    cases = dedupe(list(extra) + (base_cases(ops, size, ctx) if base else []))
    cases = [c for c in cases if c.KIND in ops]
    cases = coarse_first(cases)
    seconds = [case_seconds(c, system, timer, ctx.device) for c in cases]
    dropped = 0
    if budget_s is not None:
        total, keep = 0.0, 0
        while keep < len(cases) and total + seconds[keep] <= budget_s:
            total += seconds[keep]
            keep += 1
        dropped = len(cases) - keep
        cases, seconds = cases[:keep], seconds[:keep]
    families = []
    for kind in ops:
        idx = [i for i, c in enumerate(cases) if c.KIND == kind]
        families.append(FamilyPlan(kind, len(idx), sum(seconds[i] for i in idx)))
    return CollectPlan(tuple(cases), tuple(families), sum(seconds), dropped)
