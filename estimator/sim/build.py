"""Step models for a simulated deployment: one StepModel per pool, with each pool's engine limits."""
from __future__ import annotations

from dataclasses import replace

from estimator.deployment import Deployment, Pool
from estimator.engine import EngineConfig
from estimator.sim.engine import RoleSteps
from perfdb.lookup import DbView
from perfdb.specs import SystemSpec


def _pool_steps(model, system: SystemSpec, pool: Pool, engine: EngineConfig, view: DbView):
    from estimator.steps import StepModel

    return StepModel.build(model, system, pool.parallel, pool.engine_for(engine), view)


def build_steps(model, system: SystemSpec, deployment: Deployment, engine: EngineConfig, view: DbView):
    """StepModel (aggregated) or RoleSteps (disaggregated) for `deployment`; the pools' max_batch /
    max_num_tokens / mem_fraction override `engine`'s, so memory (activations) and the scheduler agree."""
    if deployment.agg is not None:
        return _pool_steps(model, system, deployment.agg, engine, view)
    return RoleSteps(prefill=_pool_steps(model, system, deployment.prefill, replace(engine, prefill_server=True), view),
                     decode=_pool_steps(model, system, deployment.decode, engine, view))
