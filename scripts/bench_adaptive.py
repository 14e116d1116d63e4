"""Adaptive sampling vs the dense grid, replayed offline against a dense measured table (the oracle).

For each op family and categorical combination ("slice") of an imported AIConfigurator h200_sxm table
(bf16/fp8/fp8_block GEMM, context and generation attention, TRT-LLM 1.3.0rc20): 20% of the points are
held out; they are excluded from the pool that every sample below draws from, and the samplers read
the oracle's latency only for the points they ask for.

--sampler points (default), per family and budget (5/10/20% of the pool), pooled over slices and
seeds: the dense pool through GridInterp (the lookup today) and through CompletionInterp
(perfdb/scatter.py); the level sampler (collectors/adaptive.py) + GridInterp; the point sampler
(collectors/adaptive_points.py, --scorer picks its error estimate) + CompletionInterp; a random
subset of the same size + CompletionInterp. The point sampler runs once to the largest budget and
each smaller budget is the prefix it had measured by then (its rounds do not depend on the budget).
--sampler levels: the original table (level sampler + GridInterp vs a random subset + GridInterp).
--oracle-bound: a level product chosen by peeking at the pool (a reference, not a sampler).
--prior-db DIR --prior-system ID [--prior-backend B]: a prior table the user already has (another GPU
or engine; never the oracle's system/backend pair) through perfdb.prior.PriorInterp: the prior alone
(no points), prior x constant factor, prior x completed ratio, the same blended with the points
alone (the adopted predictor), each on the point sampler's sample (--prior-scorer), and a random
subset of the same size through the adopted predictor (the control). See bench_prior.py.

    PYTHONPATH=. python3 scripts/bench_adaptive.py --db /tmp/aicdb     # or --aic <AIC package> to import
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from collectors.adaptive import AdaptiveConfig, AdaptiveSampler, run_offline, util_predictor
from collectors.adaptive_points import (
    PointConfig,
    PointSampler,
    completion_predictor,
    completion_scorer,
    default_scorer,
    roughness_scorer,
    run_points_offline,
    spacing_scorer,
)
from perfdb.family import key_fields, lookup_axes, make_case
from perfdb.roofline import sol_ms
from perfdb.specs import load_system
from perfdb.storage import list_tables, read_table
from perfdb.types import OpKind

FAMILIES = (OpKind.GEMM, OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE)


def slices(db: Path, kind: OpKind, system: str, top: int, min_rows: int, backend: str = "trtllm"):
    """(combo, raw (n, d), latency (n,)) of the `top` largest categorical combinations."""
    (key,) = [k for k in list_tables(db) if k.op == kind and k.system == system and k.backend.value == backend]
    t = read_table(db, key).to_pandas()
    cats, axes = list(key_fields(kind)), list(lookup_axes(kind))
    t = t[t.latency_ms > 0].groupby(cats + axes, as_index=False).latency_ms.median()
    groups = sorted(t.groupby(cats), key=lambda g: -len(g[1]))
    out = []
    for combo, g in groups[:top]:
        if len(g) >= min_rows:
            out.append((combo, g[axes].to_numpy(np.float64), g.latency_ms.to_numpy(np.float64)))
    return axes, out


def rel_err(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    err = np.abs(pred / true - 1.0)
    return np.where(np.isfinite(err), err, 1.0)  # an unanswerable point counts as 100% off


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(rel_err(pred, true)))


def _setup(make_predictor, kind, axes, combo, raw, lat, spec, rng):
    """The slice's predictor, its roofline function, the held-out split (20% drawn from `rng`, excluded
    from the pool both the dense baseline and the samplers draw from) and the dense baseline's errors."""
    def sol_fn(x):
        return sol_ms(make_case(kind, combo, {a: x[:, j] for j, a in enumerate(axes)}), spec)

    predict = make_predictor(kind, tuple(axes), sol_fn)
    held = rng.random(len(raw)) < 0.2
    split = raw[~held], lat[~held], raw[held], lat[held]
    return predict, sol_fn, split, rel_err(predict(split[0], split[1], split[2]), split[3])


def evaluate_slice(kind, axes, combo, raw, lat, spec, rng, fractions, stride):
    """Per budget fraction: (dense errors, adaptive errors, random-subset errors, fraction used) on held-out points.

    The held-out 20% are drawn once per (seed, slice) and excluded from the pool that both the dense
    baseline and the sampler draw from; the sampler reads latencies only of points it asked for.
    """
    predict, sol_fn, (pool_raw, pool_lat, q_raw, q_lat), dense = _setup(util_predictor, kind, axes, combo, raw, lat,
                                                                        spec, rng)
    out = {}
    for f in fractions:
        cfg = AdaptiveConfig(initial_stride=stride, max_fraction=f)
        sampler = run_offline(AdaptiveSampler(pool_raw, predict, cfg), lambda idx: pool_lat[idx])
        have = sampler.measured & np.isfinite(sampler.value)
        adaptive = rel_err(predict(pool_raw[have], pool_lat[have], q_raw), q_lat)
        pick = rng.choice(len(pool_raw), size=int(sampler.measured.sum()), replace=False)
        rand = rel_err(predict(pool_raw[pick], pool_lat[pick], q_raw), q_lat)
        out[f] = (adaptive, rand, sampler.measured.sum() / len(pool_raw))
    return dense, out, len(pool_raw)


def evaluate_points(kind, axes, combo, raw, lat, spec, rng, fractions, scorer_name="default"):
    """The point sampler + CompletionInterp on the same held-out draw as evaluate_slice (same rng seed).

    Returns (dense+completion errors, {fraction: (adaptive errors, random-subset errors, fraction used)}).
    One sampler run to the largest budget; a smaller budget's sample is its prefix (the sampler's
    rounds do not depend on the budget, and a run with the smaller budget cuts its last round to fit,
    taking the first points of that round in the order asked), so each budget is what a separate run
    would have measured.
    """
    predict, sol_fn, (pool_raw, pool_lat, q_raw, q_lat), dense = _setup(completion_predictor, kind, axes, combo, raw,
                                                                        lat, spec, rng)
    asked: list[np.ndarray] = []
    cfg = PointConfig(max_fraction=max(fractions))
    levels = [np.unique(pool_raw[:, j]) for j in range(pool_raw.shape[1])]
    scorer = {"default": lambda: default_scorer(kind, tuple(axes), sol_fn, pool_raw),
              "spacing": lambda: spacing_scorer(levels),
              "roughness": lambda: roughness_scorer(kind, tuple(axes), sol_fn, levels),
              "disagreement": lambda: completion_scorer(kind, tuple(axes), sol_fn)}[scorer_name]()
    run_points_offline(PointSampler(pool_raw, scorer, cfg),
                       lambda idx: pool_lat[idx], on_round=lambda s, idx: asked.append(idx))
    order = np.concatenate(asked)
    out = {}
    for f in fractions:
        pick = order[:max(1, int(f * len(pool_raw)))]
        adaptive = rel_err(predict(pool_raw[pick], pool_lat[pick], q_raw), q_lat)
        rand = rng.choice(len(pool_raw), size=len(pick), replace=False)
        out[f] = (adaptive, rel_err(predict(pool_raw[rand], pool_lat[rand], q_raw), q_lat), len(pick) / len(pool_raw))
    return dense, out


def points_table(db, args, spec, fractions, seeds) -> None:
    """Adaptive points + CompletionInterp vs dense + GridInterp (the lookup today) and dense + completion."""
    print("Mean (median) relative error on held-out points, pooled over slices and seeds. ratio = adaptive / "
          "dense+GridInterp (per-seed in brackets); ratio c = adaptive / dense+completion.\n")
    print("| family | budget | fraction used | dense, GridInterp | dense, completion | levels + GridInterp | "
          "points + completion | ratio | per-seed ratio | ratio c | random + completion |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    def levels_for(kind, axes):
        return lambda c, r, la, rng: evaluate_slice(kind, axes, c, r, la, spec, rng, fractions, args.stride)

    for kind, axes, groups, lv, gi_seed, gi in family_runs(db, args, seeds, levels_for):
        pt, _, ci = seed_runs(groups, seeds, lambda c, r, la, rng: evaluate_points(
            kind, axes, c, r, la, spec, rng, fractions, args.scorer))  # noqa: B023 - used within this iteration
        for f in fractions:
            lev = np.concatenate([r[1][f][0] for rs in lv.values() for r in rs])
            ad_seed = by_seed(pt, lambda r: r[1][f][0])  # noqa: B023
            ad = np.concatenate(list(ad_seed.values()))
            rnd = np.concatenate([r[1][f][1] for rs in pt.values() for r in rs])
            used = np.mean([r[1][f][2] for rs in pt.values() for r in rs])
            per_seed = per_seed_ratios(ad_seed, gi_seed)
            print(f"| {kind.value} | {f:.0%} | {used:.1%} | {_mm(gi)} | {_mm(ci)} | {_mm(lev)} | {_mm(ad)} | "
                  f"{ad.mean() / gi.mean():.2f}x | [{per_seed}] | {ad.mean() / ci.mean():.2f}x | {_mm(rnd)} |", flush=True)


def seed_runs(groups, seeds, evaluate) -> tuple[dict, dict, np.ndarray]:
    """evaluate(combo, raw, lat, rng) per seed and slice (rng seeded [seed, slice]: the shared held-out
    draw): (results per seed, the dense errors per seed, the dense errors pooled); each result's [0] is
    its dense errors."""
    runs = {sd: [evaluate(combo, raw, lat, np.random.default_rng([sd, i])) for i, (combo, raw, lat) in enumerate(groups)]
            for sd in seeds}
    by_seed = {sd: np.concatenate([r[0] for r in rs]) for sd, rs in runs.items()}
    return runs, by_seed, np.concatenate(list(by_seed.values()))


def family_runs(db, args, seeds, evaluate_for, note=lambda runs: ""):
    """Per family of --families: (kind, axes, slices, *seed_runs of evaluate_for(kind, axes)); after the
    caller's rows for it, the family's timing comment (with `note(runs)`)."""
    for kind in [OpKind(f) for f in args.families.split(",")]:
        axes, groups = slices(db, kind, args.system, args.top, args.min_rows, args.backend)
        t0 = time.time()
        runs, per_seed, pooled = seed_runs(groups, seeds, evaluate_for(kind, axes))
        yield kind, axes, groups, runs, per_seed, pooled
        print(f"<!-- {kind.value}: {len(groups)} slices, {note(runs)}{time.time() - t0:.0f} s -->", flush=True)


def by_seed(runs: dict, pick) -> dict:
    """{seed: pick(result) concatenated over its slices}."""
    return {sd: np.concatenate([pick(r) for r in rs]) for sd, rs in runs.items()}


def per_seed_ratios(adaptive: dict, dense: dict) -> str:
    return ", ".join(f"{adaptive[sd].mean() / dense[sd].mean():.2f}" for sd in dense)


def _mm(err: np.ndarray) -> str:
    return f"{err.mean():.2%} ({np.median(err):.2%})"


def oracle_greedy(pool_raw, pool_lat, predict, fraction, rng, n_eval=3000):
    """Level product chosen greedily by the error on the pool itself: it PEEKS at latencies it did not
    measure, so it is an optimistic reference for any sampler that refines whole levels, not a sampler.
    Starts from the axis ends; each step adds the level with the largest error drop per point it costs."""
    levels = [np.unique(pool_raw[:, j]) for j in range(pool_raw.shape[1])]
    pos = np.stack([np.searchsorted(lv, pool_raw[:, j]) for j, lv in enumerate(levels)], axis=1)
    chosen = [np.isin(np.arange(len(lv)), [0, len(lv) - 1]) for lv in levels]
    ev = rng.choice(len(pool_raw), size=min(len(pool_raw), n_eval), replace=False)

    def keep_of(ch):
        return np.all([c[pos[:, j]] for j, c in enumerate(ch)], axis=0)

    def err(ch):
        keep = keep_of(ch)
        return mape(predict(pool_raw[keep], pool_lat[keep], pool_raw[ev]), pool_lat[ev]), int(keep.sum())

    budget = fraction * len(pool_raw)
    while True:
        base, nb = err(chosen)
        best = None
        for j, ch in enumerate(chosen):
            for lv in np.flatnonzero(~ch):
                trial = [c.copy() for c in chosen]
                trial[j][lv] = True
                e, n = err(trial)
                if n <= budget and (best is None or (base - e) / max(1, n - nb) > best[0]):
                    best = ((base - e) / max(1, n - nb), j, lv)
        if best is None:
            return keep_of(chosen)
        chosen[best[1]][best[2]] = True


def bound_table(db, args, spec, fractions, seeds) -> None:
    print("\n| family | budget | dense | oracle-greedy levels (peeks) | ratio |\n|---|---|---|---|---|")
    for kind in [OpKind(f) for f in args.families.split(",")]:
        axes, groups = slices(db, kind, args.system, args.top, args.min_rows, args.backend)
        for f in fractions:
            dense, bound = [], []
            for sd in seeds:
                for i, (combo, raw, lat) in enumerate(groups):
                    rng = np.random.default_rng([sd, i])
                    held = rng.random(len(raw)) < 0.2  # the same draw as evaluate_slice
                    predict = util_predictor(kind, tuple(axes), lambda x, combo=combo: sol_ms(
                        make_case(kind, combo, {a: x[:, j] for j, a in enumerate(axes)}), spec))  # noqa: B023 - used within this iteration
                    p_raw, p_lat, q_raw, q_lat = raw[~held], lat[~held], raw[held], lat[held]
                    keep = oracle_greedy(p_raw, p_lat, predict, f, rng)
                    dense.append(rel_err(predict(p_raw, p_lat, q_raw), q_lat))
                    bound.append(rel_err(predict(p_raw[keep], p_lat[keep], q_raw), q_lat))
            d, b = np.concatenate(dense).mean(), np.concatenate(bound).mean()
            print(f"| {kind.value} | {f:.0%} | {d:.2%} | {b:.2%} | {b / d:.2f}x |", flush=True)


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aic", type=Path, help="AIConfigurator package root / systems folder / wheel to import")
    ap.add_argument("--db", type=Path, help="an existing servecast db holding the imported tables (skips import)")
    ap.add_argument("--system", default="h200_sxm")
    ap.add_argument("--top", type=int, default=3, help="largest categorical combinations per family")
    ap.add_argument("--min-rows", type=int, default=100)
    ap.add_argument("--fractions", default="0.05,0.1,0.2", help="sampler budgets (fraction of the pool)")
    ap.add_argument("--seeds", default="0,1,2", help="held-out draws (and random subsets)")
    ap.add_argument("--stride", type=int, default=3, help="initial coarse grid: every stride-th value per axis")
    ap.add_argument("--oracle-bound", action="store_true",
                    help="instead: the error of a level product chosen greedily by peeking at the pool (a reference)")
    ap.add_argument("--sampler", choices=("levels", "points"), default="points",
                    help="levels: the level sampler + GridInterp only; points: also the point sampler + "
                         "CompletionInterp (perfdb/scatter.py) and dense + completion")
    ap.add_argument("--scorer", choices=("default", "spacing", "roughness", "disagreement"), default="default",
                    help="--sampler points: the point sampler's expected-error estimate")
    ap.add_argument("--backend", default="trtllm", help="which backend's tables are the oracle")
    ap.add_argument("--families", default=",".join(k.value for k in FAMILIES))
    ap.add_argument("--prior-db", type=Path, help="a database holding the prior tables (e.g. an AIC import)")
    ap.add_argument("--prior-system", default="h100_sxm", help="--prior-db: the prior's system")
    ap.add_argument("--prior-backend", help="--prior-db: the prior's backend (default: --backend)")
    ap.add_argument("--prior-scorer", choices=("ratio", "spacing"), default="ratio",
                    help="--prior-db: the point sampler's score (ratio spread x distance, or distance)")
    return ap.parse_args()


def levels_table(db, args, spec, fractions, seeds) -> None:
    """The level sampler + GridInterp only (--sampler levels)."""
    print("Mean (median) relative error on held-out points, pooled over slices and seeds; "
          "ratio = adaptive mean / dense mean; per-seed ratios in brackets.\n")
    print("| family | budget | fraction used | dense | adaptive | ratio | per-seed ratio | random subset |")
    print("|---|---|---|---|---|---|---|---|")
    def evaluate_for(kind, axes):
        return lambda combo, raw, lat, rng: evaluate_slice(kind, axes, combo, raw, lat, spec, rng, fractions, args.stride)

    def pool_points(runs) -> str:
        return f"{sum(r[2] for r in runs[seeds[0]])} pool points, "

    for kind, _, _, runs, dense_by_seed, dense in family_runs(db, args, seeds, evaluate_for, pool_points):
        for f in fractions:
            ad_by_seed = by_seed(runs, lambda r: r[1][f][0])  # noqa: B023
            ad = np.concatenate(list(ad_by_seed.values()))
            rnd = np.concatenate([r[1][f][1] for rs in runs.values() for r in rs])
            used = np.average([r[1][f][2] for rs in runs.values() for r in rs], weights=[r[2] for rs in runs.values() for r in rs])
            per_seed = per_seed_ratios(ad_by_seed, dense_by_seed)
            print(f"| {kind.value} | {f:.0%} | {used:.1%} | {dense.mean():.2%} ({np.median(dense):.2%}) | "
                  f"{ad.mean():.2%} ({np.median(ad):.2%}) | {ad.mean() / dense.mean():.2f}x | [{per_seed}] | "
                  f"{rnd.mean():.2%} ({np.median(rnd):.2%}) |", flush=True)


def main() -> None:
    args = _args()
    db = args.db
    if db is None:
        from perfdb.importers.aic import import_aic
        from perfdb.types import Backend

        db = Path(tempfile.mkdtemp(prefix="aicdb-"))
        import_aic(args.aic, db, system=args.system, backends=(Backend.TRTLLM,))
    spec = load_system(args.system)
    fractions = [float(x) for x in args.fractions.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    if args.oracle_bound:
        return bound_table(db, args, spec, fractions, seeds)
    if args.prior_db is not None:
        from bench_prior import prior_table

        return prior_table(db, args, spec, fractions, seeds)
    if args.sampler == "points":
        return points_table(db, args, spec, fractions, seeds)
    return levels_table(db, args, spec, fractions, seeds)


if __name__ == "__main__":
    main()
