"""The one timing function every collector uses.

GPU: the op is captured once in a CUDA graph and each repetition replays it between two CUDA events
(falls back to eager launches between events when capture fails). CPU: time.perf_counter around an
eager call. Both paths share the harness: a warm-up that also estimates the per-call time, a
repetition count set by a time budget, a cold cache before every repetition (a flush buffer larger
than the L2 is rewritten, outside the timed region), and the raw samples kept.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from perfdb.types import TimingMethod


@dataclass(frozen=True)
class TimerConfig:
    budget_s: float = 0.25        # wall time spent on timed repetitions per case
    warmup_s: float = 0.05        # wall time of untimed warm-up launches (also estimates the per-call time)
    min_reps: int = 5
    max_reps: int = 500
    flush_bytes: int = 256 << 20  # > L2 of every GPU we target (H100 50 MB, B200 126 MB); 0 disables
    use_graph: bool = True        # CUDA only: replay a captured graph instead of eager launches

    @staticmethod
    def for_device(device: str, budget_s: float = 0.25) -> "TimerConfig":
        """Defaults per device: a CPU host gets a short warm-up and an 8 MiB flush (its last-level cache)."""
        if device == "cuda":
            return TimerConfig(budget_s=budget_s)
        return TimerConfig(budget_s=budget_s, warmup_s=0.01, min_reps=3, max_reps=200, flush_bytes=8 << 20, use_graph=False)


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]
    method: TimingMethod

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def _q(self, q: float) -> float:
        return float(np.quantile(np.asarray(self.samples_ms), q))

    @property
    def median_ms(self) -> float:
        return self._q(0.5)

    @property
    def p10_ms(self) -> float:
        return self._q(0.1)

    @property
    def p90_ms(self) -> float:
        return self._q(0.9)


@dataclass(frozen=True)
class Hooks:
    """Optional callbacks for multi-process ops (communication): every rank must repeat the same
    number of times, and a barrier before each repetition aligns the ranks' start."""

    agree_reps: Callable[[int], int] | None = None      # e.g. all_reduce(MIN) of the rep count
    before_rep: Callable[[], None] | None = None         # untimed, e.g. a barrier
    reduce_samples: Callable[[np.ndarray], np.ndarray] | None = None  # e.g. all_reduce(MAX) across ranks


def _keep_warming(calls: int, start: float, cfg: TimerConfig, hooks: Hooks, least: int) -> bool:
    """Warm up for warmup_s; multi-rank ops warm up a fixed number of calls so every rank issues the
    same collectives in the same order."""
    if hooks.agree_reps is not None:
        return calls < max(least, 3)
    return calls < least or time.perf_counter() - start < cfg.warmup_s


def _rep_count(per_call_s: float, cfg: TimerConfig, hooks: Hooks) -> int:
    reps = cfg.max_reps if per_call_s <= 0 else int(cfg.budget_s / per_call_s)
    reps = max(cfg.min_reps, min(cfg.max_reps, reps))
    return hooks.agree_reps(reps) if hooks.agree_reps else reps


def _finish(samples: list[float], method: TimingMethod, hooks: Hooks) -> Timing:
    arr = np.asarray(samples, dtype=np.float64)
    if hooks.reduce_samples:
        arr = hooks.reduce_samples(arr)
    return Timing(tuple(float(x) for x in arr), method)


def time_cpu(fn: Callable[[], object], cfg: TimerConfig, hooks: Hooks = Hooks()) -> Timing:
    """perf_counter timing, used on CPU hosts (tests, development) with the same harness as the GPU."""
    flush = np.zeros(cfg.flush_bytes // 8) if cfg.flush_bytes else None
    fn()  # first call: allocation, lazy init; never timed
    start, calls = time.perf_counter(), 0
    while _keep_warming(calls, start, cfg, hooks, 1):
        fn()
        calls += 1
    reps = _rep_count((time.perf_counter() - start) / calls, cfg, hooks)
    samples = []
    for _ in range(reps):
        if flush is not None:
            flush += 1.0  # rewrite the buffer: evicts the op's operands from the caches
        if hooks.before_rep:
            hooks.before_rep()
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return _finish(samples, TimingMethod.CPU_PERF_COUNTER, hooks)


def _capture(fn: Callable[[], object], torch):
    """A CUDA graph of one call of fn, or None when the op cannot be captured (host syncs, NCCL, ...)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()  # warm inside a side stream: cuBLAS workspaces and Triton compilation happen outside capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
    except RuntimeError:
        torch.cuda.synchronize()
        return None
    return graph


def time_cuda(fn: Callable[[], object], cfg: TimerConfig, hooks: Hooks = Hooks()) -> Timing:
    """CUDA-event timing of graph replays (or eager launches when capture fails), cold L2 each time."""
    import torch

    fn()
    torch.cuda.synchronize()
    graph = _capture(fn, torch) if cfg.use_graph else None
    launch = graph.replay if graph is not None else fn
    method = TimingMethod.CUDA_GRAPH if graph is not None else TimingMethod.CUDA_EVENTS
    flush = torch.empty(max(cfg.flush_bytes, 4) // 4, dtype=torch.int32, device="cuda")

    start, calls = time.perf_counter(), 0
    while _keep_warming(calls, start, cfg, hooks, 2):
        launch()
        torch.cuda.synchronize()
        calls += 1
    reps = _rep_count((time.perf_counter() - start) / calls, cfg, hooks)
    begin = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        if cfg.flush_bytes:
            flush.zero_()  # rewrites > L2 bytes, so the op starts with a cold cache
        if hooks.before_rep:
            hooks.before_rep()
        begin[i].record()
        launch()
        end[i].record()
    torch.cuda.synchronize()
    samples = [b.elapsed_time(e) for b, e in zip(begin, end, strict=True)]
    return _finish(samples, method, hooks)


def time_op(fn: Callable[[], object], device: str, cfg: TimerConfig, hooks: Hooks = Hooks()) -> Timing:
    """Time one op on `device` ("cuda" or "cpu")."""
    return time_cuda(fn, cfg, hooks) if device == "cuda" else time_cpu(fn, cfg, hooks)


def achieved(flops: float, nbytes: float, latency_ms: float) -> tuple[float, float]:
    """(TFLOP/s, GB/s) achieved at latency_ms, from the case's flops()/bytes()."""
    if not latency_ms > 0 or not math.isfinite(latency_ms):
        return 0.0, 0.0
    seconds = latency_ms / 1e3
    return flops / seconds / 1e12, nbytes / seconds / 1e9
