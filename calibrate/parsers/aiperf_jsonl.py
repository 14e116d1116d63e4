"""aiperf `profile_export.jsonl`: one record per request, `{"metadata": {...}, "metrics": {name: {value, unit}}}`.

Statistics are recomputed here from the successful profiling-phase requests: TTFT, TPOT
(`inter_token_latency`), ITL (every gap in `inter_chunk_latency`), E2EL (`request_latency`), mean
ISL/OSL, and throughputs over the span first request start -> last request end
(`metadata.request_start_ns` / `request_end_ns`). Requests in flight are measured as the sum of
request latencies over that span. The file carries no load configuration (see aiperf_csv).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from calibrate.parsers.common import fail, load_json_lines, to_ms_factor
from calibrate.runs import Client, ClientResult, Load, Metrics, Stat


def looks_like(record: dict) -> bool:
    return isinstance(record.get("metadata"), dict) and isinstance(record.get("metrics"), dict)


def _values(path: Path, records: list[dict], name: str, ms: bool) -> np.ndarray:
    out: list[float] = []
    for i, rec in enumerate(records, start=1):
        block = rec["metrics"].get(name)
        if block is None:
            continue
        k = to_ms_factor(path, block.get("unit"), f"{name} of record {i}") if ms else 1.0
        value = block.get("value")
        if isinstance(value, list):
            out.extend(float(v) * k for v in value)
        elif value is not None:
            out.append(float(value) * k)
    return np.asarray(out, dtype=float)


def _stat(values: np.ndarray) -> Stat:
    if values.size == 0:
        return Stat()
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return Stat(mean=float(values.mean()), p50=float(p50), p90=float(p90), p99=float(p99))


def parse(path: Path) -> list[ClientResult]:
    path = Path(path)
    records = load_json_lines(path)
    for i, rec in enumerate(records, start=1):
        if not looks_like(rec):
            raise fail(path, f"line {i} lacks the metadata/metrics objects of an aiperf record")
    ok = [r for r in records if not r.get("error") and r["metadata"].get("benchmark_phase", "profiling") == "profiling"
          and not r["metadata"].get("was_cancelled", False)]
    if not ok:
        raise fail(path, f"none of its {len(records)} records is a successful profiling request")
    ttft = _values(path, ok, "time_to_first_token", ms=True)
    if ttft.size == 0:
        raise fail(path, "no request has time_to_first_token (was the run streaming?)")
    starts = [r["metadata"].get("request_start_ns") for r in ok]
    ends = [r["metadata"].get("request_end_ns") for r in ok]
    if any(v is None for v in starts + ends):
        raise fail(path, "a record lacks metadata.request_start_ns/request_end_ns")
    span_s = (max(ends) - min(starts)) / 1e9
    isl, osl = _values(path, ok, "input_sequence_length", ms=False), _values(path, ok, "output_sequence_length", ms=False)
    latency = _values(path, ok, "request_latency", ms=True)
    n = len(ok)
    metrics = Metrics(ttft=_stat(ttft), tpot=_stat(_values(path, ok, "inter_token_latency", ms=True)),
                      itl=_stat(_values(path, ok, "inter_chunk_latency", ms=True)), e2el=_stat(latency),
                      request_throughput=n / span_s, output_throughput=float(osl.sum()) / span_s,
                      total_token_throughput=float(isl.sum() + osl.sum()) / span_s)
    load = Load(isl=float(isl.mean()) if isl.size else math.nan, osl=float(osl.mean()) if osl.size else math.nan,
                isl_std=float(isl.std()) if isl.size else 0.0, osl_std=float(osl.std()) if osl.size else 0.0,
                measured_concurrency=float(latency.sum() / 1000.0 / span_s) if latency.size else None,
                num_requests=n)
    if math.isnan(load.isl) or math.isnan(load.osl):
        raise fail(path, "records lack input_sequence_length/output_sequence_length")
    return [ClientResult(client=Client.AIPERF, load=load, metrics=metrics, source_file=str(path))]
