"""What a simulated benchmark run reports: the metrics a benchmark client prints, plus per-request records.

Definitions follow the clients (see REFERENCE.md): TTFT = first token time - send time;
TPOT = (request latency - TTFT) / (output tokens - 1) per request (aiperf inter_token_latency, vLLM
tpot); ITL = every gap between consecutive tokens of a request, pooled over all requests (vLLM itl);
throughputs divide by the benchmark duration, first send to last completion.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfdb.errors import InputError


@dataclass(frozen=True)
class Stats:
    """Milliseconds unless the field it sits in says otherwise."""

    mean: float
    p50: float
    p90: float
    p99: float

    @staticmethod
    def of(values: np.ndarray, weights: np.ndarray | None = None) -> "Stats":
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return Stats(float("nan"), float("nan"), float("nan"), float("nan"))
        if weights is None:
            p50, p90, p99 = np.percentile(values, [50, 90, 99])
            return Stats(float(values.mean()), float(p50), float(p90), float(p99))
        return _weighted(values, np.asarray(weights, dtype=np.float64))


def _weighted(values: np.ndarray, weights: np.ndarray) -> Stats:
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        return Stats(float("nan"), float("nan"), float("nan"), float("nan"))
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w) / w.sum()
    idx = np.searchsorted(cum, [0.5, 0.9, 0.99], side="left").clip(0, v.size - 1)
    return Stats(float(np.average(v, weights=w)), float(v[idx[0]]), float(v[idx[1]]), float(v[idx[2]]))


@dataclass(frozen=True)
class TtftParts:
    """Mean TTFT of the measured requests split into what it is made of (ms); the parts sum to the
    mean TTFT. overhead: the frontend (HTTP, tokenisation) and, disaggregated, the hand-off's extra
    frontend pass; queue: waiting for a prefill slot, plus (disagg) for a decode worker's iteration that
    starts the KV pull (TRT-LLM, vLLM) and the one that admits the received KV; prefill: first chunk scheduled to prompt done; kv_transfer: the bytes over the path."""

    overhead_ms: float
    queue_ms: float
    prefill_ms: float
    kv_transfer_ms: float

    def shares(self) -> str:
        parts = (("prefill", self.prefill_ms), ("queue", self.queue_ms), ("KV transfer", self.kv_transfer_ms),
                 ("overhead", self.overhead_ms))
        return ", ".join(f"{name} {ms:.0f}" for name, ms in parts if name != "KV transfer" or ms > 0)


@dataclass(frozen=True)
class RequestRecords:
    """One entry per request, in request-id order. Times in seconds from the start of the run."""

    send_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    isl: np.ndarray
    osl: np.ndarray
    worker: np.ndarray        # agg: replica index; disagg: decode worker index
    preemptions: np.ndarray
    measured: np.ndarray      # False for warm-up requests (left out of the metrics)
    prefill_start_s: np.ndarray | None = None   # first prompt chunk scheduled
    prefill_end_s: np.ndarray | None = None     # disagg: prompt done on the prefill worker
    kv_ready_s: np.ndarray | None = None        # disagg: KV received by the decode side

    def to_frame(self):
        import pandas as pd

        ttft = (self.first_token_s - self.send_s) * 1e3
        lat = (self.finish_s - self.send_s) * 1e3
        tpot = np.where(self.osl > 1, (lat - ttft) / np.maximum(self.osl - 1, 1), np.nan)
        return pd.DataFrame({
            "request": np.arange(self.send_s.size), "send_s": self.send_s, "first_token_s": self.first_token_s,
            "finish_s": self.finish_s, "isl": self.isl, "osl": self.osl, "ttft_ms": ttft, "tpot_ms": tpot,
            "latency_ms": lat, "worker": self.worker, "preemptions": self.preemptions, "measured": self.measured,
        })

    def write(self, path: Path) -> None:
        """Write as Parquet (.parquet) or JSON lines (.jsonl); other suffixes are refused."""
        path = Path(path)
        frame = self.to_frame()
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        elif path.suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            raise InputError(f"records file {path.name!r}: accepted suffixes are .parquet and .jsonl")


@dataclass(frozen=True)
class SimResult:
    """A simulated benchmark run. Latencies in ms; throughputs per second over `duration_s`."""

    ttft: Stats
    tpot: Stats
    itl: Stats
    latency: Stats
    completed: int                   # measured requests (warm-up excluded)
    duration_s: float                # first measured send to last measured completion
    request_throughput: float        # requests/s
    input_tokens_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float        # input + output
    tokens_per_s_per_gpu: float      # (input + output) / s / GPU, as InferenceX tput_per_gpu
    output_tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float     # 1000 / mean TPOT
    mean_in_flight: float            # time-averaged requests in flight (sum of latencies / duration)
    num_gpus: int
    preemptions: int
    steps: int                       # engine iterations simulated, all workers
    prefill_tokens: int              # prompt tokens computed, recomputation after preemption included
    decode_tokens: int               # request-steps of decode iterations: output tokens not from prefills
                                     # (with speculative decoding each emits resolved.tokens_per_step)
    records: RequestRecords | None = None
    ttft_parts: TtftParts | None = None


def ttft_parts(rec: RequestRecords, frontend_s: float, handoff_s: float,
               decode_wait_s: np.ndarray | None = None) -> TtftParts:
    """The mean TTFT of the measured requests split into its parts (see TtftParts). `decode_wait_s`
    (disagg, per request): the wait at the decode worker for the iteration that starts the KV pull, a
    queue wait inside kv_ready - prefill end."""
    m = rec.measured
    send, first, start = rec.send_s[m], rec.first_token_s[m], rec.prefill_start_s[m]
    queue = start - (send + frontend_s)
    if rec.kv_ready_s is None:   # aggregated: the prompt's last chunk emits the first token
        return TtftParts(frontend_s * 1e3, float(queue.mean()) * 1e3, float((first - start).mean()) * 1e3, 0.0)
    end, ready = rec.prefill_end_s[m], rec.kv_ready_s[m]
    wait = decode_wait_s[m] if decode_wait_s is not None else 0.0
    queue = queue + (first - ready) + wait   # waiting for a decode worker's steps: to pull, then to admit
    return TtftParts((frontend_s + handoff_s) * 1e3, float(queue.mean()) * 1e3, float((end - start).mean()) * 1e3,
                     float((ready - end - wait).mean() - handoff_s) * 1e3)


def summarise(rec: RequestRecords, itl: tuple[np.ndarray, np.ndarray, np.ndarray], num_gpus: int,
              steps: tuple[int, int, int], keep_records: bool, parts: TtftParts | None = None) -> SimResult:
    """Reduce the measured requests' times, and the token gaps (ms, weight, step end s) after the first
    measured send, to the client-side metrics."""
    m = rec.measured
    send, first, finish = rec.send_s[m], rec.first_token_s[m], rec.finish_s[m]
    isl, osl = rec.isl[m], rec.osl[m]
    ttft = (first - send) * 1e3
    lat = (finish - send) * 1e3
    multi = osl > 1
    tpot = (lat[multi] - ttft[multi]) / (osl[multi] - 1)
    start = float(send.min())
    duration = float(finish.max() - start)
    n_in, n_out = float(isl.sum()), float(osl.sum())
    tpot_stats = Stats.of(tpot)
    gaps = itl[2] > start
    return SimResult(
        ttft=Stats.of(ttft), tpot=tpot_stats, itl=Stats.of(itl[0][gaps], itl[1][gaps]), latency=Stats.of(lat),
        completed=int(send.size), duration_s=duration,
        request_throughput=send.size / duration, input_tokens_per_s=n_in / duration,
        output_tokens_per_s=n_out / duration, total_tokens_per_s=(n_in + n_out) / duration,
        tokens_per_s_per_gpu=(n_in + n_out) / duration / num_gpus,
        output_tokens_per_s_per_gpu=n_out / duration / num_gpus,
        tokens_per_s_per_user=1e3 / tpot_stats.mean if tpot.size else float("nan"),
        mean_in_flight=float(lat.sum() / 1e3 / duration), num_gpus=num_gpus,
        preemptions=int(rec.preemptions[m].sum()), steps=steps[0], prefill_tokens=steps[1], decode_tokens=steps[2],
        records=rec if keep_records else None, ttft_parts=parts,
    )
