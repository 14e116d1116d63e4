"""Fit an engine's per-architecture iteration cost (EngineProfile.context_step_ms_by_arch, or
prefill_server_step_ms_by_arch for its disaggregated prefill servers) on measured runs.

    PYTHONPATH=. python scripts/fit_context_step.py --runs ENRICHED.csv --db DB --backend sglang \
        --field prefill_server_step_ms_by_arch --mode disagg --grid 15,60,90,105,120,135,150   # ~35 s per value
    PYTHONPATH=. python scripts/fit_context_step.py --runs ENRICHED.csv --db DB --backend sglang \
        --field context_step_ms_by_arch --mode agg --max-concurrency 8 --grid 0,15,30

For each grid value the script swaps the engine's registered profile for one with that value in `--field`
(a local override inside this process, nothing written), simulates the backend's runs of that architecture
(and `--mode`, up to `--max-concurrency` clients) at
their measured concurrency (estimator.sim.runs.simulate_runs, uncalibrated) and scores the value by the
median |log(simulated / measured TTFT)|. It prints the grid (all rows, and per mode with the median
simulated / measured ratio), then the held-out checks: each system left out in turn (the value the other
systems pick, scored on the one left out) and each mode left out. The value the profile ships is the
grid's best on all rows; its provenance string quotes these figures.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from estimator import engines
from estimator.models import load_model
from estimator.runs import read_runs
from estimator.set_aside import set_aside
from estimator.sim.runs import simulate_runs
from perfdb.errors import ServecastError
from perfdb.lookup import PerfDB
from perfdb.types import Backend

FIELDS = ("context_step_ms_by_arch", "prefill_server_step_ms_by_arch")


def _rows_of(runs, backend: Backend, arch: str, mode: str, max_conc: int | None):
    out, arch_of = [], {}   # the architecture is the model's, whatever a row's quantization: one load a model
    for r in runs:
        if r.backend != backend.value or (mode != "all" and r.mode != mode) or set_aside(r):
            continue   # set aside as every benchmark does: a cold server's or an unpinned deployment's runs
        if max_conc is not None and (r.concurrency or 0) > max_conc:
            continue
        if r.model not in arch_of:
            try:
                arch_of[r.model] = load_model(r.model).architecture
            except (ServecastError, ValueError):
                arch_of[r.model] = None
        if arch_of[r.model] == arch:
            out.append(r)
    return out


def _simulate(rows, db: PerfDB, backend: Backend, arch: str, field: str, value: float) -> pd.DataFrame:
    base = engines.profile_for(backend)
    with engines.substituted(dataclasses.replace(base, **{field: {**getattr(base, field), arch: value}})):
        sims = simulate_runs(rows, db)
    recs = [(r.id, r.mode, r.system, s.result.ttft.mean, r.ttft_ms) for r, s in zip(rows, sims, strict=True)
            if s.result is not None and r.ttft_ms and r.ttft_ms > 0]
    d = pd.DataFrame(recs, columns=["id", "mode", "system", "sim", "measured"])
    d["ratio"] = d["sim"] / d["measured"]
    d["log"] = np.abs(np.log(d["ratio"]))
    return d


def _held_out(by_value: dict[float, pd.DataFrame], column: str, baseline: float) -> list[str]:
    """Each value of `column` left out in turn: the grid value the other rows pick, scored on the rows left
    out against `baseline`."""
    lines = []
    for key in sorted(by_value[baseline][column].unique()):
        scores = {v: d.loc[d[column] != key, "log"].median() for v, d in by_value.items()}
        pick = min(scores, key=scores.get)
        held, before = by_value[pick], by_value[baseline]
        h, b = held[held[column] == key], before[before[column] == key]
        lines.append(f"  {key:>9} left out ({len(h)} rows): the others pick {pick:g}; median |log| "
                     f"{b['log'].median():.3f} -> {h['log'].median():.3f}, ratio {b['ratio'].median():.2f} -> "
                     f"{h['ratio'].median():.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="enriched run table (servecast calibrate enrich)")
    ap.add_argument("--db", type=Path, default=None, help="performance database (default: bundled)")
    ap.add_argument("--backend", default="sglang", choices=[b.value for b in Backend])
    ap.add_argument("--arch", default="DeepseekV3ForCausalLM", help="HF architectures[0] of the models to fit")
    ap.add_argument("--field", default=FIELDS[0], choices=FIELDS, help="the profile field the grid values go into")
    ap.add_argument("--mode", default="all", choices=("all", "agg", "disagg"), help="runs of this mode only")
    ap.add_argument("--max-concurrency", type=int, default=None, help="runs of at most this many clients only")
    ap.add_argument("--grid", default="15,30,60,90,105,120,135,150,200", help="values to try, ms")
    ap.add_argument("--baseline", type=float, default=None, help="value the held-out rows are compared against "
                                                                 "(default: the grid's first)")
    args = ap.parse_args(argv)
    backend = Backend(args.backend)
    grid = [float(v) for v in args.grid.split(",") if v.strip()]
    baseline = args.baseline if args.baseline is not None else grid[0]
    if baseline not in grid:
        grid.insert(0, baseline)
    rows = _rows_of(read_runs(args.runs), backend, args.arch, args.mode, args.max_concurrency)
    if not rows:
        print(f"no {backend.value} runs of {args.arch} in {args.runs}", file=sys.stderr)
        return 1
    db = PerfDB(args.db)
    by_value = {}
    for v in grid:
        by_value[v] = _simulate(rows, db, backend, args.arch, args.field, v)
        d = by_value[v]
        modes = "  ".join(f"{m} {g['log'].median():.3f} (ratio {g['ratio'].median():.2f}, {len(g)})"
                          for m, g in d.groupby("mode"))
        print(f"{v:6g} ms: all {d['log'].median():.4f} ({len(d)} rows)  {modes}", flush=True)
    best = min(by_value, key=lambda v: by_value[v]["log"].median())
    print(f"best on all rows: {best:g} ms")
    print("held out by system:")
    print("\n".join(_held_out(by_value, "system", baseline)))
    print("held out by mode:")
    print("\n".join(_held_out(by_value, "mode", baseline)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
