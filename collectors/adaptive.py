"""Adaptive sampling: measure first where interpolation is worst, so a database fills in an hour.

Candidates are the points of a dense grid (one categorical combination of an op family). The lookup
interpolates on rectilinear grids (perfdb.interp.GridInterp: multilinear in log-utilisation), so the
sampler refines *levels*: it keeps a chosen subset of each axis' values and measures their product.

1. Start coarse: every `initial_stride`-th value of each axis, the last always included.
2. Error where it is known: for each chosen interior level, predict its whole slab from the chosen
   levels around it (the level left out) and compare with what was measured there: the
   interpolation error that skipping values near that level costs.
3. Refine where it is largest: every gap between two chosen levels with unchosen values inside gets
   score = max(error of its two ends) x (values skipped in the gap); the best gap's middle value is
   added and its slab measured. Cheap gaps (small slabs) of similar score are taken in the same round.
4. Stop at `max_fraction` of the candidates (a slab that would overshoot it is never taken), or when the largest gap error falls below `target_error`.

The predictor is pluggable; `util_predictor` uses the lookup's own interpolator, so the error the
sampler chases is the error the lookup will make.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# predict(measured_raw (n, d), measured_latency (n,), query_raw (q, d)) -> predicted latency (q,)
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AdaptiveConfig:
    initial_stride: int = 3
    max_fraction: float = 0.10
    target_error: float | None = None
    levels_per_round: int = 2


class AskTell:
    """What every sampler over `candidates` (n, d raw axis values) shares: the level grid each candidate
    sits on, what was measured, the budget (`cfg.max_fraction`, a ceiling) and the stop rule (`stopped`,
    or the best remaining error estimate below `cfg.target_error`)."""

    def __init__(self, candidates: np.ndarray, config):
        self.raw = np.asarray(candidates, dtype=np.float64)
        self.cfg = config
        n, d = self.raw.shape
        self.levels = [np.unique(self.raw[:, j]) for j in range(d)]
        self.pos = np.stack([np.searchsorted(self.levels[j], self.raw[:, j]) for j in range(d)], axis=1)
        self.measured = np.zeros(n, bool)
        self.value = np.full(n, np.nan)
        self.best_error = np.inf   # the sampler's estimate of the largest error left
        self.stopped = False

    @property
    def budget(self) -> int:
        return max(1, int(self.cfg.max_fraction * len(self.raw)))

    @property
    def done(self) -> bool:
        if self.stopped or self.measured.sum() >= self.budget:
            return True
        return self.cfg.target_error is not None and self.best_error <= self.cfg.target_error

    def tell(self, idx: np.ndarray, latency: np.ndarray) -> None:
        idx, latency = np.asarray(idx, np.int64), np.asarray(latency, np.float64)
        ok = np.isfinite(latency) & (latency > 0)
        self.measured[idx] = True  # a failed point is not asked again; it just has no value
        self.value[idx[ok]] = latency[ok]


class AdaptiveSampler(AskTell):
    """Level sampler over `candidates` (n, d) raw axis values; see the module docstring."""

    def __init__(self, candidates: np.ndarray, predict: Predictor, config: AdaptiveConfig = AdaptiveConfig()):
        super().__init__(candidates, config)
        self.predict = predict
        self.chosen = [np.zeros(len(lv), bool) for lv in self.levels]

    def _in_product(self) -> np.ndarray:
        keep = np.ones(len(self.raw), bool)
        for j, ch in enumerate(self.chosen):
            keep &= ch[self.pos[:, j]]
        return keep

    def ask(self) -> np.ndarray:
        """Indices of the candidates to measure next (empty when done)."""
        if not self.measured.any():
            s = self.cfg.initial_stride
            for ch in self.chosen:
                ch[::s] = True
                ch[-1] = True
        elif self.done:
            return np.empty(0, np.int64)
        else:
            self._refine()
        new = np.flatnonzero(self._in_product() & ~self.measured)
        if new.size == 0:
            self.stopped = True  # every gap is closed
        return new

    def level_errors(self, j: int) -> np.ndarray:
        """Leave-one-level-out error of each chosen level of axis j (NaN at the ends)."""
        have = self.measured & np.isfinite(self.value)
        chosen = np.flatnonzero(self.chosen[j])
        err = np.full(len(self.levels[j]), np.nan)
        for lv in chosen[1:-1]:
            slab = have & (self.pos[:, j] == lv)
            rest = have & ~slab
            if slab.any() and rest.any():
                pred = self.predict(self.raw[rest], self.value[rest], self.raw[slab])
                rel = np.abs(pred / self.value[slab] - 1.0)
                err[lv] = float(np.mean(np.where(np.isfinite(rel), rel, 1.0)))
        return err

    def _gaps(self) -> list[tuple[float, int, int, int]]:
        """(score, axis, middle level, slab size) of every gap with unchosen values inside."""
        out = []
        slab_sizes = [int(ch.sum()) for ch in self.chosen]
        for j, ch in enumerate(self.chosen):
            err = self.level_errors(j)
            known = err[np.isfinite(err)]
            fallback = float(known.max()) if known.size else 1.0
            chosen = np.flatnonzero(ch)
            for a, b in zip(chosen[:-1], chosen[1:], strict=True):
                if b - a < 2:
                    continue
                ends = [e for e in (err[a], err[b]) if np.isfinite(e)]
                e = max(ends) if ends else fallback
                slab = int(np.prod([n for i, n in enumerate(slab_sizes) if i != j]))
                out.append((e * (b - a - 1), j, (a + b) // 2, slab))
        return out

    def _refine(self) -> None:
        gaps = self._gaps()
        if not gaps:
            self.stopped = True
            return
        gaps.sort(key=lambda g: -g[0])
        self.best_error = gaps[0][0]
        room = self.budget - int(self.measured.sum())
        taken = 0
        for score, j, mid, slab in gaps:
            if slab > room:
                continue  # never overshoot the budget; a smaller gap further down may still fit
            if taken and (taken >= self.cfg.levels_per_round or score < 0.5 * gaps[0][0]):
                break
            self.chosen[j][mid] = True
            room -= slab
            taken += 1
        if taken == 0:
            self.stopped = True  # no gap's slab fits in what is left of the budget


def util_predictor(kind, axes: tuple[str, ...], sol_fn: Callable[[np.ndarray], np.ndarray]) -> Predictor:
    """A Predictor that interpolates utilisation with the lookup's GridInterp; sol_fn(raw) -> sol_ms."""
    from perfdb.interp import GridInterp

    def predict(raw: np.ndarray, latency: np.ndarray, query: np.ndarray) -> np.ndarray:
        if len(raw) == 0:
            return np.full(len(query), np.nan)
        sol = sol_fn(raw)
        gi = GridInterp(kind, axes, raw, sol / latency, latency)
        util, _, _ = gi.query(query, exact_allowed=False)
        return sol_fn(query) / util

    return predict


def run_offline(sampler: AdaptiveSampler, oracle: Callable[[np.ndarray], np.ndarray],
                on_round: Callable[[AdaptiveSampler], None] | None = None) -> AdaptiveSampler:
    """Drive a sampler against an oracle (a dense measured table) until it is done."""
    while True:
        idx = sampler.ask()
        if idx.size == 0:
            return sampler
        sampler.tell(idx, oracle(idx))
        if on_round:
            on_round(sampler)
