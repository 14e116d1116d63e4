"""Error reports: how far predictions are from measurements, overall and by backend, mode and load band.

Percentage error of one row = (predicted - measured) / measured x 100. Reported per group: median,
mean and p90 of its absolute value, and the signed median (bias: positive = over-prediction).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# requests in flight (whole deployment) -> band label
LOAD_BANDS = ((0, 8, "1-8"), (8, 64, "9-64"), (64, 512, "65-512"), (512, float("inf"), ">512"))
GROUPINGS = ("all", "backend", "mode", "load")
STAGES = ("before", "after")


def error_stats(measured, predicted) -> dict[str, float]:
    m, p = np.asarray(measured, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(p) & (m > 0)
    if not ok.any():
        return {"n": 0, "median_abs_pct": float("nan"), "mean_abs_pct": float("nan"), "p90_abs_pct": float("nan"),
                "bias_pct": float("nan")}
    e = (p[ok] - m[ok]) / m[ok] * 100.0
    a = np.abs(e)
    return {"n": int(ok.sum()), "median_abs_pct": float(np.median(a)), "mean_abs_pct": float(np.mean(a)),
            "p90_abs_pct": float(np.percentile(a, 90)), "bias_pct": float(np.median(e))}


def load_band(concurrency: pd.Series) -> pd.Series:
    out = pd.Series("unknown", index=concurrency.index, dtype=object)
    for lo, hi, label in LOAD_BANDS:
        out[(concurrency > lo) & (concurrency <= hi)] = label
    return out


def error_table(rows: pd.DataFrame, metrics: dict[str, tuple[str, str, str]]) -> pd.DataFrame:
    """One line per (metric, grouping, group, stage); metrics: name -> (measured, before, after) columns."""
    rows = rows.assign(all="all", load=load_band(rows["concurrency"]))
    out = []
    for metric, (measured, before, after) in metrics.items():
        for grouping in GROUPINGS:
            for value, g in rows.groupby(grouping, sort=True):
                for stage, col in (("before", before), ("after", after)):
                    if col not in g:
                        continue
                    out.append({"metric": metric, "grouping": grouping, "group": str(value), "stage": stage,
                                **error_stats(g[measured], g[col])})
    return pd.DataFrame(out)


def worst_median(table: pd.DataFrame, stage: str = "after") -> dict[str, float]:
    """Overall median absolute % error per metric at `stage` (the --max-error gate)."""
    sel = table[(table["grouping"] == "all") & (table["stage"] == stage)]
    return {r["metric"]: float(r["median_abs_pct"]) for _, r in sel.iterrows()}


# held-out protocols of calibrate.train's rows: (name, column prefix)
PROTOCOL_COLUMNS = (("by deployment", "cv_"), ("one model out", "lomo_"), ("one system out", "loso_"))


def coverage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per held-out protocol, metric and mode ("all" first): rows held out, calibrated median |error| % and
    the share inside the nested 80% interval (`<prefix>covered_<metric>`, NaN where no fit held the row out)."""
    out = []
    for name, pre in PROTOCOL_COLUMNS:
        for metric in ("ttft", "tpot"):
            cov = f"{pre}covered_{metric}"
            if cov not in rows or rows[cov].isna().all():
                continue
            held = rows[rows[cov].notna()]
            for mode, g in [("all", held), *sorted(held.groupby("mode"), key=lambda kv: str(kv[0]))]:
                out.append({"protocol": name, "metric": metric, "mode": str(mode), "n": len(g),
                            "median_abs_pct": error_stats(g[f"measured_{metric}"], g[f"{pre}{metric}"])["median_abs_pct"],
                            "coverage": float(g[cov].mean())})
    return pd.DataFrame(out)


def novelty_coverage(rows: pd.DataFrame, cal) -> pd.DataFrame:
    """Rows calibrated by `cal` (cal_<metric> columns, calibrate.predict.apply_calibration), per metric and
    novelty to `cal` ("all" first): rows, median |error| % and the share inside the interval `cal` gives."""
    from estimator.calibration import model_key

    keys = list(zip(rows["system"].astype(str), rows["backend"].astype(str), rows["mode"].astype(str),
                    rows["model"].map(model_key), strict=True))
    novelty = pd.Series([cal.novelty(*k).value for k in keys], index=rows.index)
    out = []
    for metric in ("ttft", "tpot"):
        qs = [cal.interval(metric, mode, model, system, backend) for system, backend, mode, model in keys]
        ratio = rows[f"measured_{metric}"].to_numpy() / rows[f"cal_{metric}"].to_numpy()
        inside = pd.Series([q is not None and np.exp(q.lo) <= x <= np.exp(q.hi) for q, x in zip(qs, ratio, strict=True)],
                           index=rows.index, dtype=float)
        for level, g in [("all", rows), *rows.groupby(novelty, sort=True)]:
            out.append({"metric": metric, "novelty": str(level), "n": len(g),
                        "median_abs_pct": error_stats(g[f"measured_{metric}"], g[f"cal_{metric}"])["median_abs_pct"],
                        "coverage": float(inside[g.index].mean())})
    return pd.DataFrame(out)
