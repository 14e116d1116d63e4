"""Request streams: per-request lengths and (open loop) send times, all from one seeded generator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from estimator.sim.types import Arrival, LengthDist, Lengths, LoadSpec, TraceRequest
from perfdb.errors import DataError, InputError
from perfdb.userfiles import read_text

_TRACE_FORMAT = "JSON lines with arrival_s (or timestamp, ms), isl and osl per request"


def draw_lengths(spec: Lengths, n: int, rng: np.random.Generator) -> np.ndarray:
    """n token counts (int64, >= 1). UNIFORM follows vLLM's random dataset: integers in
    [floor(mean*(1-r)), floor(mean*(1+r))] inclusive."""
    if spec.dist is LengthDist.FIXED or (spec.dist is LengthDist.UNIFORM and spec.range_ratio == 0):
        return np.full(n, spec.mean, dtype=np.int64)
    if spec.dist is LengthDist.UNIFORM:
        lo = max(int(spec.mean * (1 - spec.range_ratio)), 1)
        hi = max(int(spec.mean * (1 + spec.range_ratio)), lo)
        return rng.integers(lo, hi + 1, size=n, dtype=np.int64)
    return np.maximum(np.rint(rng.normal(spec.mean, spec.stddev, size=n)), 1).astype(np.int64)


def build_requests(load: LoadSpec, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(isl, osl, send times in s or None for closed loop), in request-id order."""
    if load.trace is not None:
        send = np.array([r.arrival_s for r in load.trace], dtype=np.float64)
        order = np.argsort(send, kind="stable")
        isl = np.array([load.trace[i].isl for i in order], dtype=np.int64)
        osl = np.array([load.trace[i].osl for i in order], dtype=np.int64)
        return isl, osl, send[order] - send.min()
    if seed < 0:
        raise InputError(f"--seed {seed}: must be >= 0")
    rng = np.random.default_rng(seed)
    n = load.total_requests
    isl = draw_lengths(load.isl, n, rng)
    osl = draw_lengths(load.osl, n, rng)
    if load.request_rate is None:
        return isl, osl, None
    if load.arrival is Arrival.CONSTANT:
        gaps = np.full(n, 1.0 / load.request_rate)
    else:
        gaps = rng.exponential(1.0 / load.request_rate, size=n)
    gaps[0] = 0.0   # the benchmark clock starts at the first send
    return isl, osl, np.cumsum(gaps)


def read_trace(path: Path) -> tuple[TraceRequest, ...]:
    """JSON lines with `arrival_s` (or `timestamp` in ms, as mooncake traces), `isl`/`input_length`
    and `osl`/`output_length` per request."""
    path = Path(path)
    out = []
    for n, line in enumerate(read_text(path, "--trace file", _TRACE_FORMAT).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            arrival = float(row["arrival_s"]) if "arrival_s" in row else float(row["timestamp"]) / 1e3
            isl = int(row.get("isl", row.get("input_length")))
            osl = int(row.get("osl", row.get("output_length")))
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise DataError(f"{path.name} line {n}: need arrival_s (or timestamp ms), isl (or input_length), "
                            f"osl (or output_length): {exc}") from None
        if isl < 1 or osl < 1:
            raise DataError(f"{path.name} line {n}: isl and osl must be >= 1")
        out.append(TraceRequest(arrival, isl, osl))
    if not out:
        raise DataError(f"trace file {path.name} has no requests")
    return tuple(out)
