"""Step times for the simulator: the StepModel methods it calls, evaluated once on grids.

The step model is cheap per point but costs milliseconds per call, so every method is evaluated with
one vectorised call on a grid covering every step the deployment can take, and the loop interpolates
scalars from it. The load's few distinct prompt lengths (`hint_tokens`) are grid nodes, so a
fixed-length benchmark's prefill is priced exactly. Results are memoised on the step's token counts
and its mean KV length quantised to <= 1/64 relative resolution (exact below 64).

Pure-decode stretches ("runs" of k steps with the same batch) are priced in O(1): per decode batch
size, the step time is piecewise linear in the mean KV length over KV_POINTS grid points, so the sum
over k steps is an integral with a closed form (midpoint rule: exact for a linear step time).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Protocol

import numpy as np

from estimator.parallel import ParallelConfig
from estimator.sim.grid import Grid, log_axis

KV_POINTS = 64        # KV lengths per decode batch size (decode cost is near-linear in KV)
MIXED_KV_POINTS = 8
MIXED_REQUEST_POINTS = 8
MIXED_TOKEN_POINTS = 24
TOKEN_POINTS = 40     # prefill / chunk token counts, geometric
BATCH_POINTS = 24     # decode batch sizes in mixed steps beyond the exact small ones
PREFILL_BATCH_POINTS = 12
PREFIX_POINTS = 8
EXACT_BATCHES = 64    # decode batch sizes tabulated one by one; above, DECODE_BATCH_POINTS geometric nodes
DECODE_BATCH_POINTS = 48


class StepTimes(Protocol):
    """The subset of estimator.steps.StepModel the simulator needs (all in ms, numpy broadcasting)."""

    def prefill_ms(self, batch, seq_len, prefix_len) -> np.ndarray: ...
    def decode_ms(self, batch, kv_len) -> np.ndarray: ...
    def mixed_ms(self, prefill_tokens, decode_batch, kv_len) -> np.ndarray: ...
    def kv_transfer_ms(self, tokens, decode_parallel: ParallelConfig, same_node: bool) -> np.ndarray: ...

    @property
    def memory(self): ...   # has .kv_capacity_tokens (tokens of KV one worker can hold)


def quantise(x: int) -> int:
    """Round a token count to <= 1/64 relative resolution (exact below 64)."""
    if x < 64:
        return x
    s = 1 << (x.bit_length() - 7)
    return (x + (s >> 1)) // s * s


class _DecodeRow:
    """Step time of one decode batch size vs mean KV length, with its running integral."""

    __slots__ = ("xs", "ts", "cs")

    def __init__(self, xs: list[float], ts: list[float]):
        self.xs, self.ts = xs, ts
        cs = [0.0]
        for i in range(len(xs) - 1):
            cs.append(cs[-1] + 0.5 * (ts[i] + ts[i + 1]) * (xs[i + 1] - xs[i]))
        self.cs = cs

    def cum(self, x: float) -> float:
        xs, ts, cs = self.xs, self.ts, self.cs
        if x <= xs[0]:
            return ts[0] * (x - xs[0])
        if x >= xs[-1]:
            return cs[-1] + ts[-1] * (x - xs[-1])
        i = bisect_right(xs, x) - 1
        dx = x - xs[i]
        slope = (ts[i + 1] - ts[i]) / (xs[i + 1] - xs[i])
        return cs[i] + ts[i] * dx + 0.5 * slope * dx * dx

    def inverse(self, c: float) -> float:
        xs, ts, cs = self.xs, self.ts, self.cs
        if c <= 0.0:
            return xs[0] + c / ts[0]
        if c >= cs[-1]:
            return xs[-1] + (c - cs[-1]) / ts[-1]
        i = bisect_right(cs, c) - 1
        r = c - cs[i]
        slope = (ts[i + 1] - ts[i]) / (xs[i + 1] - xs[i])
        return xs[i] + 2.0 * r / (ts[i] + math.sqrt(max(ts[i] * ts[i] + 2.0 * slope * r, 0.0)))


class StepTable:
    """Step times of one worker kind.

    max_ctx: the longest context a request reaches (isl + osl); max_tokens: tokens per step;
    max_decode: the largest decode batch to tabulate up front (larger ones are added on demand);
    hint_tokens: prompt lengths to make grid nodes (a fixed-length load's ISL).
    """

    def __init__(self, steps: StepTimes, max_ctx: int, max_tokens: int, max_decode: int,
                 hint_tokens: tuple[int, ...] = ()):
        self.steps = steps
        self.hints = np.array(sorted({int(h) for h in hint_tokens if h >= 1}), dtype=np.float64)
        # prompt tokens per request as the step caches key them: exact for a load of few distinct lengths
        # (the hints: fixed-length and hand-built loads), else at <= 1/128 relative resolution (`quantise`,
        # as the KV length): with lengths spread as a benchmark client draws them nearly every step has
        # another prompt length, and the grids' 16-corner interpolation in Python dominated the replay (a
        # spread Qwen3.5-397B replay 0.29 s against 0.20 s fixed; 0.24 s keyed this way)
        self._tokens_key = (lambda x: x) if self.hints.size else quantise
        self.max_ctx = max(int(max_ctx), 2)
        self.max_tokens = max(int(max_tokens), 1)
        self.max_decode = max(int(max_decode), 1)
        self.kv_axis = np.unique(np.linspace(1, self.max_ctx + 1, KV_POINTS).round())
        self._rows: dict[int, _DecodeRow] = {}
        self._prefill_grid: Grid | None = None
        self._mixed_grid: Grid | None = None
        self._prefill: dict[tuple[int, int, int], float] = {}
        self._mixed: dict[tuple[int, int, int], float] = {}
        self._transfer: dict[tuple[int, ParallelConfig, bool], float] = {}
        self._transfer_grid: dict[tuple[ParallelConfig, bool], Grid] = {}
        self.model_calls = 0

    # ---- decode ---------------------------------------------------------------------------------
    def _add_rows(self, batches: np.ndarray) -> None:
        vals = np.asarray(self.steps.decode_ms(batches[:, None], self.kv_axis[None, :]), dtype=np.float64)
        vals = np.broadcast_to(vals, (batches.size, self.kv_axis.size))
        self.model_calls += 1
        xs = self.kv_axis.tolist()
        for b, row in zip(batches.tolist(), vals, strict=True):
            self._rows[int(b)] = _DecodeRow(xs, row.tolist())

    def _row(self, batch: int) -> _DecodeRow:
        row = self._rows.get(batch)
        if row is None:
            if not self._rows:
                exact = np.arange(1, min(self.max_decode, EXACT_BATCHES) + 1, dtype=np.float64)
                self._nodes = np.union1d(exact, log_axis(EXACT_BATCHES, self.max_decode, DECODE_BATCH_POINTS))
                self._add_rows(self._nodes)
                self._node_list = self._nodes.tolist()
                row = self._rows.get(batch)
            if row is None and batch < self._node_list[-1]:
                row = self._between(batch)
            elif row is None:
                self._add_rows(np.array([float(batch)]))
                row = self._rows[batch]
        return row

    def _between(self, batch: int) -> _DecodeRow:
        """Decode time is close to linear in the batch between neighbouring nodes (<= 1/16 apart)."""
        nodes = self._node_list
        i = bisect_right(nodes, batch) - 1
        lo, hi = self._rows[int(nodes[i])], self._rows[int(nodes[i + 1])]
        f = (batch - nodes[i]) / (nodes[i + 1] - nodes[i])
        row = _DecodeRow(lo.xs, [a + f * (b - a) for a, b in zip(lo.ts, hi.ts, strict=True)])
        self._rows[batch] = row
        return row

    def decode_run_ms(self, batch: int, kv: float, k: int, growth: float = 1.0) -> float:
        """ms of k decode steps of `batch` requests whose mean KV starts at `kv` and grows by `growth`
        tokens a step (1; more with speculative decoding)."""
        row = self._row(batch)
        return (row.cum(kv + (k - 0.5) * growth) - row.cum(kv - 0.5 * growth)) / growth

    def steps_done_by(self, batch: int, kv: float, elapsed_ms: float, growth: float = 1.0) -> int:
        """Steps of a run (started at mean KV `kv`) that have begun by `elapsed_ms`: the first step
        boundary at or after `elapsed_ms` ends that many steps."""
        row = self._row(batch)
        x = row.inverse(row.cum(kv - 0.5 * growth) + elapsed_ms * growth)
        steps = (x - (kv - 0.5 * growth)) / growth
        whole = int(steps)
        return whole if steps - whole < 1e-6 else whole + 1

    # ---- prefill and mixed ----------------------------------------------------------------------
    def _with_hints(self, axis: np.ndarray) -> np.ndarray:
        return np.union1d(axis, self.hints[self.hints <= axis[-1]])

    def prefill_ms(self, batch: int, seq_len: float, prefix_len: float) -> float:
        key = (batch, self._tokens_key(int(seq_len + 0.5)), self._tokens_key(int(prefix_len + 0.5)))
        val = self._prefill.get(key)
        if val is None:
            if self._prefill_grid is None:
                top = max(self.max_tokens, self.max_ctx)
                axes = (log_axis(1, min(self.max_decode, self.max_tokens), PREFILL_BATCH_POINTS),
                        self._with_hints(log_axis(1, top, TOKEN_POINTS)),
                        np.linspace(0, self.max_ctx, PREFIX_POINTS).round())
                self._prefill_grid = Grid.evaluate(self.steps.prefill_ms, axes)
                self.model_calls += 1
            val = self._prefill_grid(*key)
            self._prefill[key] = val
        return val

    def _mixed_fn(self):
        """(n prefill requests, tokens each, decode batch, mean KV) -> ms. StepModel.step prices the n
        prompts as separate sequences (per-request attention, spread over attention-DP ranks);
        a model with only mixed_ms sees their tokens as one chunk."""
        step = getattr(self.steps, "step", None)
        if step is not None:
            from perfdb.types import Phase

            return lambda n, s, d, kv: step(Phase.MIXED, n, s, 0, d, kv).ms
        return lambda n, s, d, kv: self.steps.mixed_ms(np.asarray(n) * np.asarray(s), d, kv)

    def mixed_ms(self, requests: int, tokens: int, decode_batch: int, kv: float) -> float:
        """One iteration: `requests` prompt chunks of `tokens` tokens in total, plus `decode_batch` decodes."""
        key = (requests, self._tokens_key(int(tokens / requests + 0.5)), decode_batch, quantise(int(kv + 0.5)))
        val = self._mixed.get(key)
        if val is None:
            if self._mixed_grid is None:
                small = np.arange(1, min(self.max_decode, 8) + 1, dtype=np.float64)
                batches = np.union1d(small, log_axis(1, self.max_decode, BATCH_POINTS))
                axes = (log_axis(1, min(self.max_decode, self.max_tokens), MIXED_REQUEST_POINTS),
                        self._with_hints(log_axis(1, self.max_tokens, MIXED_TOKEN_POINTS)), batches,
                        np.unique(np.linspace(1, self.max_ctx + 1, MIXED_KV_POINTS).round()))
                self._mixed_grid = Grid.evaluate(self._mixed_fn(), axes)
                self.model_calls += 1
            val = self._mixed_grid(*key)
            self._mixed[key] = val
        return val

    def transfer_ms(self, tokens: int, decode_parallel: ParallelConfig, same_node: bool) -> float:
        key = (tokens, decode_parallel, same_node)
        val = self._transfer.get(key)
        if val is None:
            grid = self._transfer_grid.get(key[1:])
            if grid is None:
                axis = log_axis(1, self.max_ctx, TOKEN_POINTS)
                grid = Grid.evaluate(lambda t: self.steps.kv_transfer_ms(t, decode_parallel, same_node), (axis,))
                self._transfer_grid[key[1:]] = grid
                self.model_calls += 1
            val = grid(key[0])
            self._transfer[key] = val
        return val
