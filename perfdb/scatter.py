"""Interpolation from scattered measured points: complete the level grid, then interpolate it.

`perfdb.interp.GridInterp` assumes a (nearly) full rectilinear grid: a missing node is filled from
its measured neighbours on the same grid lines, so a sparse scattered sample leaves it reaching far.
`CompletionInterp` accepts any subset of a grid's nodes. It fits a low-rank model of log
utilisation over the levels of each axis (the unique measured values, as GridInterp's grid),

    log util[i, j, ...] ~ mean + sum_r A_r[i] * B_r[j] * ...      (a CP / PARAFAC decomposition)

by alternating ridge least squares on the measured nodes only, with a first-difference penalty
along each axis so that a level with few points borrows from its neighbour levels. The model
carries what a sparse sample cannot: a kernel switch seen at a few points of one level (GEMM m=257,
a new tile) shifts that level's factor and with it every node of the level. Missing nodes take the
model's value, measured nodes keep their own, and the completed grid is interpolated by GridInterp
(so queries between and outside levels behave, and are labelled, exactly as in the lookup).

The rank is chosen on the measured points themselves: a fifth of them is held out, each rank of
`ranks` is fitted on the rest, and the best is refitted on all (data honesty: nothing else is read).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from perfdb import completion_store
from perfdb.interp import GridInterp
from perfdb.types import OpKind

_CLIP = 0.3   # log util (x1.35)
_NEAR = 8
_LOO_SWEEPS = 5   # ALS sweeps of a warm-started leave-one-out refit


@dataclass(frozen=True)
class Variant:
    """What is completed and how unmeasured levels are tied to measured ones."""
    space: str = "util"     # "util": log utilisation; "latency": log latency (needs sol at grid nodes)
    order: int = 1          # difference penalty order: 1 pulls a level's factor to its neighbours', 2 onto their line
    smooth: float = 0.3     # weight of that penalty


@dataclass(frozen=True)
class CompletionConfig:
    ranks: tuple[int, ...] = (1, 2, 4, 8, 12)  # candidate CP ranks
    variants: tuple[Variant, ...] = (Variant(), Variant("util", 2, 10.0), Variant("latency", 2, 10.0))
    # A grid larger than this (nodes) fits `large_variant` at `large_ranks` without a holdout choice:
    # each candidate is a full fit (seconds on a 74 x 22 x 22 GEMM grid). Rank 16 with a smoothness
    # of 1.0 was the best of ranks 8-24 and smoothness 0.3-3 on 10% random samples of the h200 GEMM
    # tables (1.87x vs 2.14x the dense error at rank 8, smoothness 0.3).
    select_nodes: int = 5000
    large_ranks: tuple[int, ...] = (16,)
    large_variant: Variant = Variant("util", 1, 1.0)
    ridge: float = 1e-2     # per-level ridge on the factors
    iters: int = 25         # alternating least-squares sweeps
    seed: int = 0


def complete(values: np.ndarray, mask: np.ndarray, rank: int, variant: Variant, cfg: CompletionConfig,
             init: list[np.ndarray] | None = None, iters: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Masked CP completion of a d-dimensional array (values read only where mask): (fit, factors).
    `init` warm-starts from earlier factors (leave-one-out refits need only a few sweeps)."""
    shape = values.shape
    mean = float(values[mask].mean())
    centred = np.where(mask, values - mean, 0.0)
    if init is None:
        rng = np.random.default_rng(cfg.seed)
        factors = [rng.normal(scale=0.1, size=(n, rank)) for n in shape]
        factors[0][:, 0] = 1.0
    else:
        factors = [f.copy() for f in init]
    for _ in range(cfg.iters if iters is None else iters):
        for a in range(len(shape)):
            factors[a] = _solve_axis(centred, mask, factors, a, variant, cfg)
    return _compose(factors) + mean, factors


def _khatri_rao(factors: list[np.ndarray]) -> np.ndarray:
    """Row-wise products over all index combinations of `factors` (C order), shape (prod n, R)."""
    out = factors[0]
    for f in factors[1:]:
        out = (out[:, None, :] * f[None, :, :]).reshape(-1, f.shape[1])
    return out


def _compose(factors: list[np.ndarray]) -> np.ndarray:
    shape = tuple(f.shape[0] for f in factors)
    return _khatri_rao(factors).sum(axis=1).reshape(shape)


def _solve_axis(centred: np.ndarray, mask: np.ndarray, factors: list[np.ndarray], a: int, variant: Variant,
                cfg: CompletionConfig) -> np.ndarray:
    """One ALS step: the factor of axis `a` given the others (ridge + difference smoothness)."""
    n, rank = factors[a].shape
    z = _khatri_rao([f for b, f in enumerate(factors) if b != a])            # (P, R)
    y = np.moveaxis(centred, a, 0).reshape(n, -1)
    w = np.moveaxis(mask, a, 0).reshape(n, -1).astype(np.float64)
    gram = np.matmul((w[:, :, None] * z[None]).transpose(0, 2, 1), z)       # (n, R, R)
    rhs = (w * y) @ z                                                        # (n, R)
    system = np.zeros((n * rank, n * rank))
    for i in range(n):
        system[i * rank:(i + 1) * rank, i * rank:(i + 1) * rank] = gram[i] + cfg.ridge * np.eye(rank)
    if n > variant.order:
        diff = np.diff(np.eye(n), n=variant.order, axis=0)
        system += variant.smooth * np.kron(diff.T @ diff, np.eye(rank))
    return np.linalg.solve(system, rhs.reshape(-1)).reshape(n, rank)


def _bounded(fitted: np.ndarray, logu: np.ndarray, measured: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Clip each completed node into [min, max] of its _NEAR nearest measured nodes (in level steps)
    widened by _CLIP: a factor of a sparsely measured level may swing far, and a product of two such
    factors would otherwise put a node orders of magnitude away from everything measured near it."""
    from scipy.spatial import cKDTree

    nodes = np.stack(np.unravel_index(np.arange(logu.size), shape), axis=1).astype(np.float64)
    have = np.flatnonzero(measured)
    k = min(_NEAR, have.size)
    _, near = cKDTree(nodes[have]).query(nodes, k=k)
    near_vals = logu[have][np.asarray(near).reshape(logu.size, k)]
    return np.clip(fitted, near_vals.min(axis=1) - _CLIP, near_vals.max(axis=1) + _CLIP)


class CompletionInterp:
    """log-util interpolator over scattered rows of one group; same query() contract as GridInterp.

    sol_fn(raw (n, d)) -> speed-of-light ms lets the "latency" variants compete (without it, only
    utilisation is completed)."""

    def __init__(self, kind: OpKind, axes: tuple[str, ...], raw: np.ndarray, util: np.ndarray,
                 latency: np.ndarray, config: CompletionConfig = CompletionConfig(),
                 sol_fn: Callable[[np.ndarray], np.ndarray] | None = None, _warm: tuple | None = None):
        self.kind, self.axes, self.cfg, self.sol_fn = kind, axes, config, sol_fn
        self.row_raw, self.row_util, self.row_latency = raw, util, latency
        levels = [np.unique(raw[:, j]) for j in range(raw.shape[1])]
        shape = tuple(len(v) for v in levels)
        node = np.ravel_multi_index(tuple(np.searchsorted(v, raw[:, j]) for j, v in enumerate(levels)), shape)
        # Several rows on one node (other kernel sources): keep the fastest, as GridInterp does.
        logu = np.full(int(np.prod(shape)), -np.inf)
        np.maximum.at(logu, node, np.log(util))
        lat = np.full(logu.shape, np.inf)
        np.minimum.at(lat, node, latency)
        measured = np.isfinite(logu)
        grid_raw = np.stack([g.ravel() for g in np.meshgrid(*levels, indexing="ij")], axis=1)
        logsol = np.log(sol_fn(grid_raw)) if sol_fn is not None else None
        spaces = {"util": np.where(measured, logu, 0.0)}
        if logsol is not None:
            spaces["latency"] = np.where(measured, logsol - logu, 0.0)   # log latency = log sol - log util
        store = completion_store.active() if _warm is None else None
        key = completion_store.fit_key(kind.value, axes, raw, util, latency, config,
                                       logsol if logsol is not None else "no-sol") if store is not None else None
        memo = completion_store.load(store, key) if key is not None else None
        self.from_store = memo is not None
        if memo is not None:
            self.rank, full = int(memo["rank"]), memo["full"]
            self.variant = Variant(str(memo["space"]), int(memo["order"]), float(memo["smooth"]))
            self.factors = [memo[f"factor{a}"] for a in range(len(shape))]
        else:
            self.rank, self.variant, fitted, self.factors = self._fit(spaces, measured, shape, config, _warm)
            fitted = fitted.ravel() if self.variant.space == "util" else logsol - fitted.ravel()
            full = np.where(measured, logu, _bounded(fitted, logu, measured, shape))
            if key is not None:
                completion_store.save(store, key, {"rank": np.int64(self.rank), "full": full,
                                                   "space": np.str_(self.variant.space), "order": np.int64(self.variant.order),
                                                   "smooth": np.float64(self.variant.smooth),
                                                   **{f"factor{a}": f for a, f in enumerate(self.factors)}})
        # GridInterp reads latency only for exact hits and for its hole fallback (no holes here).
        self.grid = GridInterp(kind, axes, grid_raw, np.exp(full), np.exp(-full))
        self.levels, self.shape, self.measured_latency = levels, shape, np.where(measured, lat, np.nan)

    def _fit(self, spaces: dict[str, np.ndarray], measured: np.ndarray, shape, config: CompletionConfig,
             warm: tuple | None) -> tuple[int, Variant, np.ndarray, list[np.ndarray]]:
        """(rank, variant, completed values in the variant's space, factors)."""
        # The solves are small (levels x rank <= ~1000 unknowns): threaded BLAS only thrashes, and with
        # another busy process on the machine it made a fit 50x slower.
        with threadpool_limits(limits=1, user_api="blas"):
            if warm is not None and warm[3] == shape:
                rank, variant, init, _ = warm
            else:
                (rank, variant), init = self._choose(spaces, measured.reshape(shape), shape), None
            fitted, factors = complete(spaces[variant.space].reshape(shape), measured.reshape(shape),
                                       rank, variant, config, init=init, iters=_LOO_SWEEPS if init is not None else None)
        return rank, variant, fitted, factors

    def without_node_of(self, row: int) -> "CompletionInterp":
        """A refit as if `row` had never been stored (leave-one-out, as GridInterp.without_node_of): same
        rank and variant, warm-started from this fit's factors. Other rows on its node stay."""
        keep = np.arange(len(self.row_raw)) != row
        out = CompletionInterp(self.kind, self.axes, self.row_raw[keep], self.row_util[keep],
                               self.row_latency[keep], self.cfg, self.sol_fn,
                               _warm=(self.rank, self.variant, self.factors, self.shape))
        if hasattr(self, "table_rows"):
            out.table_rows = self.table_rows[keep]
        return out

    def _choose(self, spaces: dict[str, np.ndarray], measured: np.ndarray, shape) -> tuple[int, Variant]:
        """(rank, variant) with the smallest error on a fifth of the measured nodes held out."""
        large = measured.size > self.cfg.select_nodes
        ranks = self.cfg.large_ranks if large else self.cfg.ranks
        variants = [v for v in ((self.cfg.large_variant,) if large else self.cfg.variants) if v.space in spaces]
        nodes = np.flatnonzero(measured)
        candidates = [(r, v) for v in variants for r in ranks if r * sum(shape) <= 2 * nodes.size] \
            or [(min(ranks), variants[0])]
        if len(candidates) == 1 or nodes.size < 20:
            return candidates[0]
        rng = np.random.default_rng(self.cfg.seed)
        test = rng.choice(nodes, size=max(1, nodes.size // 5), replace=False)
        train = measured.ravel().copy()
        train[test] = False
        best, best_err = candidates[0], np.inf
        for r, v in candidates:
            values = spaces[v.space]
            fit = complete(values.reshape(shape), train.reshape(shape), r, v, self.cfg)[0].ravel()
            err = float(np.mean(np.abs(fit[test] - values[test])))   # |log ratio|, the same in both spaces
            if err < best_err:
                best, best_err = (r, v), err
        return best

    def has_nodes(self) -> bool:
        return bool(np.any(np.isfinite(self.measured_latency)))

    def query(self, raw_q: np.ndarray, exact_allowed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """raw_q: (n, d). Returns (util, measured latency or NaN, Source code) per query, as GridInterp."""
        from perfdb.types import Source

        util, _, code = self.grid.query(raw_q, exact_allowed=False)
        measured = np.full(len(raw_q), np.nan)
        if exact_allowed and len(raw_q):
            pos = [np.minimum(np.searchsorted(v, raw_q[:, j]), len(v) - 1) for j, v in enumerate(self.levels)]
            hit = np.all([v[p] == raw_q[:, j] for j, (v, p) in enumerate(zip(self.levels, pos, strict=True))], axis=0)
            lat = self.measured_latency[np.ravel_multi_index(tuple(pos), self.shape)]
            hit &= np.isfinite(lat)
            measured[hit] = lat[hit]
            code = code.copy()
            code[hit] = Source.MEASURED.code
        return util, measured, code
