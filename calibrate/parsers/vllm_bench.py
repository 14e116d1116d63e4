"""`vllm bench serve --save-result` JSON (one run) and `--append-result` JSON lines (one run per line).

Field names as written by vllm/benchmarks/serve.py (vllm-project/vllm): `mean_/median_/std_/pNN_`
+ `ttft_ms, tpot_ms, itl_ms, e2el_ms`; `completed, total_input_tokens, total_output_tokens,
request_throughput, output_throughput, total_token_throughput, max_concurrency, request_rate`
("inf" when unbounded), `model_id`, `date` (YYYYMMDD-HHMMSS). vLLM's `tpot` is servecast's TPOT;
its `itl` (gap between streamed chunks) is servecast's ITL. Latencies are already ms.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from calibrate.parsers.common import (
    completed_requests,
    load_json_objects,
    number,
    optional,
    positive_or_none,
    prefixed_stat,
)
from calibrate.runs import Client, ClientResult, Load, Metrics

REQUIRED = ("completed", "total_input_tokens", "total_output_tokens", "mean_ttft_ms", "mean_tpot_ms")


def looks_like(record: dict) -> bool:
    return "mean_ttft_ms" in record and ("mean_e2el_ms" in record or "total_token_throughput" in record) \
        and "mean_e2e_latency_ms" not in record


def parse_record(path: Path, r: dict, where: str = "") -> ClientResult:
    completed = completed_requests(path, r, REQUIRED, where)
    isl = number(path, r, "total_input_tokens", where) / completed
    osl = number(path, r, "total_output_tokens", where) / completed
    lens_in, lens_out = r.get("input_lens"), r.get("output_lens")
    load = Load(
        isl=isl, osl=osl,
        isl_std=statistics.pstdev(lens_in) if isinstance(lens_in, list) and len(lens_in) > 1 else 0.0,
        osl_std=statistics.pstdev(lens_out) if isinstance(lens_out, list) and len(lens_out) > 1 else 0.0,
        concurrency=positive_or_none(optional(path, r, "max_concurrency", where)),
        request_rate=positive_or_none(optional(path, r, "request_rate", where)),
        num_requests=int(completed))
    metrics = Metrics(ttft=prefixed_stat(path, r, "ttft_ms", where), tpot=prefixed_stat(path, r, "tpot_ms", where),
                      itl=prefixed_stat(path, r, "itl_ms", where), e2el=prefixed_stat(path, r, "e2el_ms", where),
                      request_throughput=optional(path, r, "request_throughput", where),
                      output_throughput=optional(path, r, "output_throughput", where),
                      total_token_throughput=optional(path, r, "total_token_throughput", where))
    return ClientResult(client=Client.VLLM, load=load, metrics=metrics, source_file=str(path),
                        model=str(r.get("model_id") or ""), measured_at=str(r.get("date") or ""))


def parse(path: Path) -> list[ClientResult]:
    """--save-result writes one object; --append-result one object per line."""
    return [parse_record(Path(path), r, where) for where, r in load_json_objects(path)]
