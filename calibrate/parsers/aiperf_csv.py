"""aiperf `profile_export_aiperf.csv`: two sections, each starting with a header row.

Section 1 (`Metric,avg,min,max,[sum,]p1,...,p99,std`) holds per-request metrics named by display
label with the unit in parentheses, e.g. `Time to First Token (ms)`; section 2 (`Metric,Value`)
holds run totals such as `Request Throughput (requests/sec)`. Tables after those (aiperf >= 0.13 adds
GPU telemetry, `Endpoint,GPU_Index,GPU_Name,...,Metric,avg,...`, one row per GPU and metric) are skipped. Written by aiperf's
exporters/csv_exporter.py (ai-dynamo/aiperf). The CSV carries no load configuration: the
concurrency cap or request rate comes from `servecast calibrate ingest --concurrency/--request-rate`;
the measured `Effective Concurrency` is kept when present.
"""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from calibrate.parsers.common import fail, opt_or_none, read_text, to_ms_factor
from calibrate.runs import Client, ClientResult, Load, Metrics, Stat

_LABEL = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$")
_STATS = {"Time to First Token": "ttft", "Inter Token Latency": "tpot", "Inter Chunk Latency": "itl",
          "Request Latency": "e2el"}
REQUIRED = ("Time to First Token", "Inter Token Latency", "Input Sequence Length", "Output Sequence Length",
            "Request Throughput")


def looks_like(text: str) -> bool:
    return text.lstrip().startswith("Metric,") and "Time to First Token" in text


def _sections(path: Path, text: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    per_request: dict[str, dict[str, str]] = {}
    totals: dict[str, str] = {}
    header: list[str] | None = None
    other = False   # inside a table that is not a metrics section (aiperf's GPU telemetry, `Endpoint,GPU_Index,...`)
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not any(cell.strip() for cell in row):
            header, other = None, False
            continue
        if row[0] == "Metric":
            header = row
            continue
        if header is None and not other and per_request and row[0] != "Metric":
            other = True   # the header row of another table after the metrics sections: skip that table
            continue
        if other:
            continue
        if header is None:
            raise fail(path, f"line {number} comes before any `Metric,...` header row")
        if len(row) != len(header):
            raise fail(path, f"line {number} has {len(row)} fields, its header has {len(header)} (truncated file?)")
        m = _LABEL.match(row[0])
        name, unit = (m.group("name"), m.group("unit")) if m else (row[0], "")
        if header[1:] == ["Value"]:
            totals[name] = row[1]
        else:
            per_request[name] = dict(zip(header[1:], row[1:], strict=True), unit=unit)
    return per_request, totals


def _num(path: Path, text: str, what: str) -> float:
    try:
        return float(text) if text.strip() else math.nan
    except ValueError:
        raise fail(path, f"{what} is {text!r}, expected a number") from None


def _stat(path: Path, row: dict[str, str] | None, name: str) -> Stat:
    if row is None:
        return Stat()
    k = to_ms_factor(path, row["unit"], name)
    return Stat(**{s: _num(path, row.get(col, ""), f"{name} {col}") * k
                   for s, col in (("mean", "avg"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"))})


def parse(path: Path) -> list[ClientResult]:
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise fail(path, "empty file")
    per_request, totals = _sections(path, text)
    missing = [k for k in REQUIRED if k not in per_request and k not in totals]
    if missing:
        raise fail(path, f"missing required row(s) {', '.join(missing)} (truncated, or not an aiperf CSV)")
    avg = lambda name: _num(path, per_request[name]["avg"], name) if name in per_request else math.nan  # noqa: E731
    std = lambda name: _num(path, per_request[name].get("std", ""), name) if name in per_request else math.nan  # noqa: E731
    total = lambda name: _num(path, totals[name], name) if name in totals else math.nan  # noqa: E731
    isl, osl = avg("Input Sequence Length"), avg("Output Sequence Length")
    req, out = total("Request Throughput"), total("Output Token Throughput")
    tot = total("Total Token Throughput")
    if math.isnan(tot):
        tot = out + req * isl
    count = total("Request Count")
    load = Load(isl=isl, osl=osl, isl_std=0.0 if math.isnan(std("Input Sequence Length")) else std("Input Sequence Length"),
                osl_std=0.0 if math.isnan(std("Output Sequence Length")) else std("Output Sequence Length"),
                measured_concurrency=opt_or_none(avg("Effective Concurrency")),
                num_requests=None if math.isnan(count) else int(count))
    stats = {key: _stat(path, per_request.get(label), label) for label, key in _STATS.items()}
    metrics = Metrics(**stats, request_throughput=req, output_throughput=out, total_token_throughput=tot)
    return [ClientResult(client=Client.AIPERF, load=load, metrics=metrics, source_file=str(path))]
