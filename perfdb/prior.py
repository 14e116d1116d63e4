"""Interpolation of a sparse table with a prior: a related table the user already has.

A user collecting on their own GPU nearly always holds a database of a related GPU or engine (the
bundled one, or an imported AIConfigurator package: h100_sxm tables when collecting on h200_sxm,
TRT-LLM tables when collecting vLLM kernels on the same GPU). The kernel steps that a sparse sample
cannot find on its own (GEMM tile quantisation, split-KV choices) are largely shared, so the ratio
of the new latency to the prior's at the same shape is far smoother than the table itself:

    log t(x) = log t_prior(x) + c(x)

t_prior is the prior database's own lookup (measured or interpolated inside its grid; its
utilisation interpolated on its grid, so a shape between its levels is answered too) and the
correction c is fitted to the measured points' log ratios (`Correction`):

    auto        the one of constant / additive / completion with the smallest error on a fifth of the
                measured points held out (the default)
    none        c = 0: the prior alone (a baseline; needs no points)
    constant    c = median of the measured log ratios (one factor: clock, memory bandwidth)
    additive    c = c0 + sum_j g_j(axis j level): per-axis functions with a difference penalty,
                interpolated linearly in the lookup's axis coordinates (log, sqrt for prefill seq)
    completion  c completed on the measured level grid by the CP completion (perfdb.scatter) of
                the ratio, then interpolated by GridInterp

The prediction is then blended (in log space) with the measured points' own completion, at the
weight that predicted a held-out fifth of the points best (1 = the prior's prediction alone): a
prior close to the new system keeps its weight, a far one (another engine's kernels) hands over to
the points, so a poor prior costs little (docs/bench/collectors.md).

Where the prior has no answer (a shape outside its grid, a combination it lacks) the measured
points alone answer through perfdb.scatter.CompletionInterp, as without a prior.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from perfdb import completion_store
from perfdb.errors import DataError
from perfdb.interp import GridInterp, transform_axis
from perfdb.scatter import CompletionConfig, CompletionInterp
from perfdb.types import Backend, OpKind, Source

# prior(raw (n, d)) -> (prior latency ms, NaN where the prior has no answer; Source code per row)
PriorFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Correction(str, Enum):
    AUTO = "auto"
    NONE = "none"
    CONSTANT = "constant"
    ADDITIVE = "additive"
    COMPLETION = "completion"


# The ratio is completed with the same rank / smoothness choice as a table without a prior (ranks and
# smoothness chosen on held-out measured nodes; rank 16 on GEMM-sized grids): on the h100 -> h200
# replay's 10% samples, ranks 1-4 with smoothness 10 were worse on GEMM (1.53x vs 1.45x the dense
# error) and no better on attention.
RATIO_COMPLETION = CompletionConfig()


_BLEND_MIN_ROWS = 40       # fewer measured points: the prior's prediction alone (no blend)
_WEIGHTS = np.linspace(0.0, 1.0, 5)


@dataclass(frozen=True)
class PriorSource:
    """Where a prior table lives: a database root (None: the bundled database), its system and backend
    (and version: None = newest)."""
    root: Path | None
    system: str
    backend: Backend
    version: str | None = None


    def to_meta(self, collected: Path | None = None) -> dict:
        """The entry a collected version's meta.yaml keeps under `prior` (the lookup reads it back).
        With the collected database's root, the prior's path relative to it is kept too, so a prior
        moved together with the database (copied side by side to another machine) is still found."""
        root = str(Path(self.root).resolve()) if self.root is not None else None
        entry = {"db": root, "system": self.system, "backend": self.backend.value, "version": self.version}
        if root is not None and collected is not None:
            entry["db_relative"] = os.path.relpath(root, Path(collected).resolve())
        return entry


def recorded_priors(meta: dict, collected: Path | None = None) -> tuple[PriorSource, ...]:
    """The priors a version's meta.yaml names under `prior` (one entry or a list), in order, each found
    relative to the collected database's root first (`db_relative`), then at its absolute path; a
    prior found at neither is dropped (with none left, the sparse tables are served by their points
    alone, as without a prior; `servecast db info` lists it as missing)."""
    out = []
    for entry in _entries(meta):
        if "system" not in entry or "backend" not in entry:
            continue
        root = _prior_root(entry, collected)
        try:
            backend = Backend(entry["backend"])
        except ValueError:
            raise DataError(f"meta.yaml prior entry {entry}: unknown backend {entry['backend']!r}; accepted: "
                            f"{', '.join(b.value for b in Backend)}") from None
        if root is None or root.is_dir():
            out.append(PriorSource(root, str(entry["system"]), backend, entry.get("version")))
    return tuple(out)


def _entries(meta: dict) -> list[dict]:
    """The `prior` entries of a meta.yaml (one mapping or a list of them)."""
    entries = meta.get("prior") if isinstance(meta, dict) else None
    entries = [entries] if isinstance(entries, dict) else entries if isinstance(entries, list) else []
    return [e for e in entries if isinstance(e, dict)]


def _prior_root(entry: dict, collected: Path | None) -> Path | None:
    """Where a meta.yaml prior entry's database is now (the bundled database: None)."""
    if not entry.get("db"):
        return None
    if collected is not None and entry.get("db_relative"):
        moved = (Path(collected) / entry["db_relative"]).resolve()
        if moved.is_dir():
            return moved
    return Path(entry["db"])


def missing_priors(meta: dict, collected: Path | None = None) -> list[str]:
    """Database paths of the recorded priors that cannot be found (for `servecast db info`)."""
    roots = [_prior_root(e, collected) for e in _entries(meta)]
    return [str(r) for r in roots if r is not None and not r.is_dir()]


@lru_cache(maxsize=8)
def _prior_view(source: PriorSource):
    """One PerfDB view per prior (its tables are read once, whatever number of combinations ask)."""
    from perfdb.lookup import PerfDB

    return PerfDB(source.root).view(source.system, source.backend, source.version)


def prior_latency(source: PriorSource, kind: OpKind, combo: tuple, worst: Source = Source.INTERPOLATED) -> PriorFn:
    """The prior's lookup for one categorical combination: latency where its answer is at most `worst`
    (measured / interpolated inside its grid by default), NaN elsewhere. A combination the prior lacks
    answers NaN everywhere (borrowing a neighbour combination would hide its kernel steps)."""
    from perfdb.family import make_case
    from perfdb.roofline import sol_ms

    view = _prior_view(source)
    fam = view.family(kind)
    own = fam is not None and fam.interp(combo) is not None

    def prior(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(raw)
        if not own or n == 0:
            return np.full(n, np.nan), np.full(n, Source.ROOFLINE.code, np.int8)
        sol = sol_ms(make_case(kind, combo, {a: raw[:, j] for j, a in enumerate(fam.axes)}), view.system)
        ms, code = view.table_rungs(fam, combo, raw, np.asarray(sol, np.float64).ravel())
        return np.where(code <= worst.code, ms, np.nan), code

    return prior


class PriorInterp:
    """log-latency = prior + correction over one group's measured rows; GridInterp's query() contract.

    sol_fn(raw (n, d)) -> speed-of-light ms of the *new* system (utilisation is reported against it)."""

    def __init__(self, kind: OpKind, axes: tuple[str, ...], raw: np.ndarray, latency: np.ndarray,
                 prior: PriorFn, sol_fn: Callable[[np.ndarray], np.ndarray],
                 correction: Correction = Correction.AUTO, smooth: float = 3.0, blend: bool = True):
        self.kind, self.axes, self.prior, self.sol_fn = kind, axes, prior, sol_fn
        self.row_raw, self.row_latency, self.smooth = raw, latency, smooth
        p, _ = prior(raw) if len(raw) else (np.empty(0), None)
        ok = np.isfinite(p) & (p > 0) & (latency > 0)
        self.ratio_raw, self.ratio = raw[ok], np.log(latency[ok] / p[ok]) if ok.any() else np.empty(0)
        self._fallback: CompletionInterp | GridInterp | None = None
        self._store = completion_store.active()   # the points-alone fit is built lazily, at query time
        self.measured = {tuple(r): float(v) for r, v in zip(raw, latency, strict=True)}
        self.correction, self.weight = self._choose(correction, blend)
        self._fit()

    def _fit(self) -> None:
        r = self.ratio
        self.const = float(np.median(r)) if r.size else 0.0
        self.additive = self.grid = None
        if self.correction == Correction.ADDITIVE and r.size >= 2:
            self.additive = _fit_additive(self.kind, self.axes, self.ratio_raw, r, self.smooth)
        elif self.correction == Correction.COMPLETION and r.size >= 2:
            if r.size >= 20:
                ci = CompletionInterp(self.kind, self.axes, self.ratio_raw, np.exp(r), np.ones(r.size),
                                      RATIO_COMPLETION)
                self.grid = ci.grid
            else:   # too few points to choose a rank: GridInterp of the ratio (its holes filled by lines)
                self.grid = GridInterp(self.kind, self.axes, self.ratio_raw, np.exp(r), np.ones(r.size))

    def _choose(self, correction: Correction, blend: bool) -> tuple[Correction, float]:
        """(correction, weight of the prior's prediction against the measured points alone, a log-space
        blend), chosen on a fifth of the measured points held out. AUTO tries constant, additive and
        completion. The blend halves the prior's own kernel choices that the new system does not share
        (h100 vs h200 GEMM: a few shapes 40% apart), and keeps the prior whole where it is right."""
        n = len(self.row_raw)
        candidates = (Correction.CONSTANT, Correction.ADDITIVE, Correction.COMPLETION) \
            if correction == Correction.AUTO else (correction,)
        if correction == Correction.NONE or n < _BLEND_MIN_ROWS or (correction != Correction.AUTO and not blend):
            if correction != Correction.AUTO:
                return correction, 1.0
            return (Correction.CONSTANT if n else Correction.NONE), 1.0
        test = np.random.default_rng(0).random(n) < 0.2
        raw_t, truth = self.row_raw[test], np.log(self.row_latency[test])
        sol_t = self.sol_fn(raw_t)
        lc = None
        best, best_err = (candidates[-1], 1.0), np.inf
        for c in candidates:
            sub = PriorInterp(self.kind, self.axes, self.row_raw[~test], self.row_latency[~test], self.prior,
                              self.sol_fn, c, self.smooth, blend=False)
            lp = np.log(sol_t / sub.query(raw_t, exact_allowed=False)[0])
            if lc is None:
                lc = np.log(sol_t / sub._no_prior(raw_t)[0]) if blend else lp
            for w in (_WEIGHTS if blend else (1.0,)):
                err = float(np.mean(np.abs(np.expm1(np.nan_to_num(w * lp + (1 - w) * lc - truth, nan=0.7)))))
                if err < best_err:
                    best, best_err = (c, float(w)), err
        return best

    def log_correction(self, raw_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(c(x), Source code of the correction: extrapolated outside the measured ratios' range)."""
        n = len(raw_q)
        code = np.full(n, Source.INTERPOLATED.code, np.int8)
        if self.correction == Correction.NONE or self.ratio.size == 0:
            return np.zeros(n), code
        if self.additive is not None:
            return self.additive(raw_q), code
        if self.grid is not None:
            r, _, c = self.grid.query(raw_q, exact_allowed=False)
            return np.log(r), c
        return np.full(n, self.const), code

    def has_nodes(self) -> bool:
        return len(self.row_raw) > 0

    def without_node_of(self, row: int) -> "PriorInterp":
        """A refit as if `row` had never been stored (leave-one-out, as GridInterp.without_node_of)."""
        keep = np.arange(len(self.row_raw)) != row
        out = PriorInterp(self.kind, self.axes, self.row_raw[keep], self.row_latency[keep], self.prior,
                          self.sol_fn, self.correction, self.smooth)
        if hasattr(self, "table_rows"):
            out.table_rows = self.table_rows[keep]
        return out

    def _no_prior(self, raw_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The measured points alone (as without a prior) where the prior has no answer."""
        if self._fallback is None:
            with completion_store.stored_completions(self._store):
                self._fallback = points_alone(self.kind, self.axes, self.row_raw, self.row_latency, self.sol_fn)
        util, _, code = self._fallback.query(raw_q, exact_allowed=False)
        return util, code

    def query(self, raw_q: np.ndarray, exact_allowed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """raw_q: (n, d). Returns (util vs sol_fn, measured latency or NaN, Source code) per query."""
        raw_q = np.asarray(raw_q, np.float64)
        p, pcode = self.prior(raw_q)
        corr, ccode = self.log_correction(raw_q)
        with np.errstate(divide="ignore", invalid="ignore"):
            util = self.sol_fn(raw_q) / (p * np.exp(corr))
        code = np.maximum(pcode, ccode).astype(np.int8)
        if self.weight < 1.0:
            ok = np.isfinite(util) & (util > 0)
            alone = self._no_prior(raw_q[ok])[0]
            util[ok] = np.exp(self.weight * np.log(util[ok]) + (1 - self.weight) * np.log(alone))
        missing = ~(np.isfinite(util) & (util > 0))
        if missing.any() and len(self.row_raw):
            util[missing], code[missing] = self._no_prior(raw_q[missing])
        return util, exact_hits(raw_q, self.measured, code, exact_allowed), code


def points_alone(kind: OpKind, axes: tuple[str, ...], raw: np.ndarray, latency: np.ndarray,
                 sol_fn: Callable[[np.ndarray], np.ndarray]) -> CompletionInterp | GridInterp:
    """The interpolator of measured points without a prior: the completion from 20 points, else the grid."""
    util = sol_fn(raw) / latency
    if len(raw) >= 20:
        return CompletionInterp(kind, axes, raw, util, latency, sol_fn=sol_fn)
    return GridInterp(kind, axes, raw, util, latency)


def exact_hits(raw_q: np.ndarray, measured: dict[tuple, float], code: np.ndarray, allowed: bool) -> np.ndarray:
    """Measured latency of the queries that are stored rows (NaN elsewhere); their `code` becomes measured."""
    out = np.full(len(raw_q), np.nan)
    if allowed:
        for i, r in enumerate(map(tuple, raw_q)):
            if r in measured:
                out[i], code[i] = measured[r], Source.MEASURED.code
    return out


def _fit_additive(kind: OpKind, axes: tuple[str, ...], raw: np.ndarray, r: np.ndarray, smooth: float):
    """c0 + sum_j g_j by ridge least squares on one-hot level indicators, with a first-difference
    penalty (`smooth` x points per level) along each axis; returns c(raw_q), linear between levels in
    the lookup's axis coordinates and held beyond the ends."""
    levels = [np.unique(raw[:, j]) for j in range(raw.shape[1])]
    sizes = [len(v) for v in levels]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    design = np.zeros((len(r), offsets[-1]))
    for j, v in enumerate(levels):
        design[np.arange(len(r)), offsets[j] + np.searchsorted(v, raw[:, j])] = 1.0
    c0 = float(np.median(r))
    penalty = np.zeros((offsets[-1], offsets[-1]))
    weight = smooth * len(r) / max(1, offsets[-1])
    for j, n in enumerate(sizes):
        if n > 1:
            d = np.diff(np.eye(n), axis=0)
            penalty[offsets[j]:offsets[j + 1], offsets[j]:offsets[j + 1]] += weight * (d.T @ d)
    penalty += 1e-3 * np.eye(offsets[-1])
    g = np.linalg.solve(design.T @ design + penalty, design.T @ (r - c0))
    coords = [transform_axis(kind, a, v) for a, v in zip(axes, levels, strict=True)]
    parts = [g[offsets[j]:offsets[j + 1]] for j in range(len(sizes))]

    def correction(raw_q: np.ndarray) -> np.ndarray:
        out = np.full(len(raw_q), c0)
        for j, a in enumerate(axes):
            out += np.interp(transform_axis(kind, a, raw_q[:, j]), coords[j], parts[j])
        return out

    return correction


def prior_isolation(prior: PriorFn, kind: OpKind, axes: tuple[str, ...], raw: np.ndarray,
                    levels: list[np.ndarray] | None = None) -> np.ndarray:
    """How far the prior at each shape sits from its own neighbours, |log ratio|, the smallest over axes.

    Per axis, the prior's log latency at the adjacent levels (of `levels`, default: raw's own) on
    either side predicts the shape linearly in the lookup's axis coordinate. A step shared by a whole
    level (a GEMM tile row) is predicted by the axes within that level, so its smallest deviation is
    small; a shape that no axis predicts is an isolated kernel choice or a noisy measurement of the
    prior, which the new GPU need not share: the shapes most worth measuring. 0 where no axis has
    neighbours on both sides, NaN where the prior has no answer at the shape itself."""
    levels = levels or [np.unique(raw[:, j]) for j in range(raw.shape[1])]
    here = np.log(prior(raw)[0])
    best = np.full(len(raw), np.inf)
    for j, (a, v) in enumerate(zip(axes, levels, strict=True)):
        pos = np.searchsorted(v, raw[:, j])
        inner = (pos > 0) & (pos < len(v) - 1) & (v[np.minimum(pos, len(v) - 1)] == raw[:, j])
        if not inner.any():
            continue
        lo, hi = raw[inner].copy(), raw[inner].copy()
        lo[:, j], hi[:, j] = v[pos[inner] - 1], v[pos[inner] + 1]
        x = transform_axis(kind, a, np.stack([lo[:, j], raw[inner, j], hi[:, j]]))
        both = np.log(prior(np.concatenate([lo, hi]))[0])
        ylo, yhi = both[:inner.sum()], both[inner.sum():]
        est = ylo + (yhi - ylo) * (x[1] - x[0]) / (x[2] - x[0])
        dev = np.abs(here[inner] - est)
        best[inner] = np.fmin(best[inner], np.where(np.isfinite(dev), dev, np.inf))
    best[np.isinf(best)] = 0.0
    return np.where(np.isfinite(here), best, np.nan)
