"""The Pareto PNG: tokens/s/user (x) against tokens/s/GPU (y), aggregated and disaggregated.

All evaluated feasible points are drawn faintly, the SLA-meeting frontier of each mode as a line,
the TPOT target as a vertical line (tokens/s/user = 1000 / TPOT: points right of it meet TPOT),
and the winner as a star. matplotlib is imported here only, with the Agg backend (no display).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLORS = {"agg": "#1f77b4", "disagg": "#d62728"}


@dataclass(frozen=True)
class ParetoData:
    title: str
    tpot_ms: float
    request_latency_user_tps: float | None       # 1000 / (request latency / osl) when a latency SLA is set
    clouds: dict                                   # mode -> (x, y) arrays of feasible points (sampled)
    frontiers: dict                                # mode -> (x, y) arrays of the SLA-meeting frontier
    winner: tuple[float, float, str] | None        # (x, y, label)


def write_pareto_png(data: ParetoData, path: Path, dpi: int = 90) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.0))
    ax = fig.add_subplot()
    for mode, (x, y) in data.clouds.items():
        if len(x):
            ax.scatter(x, y, s=4, alpha=0.15, color=COLORS.get(mode, "gray"), linewidths=0, rasterized=True)
    for mode, (x, y) in data.frontiers.items():
        if len(x):
            ax.plot(x, y, "-o", ms=3, lw=1.6, color=COLORS.get(mode, "gray"), label=f"{mode} frontier (meets SLA)")
    ax.axvline(1000.0 / data.tpot_ms, color="black", ls="--", lw=1, label=f"TPOT {data.tpot_ms:g} ms")
    if data.request_latency_user_tps:
        ax.axvline(data.request_latency_user_tps, color="gray", ls=":", lw=1, label="request-latency bound")
    if data.winner:
        x, y, label = data.winner
        ax.plot([x], [y], marker="*", ms=16, color="gold", mec="black", ls="none", label=f"winner: {label}")
    ax.set_xlabel("tokens/s/user")
    ax.set_ylabel("tokens/s/GPU (whole budget)")
    ax.set_title(data.title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)


def sample(x: np.ndarray, y: np.ndarray, limit: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` points for the background cloud (evenly strided: deterministic)."""
    if len(x) <= limit:
        return x, y
    idx = np.linspace(0, len(x) - 1, limit).astype(np.int64)
    return x[idx], y[idx]
