"""Adaptive sampling vs the dense grid, replayed offline against a dense measured table (the oracle).

For each op family and categorical combination ("slice") of an imported AIConfigurator h200_sxm table
(bf16/fp8/fp8_block GEMM, context and generation attention, TRT-LLM 1.3.0rc20): 20% of the points are
held out; the dense baseline interpolates from all the others; the adaptive sampler
(collectors/adaptive.py) picks points from the same pool, reading their latency from the table as if it
had measured them. Both use the lookup's interpolator (perfdb.interp.GridInterp, utilisation space).
Reported per family: the dense error on held-out points, the adaptive error after each round, the fraction
of the pool adaptive needed to reach 1.2x the dense error, and a random subset of the same size.

    PYTHONPATH=. python3 scripts/bench_adaptive.py --aic /tmp/aic/pkg/aiconfigurator_core
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from collectors.adaptive import AdaptiveConfig, AdaptiveSampler, run_offline, util_predictor
from perfdb.family import key_fields, lookup_axes, make_case
from perfdb.roofline import sol_ms
from perfdb.specs import load_system
from perfdb.storage import list_tables, read_table
from perfdb.types import OpKind

FAMILIES = (OpKind.GEMM, OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE)


def slices(db: Path, kind: OpKind, system: str, top: int, min_rows: int):
    """(combo, raw (n, d), latency (n,)) of the `top` largest categorical combinations."""
    (key,) = [k for k in list_tables(db) if k.op == kind and k.system == system]
    t = read_table(db, key).to_pandas()
    cats, axes = list(key_fields(kind)), list(lookup_axes(kind))
    t = t[t.latency_ms > 0].groupby(cats + axes, as_index=False).latency_ms.median()
    groups = sorted(t.groupby(cats), key=lambda g: -len(g[1]))
    out = []
    for combo, g in groups[:top]:
        if len(g) >= min_rows:
            out.append((combo, g[axes].to_numpy(np.float64), g.latency_ms.to_numpy(np.float64)))
    return axes, out


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    err = np.abs(pred / true - 1.0)
    return float(np.mean(np.where(np.isfinite(err), err, 1.0)))  # an unanswerable point counts as 100% off


def evaluate_slice(kind, axes, combo, raw, lat, spec, rng, cfg):
    def sol_fn(x):
        return sol_ms(make_case(kind, combo, {a: x[:, j] for j, a in enumerate(axes)}), spec)

    predict = util_predictor(kind, tuple(axes), sol_fn)
    held = rng.random(len(raw)) < 0.2
    pool_raw, pool_lat, q_raw, q_lat = raw[~held], lat[~held], raw[held], lat[held]
    dense = mape(predict(pool_raw, pool_lat, q_raw), q_lat)
    curve = []

    def on_round(s: AdaptiveSampler):
        have = s.measured & np.isfinite(s.value)
        curve.append((have.sum() / len(pool_raw), mape(predict(pool_raw[have], pool_lat[have], q_raw), q_lat)))

    sampler = run_offline(AdaptiveSampler(pool_raw, predict, cfg), lambda idx: pool_lat[idx], on_round)
    n = int(sampler.measured.sum())
    pick = rng.choice(len(pool_raw), size=n, replace=False)
    random_err = mape(predict(pool_raw[pick], pool_lat[pick], q_raw), q_lat)
    return dense, curve, random_err, len(pool_raw), len(q_raw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aic", type=Path, help="AIConfigurator package root / systems folder / wheel to import")
    ap.add_argument("--db", type=Path, help="an existing servecast db holding the imported tables (skips import)")
    ap.add_argument("--system", default="h200_sxm")
    ap.add_argument("--top", type=int, default=3, help="largest categorical combinations per family")
    ap.add_argument("--min-rows", type=int, default=100)
    ap.add_argument("--max-fraction", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stride", type=int, default=3, help="initial coarse grid: every stride-th value per axis")
    ap.add_argument("--families", default=",".join(k.value for k in FAMILIES))
    args = ap.parse_args()
    db = args.db
    if db is None:
        from perfdb.importers.aic import import_aic
        from perfdb.types import Backend

        db = Path(tempfile.mkdtemp(prefix="aicdb-"))
        import_aic(args.aic, db, system=args.system, backends=(Backend.TRTLLM,))
    spec = load_system(args.system)
    cfg = AdaptiveConfig(initial_stride=args.stride, max_fraction=args.max_fraction)
    print(f"| family | slices | pool points | dense MAPE | adaptive MAPE at {args.max_fraction:.0%} | ratio | "
          "fraction to reach 1.2x dense | random subset MAPE |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in [OpKind(f) for f in args.families.split(",")]:
        axes, groups = slices(db, kind, args.system, args.top, args.min_rows)
        stats = []
        t0 = time.time()
        for i, (combo, raw, lat) in enumerate(groups):
            rng = np.random.default_rng([args.seed, i])  # same held-out points whatever the budget
            stats.append(evaluate_slice(kind, axes, combo, raw, lat, spec, rng, cfg))
        w = np.array([s[4] for s in stats], float)  # weight slices by held-out points
        dense = float(np.average([s[0] for s in stats], weights=w))
        final = float(np.average([s[1][-1][1] for s in stats], weights=w))
        rand = float(np.average([s[2] for s in stats], weights=w))
        reach = [next((f for f, e in s[1] if e <= 1.2 * s[0]), float("nan")) for s in stats]
        reach_txt = ", ".join("not reached" if np.isnan(r) else f"{r:.1%}" for r in reach)
        print(f"| {kind.value} | {len(stats)} | {int(sum(s[3] for s in stats))} | {dense:.2%} | {final:.2%} | "
              f"{final / dense:.2f}x | {reach_txt} | {rand:.2%} |  ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
