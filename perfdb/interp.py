"""Interpolation of utilisation (util = sol_ms / latency_ms) on the rectilinear grid of one table group.

A group is the rows of one op family that share every group-key field (perfdb.family). Its lookup
axes (m, n, k; batch, seq_len, num_heads, ...) are transformed (log; sqrt for the prefill sequence,
whose cost grows with seq_len^2; log1p for prefix_len, which may be 0) and the unique transformed
values of each axis form a rectilinear grid. Measured rows are grid nodes; missing nodes are NaN.

A query is answered multilinearly (in log util) from the corners of its cell. A missing corner
(sparse grids, OOM holes, leave-one-out) is first filled with the median of its neighbour
estimates: linear along each axis between the nearest measured nodes on either side, and the plane
A + B - C through three adjacent nodes for each pair of axes and quadrant. Measured kernels switch
tiles and algorithms in steps (10-50% jumps in latency along one axis); the median keeps the
estimates that do not straddle a step. A node that no axis brackets (only planes reach it) is an
extrapolation and labelled so. Where even that fails, a per-axis line search (smoothness-weighted)
answers, holding one-sided values as `extrapolated`. Outside the measured range on any axis the
boundary utilisation is held (`extrapolated`).

Physics beyond the grid (perfdb.coords): linear-attention families also fill a missing node along its
iso-work line (equal batch x value heads), and an axis tied one-to-one to another in a group's rows
is not gridded (its grid would be one diagonal).
"""
from __future__ import annotations

import itertools

import numpy as np

from perfdb.coords import ISO_RULES, IsoLines, iso_coordinates, tied_axes
from perfdb.types import OpKind, Source

_SQRT_AXES = {(OpKind.ATTENTION_PREFILL, "seq_len"), (OpKind.MLA_PREFILL, "seq_len")}
_LOG1P_AXES = {"prefix_len"}  # may be 0
# Log-latency step (|log ratio|) below which a bracket counts as smooth: ~2%, the run-to-run noise of
# a CUDA-graph timing. Brackets that straddle a kernel/tile switch (a 10-50% jump) get less weight.
_ROUGH_FLOOR = 0.02


def transform_axis(kind: OpKind, axis: str, values: np.ndarray) -> np.ndarray:
    """Interpolation coordinate of a numeric axis: sqrt for the prefill sequence, log elsewhere."""
    v = np.asarray(values, dtype=np.float64)
    if (kind, axis) in _SQRT_AXES:
        return np.sqrt(np.maximum(v, 0.0))
    if axis in _LOG1P_AXES:
        return np.log1p(np.maximum(v, 0.0))
    return np.log(np.maximum(v, 1e-9))


class GridInterp:
    """log-util interpolator over one group's rows. Build once, query many times (vectorised)."""

    def __init__(self, kind: OpKind, axes: tuple[str, ...], raw: np.ndarray, util: np.ndarray, latency: np.ndarray):
        """raw: (rows, d) axis values; util, latency: (rows,) with util > 0 and latency > 0.

        An axis tied one-to-one to an earlier one in these rows is not gridded (perfdb.coords); a
        family with iso-work lines (perfdb.coords) fills missing nodes along them first.
        """
        self.kind, self.axes = kind, tuple(axes)
        self.range = [(float(raw[:, j].min()), float(raw[:, j].max())) for j in range(raw.shape[1])]
        self.ties = tied_axes(raw)
        iso = iso_coordinates(kind, self.axes, raw)
        raw = self._untie(raw)
        self.raw_values = [np.unique(raw[:, j]) for j in range(raw.shape[1])]
        self.coords = [transform_axis(kind, a, v) for a, v in zip(axes, self.raw_values, strict=True)]
        self.shape = tuple(len(v) for v in self.raw_values)
        self.row_node = np.ravel_multi_index(
            tuple(np.searchsorted(v, raw[:, j]) for j, v in enumerate(self.raw_values)), self.shape)
        self.row_util, self.row_latency = util, latency
        # Several rows on one node (other kernel sources): keep the fastest measured kernel.
        lat = np.full(int(np.prod(self.shape)), np.inf)
        np.minimum.at(lat, self.row_node, latency)
        logu = np.full(lat.shape, -np.inf)
        np.maximum.at(logu, self.row_node, np.log(util))
        self.latency = np.where(np.isfinite(lat), lat, np.nan)
        self.logu = np.where(np.isfinite(logu), logu, np.nan)
        self.loglat = np.log(self.latency)
        self._strides = [int(np.prod(self.shape[j + 1:])) for j in range(len(self.shape))]
        self.iso = None if iso is None else IsoLines(iso[0], iso[1], self.row_node)
        self._reset_fill_cache()
        self._neighbours()

    def _neighbours(self) -> None:
        """prev[j]/next[j]: index along axis j of the nearest measured node at-or-below / at-or-above."""
        grid = self.logu.reshape(self.shape)
        present = ~np.isnan(grid)
        self.prev, self.next = [], []
        for j, n in enumerate(self.shape):
            idx = np.arange(n).reshape([-1 if i == j else 1 for i in range(len(self.shape))])
            prev = np.maximum.accumulate(np.where(present, idx, -1), axis=j)
            nxt = np.flip(np.minimum.accumulate(np.flip(np.where(present, idx, n), axis=j), axis=j), axis=j)
            self.prev.append(prev.ravel())
            self.next.append(nxt.ravel())

    def has_nodes(self) -> bool:
        return bool(np.any(~np.isnan(self.logu)))

    def without_node_of(self, row: int) -> "GridInterp":
        """A copy as if `row` had never been stored (leave-one-out); other rows on its node stay."""
        node = self.row_node[row]
        others = np.flatnonzero(self.row_node == node)
        others = others[others != row]
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.logu = self.logu.copy()
        out.latency = self.latency.copy()
        out.logu[node] = np.log(self.row_util[others]).max() if others.size else np.nan
        out.latency[node] = self.row_latency[others].min() if others.size else np.nan
        out.loglat = self.loglat.copy()
        out.loglat[node] = np.log(out.latency[node])
        out._reset_fill_cache()
        if np.isnan(out.logu[node]):
            out._neighbours_through(int(node))
        return out

    def _neighbours_through(self, node: int) -> None:
        """Recompute prev/next only on the d grid lines through `node` (the rest cannot change)."""
        centre = np.unravel_index(node, self.shape)
        self.prev, self.next = [p.copy() for p in self.prev], [x.copy() for x in self.next]
        for j, n in enumerate(self.shape):
            idx = [np.full(n, c) for c in centre]
            idx[j] = np.arange(n)
            flat = np.ravel_multi_index(tuple(idx), self.shape)
            present = ~np.isnan(self.logu[flat])
            self.prev[j][flat] = np.maximum.accumulate(np.where(present, np.arange(n), -1))
            self.next[j][flat] = np.minimum.accumulate(np.where(present, np.arange(n), n)[::-1])[::-1]

    def _untie(self, raw: np.ndarray) -> np.ndarray:
        """Tied axes set to their first tied value (one grid level); rows not tied keep theirs."""
        if not self.ties:
            return raw
        out = raw.copy()
        for j, (_, _, values) in self.ties.items():
            out[:, j] = values[0]
        return out

    def _tie_mismatch(self, raw_q: np.ndarray) -> np.ndarray:
        """True where a query's tied axis is not the value its partner implies (never an exact hit)."""
        bad = np.zeros(raw_q.shape[0], bool)
        for j, (i, keys, values) in self.ties.items():
            pos = np.minimum(np.searchsorted(keys, raw_q[:, i]), len(keys) - 1)
            bad |= (keys[pos] != raw_q[:, i]) | (values[pos] != raw_q[:, j])
        return bad

    def query(self, raw_q: np.ndarray, exact_allowed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """raw_q: (n, d) lookup-axis values. Returns (util, measured latency or NaN, Source code) per query."""
        n, d = raw_q.shape
        mismatch = self._tie_mismatch(raw_q)
        outside = np.zeros(n, bool)
        for j, (low, high) in enumerate(self.range):
            outside |= (raw_q[:, j] < low) | (raw_q[:, j] > high)
        raw_q = self._untie(raw_q)
        lo, t, exact_idx = [], [], []
        for j in range(d):
            c, q = self.coords[j], transform_axis(self.kind, self.axes[j], raw_q[:, j])
            if len(c) == 1:
                lo_j, t_j = np.zeros(n, np.int64), np.zeros(n)
            else:
                lo_j = np.clip(np.searchsorted(c, q, side="right") - 1, 0, len(c) - 2)
                t_j = np.clip((q - c[lo_j]) / (c[lo_j + 1] - c[lo_j]), 0.0, 1.0)
            pos = np.minimum(np.searchsorted(self.raw_values[j], raw_q[:, j]), len(c) - 1)
            exact_idx.append(np.where((self.raw_values[j][pos] == raw_q[:, j]) & ~mismatch, pos, -1))
            lo.append(lo_j)
            t.append(t_j)
        util, one_sided = self._multilinear(lo, t)
        code = np.where(outside | one_sided, Source.EXTRAPOLATED.code, Source.INTERPOLATED.code).astype(np.int8)
        measured = np.full(n, np.nan)
        if exact_allowed:
            hit = np.all(np.stack(exact_idx) >= 0, axis=0)
            node = np.ravel_multi_index(tuple(np.maximum(e, 0) for e in exact_idx), self.shape)
            hit &= ~np.isnan(self.latency[node])
            measured[hit] = self.latency[node[hit]]
            code[hit] = Source.MEASURED.code
        return util, measured, code

    def _active(self) -> list[int]:
        return [j for j, s in enumerate(self.shape) if s > 1]

    def _multilinear(self, lo: list[np.ndarray], t: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = lo[0].shape[0]
        active = self._active()
        acc, wsum = np.zeros(n), np.zeros(n)
        complete, unbracketed = np.ones(n, bool), np.zeros(n, bool)
        base = sum(lo[j] * self._strides[j] for j in range(len(lo)))   # flat index of the lower corner
        for bits in itertools.product((0, 1), repeat=len(active)):
            flat = base + sum(self._strides[j] for j, b in zip(active, bits, strict=True) if b)
            w = np.ones(n)
            for j, b in zip(active, bits, strict=True):
                w = w * (t[j] if b else 1.0 - t[j])
            v = self.logu[flat]
            missing = np.isnan(v) & (w > 0)
            if missing.any():
                v[missing], extrap = self._filled(flat[missing])
                unbracketed[np.flatnonzero(missing)[extrap]] = True
                missing = np.isnan(v) & (w > 0)
            complete &= ~missing
            acc += np.where(np.isnan(v), 0.0, w * np.nan_to_num(v))
            wsum += np.where(np.isnan(v), 0.0, w)
        logu = np.where(complete, acc / np.where(wsum > 0, wsum, 1.0), np.nan)
        one_sided = unbracketed & complete
        if not complete.all():
            rows = np.flatnonzero(~complete)
            logu[rows], one_sided[rows] = self._line_fallback([x[rows] for x in lo], [x[rows] for x in t])
        return np.exp(logu), one_sided

    def _filled(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """_fill of flat node ids, computed once per node and cached (queries share missing corners)."""
        uniq, inverse = np.unique(nodes, return_inverse=True)
        todo = uniq[~self._fill_done[uniq]]
        if todo.size:
            value, extrap = self._fill(list(np.unravel_index(todo, self.shape)))
            self._fill_value[todo], self._fill_extrap[todo], self._fill_done[todo] = value, extrap, True
        return self._fill_value[uniq][inverse], self._fill_extrap[uniq][inverse]

    def _reset_fill_cache(self) -> None:
        size = int(np.prod(self.shape))
        self._fill_value, self._fill_extrap, self._fill_done = np.full(size, np.nan), np.zeros(size, bool), np.zeros(size, bool)

    def _fill(self, idx: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Estimate missing grid nodes (log util) as the median of their neighbour estimates; NaN if none.
        Second result: True where no axis brackets the node (only planes: an extrapolation).

        Estimates: along each axis, linear between the nearest measured nodes on either side; for
        each pair of axes and each quadrant, the plane A + B - C through three adjacent nodes. The
        median discards the estimates that straddle a kernel/tile switch along one axis. Families with
        iso-work lines (perfdb.coords) add the estimate along the node's line (ISO_RULES says how).
        """
        active = self._active()
        if not active:
            return np.full(idx[0].shape[0], np.nan), np.zeros(idx[0].shape[0], bool)
        vals = [self._line_estimate(j, idx) for j in active]
        bracketed = ~np.all(np.isnan(np.array(vals)), axis=0)
        for a_i, i in enumerate(active):
            for j in active[a_i + 1:]:
                for si, sj in itertools.product((-1, 1), repeat=2):
                    vals.append(self._plane_estimate(idx, i, j, si, sj))
        rule = ISO_RULES.get(self.kind) if self.iso is not None else None
        if rule is not None:   # the iso-work estimate joins the median with the rule's votes
            iso, two_sided = self._iso_estimate(idx)
            if rule.two_sided is not None:
                vals += [np.where(two_sided, iso, np.nan)] * rule.two_sided
            vals += [np.where(two_sided, np.nan, iso)] * rule.one_sided
            bracketed |= two_sided
        stacked = np.array(vals)
        found = ~np.all(np.isnan(stacked), axis=0)
        out = np.full(idx[0].shape[0], np.nan)
        out[found] = np.nanmedian(stacked[:, found], axis=0)
        if rule is not None and rule.two_sided is None:   # a bracketed iso-work estimate answers
            out[two_sided], found = iso[two_sided], found | two_sided
        return out, found & ~bracketed

    def _iso_estimate(self, idx: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Estimates along the nodes' iso-work lines (perfdb.coords.IsoLines)."""
        raw = np.stack([self.raw_values[j][idx[j]] for j in range(len(idx))], axis=1)
        for j, (i, keys, values) in self.ties.items():   # a tied axis' value follows its partner's
            raw[:, j] = values[np.minimum(np.searchsorted(keys, raw[:, i]), len(keys) - 1)]
        keys, pos = iso_coordinates(self.kind, self.axes, raw)
        return self.iso.estimate(keys, pos, self.logu)

    def _line_estimate(self, j: int, idx: list[np.ndarray]) -> np.ndarray:
        c = self.coords[j]
        has_b, has_a = idx[j] >= 1, idx[j] + 1 < len(c)
        bi, ai = list(idx), list(idx)
        bi[j], ai[j] = np.maximum(idx[j] - 1, 0), np.minimum(idx[j] + 1, len(c) - 1)
        below = np.where(has_b, self.prev[j][np.ravel_multi_index(tuple(bi), self.shape)], -1)
        above = np.where(has_a, self.next[j][np.ravel_multi_index(tuple(ai), self.shape)], len(c))
        ok = (below >= 0) & (above < len(c))
        bi[j], ai[j] = np.maximum(below, 0), np.minimum(above, len(c) - 1)
        vb = self.logu[np.ravel_multi_index(tuple(bi), self.shape)]
        va = self.logu[np.ravel_multi_index(tuple(ai), self.shape)]
        span = np.where(ok, c[ai[j]] - c[bi[j]], 1.0)
        return np.where(ok, vb + (c[idx[j]] - c[bi[j]]) / span * (va - vb), np.nan)

    def _plane_estimate(self, idx: list[np.ndarray], i: int, j: int, si: int, sj: int) -> np.ndarray:
        ii, jj = idx[i] + si, idx[j] + sj
        ok = (ii >= 0) & (ii < self.shape[i]) & (jj >= 0) & (jj < self.shape[j])
        a, b = list(idx), list(idx)
        a[i] = np.clip(ii, 0, self.shape[i] - 1)
        b[j] = np.clip(jj, 0, self.shape[j] - 1)
        c = list(idx)
        c[i], c[j] = a[i], b[j]
        va, vb, vc = (self.logu[np.ravel_multi_index(tuple(x), self.shape)] for x in (a, b, c))
        return np.where(ok, va + vb - vc, np.nan)

    def _line_fallback(self, lo: list[np.ndarray], t: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-axis interpolation along grid lines, skipping missing nodes; see the module docstring."""
        n = lo[0].shape[0]
        active = self._active()
        num, den = np.zeros(n), np.zeros(n)
        all_one_sided = np.ones(n, bool)
        if not active:
            return np.full(n, np.nan), all_one_sided
        for j in active:
            est, width, rough, one_sided = self._axis_estimate(j, active, lo, t)
            ok = ~np.isnan(est)
            w = np.where(ok, 1.0 / (np.maximum(width, 1e-6) ** 2 * (rough + _ROUGH_FLOOR)), 0.0)
            num += w * np.nan_to_num(est)
            den += w
            all_one_sided &= one_sided | ~ok
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan), all_one_sided

    def _axis_estimate(self, j: int, active: list[int], lo: list[np.ndarray], t: list[np.ndarray]):
        n = lo[0].shape[0]
        c = self.coords[j]
        others = [i for i in active if i != j]
        q = c[lo[j]] + t[j] * (c[np.minimum(lo[j] + 1, len(c) - 1)] - c[lo[j]])
        acc, wsum, width_acc, rough_acc = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        loglat = self.loglat
        any_two_sided = np.zeros(n, bool)
        for bits in itertools.product((0, 1), repeat=len(others)):
            base = [x.copy() for x in lo]
            w = np.ones(n)
            for i, b in zip(others, bits, strict=True):
                base[i] = lo[i] + b
                w = w * (t[i] if b else 1.0 - t[i])
            below_idx = list(base)
            above_idx = list(base)
            above_idx[j] = np.minimum(lo[j] + 1, len(c) - 1)
            below = self.prev[j][np.ravel_multi_index(tuple(below_idx), self.shape)]
            above = self.next[j][np.ravel_multi_index(tuple(above_idx), self.shape)]
            # Where q sits exactly on a measured lower node, `above` may be the same line's next node: fine.
            has_b, has_a = below >= 0, above < len(c)
            vb = self._line_value(base, j, np.where(has_b, below, 0))
            va = self._line_value(base, j, np.where(has_a, above, 0))
            cb, ca = c[np.where(has_b, below, 0)], c[np.where(has_a, above, 0)]
            span = np.where(has_a & has_b, ca - cb, np.inf)
            frac = np.where(np.isfinite(span) & (span > 0), (q - cb) / np.where(span > 0, span, 1.0), 0.0)
            v = np.where(has_a & has_b, vb + np.clip(frac, 0, 1) * (va - vb), np.where(has_b, vb, np.where(has_a, va, np.nan)))
            gap = np.where(has_a & has_b, ca - cb, np.where(has_b, q - cb, ca - q) * 2 + 1.0)
            ok = ~np.isnan(v) & (w > 0)
            acc += np.where(ok, w * np.nan_to_num(v), 0.0)
            wsum += np.where(ok, w, 0.0)
            width_acc += np.where(ok, w * np.where(np.isfinite(gap), gap, 0.0), 0.0)
            any_two_sided |= ok & has_a & has_b
            la = loglat[np.ravel_multi_index(tuple(base[:j] + [np.where(has_a, above, 0)] + base[j + 1:]), self.shape)]
            lb = loglat[np.ravel_multi_index(tuple(base[:j] + [np.where(has_b, below, 0)] + base[j + 1:]), self.shape)]
            r = np.where(has_a & has_b, np.abs(la - lb), 1.0)
            rough_acc += np.where(ok, w * np.nan_to_num(r, nan=1.0), 0.0)
        est = np.where(wsum > 0, acc / np.where(wsum > 0, wsum, 1.0), np.nan)
        width = np.where(wsum > 0, width_acc / np.where(wsum > 0, wsum, 1.0), np.inf)
        rough = np.where(wsum > 0, rough_acc / np.where(wsum > 0, wsum, 1.0), np.inf)
        return est, width, rough, ~any_two_sided

    def _line_value(self, base: list[np.ndarray], j: int, along: np.ndarray) -> np.ndarray:
        idx = list(base)
        idx[j] = along
        return self.logu[np.ravel_multi_index(tuple(idx), self.shape)]
