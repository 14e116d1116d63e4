"""Predicted-vs-measured PNG: TTFT and TPOT, before and after calibration, log-log with the 1:1 line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def predicted_vs_measured(rows: pd.DataFrame, after_prefix: str, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, metric in zip(axes, ("ttft", "tpot"), strict=True):
        meas = rows[f"measured_{metric}"].to_numpy()
        ax.scatter(meas, rows[f"pred_{metric}"], s=6, alpha=0.35, c="0.6", label="uncalibrated")
        if f"{after_prefix}{metric}" in rows:
            ax.scatter(meas, rows[f"{after_prefix}{metric}"], s=6, alpha=0.6, c="tab:blue", label="calibrated")
        lo = np.nanmin([meas.min(), rows[f"pred_{metric}"].min()]) * 0.8
        hi = np.nanmax([meas.max(), rows[f"pred_{metric}"].max()]) * 1.25
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xscale="log", yscale="log", xlabel=f"measured {metric.upper()} (ms)",
               ylabel=f"predicted {metric.upper()} (ms)", title=metric.upper())
        ax.legend(loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
