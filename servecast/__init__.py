"""servecast: plan LLM-serving deployments from measured GPU kernels (README.md).

The Python API is servecast.api (docs/api.md), re-exported here: plan, estimate, estimate_runs, simulate,
fit, predicted_runs, collect, collect_plan and their result types. The `servecast` console script
(servecast.cli) calls it. The names are loaded on first use, so that the console script starts without them.
"""
from __future__ import annotations

from servecast.api import __all__  # the names re-exported here (servecast.api imports none of them yet)


def __getattr__(name: str):
    if name in __all__:
        from servecast import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
