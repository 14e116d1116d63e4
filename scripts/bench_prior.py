"""The prior-table replay of bench_adaptive.py (--prior-db): adaptive points + a prior table the user
already has, against the dense grid, on the same held-out draws, slices and seeds.

    PYTHONPATH=. python3 scripts/bench_adaptive.py --db /tmp/aicdb --prior-db /tmp/aicdb_all \\
        --prior-system h100_sxm --prior-backend trtllm --fractions 0.02,0.05,0.1
    # several priors at once (perfdb.prior_blend.PriorBlend): system[/backend] items
    ... --prior-system h100_sxm/trtllm,h200_sxm/vllm,h200_sxm/sglang --fractions 0.05,0.1
"""
from __future__ import annotations

import numpy as np
from bench_adaptive import _mm, _setup, by_seed, family_runs, per_seed_ratios, rel_err

from collectors.adaptive import util_predictor
from collectors.adaptive_points import (
    PointConfig,
    PointSampler,
    prior_predictor,
    ratio_scorer,
    run_points_offline,
    spacing_scorer,
)
from perfdb.errors import InputError
from perfdb.prior import Correction, PriorSource, prior_latency
from perfdb.types import Backend

# (column, PriorInterp options): the prior alone needs no points; the rest are fitted on the sample.
VARIANTS = (("prior alone", dict(correction=Correction.NONE)),
            ("prior x constant", dict(correction=Correction.CONSTANT, blend=False)),
            ("prior x completed ratio", dict(correction=Correction.COMPLETION, blend=False)),
            ("prior x auto, blended", dict(correction=Correction.AUTO, blend=True)))
ADOPTED = "prior x auto, blended"


def _sampled(kind, axes, combo, raw, lat, spec, rng, fractions, prior, scorer_name: str):
    """The held-out draw of evaluate_slice (same rng) and the order in which the point sampler, scored
    with `prior` (or by spacing), asks for the pool's points: (sol_fn, pool/query arrays, dense errors, order)."""
    _, sol_fn, (pool_raw, pool_lat, q_raw, q_lat), dense = _setup(util_predictor, kind, axes, combo, raw, lat, spec, rng)
    levels = [np.unique(pool_raw[:, j]) for j in range(pool_raw.shape[1])]
    scorer = ratio_scorer(prior, levels) if scorer_name == "ratio" else spacing_scorer(levels)
    asked: list[np.ndarray] = []
    run_points_offline(PointSampler(pool_raw, scorer, PointConfig(max_fraction=max(fractions))),
                       lambda idx: pool_lat[idx], on_round=lambda s, idx: asked.append(idx))
    return sol_fn, (pool_raw, pool_lat, q_raw, q_lat), dense, np.concatenate(asked)


def evaluate_prior(kind, axes, combo, raw, lat, spec, rng, fractions, source: PriorSource, scorer_name: str):
    """Per fraction: {column: errors on the held-out points}, the random control's errors, fraction used;
    and the dense GridInterp errors. The held-out draw is evaluate_slice's (same rng seed)."""
    prior = prior_latency(source, kind, tuple(combo))
    sol_fn, (pool_raw, pool_lat, q_raw, q_lat), dense, order = _sampled(kind, axes, combo, raw, lat, spec, rng,
                                                                        fractions, prior, scorer_name)
    predictors = {name: prior_predictor(kind, tuple(axes), sol_fn, prior, **opts) for name, opts in VARIANTS}
    alone = rel_err(predictors["prior alone"](pool_raw[:0], pool_lat[:0], q_raw), q_lat)
    out = {}
    for f in fractions:
        pick = order[:max(1, int(f * len(pool_raw)))]
        cols = {name: alone if name == "prior alone" else rel_err(p(pool_raw[pick], pool_lat[pick], q_raw), q_lat)
                for name, p in predictors.items()}
        rand = rng.choice(len(pool_raw), size=len(pick), replace=False)
        control = rel_err(predictors[ADOPTED](pool_raw[rand], pool_lat[rand], q_raw), q_lat)
        out[f] = (cols, control, len(pick) / len(pool_raw))
    coverage = float(np.mean(np.isfinite(prior(q_raw)[0])))
    return dense, out, coverage


def parse_sources(args) -> list[PriorSource]:
    """--prior-system "h100_sxm,h200_sxm/vllm": system[/backend] items (backend: --prior-backend or --backend)."""
    out = []
    for item in args.prior_system.split(","):
        system, _, backend = item.partition("/")
        source = PriorSource(args.prior_db, system, Backend(backend or args.prior_backend or args.backend))
        if source.system == args.system and source.backend.value == args.backend:
            raise InputError(f"the prior ({source.system}/{source.backend.value}) must not be the oracle's "
                             "system/backend pair")
        out.append(source)
    return out


def evaluate_multi(kind, axes, combo, raw, lat, spec, rng, fractions, sources, scorer_name: str):
    """Several priors through perfdb.prior_blend.PriorBlend, on the point sampler's sample (scored with the
    first prior): per fraction (errors, fraction used), and the dense GridInterp errors."""
    from perfdb.prior_blend import PriorBlend

    priors = [prior_latency(src, kind, tuple(combo)) for src in sources]
    sol_fn, (pool_raw, pool_lat, q_raw, q_lat), dense, order = _sampled(kind, axes, combo, raw, lat, spec, rng,
                                                                        fractions, priors[0], scorer_name)
    out = {}
    for f in fractions:
        pick = order[:max(1, int(f * len(pool_raw)))]
        blend = PriorBlend(kind, tuple(axes), pool_raw[pick], pool_lat[pick], priors, sol_fn)
        util, _, _ = blend.query(q_raw, exact_allowed=False)
        out[f] = (rel_err(sol_fn(q_raw) / util, q_lat), len(pick) / len(pool_raw), blend.weights)
    return dense, out


def multi_table(db, args, spec, fractions, seeds, sources) -> None:
    names = ", ".join(f"{s.system}/{s.backend.value}" for s in sources)
    print(f"Priors {names} -> oracle {args.system}/{args.backend} (perfdb.prior_blend.PriorBlend); mean (median) "
          "relative error on held-out points; ratio = blend / dense GridInterp; weights: mean over slices and seeds "
          "(priors in order, then the points alone).\n")
    print("| family | budget | dense, GridInterp | priors blended | ratio | per-seed ratio | mean weights |")
    print("|---|---|---|---|---|---|---|")
    def evaluate_for(kind, axes):
        return lambda c, r, la, rng: evaluate_multi(kind, axes, c, r, la, spec, rng, fractions, sources,
                                                    args.prior_scorer)

    for kind, _, _, runs, gi_seed, gi in family_runs(db, args, seeds, evaluate_for):
        for f in fractions:
            ad_seed = by_seed(runs, lambda r: r[1][f][0])  # noqa: B023
            ad = np.concatenate(list(ad_seed.values()))
            used = np.mean([r[1][f][1] for rs in runs.values() for r in rs])
            weights = np.mean([r[1][f][2] for rs in runs.values() for r in rs], axis=0)
            per_seed = per_seed_ratios(ad_seed, gi_seed)
            print(f"| {kind.value} | {f:.0%} ({used:.1%}) | {_mm(gi)} | {_mm(ad)} | {ad.mean() / gi.mean():.2f}x | "
                  f"[{per_seed}] | {' / '.join(f'{w:.2f}' for w in weights)} |", flush=True)


def prior_table(db, args, spec, fractions, seeds) -> None:
    sources = parse_sources(args)
    if len(sources) > 1:
        return multi_table(db, args, spec, fractions, seeds, sources)
    source = sources[0]
    backend = source.backend
    names = [n for n, _ in VARIANTS]
    print(f"Prior {args.prior_system}/{backend.value} -> oracle {args.system}/{args.backend}; mean (median) relative "
          f"error on held-out points, pooled over slices and seeds; ratio = adopted / dense GridInterp.\n")
    print("| family | budget | prior coverage | dense, GridInterp | " + " | ".join(names) +
          " | ratio | per-seed ratio | random + adopted |")
    print("|---" * (len(names) + 7) + "|")
    def evaluate_for(kind, axes):
        return lambda c, r, la, rng: evaluate_prior(kind, axes, c, r, la, spec, rng, fractions, source,
                                                    args.prior_scorer)

    for kind, _, _, runs, gi_seed, gi in family_runs(db, args, seeds, evaluate_for):
        cover = np.mean([r[2] for rs in runs.values() for r in rs])
        for f in fractions:
            cols = {n: np.concatenate([r[1][f][0][n] for rs in runs.values() for r in rs]) for n in names}
            ad_seed = by_seed(runs, lambda r: r[1][f][0][ADOPTED])  # noqa: B023
            rnd = np.concatenate([r[1][f][1] for rs in runs.values() for r in rs])
            used = np.mean([r[1][f][2] for rs in runs.values() for r in rs])
            per_seed = per_seed_ratios(ad_seed, gi_seed)
            print(f"| {kind.value} | {f:.0%} ({used:.1%}) | {cover:.0%} | {_mm(gi)} | " +
                  " | ".join(f"{_mm(cols[n])} {cols[n].mean() / gi.mean():.2f}x" for n in names) +
                  f" | {cols[ADOPTED].mean() / gi.mean():.2f}x | [{per_seed}] | {_mm(rnd)} {rnd.mean() / gi.mean():.2f}x |",
                  flush=True)
