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

from typing import TYPE_CHECKING

if TYPE_CHECKING:   # for type checkers and editors; at run time __getattr__ below imports them on first use
    from servecast.api._collect import CollectionPlan, collect, collect_plan
    from servecast.api._estimate import EstimateResult, RunPredictions, estimate, estimate_runs
    from servecast.api._fit import Fitted, fit, predicted_runs
    from servecast.api._plan import plan
    from servecast.api._simulate import Simulation, simulate

# name -> the module defining it; each is imported on first use (`servecast plan` loads only _plan)
_WHERE = {"CollectionPlan": "_collect", "collect": "_collect", "collect_plan": "_collect",
          "EstimateResult": "_estimate", "RunPredictions": "_estimate", "estimate": "_estimate",
          "estimate_runs": "_estimate", "Fitted": "_fit", "fit": "_fit", "predicted_runs": "_fit", "plan": "_plan",
          "Simulation": "_simulate", "simulate": "_simulate"}
__all__ = ["CollectionPlan", "EstimateResult", "Fitted", "RunPredictions", "Simulation", "collect", "collect_plan",
           "estimate", "estimate_runs", "fit", "plan", "predicted_runs", "simulate"]


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f"servecast.api.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
