"""Fit the MTP draft acceptance (estimator.spec.MTP_ACCEPTANCE) on the TPOT of the training table's
speculative-decoding rows, and cross-validate it.

    servecast calibrate enrich ../shared/data/e2e_train_silicon.csv \\
        --facts calibrate/data/e2e_train_enrichment.csv.gz --out /tmp/enriched.csv
    python scripts/fit_spec_acceptance.py --runs /tmp/enriched.csv [--db DIR] [--folds 5] [--seed 0]

Rows: those whose enrichment says speculative decoding is on (all DeepSeek-R1 MTP in the training table).
Predictor: the uncalibrated static estimate (estimator.runs.predict_runs), every row predicted once per
acceptance of the grid. Loss: mean |log(predicted / measured TPOT)| (robust to the few rows that no
acceptance reaches). One acceptance for every draft depth: the per-depth and per-backend fits it prints
say whether the evidence asks for more. Held out: k folds grouped by deployment (estimator.runs.group_key;
calibrate.fit.fold_ids), then one system out; each held-out row is predicted with the acceptance fitted
without it. Nothing is written: the fitted value and its figures go into estimator/spec.py by hand.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

GRID = tuple(round(0.10 + 0.025 * i, 3) for i in range(36))   # 0.100 .. 0.975


def spec_rows(rows: list) -> list:
    from estimator.run_facts import SpecStatus
    from estimator.set_aside import set_aside

    return [r for r in rows if r.facts.spec is SpecStatus.ON and r.tpot_ms and r.concurrency and not set_aside(r)]


def predictions(rows: list, db, grid: tuple[float, ...]) -> np.ndarray:
    """(len(grid), len(rows)) predicted TPOT, ms (NaN where the estimate failed)."""
    from estimator.runs import predict_runs

    out = np.full((len(grid), len(rows)), np.nan)
    for i, a in enumerate(grid):
        for j, p in enumerate(predict_runs(rows, db, spec_acceptance=a)):
            if p.status == "ok":
                out[i, j] = p.tpot_ms
    return out


def loss(pred: np.ndarray, meas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean |log(pred / meas)| per grid value over the rows of `mask` that every grid value predicts."""
    ok = mask & np.isfinite(pred).all(axis=0)
    return np.abs(np.log(pred[:, ok] / meas[ok])).mean(axis=1)


def fit(pred: np.ndarray, meas: np.ndarray, mask: np.ndarray) -> int:
    return int(np.argmin(loss(pred, meas, mask)))


def held_out(pred: np.ndarray, meas: np.ndarray, masks: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Each row's TPOT from the grid value fitted without it, and the fitted index per held-out set."""
    out, picks = np.full(pred.shape[1], np.nan), []
    for test in masks:
        k = fit(pred, meas, ~test)
        out[test] = pred[k, test]
        picks.append(k)
    return out, picks


def held_out_by(pred: np.ndarray, meas: np.ndarray, masks: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """As held_out, one acceptance fitted per label (backend) on the rows outside each held-out set; a
    label with no training row there falls back to every label's rows."""
    out = np.full(pred.shape[1], np.nan)
    for test in masks:
        for lab in set(labels[test]):
            train = ~test & (labels == lab)
            k = fit(pred, meas, train if train.any() else ~test)
            rows = test & (labels == lab)
            out[rows] = pred[k, rows]
    return out


def median_ape(pred: np.ndarray, meas: np.ndarray) -> float:
    ok = np.isfinite(pred)
    return float(np.median(np.abs(pred[ok] / meas[ok] - 1.0)) * 100) if ok.any() else math.nan


def report(rows: list, pred: np.ndarray, grid: tuple[float, ...], folds: int, seed: int) -> dict:
    import pandas as pd

    from calibrate.fit import fold_ids
    from estimator.runs import group_key
    from estimator.spec import LITERATURE_ACCEPTANCE

    meas = np.array([r.tpot_ms for r in rows], dtype=np.float64)
    every = np.ones(len(rows), dtype=bool)
    best = fit(pred, meas, every)
    lit = grid.index(LITERATURE_ACCEPTANCE)
    deps = pd.DataFrame({"deployment_key": [str(group_key(r)) for r in rows]})
    ids = fold_ids(deps, min(folds, deps.deployment_key.nunique()), seed)
    systems = np.array([r.system for r in rows])
    cv, cv_picks = held_out(pred, meas, [ids == k for k in range(ids.max() + 1)])
    # one system out needs a second system to fit on
    loso, loso_picks = held_out(pred, meas, [systems == s for s in sorted(set(systems))] if len(set(systems)) > 1 else [])
    backends = np.array([r.backend for r in rows])
    folds_masks = [ids == k for k in range(ids.max() + 1)]
    system_masks = [systems == s for s in sorted(set(systems))] if len(set(systems)) > 1 else []
    cv_b = held_out_by(pred, meas, folds_masks, backends)
    loso_b = held_out_by(pred, meas, system_masks, backends)
    per_backend = {b: {"pooled_cv": median_ape(cv[backends == b], meas[backends == b]),
                       "own_cv": median_ape(cv_b[backends == b], meas[backends == b]),
                       "pooled_loso": median_ape(loso[backends == b], meas[backends == b]),
                       "own_loso": median_ape(loso_b[backends == b], meas[backends == b]),
                       "fitted": grid[fit(pred, meas, backends == b)]} for b in sorted(set(backends))}
    return {"rows": len(rows), "deployments": int(deps.deployment_key.nunique()), "fitted": grid[best],
            "cv_per_backend": median_ape(cv_b, meas), "loso_per_backend": median_ape(loso_b, meas),
            "per_backend": per_backend,
            "in_sample": median_ape(pred[best], meas), "literature": median_ape(pred[lit], meas),
            "cv": median_ape(cv, meas), "cv_picks": [grid[k] for k in cv_picks],
            "loso": median_ape(loso, meas), "loso_picks": [grid[k] for k in loso_picks]}


def by_subset(rows: list, pred: np.ndarray, grid: tuple[float, ...], key) -> dict:
    """Fitted acceptance of each subset on its own (does the evidence ask for more than one value?)."""
    meas = np.array([r.tpot_ms for r in rows], dtype=np.float64)
    labels = np.array([str(key(r)) for r in rows])
    return {lab: (int((labels == lab).sum()), grid[fit(pred, meas, labels == lab)]) for lab in sorted(set(labels))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="enriched run table (servecast calibrate enrich)")
    ap.add_argument("--db", type=Path, default=None, help="performance database (default: the bundled one)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from estimator.runs import read_runs
    from perfdb.errors import ServecastError
    from perfdb.lookup import PerfDB

    try:
        rows = spec_rows(read_runs(args.runs))
    except ServecastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not rows:
        print(f"error: {args.runs}: no row with speculative decoding on and a measured TPOT; give a table "
              "enriched by `servecast calibrate enrich` (spec_decoding column)", file=sys.stderr)
        raise SystemExit(2)
    pred = predictions(rows, PerfDB(args.db), GRID)
    res = report(rows, pred, GRID, args.folds, args.seed)
    print(f"speculative rows: {res['rows']} in {res['deployments']} deployments")
    print(f"fitted acceptance (all rows): {res['fitted']:.3f}")
    print(f"TPOT median |error|: literature 0.85 {res['literature']:.1f}%, fitted in-sample {res['in_sample']:.1f}%, "
          f"cross-validated by deployment ({args.folds} folds) {res['cv']:.1f}%, one system out {res['loso']:.1f}%")
    print(f"  fold picks {res['cv_picks']}; system picks {res['loso_picks']}")
    print(f"one acceptance per backend: cross-validated by deployment {res['cv_per_backend']:.1f}%, one system "
          f"out {res['loso_per_backend']:.1f}% (pooled above: {res['cv']:.1f}% / {res['loso']:.1f}%)")
    for b, v in res["per_backend"].items():
        print(f"  {b}: fitted {v['fitted']:.3f}; CV pooled {v['pooled_cv']:.1f}% -> own {v['own_cv']:.1f}%, "
              f"one system out pooled {v['pooled_loso']:.1f}% -> own {v['own_loso']:.1f}%")
    depth = by_subset(rows, pred, GRID, lambda r: r.facts.spec_tokens or "unstated")
    print("per draft depth (rows, fitted):", depth)
    print("per backend and mode (rows, fitted):", by_subset(rows, pred, GRID, lambda r: f"{r.backend} {r.mode}"))


if __name__ == "__main__":
    main()
