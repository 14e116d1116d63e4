"""SGLang `python -m sglang.bench_serving --output-file X.jsonl`: one JSON line appended per run.

Field names as written by python/sglang/bench_serving.py (sgl-project/sglang): `mean_/median_/std_/
p99_` + `ttft_ms, tpot_ms, itl_ms` (p90/p95 in some versions), `*_e2e_latency_ms`,
`request_throughput, input_throughput, output_throughput`, `completed, total_input_tokens,
total_output_tokens`, `request_rate`, `max_concurrency`, and `concurrency`, which is the MEASURED
average number of requests in flight (sum of latencies / duration), not the configured cap: it
goes to `measured_concurrency`. Total token throughput = input + output throughput.
"""
from __future__ import annotations

import math
from pathlib import Path

from calibrate.parsers.common import (
    completed_requests,
    load_json_lines,
    number,
    opt_or_none,
    optional,
    positive_or_none,
    prefixed_stat,
)
from calibrate.runs import Client, ClientResult, Load, Metrics

REQUIRED = ("completed", "total_input_tokens", "total_output_tokens", "mean_ttft_ms", "mean_tpot_ms")


def looks_like(record: dict) -> bool:
    return "mean_ttft_ms" in record and ("mean_e2e_latency_ms" in record or "input_throughput" in record)


def parse_record(path: Path, r: dict, where: str = "") -> ClientResult:
    completed = completed_requests(path, r, REQUIRED, where)
    inp, out = optional(path, r, "input_throughput", where), optional(path, r, "output_throughput", where)
    total = inp + out if not (math.isnan(inp) or math.isnan(out)) else math.nan
    load = Load(isl=number(path, r, "total_input_tokens", where) / completed,
                osl=number(path, r, "total_output_tokens", where) / completed,
                concurrency=positive_or_none(optional(path, r, "max_concurrency", where)),
                request_rate=positive_or_none(optional(path, r, "request_rate", where)),
                measured_concurrency=opt_or_none(optional(path, r, "concurrency", where)),
                num_requests=int(completed))
    metrics = Metrics(ttft=prefixed_stat(path, r, "ttft_ms", where), tpot=prefixed_stat(path, r, "tpot_ms", where),
                      itl=prefixed_stat(path, r, "itl_ms", where), e2el=prefixed_stat(path, r, "e2e_latency_ms", where),
                      request_throughput=optional(path, r, "request_throughput", where),
                      output_throughput=out, total_token_throughput=total)
    return ClientResult(client=Client.SGLANG, load=load, metrics=metrics, source_file=str(path),
                        model=str(r.get("model_id") or r.get("model") or ""))


def parse(path: Path) -> list[ClientResult]:
    return [parse_record(Path(path), r, f" on line {i}") for i, r in enumerate(load_json_lines(path), start=1)]
