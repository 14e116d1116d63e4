"""Adaptive sampling by single points, for an interpolator that accepts scattered points.

The level sampler (collectors/adaptive.py) must measure whole slabs because GridInterp needs full
grids. perfdb.scatter.CompletionInterp does not, so this sampler picks points:

1. Start space-filling: the corners of the level grid, then a Latin design over levels (every level
   of every axis appears `latin_passes` times, paired at random with the other axes' levels), so the
   completion has points on every level it must learn a factor for.
2. Score every unmeasured candidate by a Scorer: an estimate of the completion's error there. The
   default (default_scorer) is the distance in level steps to the nearest measured point; the
   value-driven scores (roughness_scorer: cross-validated error near the candidate, times the
   distance; completion_scorer: disagreement of two ranks) are kept for comparison -- on the imported
   tables they chose worse points (docs/bench/collectors.md).
3. Add the `growth` share of what is measured (at least `min_batch`) at the highest scores, at most
   `per_line` of them on one grid line, so that a round spreads over the table.
4. Stop at `max_fraction` of the candidates (a hard ceiling: the last round is cut to fit) or when
   the highest score falls below `target_error`.

The design does not depend on the budget, so a run to 20% passes through the same points a run to
5% would have measured (the bench replays one run and reads each budget as its prefix).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from collectors.adaptive import AskTell

# scores(measured_raw (n, d), measured_latency (n,), candidate_raw (q, d)) -> expected error (q,)
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PointConfig:
    max_fraction: float = 0.10
    latin_passes: int = 2
    growth: float = 0.25
    min_batch: int = 8
    per_line: int = 2
    target_error: float | None = None
    seed: int = 0


class PointSampler(AskTell):
    """Point sampler over `candidates` (n, d) raw axis values; see the module docstring."""

    def __init__(self, candidates: np.ndarray, score: Scorer, config: PointConfig = PointConfig()):
        super().__init__(candidates, config)
        self.score = score
        self.rng = np.random.default_rng(config.seed)

    def ask(self) -> np.ndarray:
        """Indices of the candidates to measure next (empty when done)."""
        if self.done:
            return np.empty(0, np.int64)
        room = self.budget - int(self.measured.sum())
        pick = self._initial() if not self.measured.any() else self._refine()
        pick = pick[~self.measured[pick]][:room]
        if pick.size == 0:
            self.stopped = True
        return pick

    def _nearest(self, target_pos: np.ndarray) -> np.ndarray:
        """The candidate nearest (in level steps) to each wanted level combination (holes, OOM)."""
        out = []
        for t in target_pos:
            out.append(int(np.argmin(np.abs(self.pos - t).sum(axis=1))))
        return np.unique(np.array(out, np.int64))

    def _initial(self) -> np.ndarray:
        top = np.array([len(v) - 1 for v in self.levels])
        corners = np.array(np.meshgrid(*[[0, t] for t in top], indexing="ij")).reshape(len(top), -1).T
        latin = []
        for _ in range(self.cfg.latin_passes):
            n = int(top.max()) + 1
            cols = [self.rng.permutation(np.arange(n) % (t + 1)) for t in top]
            latin.append(np.stack(cols, axis=1))
        picks = self._nearest(np.concatenate([corners] + latin))
        return self.rng.permutation(picks)

    def _refine(self) -> np.ndarray:
        have = self.measured & np.isfinite(self.value)
        todo = np.flatnonzero(~self.measured)
        if todo.size == 0 or have.sum() < 2:
            self.stopped = True
            return np.empty(0, np.int64)
        err = self.score(self.raw[have], self.value[have], self.raw[todo])
        err = np.where(np.isfinite(err), err, np.inf)
        order = todo[np.argsort(-err, kind="stable")]
        self.best_error = float(np.max(err))
        want = max(self.cfg.min_batch, int(self.cfg.growth * self.measured.sum()))
        return self._spread(order, want)

    def _spread(self, order: np.ndarray, want: int) -> np.ndarray:
        """The first `want` of `order`, at most per_line on any one grid line (then the rest in order)."""
        d = self.pos.shape[1]
        counts = [dict() for _ in range(d)]
        taken, skipped = [], []
        for i in order:
            keys = [tuple(np.delete(self.pos[i], j)) for j in range(d)]
            if all(counts[j].get(keys[j], 0) < self.cfg.per_line for j in range(d)):
                taken.append(i)
                for j in range(d):
                    counts[j][keys[j]] = counts[j].get(keys[j], 0) + 1
                if len(taken) >= want:
                    break
            else:
                skipped.append(i)
        if len(taken) < want:
            taken += skipped[:want - len(taken)]
        return np.array(taken, np.int64)


def default_scorer(kind, axes: tuple[str, ...], sol_fn: Callable[[np.ndarray], np.ndarray],
                   candidates: np.ndarray) -> Scorer:
    """The sampler's default estimate of where the completion errs most: far from every measured point.

    Replayed against the imported h200_sxm tables (docs/bench/collectors.md), the scores that read the
    measured values -- roughness_scorer (cross-validated error near each candidate) and
    completion_scorer (disagreement of two ranks) -- chose worse points than plain spacing at 10%
    (decode 4.9x and 6x the dense error vs 3.9x), so spacing is the default; kind, axes and sol_fn
    are taken so that a value-driven score can replace it without changing callers."""
    return spacing_scorer([np.unique(candidates[:, j]) for j in range(candidates.shape[1])])


def completion_scorer(kind, axes: tuple[str, ...], sol_fn: Callable[[np.ndarray], np.ndarray]) -> Scorer:
    """Disagreement |log(a / b)| of two completions of different capacity: rank `high` and rank `low`
    (both capped so that each has at least two measured points per parameter)."""
    from perfdb.scatter import CompletionConfig, CompletionInterp

    def score(raw: np.ndarray, latency: np.ndarray, query: np.ndarray) -> np.ndarray:
        util = sol_fn(raw) / latency
        span = sum(len(np.unique(raw[:, j])) for j in range(raw.shape[1]))
        high = int(np.clip(len(raw) // (2 * span), 1, 8))
        a = CompletionInterp(kind, axes, raw, util, latency, CompletionConfig(ranks=(high,), large_ranks=(high,)))
        low = max(1, high // 2)
        b = CompletionInterp(kind, axes, raw, util, latency, CompletionConfig(ranks=(low,), large_ranks=(low,), seed=1))
        ua, _, _ = a.grid.query(query, exact_allowed=False)
        ub, _, _ = b.grid.query(query, exact_allowed=False)
        return np.abs(np.log(ua / ub))

    return score


def spacing_scorer(levels: list[np.ndarray]) -> Scorer:
    """Distance (in level steps, L1) from each candidate to the nearest measured point: space filling."""
    from scipy.spatial import cKDTree

    def steps(raw: np.ndarray) -> np.ndarray:
        return np.stack([np.searchsorted(v, raw[:, j]) for j, v in enumerate(levels)], axis=1).astype(np.float64)

    def score(raw: np.ndarray, latency: np.ndarray, query: np.ndarray) -> np.ndarray:
        dist, _ = cKDTree(steps(raw)).query(steps(query), k=1, p=1)
        return np.asarray(dist, np.float64)

    return score


def roughness_scorer(kind, axes: tuple[str, ...], sol_fn: Callable[[np.ndarray], np.ndarray],
                     levels: list[np.ndarray], folds: int = 5, near: int = 4) -> Scorer:
    """Distance to the nearest measured point x (the cross-validated error of the completion at the
    `near` nearest measured points + its median): space filling, denser where the table is rough."""
    from scipy.spatial import cKDTree

    from perfdb.scatter import CompletionConfig, CompletionInterp

    def steps(raw: np.ndarray) -> np.ndarray:
        return np.stack([np.searchsorted(v, raw[:, j]) for j, v in enumerate(levels)], axis=1).astype(np.float64)

    def score(raw: np.ndarray, latency: np.ndarray, query: np.ndarray) -> np.ndarray:
        fold = np.arange(len(raw)) % folds
        cv = np.zeros(len(raw))
        sol = sol_fn(raw)
        # the folds reuse the rank and variant chosen on all points (one selection per round, not five)
        full = CompletionInterp(kind, axes, raw, sol / latency, latency, sol_fn=sol_fn)
        cfg = CompletionConfig(ranks=(full.rank,), large_ranks=(full.rank,), variants=(full.variant,),
                               large_variant=full.variant)
        for f in range(folds):
            tr, te = fold != f, fold == f
            ci = CompletionInterp(kind, axes, raw[tr], sol[tr] / latency[tr], latency[tr], cfg, sol_fn=sol_fn)
            util, _, _ = ci.query(raw[te], exact_allowed=False)
            cv[te] = np.abs(np.log(sol[te] / util / latency[te]))
        cv = np.where(np.isfinite(cv), cv, np.nanmax(np.where(np.isfinite(cv), cv, 0)))
        dist, idx = cKDTree(steps(raw)).query(steps(query), k=min(near, len(raw)), p=1)
        dist, idx = np.asarray(dist).reshape(len(query), -1), np.asarray(idx).reshape(len(query), -1)
        return dist[:, 0] * (cv[idx].mean(axis=1) + np.median(cv))

    return score


def completion_predictor(kind, axes: tuple[str, ...], sol_fn: Callable[[np.ndarray], np.ndarray]):
    """predict(raw, latency, query) -> latency through CompletionInterp (the bench's Predictor shape)."""
    from perfdb.scatter import CompletionInterp

    def predict(raw: np.ndarray, latency: np.ndarray, query: np.ndarray) -> np.ndarray:
        if len(raw) == 0:
            return np.full(len(query), np.nan)
        ci = CompletionInterp(kind, axes, raw, sol_fn(raw) / latency, latency, sol_fn=sol_fn)
        util, _, _ = ci.query(query, exact_allowed=False)
        return sol_fn(query) / util

    return predict


def run_points_offline(sampler: PointSampler, oracle: Callable[[np.ndarray], np.ndarray],
                       on_round: Callable[[PointSampler, np.ndarray], None] | None = None) -> PointSampler:
    """Drive a point sampler against an oracle (a dense measured table) until it is done;
    on_round(sampler, asked indices in the order asked) after each round."""
    while (idx := sampler.ask()).size:
        sampler.tell(idx, oracle(idx))
        if on_round:
            on_round(sampler, idx)
    return sampler


def ratio_scorer(prior, levels: list[np.ndarray], near: int = 4) -> Scorer:
    """With a prior table (perfdb.prior): distance to the nearest measured point x (the spread of the
    measured log(latency / prior) among the `near` nearest measured points + its median over all):
    space filling, denser where the ratio to the prior varies. Shapes the prior cannot answer score as
    if their ratio spread were the largest seen, so the points alone cover them."""
    from scipy.spatial import cKDTree

    def steps(raw: np.ndarray) -> np.ndarray:
        return np.stack([np.searchsorted(v, raw[:, j]) for j, v in enumerate(levels)], axis=1).astype(np.float64)

    def score(raw: np.ndarray, latency: np.ndarray, query: np.ndarray) -> np.ndarray:
        ratio = np.log(latency / prior(raw)[0])
        ok = np.isfinite(ratio)
        dist, _ = cKDTree(steps(raw)).query(steps(query), k=1, p=1)
        if ok.sum() < near:
            return np.asarray(dist, np.float64)
        _, idx = cKDTree(steps(raw[ok])).query(steps(query), k=near, p=1)
        spread = ratio[ok][idx].std(axis=1)
        spread = spread + np.median(spread)
        covered = np.isfinite(prior(query)[0])
        return np.asarray(dist, np.float64) * np.where(covered, spread, spread.max())

    return score


def prior_predictor(kind, axes: tuple[str, ...], sol_fn: Callable[[np.ndarray], np.ndarray], prior, **options):
    """predict(raw, latency, query) -> latency through perfdb.prior.PriorInterp (the bench's Predictor
    shape); options go to PriorInterp (correction, blend)."""
    from perfdb.prior import PriorInterp

    def predict(raw: np.ndarray, latency: np.ndarray, query: np.ndarray) -> np.ndarray:
        pi = PriorInterp(kind, axes, raw, latency, prior, sol_fn, **options)
        util, _, _ = pi.query(query, exact_allowed=False)
        return sol_fn(query) / util

    return predict
