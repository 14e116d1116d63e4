"""One parser per benchmark-client format; `detect` picks one from the file's name and content.

Client parsers (aiperf, genai-perf, vLLM, SGLang) return ClientResult (load + measurements, no
deployment); InferenceX rows and the silicon CSV name their deployment and return MeasuredRun.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from calibrate.parsers import (
    aiperf_csv,
    aiperf_json,
    aiperf_jsonl,
    genai_perf_json,
    inferencex,
    sglang_bench,
    silicon_csv,
    vllm_bench,
)
from calibrate.parsers.common import fail, read_text
from calibrate.runs import ClientResult, MeasuredRun
from perfdb.errors import InputError


class Format(str, Enum):
    AIPERF_JSON = "aiperf-json"
    AIPERF_CSV = "aiperf-csv"
    AIPERF_JSONL = "aiperf-jsonl"
    GENAI_PERF_JSON = "genai-perf-json"
    VLLM = "vllm"
    SGLANG = "sglang"
    INFERENCEX = "inferencex"
    SILICON_CSV = "silicon-csv"


PARSERS: dict[Format, Callable[[Path], list]] = {
    Format.AIPERF_JSON: aiperf_json.parse,
    Format.AIPERF_CSV: aiperf_csv.parse,
    Format.AIPERF_JSONL: aiperf_jsonl.parse,
    Format.GENAI_PERF_JSON: genai_perf_json.parse,
    Format.VLLM: vllm_bench.parse,
    Format.SGLANG: sglang_bench.parse,
    Format.INFERENCEX: inferencex.parse,
    Format.SILICON_CSV: silicon_csv.parse,
}
ACCEPTED = ", ".join(f.value for f in Format)


def _first_record(text: str) -> object:
    """The first JSON value of a file: the whole document, else its first line (JSON lines)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        try:
            return json.loads(first)
        except json.JSONDecodeError:
            return None


def _detect_json(obj: object) -> Format | None:
    rec = obj[0] if isinstance(obj, list) and obj else obj
    if not isinstance(rec, dict):
        return None
    for fmt, probe in ((Format.GENAI_PERF_JSON, genai_perf_json.looks_like), (Format.AIPERF_JSON, aiperf_json.looks_like),
                       (Format.INFERENCEX, inferencex.looks_like), (Format.AIPERF_JSONL, aiperf_jsonl.looks_like),
                       (Format.SGLANG, sglang_bench.looks_like), (Format.VLLM, vllm_bench.looks_like)):
        if probe(rec):
            return fmt
    if "time_to_first_token" in rec and "input_config" in rec:
        return Format.GENAI_PERF_JSON
    return None


def detect(path: Path) -> Format:
    """The format of a result file, from its content; raises DataError naming what was expected."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise fail(path, "empty file")
    head = text.lstrip()
    if head.startswith("Metric,"):
        return Format.AIPERF_CSV
    if head.startswith(("{", "[")):
        fmt = _detect_json(_first_record(text))
        if fmt is None:
            if _first_record(text) is None:
                raise fail(path, "not valid JSON (truncated or corrupt)")
            raise fail(path, f"JSON of no known benchmark-client format; accepted: {ACCEPTED}")
        return fmt
    if silicon_csv.looks_like(head.splitlines()[0].split(",")):
        return Format.SILICON_CSV
    raise fail(path, f"not a known benchmark result file; accepted: {ACCEPTED}")


def parse_file(path: Path, fmt: Format | None = None) -> list[ClientResult | MeasuredRun]:
    fmt = fmt or detect(path)
    try:
        return PARSERS[fmt](Path(path))
    except InputError as exc:   # a value the run types reject (e.g. a negative ISL): name the file
        raise fail(path, str(exc)) from None
