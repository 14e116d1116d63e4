"""Could a host time explain SGLang's speculative rows? Test the two shapes a host cost can take on the
simulated TPOT of the training table's SGLang rows with drafts and the overlap scheduler off.

    PYTHONPATH=. python scripts/bench_sim.py accuracy --runs <enriched table> --out /tmp/rows.csv
    python scripts/check_sglang_spec_host.py --rows /tmp/rows.csv --runs <enriched table>

Rows: SGLang, aggregated (the InferenceX single-node MTP script leaves SGLANG_ENABLE_SPEC_V2 unexported,
so these servers run EAGLE v1 with overlap off; the srt-slurm disaggregated recipes export it, spec v2
keeps overlap on), enrichment `spec_decoding` on. Shapes, added to each row's simulated TPOT at first
order (divided by the expected tokens per step; no feedback through the queue):
`iteration`: c ms per decode iteration; `request`: c ms per running request per iteration (batch = the
row's concurrency). Each fitted by grid on mean |log(pred / measured)|, in-sample and held out by
(ISL, OSL) group: the rows are one deployment on one system, so neither grouped CV by deployment nor
one system out can be run. Nothing is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

GRIDS = {"iteration": np.arange(0.0, 60.01, 0.25), "request": np.arange(0.0, 2.001, 0.005)}   # ms


def load(rows: Path, runs: Path):
    import pandas as pd

    from estimator.spec import MTP_ACCEPTANCE, accepted_length

    r = pd.read_csv(rows).drop_duplicates("id")
    e = pd.read_csv(runs, usecols=["id", "spec_decoding", "spec_tokens"]).drop_duplicates("id")
    d = r.merge(e, on="id")
    d = d[(d.backend == "sglang") & (d["mode"] == "agg") & (d.spec_decoding == "on") & d.sim_tpot_mean_ms.notna()]
    d = d.drop_duplicates(["isl", "osl", "concurrency", "tpot_ms"])   # the table repeats some runs
    gain = np.array([accepted_length(MTP_ACCEPTANCE, int(k)) for k in d.spec_tokens.fillna(1)])
    return d.reset_index(drop=True), gain


def predict(d, gain: np.ndarray, c: float, shape: str) -> np.ndarray:
    per_iter = c * (d.concurrency.to_numpy(float) if shape == "request" else 1.0)
    return d.sim_tpot_mean_ms.to_numpy(float) + per_iter / gain


def fit(d, gain, shape: str, mask: np.ndarray) -> float:
    meas = d.tpot_ms.to_numpy(float)
    grid = GRIDS[shape]
    losses = [np.abs(np.log(predict(d, gain, c, shape)[mask] / meas[mask])).mean() for c in grid]
    return float(grid[int(np.argmin(losses))])


def median_ape(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.median(np.abs(pred / meas - 1.0)) * 100)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=Path, required=True, help="per-row output of scripts/bench_sim.py accuracy --out")
    ap.add_argument("--runs", type=Path, required=True, help="the enriched run table those rows came from")
    args = ap.parse_args(argv)
    for p in (args.rows, args.runs):
        if not p.is_file():
            print(f"error: {p}: no such file; give bench_sim's --out CSV and the enriched table", file=sys.stderr)
            raise SystemExit(2)
    d, gain = load(args.rows, args.runs)
    if d.empty:
        print("error: no SGLang aggregated row with speculative decoding on and a simulated TPOT", file=sys.stderr)
        raise SystemExit(2)
    meas = d.tpot_ms.to_numpy(float)
    groups = list(d.groupby(["isl", "osl"]).groups.items())
    print(f"rows: {len(d)} (distinct runs), groups (ISL, OSL): {[g for g, _ in groups]}")
    print(f"main: sim TPOT median |error| {median_ape(d.sim_tpot_mean_ms.to_numpy(float), meas):.1f}%, "
          f"median sim / measured {np.median(d.sim_tpot_mean_ms / d.tpot_ms):.2f}")
    gap = (meas - d.sim_tpot_mean_ms.to_numpy(float)) * gain
    for (isl, osl, conc), g in zip(d[["isl", "osl", "concurrency"]].itertuples(index=False), gap, strict=True):
        print(f"  ISL {isl} OSL {osl} conc {conc}: missing {g:.1f} ms per iteration, {g / conc:.3f} ms per request")
    every = np.ones(len(d), dtype=bool)
    for shape in ("iteration", "request"):
        c = fit(d, gain, shape, every)
        held, picks = np.full(len(d), np.nan), []
        for _, idx in groups:
            test = np.isin(np.arange(len(d)), idx)
            k = fit(d, gain, shape, ~test)
            held[test] = predict(d, gain, k, shape)[test]
            picks.append(k)
        print(f"{shape}: fitted {c:.3f} ms, in-sample {median_ape(predict(d, gain, c, shape), meas):.1f}%, "
              f"held out by (ISL, OSL) {median_ape(held, meas):.1f}% (picks {picks})")


if __name__ == "__main__":
    main()
