"""The servecast Python API: what every `servecast` command does, as functions (docs/api.md).

    import servecast
    result = servecast.plan(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", backend="trtllm", total_gpus=8,
                            isl=4000, osl=500, ttft_ms=600, tpot_ms=16.67)
    print(result.winner.label(), result.sims[result.winner.row].tokens_per_s_per_gpu)

Typed keyword arguments in, frozen dataclasses out (the search's, estimator's, simulator's, calibration's
and collectors' own types). Nothing here prints, reads an environment variable or imports typer; a bad
argument raises a `perfdb.errors.ServecastError` subclass with a one-line message; long runs report
through an optional `progress` callback. Heavy libraries are imported inside the functions.
"""
from __future__ import annotations

from servecast.api._collect import CollectionPlan, collect, collect_plan
from servecast.api._estimate import EstimateResult, RunPredictions, estimate, estimate_runs
from servecast.api._fit import Fitted, fit, predicted_runs
from servecast.api._plan import plan
from servecast.api._simulate import Simulation, simulate

__all__ = ["CollectionPlan", "EstimateResult", "Fitted", "RunPredictions", "Simulation", "collect", "collect_plan",
           "estimate", "estimate_runs", "fit", "plan", "predicted_runs", "simulate"]
