"""Shared reading helpers for the result-file parsers: every failure is a one-line DataError naming the file."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfdb import userfiles
from perfdb.errors import DataError

if TYPE_CHECKING:
    from calibrate.runs import Stat


def fail(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}")


RESULT_FILE = ("a benchmark-client result file (aiperf JSON/CSV/JSONL, genai-perf JSON, vllm bench serve JSON, "
               "SGLang bench_serving JSONL, InferenceX rows, silicon CSV)")


def read_text(path: Path) -> str:
    return userfiles.read_text(path, "result file", RESULT_FILE)


def load_json(path: Path) -> Any:
    text = read_text(path)
    if not text.strip():
        raise fail(path, "empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(path, f"not valid JSON (truncated or corrupt: {exc.msg} at line {exc.lineno} column {exc.colno})") from None


def load_json_lines(path: Path) -> list[dict]:
    """Objects of a JSON-lines file (blank lines skipped). A bad line, e.g. a truncated last line, fails the file."""
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(path, f"line {number} is not valid JSON (truncated or corrupt: {exc.msg})") from None
        if not isinstance(obj, dict):
            raise fail(path, f"line {number} is a JSON {type(obj).__name__}, expected an object")
        records.append(obj)
    if not records:
        raise fail(path, "no records (empty file)")
    return records


def as_float(value: Any) -> float:
    """A number from JSON/CSV, NaN when absent; "inf"/"Infinity" strings become inf."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"boolean {value!r} is not a number")
    return float(value)


def number(path: Path, record: dict, key: str, where: str = "") -> float:
    """A required finite-or-inf number; missing or non-numeric -> DataError naming the key."""
    if key not in record or record[key] is None:
        raise fail(path, f"missing required field {key!r}{where}")
    try:
        return as_float(record[key])
    except (TypeError, ValueError):
        raise fail(path, f"field {key!r}{where} is {record[key]!r}, expected a number") from None


def optional(path: Path, record: dict, key: str, where: str = "") -> float:
    """An optional number: NaN when absent, DataError when present but not a number."""
    if record.get(key) is None:
        return math.nan
    return number(path, record, key, where)


def latency(path: Path, record: dict, key: str, where: str = "") -> float:
    """An optional latency: NaN when absent (the client did not report it), DataError when the file
    writes NaN or a non-number for it."""
    value = optional(path, record, key, where)
    if math.isnan(value) and record.get(key) is not None:
        raise fail(path, f"field {key!r}{where} is NaN; expected a latency > 0")
    return value


def opt_or_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def positive_or_none(x: float) -> float | None:
    """Configured load knobs: absent, zero or infinite mean 'not set'."""
    return None if math.isnan(x) or math.isinf(x) or x <= 0 else x


def load_json_objects(path: Path) -> list[tuple[str, dict]]:
    """Records of a file holding one JSON object, a JSON array of objects, or JSON lines.

    Returns (where, record) pairs; `where` locates the record in error messages (" on line 3").
    """
    path = Path(path)
    text = read_text(path)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise fail(path, "empty file")
    if len(lines) > 1 and all(ln.lstrip().startswith("{") for ln in lines):
        return [(f" on line {i}", r) for i, r in enumerate(load_json_lines(path), start=1)]
    obj = load_json(path)
    if isinstance(obj, dict):
        return [("", obj)]
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        return [(f" in record {i}", r) for i, r in enumerate(obj, start=1)]
    raise fail(path, "expected a JSON object, a non-empty array of objects, or JSON lines")


_TO_MS = {"ms": 1.0, "milliseconds": 1.0, "s": 1000.0, "sec": 1000.0, "seconds": 1000.0,
          "us": 1e-3, "microseconds": 1e-3, "ns": 1e-6, "nanoseconds": 1e-6}


def to_ms_factor(path: Path, unit: str | None, what: str) -> float:
    """Multiplier from a client's latency unit to ms; an unknown unit is an error, never a guess."""
    if unit is None or unit == "":
        return 1.0
    try:
        return _TO_MS[str(unit).strip().lower()]
    except KeyError:
        raise fail(path, f"{what} has unit {unit!r}; accepted latency units: {', '.join(_TO_MS)}") from None


def stat_from_summary(path: Path, block: object, what: str) -> "Stat":
    """A Stat from an aiperf/genai-perf summary block {unit, avg, p50, p90, p99, ...} (absent block -> empty)."""
    from calibrate.runs import Stat

    if block is None:
        return Stat()
    if not isinstance(block, dict):
        raise fail(path, f"{what} is a {type(block).__name__}, expected an object with unit/avg/p50/...")
    k = to_ms_factor(path, block.get("unit"), what)
    where = f" of {what}"
    return Stat(mean=latency(path, block, "avg", where) * k, p50=latency(path, block, "p50", where) * k,
                p90=latency(path, block, "p90", where) * k, p99=latency(path, block, "p99", where) * k)


def completed_requests(path: Path, record: dict, required: tuple[str, ...], where: str = "") -> float:
    """Check the record's required numbers and return its completed-request count (> 0)."""
    for key in required:
        number(path, record, key, where)
    completed = number(path, record, "completed", where)
    if completed <= 0:
        raise fail(path, f"no completed requests{where}")
    return completed


def prefixed_stat(path: Path, record: dict, name: str, where: str = "", scale: float = 1.0) -> "Stat":
    """A Stat from flat keys mean_<name>, median_<name>, p90_<name>, p99_<name> (vLLM, SGLang, InferenceX),
    times `scale` (e.g. 1000 for seconds)."""
    from calibrate.runs import Stat

    return Stat(**{field: latency(path, record, f"{prefix}_{name}", where) * scale
                   for field, prefix in (("mean", "mean"), ("p50", "median"), ("p90", "p90"), ("p99", "p99"))})


def summary_value(path: Path, block: object, what: str, key: str = "avg") -> float:
    """One number (default the average) from a summary block; NaN when the block is absent."""
    if block is None:
        return math.nan
    if not isinstance(block, dict):
        raise fail(path, f"{what} is a {type(block).__name__}, expected an object with {key!r}")
    return optional(path, block, key, f" of {what}")
