"""Adaptive collection on a real device: a sampler (points, collectors/adaptive_points.py, by default;
or levels, collectors/adaptive.py) drives the runner.

Cases are grouped by op family and categorical combination; each group's points are the sampler's
candidates. Every round's asked points go through the ordinary runner (atomic shards, failures
recorded, already-measured cases skipped) and their latencies are read back from the database, so a
killed adaptive run re-traces the same rounds from the stored rows and measures only what is missing.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from collectors import runner
from collectors.adaptive import AdaptiveConfig, AdaptiveSampler, util_predictor
from collectors.adaptive_points import PointConfig, PointSampler, default_scorer, ratio_scorer
from collectors.cases import key
from collectors.session import Session
from perfdb.errors import InputError, NotFoundError
from perfdb.family import SPARSE_FILL, case_combo
from perfdb.ops import OpCase
from perfdb.prior import PriorSource, prior_latency
from perfdb.roofline import sol_ms
from perfdb.schema import key_columns
from perfdb.storage import TableKey, read_meta, read_table, write_meta
from perfdb.types import OpKind


def _groups(cases: list[OpCase]) -> list[list[OpCase]]:
    out: dict[tuple, list[OpCase]] = {}
    for c in cases:
        out.setdefault((c.KIND, tuple(c.categoricals().items())), []).append(c)
    return list(out.values())


def _stored_latency(root: Path, s: Session, kind) -> dict[tuple, float]:
    try:
        t = read_table(root, TableKey(s.prov.system, s.prov.backend, s.prov.backend_version, kind))
    except NotFoundError:
        return {}
    cols = [t.column(c).to_pylist() for c in key_columns(kind)]
    return dict(zip(zip(*cols, strict=True), t.column("latency_ms").to_pylist(), strict=True))


# Where the point sampler + CompletionInterp measured closer to the dense grid than the level sampler +
# GridInterp in the offline replay (docs/bench/collectors.md, 3 seeds), from this budget up to
# SPARSE_FILL: GEMM from 5% (2.4x vs 2.7x the dense error at 5%, 1.8x vs 1.9x at 10%, even at 20%),
# attention from 10% (at 5% the completion of these small tables is underdetermined). Elsewhere levels.
POINTS_FROM: dict[OpKind, float] = {OpKind.GEMM: 0.05, OpKind.ATTENTION_PREFILL: 0.10, OpKind.ATTENTION_DECODE: 0.10}


@dataclass(frozen=True)
class AutoConfig:
    """Per op family, the sampler that measured better at this budget (see POINTS_FROM)."""
    max_fraction: float = 0.10

    def for_kind(self, kind: OpKind) -> PointConfig | AdaptiveConfig:
        if kind in POINTS_FROM and POINTS_FROM[kind] <= self.max_fraction <= SPARSE_FILL:
            return PointConfig(max_fraction=self.max_fraction)
        return AdaptiveConfig(max_fraction=self.max_fraction)


def _record_priors(root: Path, s: Session, priors: tuple[PriorSource, ...]) -> tuple[PriorSource, ...]:
    """Refuse a prior that is the table being collected; record the priors in the version's meta.yaml."""
    for p in priors:
        if p.root is not None and Path(p.root).resolve() == Path(root).resolve() and \
                (p.system, p.backend) == (s.prov.system, s.prov.backend):
            raise InputError(f"the prior ({p.system}/{p.backend.value}) is the table being collected; "
                             "name another system (--prior-system) or backend (--prior-backend)")
    if priors:
        meta = read_meta(root, s.prov.system, s.prov.backend, s.prov.backend_version)
        write_meta(root, s.prov.system, s.prov.backend, s.prov.backend_version,
                   {**meta, "prior": [p.to_meta(root) for p in priors]})
    return priors


def _warm_lookup(root: Path, s, combos: set) -> None:
    """Build the lookup's interpolators of the collected groups now: sparse tables are completed once
    and memoised in the database (perfdb.completion_store), so the first plan after a collection does
    not pay seconds per table for it."""
    from perfdb.lookup import PerfDB

    view = PerfDB(root).view(s.prov.system, s.prov.backend, s.prov.backend_version)
    for kind, combo in sorted(combos, key=str):
        fam = view.family(kind)
        if fam is not None:
            fam.interp(combo)


def _prior_sampler(cands: np.ndarray, kind: OpKind, first: OpCase, priors, cfg) -> PointSampler | None:
    """With prior tables of which one answers some of the group's shapes: the point sampler, scored by
    the spread of the measured ratio to the first such prior (collectors/adaptive_points.ratio_scorer);
    else None. Beyond SPARSE_FILL the lookup serves a table with GridInterp, which needs levels."""
    if cfg.max_fraction > SPARSE_FILL:
        return None
    for prior in (priors,) if isinstance(priors, PriorSource) else priors:
        fn = prior_latency(prior, kind, case_combo(first))
        if np.isfinite(fn(cands)[0]).any():
            levels = [np.unique(cands[:, j]) for j in range(cands.shape[1])]
            return PointSampler(cands, ratio_scorer(fn, levels), PointConfig(max_fraction=cfg.max_fraction))
    return None


def run_adaptive(cases: list[OpCase], root: Path, s: Session,
                 cfg: AutoConfig | PointConfig | AdaptiveConfig | None = None, budget_s: float | None = None,
                 on_progress: Callable[[runner.Progress], None] | None = None,
                 prior: PriorSource | tuple[PriorSource, ...] | None = None) -> runner.RunSummary:
    """Measure each group's cases adaptively (see module docstring); the summary counts all rounds.

    A PointConfig runs the point sampler (collectors/adaptive_points.py), whose sparse tables the
    lookup serves with perfdb.scatter.CompletionInterp; an AdaptiveConfig runs the level sampler
    (collectors/adaptive.py), whose level products GridInterp serves; AutoConfig (the default) picks
    one per op family. With a `prior` (a related table the user has: another GPU or engine), every
    group the prior answers runs the point sampler (unless levels were asked for) and the version's
    meta.yaml records the prior, so the lookup serves its sparse tables through perfdb.prior.PriorInterp
    (several priors: perfdb.prior_blend.PriorBlend)."""
    cfg = cfg or AutoConfig()
    priors = _record_priors(root, s, (prior,) if isinstance(prior, PriorSource) else tuple(prior or ()))
    if isinstance(cfg, PointConfig) and cfg.max_fraction > SPARSE_FILL:
        raise InputError(f"the point sampler stops at most at {SPARSE_FILL:.0%} of each group's cases (the lookup "
                         f"serves tables up to that fill with the completion interpolator); got max fraction "
                         f"{cfg.max_fraction:g}: lower it, or use the level sampler")
    start = time.monotonic()
    totals = dict(requested=len(cases), skipped=0, measured=0, failed=0)
    shards: list[Path] = []
    failures_file = None
    for group in _groups(cases):
        first, kind = group[0], group[0].KIND
        cands = np.array([[int(getattr(c, n)) for n in first.NUMERIC] for c in group], dtype=np.float64)

        def sol_fn(raw: np.ndarray, first=first) -> np.ndarray:
            return sol_ms(dataclasses.replace(first, **{n: raw[:, j] for j, n in enumerate(first.NUMERIC)}), s.spec)

        group_cfg = cfg.for_kind(kind) if isinstance(cfg, AutoConfig) else cfg
        with_prior = _prior_sampler(cands, kind, first, priors, cfg) \
            if priors and not isinstance(cfg, AdaptiveConfig) else None
        if with_prior is not None:
            sampler = with_prior
        elif isinstance(group_cfg, AdaptiveConfig):
            sampler = AdaptiveSampler(cands, util_predictor(kind, first.NUMERIC, sol_fn), group_cfg)
        else:
            sampler = PointSampler(cands, default_scorer(kind, first.NUMERIC, sol_fn, cands), group_cfg)
        while (idx := sampler.ask()).size:
            left = None if budget_s is None else budget_s - (time.monotonic() - start)
            if left is not None and left <= 0:
                break
            batch = [group[i] for i in idx]
            res = runner.run(batch, root, s, left, on_progress=on_progress)
            shards += res.shards
            failures_file = res.failures_file or failures_file
            for name in ("skipped", "measured", "failed"):
                totals[name] += getattr(res, name)
            stored = _stored_latency(root, s, kind)
            sampler.tell(idx, np.array([stored.get(key(c), np.nan) for c in batch]))
    if totals["measured"]:
        _warm_lookup(root, s, {(g[0].KIND, case_combo(g[0])) for g in _groups(cases)})
    unasked = totals["requested"] - totals["skipped"] - totals["measured"] - totals["failed"]
    return runner.RunSummary(totals["requested"], totals["skipped"], totals["measured"], totals["failed"], 0,
                             tuple(shards), failures_file, unneeded=unasked)
