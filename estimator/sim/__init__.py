"""Discrete-event serving simulator: TTFT/TPOT/ITL and throughput of a deployment under real load.

    from estimator.sim import simulate, Deployment, LoadSpec
    result = simulate(step_model, Deployment.aggregated(Backend.VLLM, ParallelConfig(tp=2), replicas=4),
                      LoadSpec.closed(256, isl=4000, osl=500, num_requests=10_000), seed=0)
"""
from estimator.deployment import Deployment, Mode, Pool, RoutePolicy
from estimator.sim.analytic import AnalyticStepModel
from estimator.sim.build import build_steps
from estimator.sim.engine import RoleSteps, simulate
from estimator.sim.metrics import RequestRecords, SimResult, Stats
from estimator.sim.policy import SchedulerPolicy, policy_for
from estimator.sim.steptable import StepTimes
from estimator.sim.types import Arrival, LengthDist, Lengths, LoadSpec, TraceRequest

__all__ = [
    "AnalyticStepModel", "Arrival", "LengthDist", "Lengths", "LoadSpec", "Mode", "Pool", "RequestRecords",
    "RoleSteps", "RoutePolicy", "SchedulerPolicy", "Deployment", "SimResult", "Stats", "StepTimes",
    "TraceRequest", "build_steps", "policy_for", "simulate",
]
