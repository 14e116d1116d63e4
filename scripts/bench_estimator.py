"""Error table of `servecast estimate --from-runs` predictions against the measured runs.

Usage: python scripts/bench_estimator.py RUNS.csv PRED.csv
Prints coverage and TTFT/TPOT median and p90 absolute percentage error by backend and mode (markdown).
"""
from __future__ import annotations

import sys

import pandas as pd


def main(runs_path: str, pred_path: str) -> None:
    runs = pd.read_csv(runs_path)
    pred = pd.read_csv(pred_path)
    d = runs.merge(pred, on="id", how="left")
    ok = d["status"] == "ok"
    print(f"rows {len(d)}, predicted {int(ok.sum())} ({100 * ok.mean():.1f}%)\n")
    d = d[ok].copy()
    d["ttft"] = (d["pred_ttft_ms"] - d["silicon_ttft_ms"]).abs() / d["silicon_ttft_ms"] * 100
    d["tpot"] = (d["pred_tpot_ms"] - d["silicon_tpot_ms"]).abs() / d["silicon_tpot_ms"] * 100
    d["ttft_signed"] = (d["pred_ttft_ms"] - d["silicon_ttft_ms"]) / d["silicon_ttft_ms"] * 100
    d["tpot_signed"] = (d["pred_tpot_ms"] - d["silicon_tpot_ms"]) / d["silicon_tpot_ms"] * 100
    rows = []
    for key, g in list(d.groupby(["backend", "mode"])) + [(("all", "all"), d)]:
        rows.append((*key, len(g), g["ttft"].median(), g["ttft"].quantile(0.9), g["ttft_signed"].median(),
                     g["tpot"].median(), g["tpot"].quantile(0.9), g["tpot_signed"].median()))
    print("| backend | mode | n | TTFT med abs % | TTFT p90 abs % | TTFT med signed % | TPOT med abs % | TPOT p90 abs % | TPOT med signed % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join([r[0], r[1], str(r[2])] + [f"{x:.1f}" for x in r[3:]]) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
