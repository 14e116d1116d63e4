"""Several prior tables at once: a log-space blend of each prior's prediction and the points' own.

A user with an imported AIConfigurator package holds more than one related table: another GPU with
the same engine (h100_sxm TRT-LLM when collecting h200_sxm TRT-LLM) and other engines on the same GPU
(h200_sxm vLLM, SGLang). They err in different places: the other GPU where the two GPUs pick
different tactics, the other engine where its kernels differ (vLLM's bf16 GEMM on h200 is within 5%
of TRT-LLM's, its fp8 GEMM is not). `PriorBlend` fits one perfdb.prior.PriorInterp per prior (without
its own blend) and the points' own completion, and weights their log predictions on the simplex
(steps of 1/4) by their error on a fifth of the measured points held out; then refits all on every
point. A prior that cannot answer a shape hands its weight there to the points' prediction.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np

from perfdb.prior import PriorFn, PriorInterp, exact_hits, points_alone
from perfdb.types import OpKind

_STEPS = 4          # simplex grid: weights in multiples of 1/4
_MIN_ROWS = 40      # fewer measured points: the first prior's PriorInterp (with its own blend) alone


def _simplex(n: int) -> np.ndarray:
    """Every weight vector of length n on the 1/_STEPS grid that sums to 1."""
    rows = [w for w in itertools.product(range(_STEPS + 1), repeat=n) if sum(w) == _STEPS]
    return np.array(rows, np.float64) / _STEPS


class PriorBlend:
    """GridInterp's query() contract over one group's measured rows, with several priors."""

    def __init__(self, kind: OpKind, axes: tuple[str, ...], raw: np.ndarray, latency: np.ndarray,
                 priors: Sequence[PriorFn], sol_fn: Callable[[np.ndarray], np.ndarray]):
        self.kind, self.axes, self.priors, self.sol_fn = kind, axes, tuple(priors), sol_fn
        self.row_raw, self.row_latency = raw, latency
        self.measured = {tuple(r): float(v) for r, v in zip(raw, latency, strict=True)}
        if len(raw) < _MIN_ROWS:
            self.parts = [PriorInterp(kind, axes, raw, latency, self.priors[0], sol_fn)]
            self.weights = np.array([1.0, 0.0])
            return
        test = np.random.default_rng(0).random(len(raw)) < 0.2
        held = self._logs(self._fit(~test), raw[test])[0]
        truth = np.log(latency[test])
        grid = _simplex(len(self.priors) + 1)
        errs = [float(np.mean(np.abs(np.expm1((w[:, None] * held).sum(axis=0) - truth)))) for w in grid]
        self.weights = grid[int(np.argmin(errs))]
        self.parts = self._fit(np.ones(len(raw), bool))

    def _fit(self, rows: np.ndarray) -> list:
        """One PriorInterp per prior (no blend of its own), then the points alone."""
        raw, lat = self.row_raw[rows], self.row_latency[rows]
        parts: list = [PriorInterp(self.kind, self.axes, raw, lat, p, self.sol_fn, blend=False) for p in self.priors]
        return parts + [points_alone(self.kind, self.axes, raw, lat, self.sol_fn)]

    def _logs(self, parts: list, raw_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(parts, n) log latency and Source code of each part; a prior's gaps take the points' prediction."""
        sol = self.sol_fn(raw_q)
        answers = [p.query(raw_q, exact_allowed=False) for p in parts]
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.array([np.log(sol / a[0]) for a in answers])
        return np.where(np.isfinite(logs), logs, logs[-1]), np.array([a[2] for a in answers])

    def has_nodes(self) -> bool:
        return len(self.row_raw) > 0

    def without_node_of(self, row: int) -> "PriorBlend":
        keep = np.arange(len(self.row_raw)) != row
        out = PriorBlend(self.kind, self.axes, self.row_raw[keep], self.row_latency[keep], self.priors, self.sol_fn)
        if hasattr(self, "table_rows"):
            out.table_rows = self.table_rows[keep]
        return out

    def query(self, raw_q: np.ndarray, exact_allowed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """raw_q: (n, d). Returns (util vs sol_fn, measured latency or NaN, Source code) per query."""
        raw_q = np.asarray(raw_q, np.float64)
        if len(self.parts) == 1:
            return self.parts[0].query(raw_q, exact_allowed)
        logs, codes = self._logs(self.parts, raw_q)
        util = self.sol_fn(raw_q) / np.exp((self.weights[:, None] * logs).sum(axis=0))
        code = codes[self.weights > 0].max(axis=0).astype(np.int8)   # the worst label of what was used
        return util, exact_hits(raw_q, self.measured, code, exact_allowed), code
