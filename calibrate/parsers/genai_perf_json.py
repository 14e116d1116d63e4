"""genai-perf `profile_export_genai_perf.json` (or `<prefix>_genai_perf.json`).

Written by genai-perf/genai_perf/export_data/json_exporter.py (triton-inference-server/perf_analyzer):
the statistics dict (one block per metric: `unit, avg, min, max, p1..p99, std`) merged with
`input_config` = the CLI arguments (`concurrency`, `request_rate`, `model` (a list),
`synthetic_input_tokens_mean/stddev`, `output_tokens_mean/stddev`, ...). Metric names and the
TPOT definition (`inter_token_latency` = (latency - TTFT) / (output tokens - 1)) are the ones
aiperf kept, so the summary reader is shared with aiperf_json.

genai-perf 0.0.16 writes `input_config` as its ConfigCommand (genai_perf/config/input/config_command.py,
`to_json_dict`): `model_names`, `subcommand`, `endpoint {...}`, `perf_analyzer {stimulus: {concurrency: N}
or {request_rate: R}, measurement, warmup_request_count}`, `input {synthetic_tokens {mean, stddev},
output_tokens {mean, stddev, deterministic}}`. aiperf never writes a `perf_analyzer` section, so that
layout is told apart from aiperf's (which would otherwise claim the file and find no concurrency).
"""
from __future__ import annotations

import math
from pathlib import Path

from calibrate.parsers.aiperf_json import parse_summary
from calibrate.parsers.common import fail, load_json
from calibrate.runs import Client, ClientResult

_FLAT_KEYS = ("synthetic_input_tokens_mean", "service_kind", "endpoint_type")   # genai-perf <= 0.0.15 CLI args
_COMMAND_KEY = "perf_analyzer"   # genai-perf 0.0.16 ConfigCommand: a section (earlier flat args also have `subcommand`)


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and "time_to_first_token" in obj and isinstance(obj.get("input_config"), dict) \
        and "schema_version" not in obj and (any(k in obj["input_config"] for k in _FLAT_KEYS)
                                             or isinstance(obj["input_config"].get(_COMMAND_KEY), dict))


def _flatten_command(cfg: dict) -> dict:
    """genai-perf 0.0.16's ConfigCommand in the flat argument names of earlier versions."""
    def block(d: object, *keys: str) -> dict:
        for k in keys:
            d = d.get(k) if isinstance(d, dict) else None
        return d if isinstance(d, dict) else {}

    stimulus = block(cfg, "perf_analyzer", "stimulus")
    synthetic, output = block(cfg, "input", "synthetic_tokens"), block(cfg, "input", "output_tokens")
    return {"concurrency": stimulus.get("concurrency"), "request_rate": stimulus.get("request_rate"),
            "synthetic_input_tokens_mean": synthetic.get("mean"), "synthetic_input_tokens_stddev": synthetic.get("stddev"),
            "output_tokens_mean": output.get("mean"), "output_tokens_stddev": output.get("stddev"),
            "model": cfg.get("model_names") or []}


def _as_aiperf_config(args: dict) -> dict:
    """genai-perf's flat CLI args, in the loadgen/input/endpoint layout parse_summary reads."""
    models = args.get("model") or []
    return {
        "loadgen": {"concurrency": args.get("concurrency"), "request_rate": args.get("request_rate")},
        "input": {"prompt": {
            "input_tokens": {"mean": args.get("synthetic_input_tokens_mean"),
                             "stddev": args.get("synthetic_input_tokens_stddev") or 0.0},
            "output_tokens": {"mean": args.get("output_tokens_mean") if (args.get("output_tokens_mean") or -1) > 0
                              else math.nan, "stddev": args.get("output_tokens_stddev") or 0.0}}},
        "endpoint": {"model_names": models if isinstance(models, list) else [models]},
    }


def parse(path: Path) -> list[ClientResult]:
    path = Path(path)
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise fail(path, "expected a JSON object (genai-perf profile export)")
    args = obj.get("input_config") or {}
    if not isinstance(args, dict):
        raise fail(path, "input_config is not an object")
    if isinstance(args.get(_COMMAND_KEY), dict):
        args = _flatten_command(args)
    return [parse_summary(path, obj, _as_aiperf_config(args), Client.GENAI_PERF, "")]
