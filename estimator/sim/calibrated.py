"""Calibrated simulation: a `--base simulate` calibration applied to the simulated TTFT/TPOT of a sweep.

The calibration was fitted on the simulator's client statistic `cal.statistic` (mean by default) at
each measured run's concurrency, so it corrects that statistic of every sweep point, all points in
one `correct_log` call per metric. Percentiles are not corrected: the fit never saw them.
Requests in flight (the fit's concurrency feature, per agg replica or xPyD group): the closed-loop client
count, else the simulated time-averaged in-flight count (open loop, trace), as `calibrate` takes it
from a run, divided by the deployment's replicas / groups.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from estimator.calibration import Calibration, Interval, context_for
from estimator.deployment import Deployment
from estimator.sim.metrics import SimResult
from perfdb.errors import InputError

BASE = "simulate"     # the prediction a calibration must have been fitted on to correct the simulator


@dataclass(frozen=True)
class CalibratedPoint:
    """One sweep point's calibrated `statistic` of TTFT and TPOT (ms) with prediction intervals."""

    statistic: str                   # the client statistic corrected: mean | p50 | p90 | p99
    ttft_ms: float
    tpot_ms: float
    raw_ttft_ms: float
    raw_tpot_ms: float
    ttft: Interval | None
    tpot: Interval | None
    calibration_id: str
    scope: str                       # the scope label the TTFT factor came from


def instance_gpus(dep: Deployment) -> int:
    """GPUs of one engine instance: an agg replica, or a decode worker (the fit's `gpus` feature)."""
    pool = dep.agg if dep.agg is not None else dep.decode
    return pool.parallel.num_gpus


def calibrate_sweep(results: list[SimResult], in_flight: list[float | None], cal: Calibration, dep: Deployment,
                    system: str, version: str | None, isl: int, osl: int, model=None
                    ) -> list[CalibratedPoint]:
    """Calibrated TTFT/TPOT of every sweep point. in_flight: the closed-loop concurrency of each point,
    None where the load was open-loop (the simulated mean in flight is used)."""
    if cal.base != BASE:
        raise InputError(f"calibration {cal.id} was fitted with --base {cal.base}; simulate accepts only --base "
                         f"{BASE} calibrations")
    stat = cal.statistic
    if not results:
        return []
    ttft = np.array([getattr(r.ttft, stat) for r in results], dtype=np.float64)
    tpot = np.array([getattr(r.tpot, stat) for r in results], dtype=np.float64)
    conc = np.array([r.mean_in_flight if c is None else c for r, c in zip(results, in_flight, strict=True)],
                    dtype=np.float64) / dep.units
    mode = dep.mode.value
    ctx = context_for(system, dep.backend.value, version, mode, isl, osl, instance_gpus(dep), conc, model)
    x = ctx.features(conc, ttft, tpot)
    key = ctx.key
    out = {m: pred * np.exp(cal.correct_log(m, key, x)) for m, pred in (("ttft", ttft), ("tpot", tpot))}
    f = cal.factor("ttft", *key)
    scope = f.scope.label() if f else "none"
    points = []
    for i in range(len(results)):
        iv = {}
        for m in ("ttft", "tpot"):
            q = cal.interval(m, mode, ctx.model, ctx.system)
            v = float(out[m][i])
            iv[m] = None if q is None else Interval(v * math.exp(q.lo), v * math.exp(q.hi), q.coverage)
        points.append(CalibratedPoint(stat, float(out["ttft"][i]), float(out["tpot"][i]), float(ttft[i]),
                                      float(tpot[i]), iv["ttft"], iv["tpot"], cal.id, scope))
    return points
