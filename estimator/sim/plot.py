"""Sweep plot as a benchmark sweep shows it: latency vs load, and throughput per GPU vs per user."""
from __future__ import annotations

from pathlib import Path

from estimator.sim.metrics import SimResult


def plot_sweep(results: list[SimResult], loads: list[float], load_label: str, title: str, path: Path) -> Path:
    """Write a 3-panel PNG: TTFT (p50, p99) and TPOT (p50, p99) against the load, and
    output tokens/s/GPU against tokens/s/user (the Pareto view), one point per load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    ax.plot(loads, [r.ttft.p50 for r in results], "o-", label="TTFT p50")
    ax.plot(loads, [r.ttft.p99 for r in results], "s--", label="TTFT p99")
    ax.set_xlabel(load_label)
    ax.set_ylabel("ms")
    ax.set_title("time to first token")
    ax = axes[1]
    ax.plot(loads, [r.tpot.p50 for r in results], "o-", label="TPOT p50")
    ax.plot(loads, [r.tpot.p99 for r in results], "s--", label="TPOT p99")
    ax.set_xlabel(load_label)
    ax.set_ylabel("ms")
    ax.set_title("time per output token")
    for a in axes[:2]:
        a.set_xscale("log", base=2)
        a.grid(alpha=0.3)
        a.legend()
    ax = axes[2]
    ax.plot([r.tokens_per_s_per_user for r in results], [r.output_tokens_per_s_per_gpu for r in results], "o-")
    for r, x in zip(results, loads, strict=True):
        ax.annotate(f"{x:g}", (r.tokens_per_s_per_user, r.output_tokens_per_s_per_gpu), fontsize=8)
    ax.set_xlabel("output tokens/s/user")
    ax.set_ylabel("output tokens/s/GPU")
    ax.set_title("throughput")
    ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
