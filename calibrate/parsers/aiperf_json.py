"""aiperf `profile_export_aiperf.json`: one summary block per metric plus the run's configuration.

Layouts read (all seen in ai-dynamo/aiperf's exporters/json_exporter.py history):
- current (0.13, `schema_version` present): metric blocks at the top level; `input_config` with
  `models.items[].name`, `datasets[].prompts.isl/osl {mean, stddev}` and `phases[]` whose
  profiling phase has `type` (concurrency | poisson | constant ...) and `concurrency` / `rate`;
- 0.2-0.12: metric blocks at the top level; `input_config` = the CLI UserConfig with
  `endpoint.model_names`, `input.prompt.input_tokens/output_tokens {mean, stddev}` and
  `loadgen.concurrency / request_rate / request_count`;
- before aiperf commit 43b78902 ("Match GenAI-Perf format for json summary export"): the metric
  blocks sit under `records` (each also carrying `tag` and `header`), config as 0.2-0.12.
Each block is {unit, avg, min, max, p1..p99, std}. aiperf's `inter_token_latency` is servecast's
TPOT; `inter_chunk_latency` is servecast's ITL. ISL/OSL are the measured averages when present.
"""
from __future__ import annotations

import math
from pathlib import Path

from calibrate.parsers.common import (
    fail,
    load_json,
    opt_or_none,
    positive_or_none,
    stat_from_summary,
    summary_value,
)
from calibrate.runs import Client, ClientResult, Load, Metrics


def looks_like(obj: object) -> bool:
    if not isinstance(obj, dict):
        return False
    body = obj.get("records", obj)
    return isinstance(body, dict) and "time_to_first_token" in body and "inter_token_latency" in body \
        and ("input_config" in obj or "schema_version" in obj or "records" in obj)


def _profiling_phase(cfg: dict) -> dict:
    phases = cfg.get("phases") or []
    for ph in phases:
        if isinstance(ph, dict) and (ph.get("kind") == "profiling" or ph.get("name") == "profiling"):
            return ph
    return phases[-1] if phases and isinstance(phases[-1], dict) else {}


def _configured_load(cfg: dict) -> dict:
    """concurrency, request_rate, isl, osl, isl_std, osl_std, model from either config layout (NaN/"" if absent),
    and warmups: the warm-up requests sent before the profiling phase (None where the config does not say)."""
    out = {"concurrency": math.nan, "request_rate": math.nan, "isl": math.nan, "osl": math.nan,
           "isl_std": math.nan, "osl_std": math.nan, "model": "", "warmups": None}
    if "phases" in cfg or "datasets" in cfg:
        ph = _profiling_phase(cfg)
        phases = [p for p in cfg.get("phases") or [] if isinstance(p, dict)]
        if phases:   # 0.13 lists every phase it ran: a run without a warm-up phase sent none
            out["warmups"] = sum(int(p.get("requests") or 0) for p in phases if p.get("kind") == "warmup")
        out["concurrency"] = float(ph.get("concurrency") or math.nan)
        out["request_rate"] = float(ph.get("rate") or ph.get("request_rate") or math.nan)
        ds = (cfg.get("datasets") or [{}])[0] or {}
        prompts = ds.get("prompts") or {}
        for key, name in (("isl", "isl"), ("osl", "osl")):
            block = prompts.get(name) or {}
            out[key] = float(block.get("mean") or math.nan)
            out[f"{key}_std"] = float(block.get("stddev") or 0.0)
        items = (cfg.get("models") or {}).get("items") or []
        out["model"] = str(items[0].get("name", "")) if items and isinstance(items[0], dict) else ""
        return out
    loadgen = cfg.get("loadgen") or {}
    if "warmup_request_count" in loadgen:   # 0.2-0.12 UserConfig (absent: not written, so unknown)
        out["warmups"] = int(loadgen.get("warmup_request_count") or 0)
    out["concurrency"] = float(loadgen.get("concurrency") or math.nan)
    out["request_rate"] = float(loadgen.get("request_rate") or math.nan)
    prompt = ((cfg.get("input") or {}).get("prompt") or {})
    for key, name in (("isl", "input_tokens"), ("osl", "output_tokens")):
        block = prompt.get(name) or {}
        out[key] = float(block.get("mean") or math.nan)
        out[f"{key}_std"] = float(block.get("stddev") or 0.0)
    names = (cfg.get("endpoint") or {}).get("model_names") or []
    out["model"] = str(names[0]) if names else ""
    return out


def parse_summary(path: Path, body: dict, cfg: dict, client: Client, measured_at: str) -> ClientResult:
    """Shared by aiperf and genai-perf: both write GenAI-Perf-style summary blocks."""
    for key in ("time_to_first_token", "inter_token_latency"):
        if key not in body:
            raise fail(path, f"missing required metric {key!r} (was the run streaming?)")
    conf = _configured_load(cfg)
    isl = summary_value(path, body.get("input_sequence_length"), "input_sequence_length")
    osl = summary_value(path, body.get("output_sequence_length"), "output_sequence_length")
    isl = conf["isl"] if math.isnan(isl) else isl
    osl = conf["osl"] if math.isnan(osl) else osl
    if math.isnan(isl) or math.isnan(osl):
        raise fail(path, "no input/output sequence length (neither measured nor configured)")
    isl_std = summary_value(path, body.get("input_sequence_length"), "input_sequence_length", "std")
    osl_std = summary_value(path, body.get("output_sequence_length"), "output_sequence_length", "std")
    req_tput = summary_value(path, body.get("request_throughput"), "request_throughput")
    out_tput = summary_value(path, body.get("output_token_throughput"), "output_token_throughput")
    total = summary_value(path, body.get("total_token_throughput"), "total_token_throughput")
    if math.isnan(total) and not math.isnan(req_tput):
        total = out_tput + req_tput * isl       # input tokens/s = requests/s x mean ISL
    count = summary_value(path, body.get("request_count"), "request_count")
    load = Load(isl=isl, osl=osl, isl_std=conf["isl_std"] if math.isnan(isl_std) else isl_std,
                osl_std=conf["osl_std"] if math.isnan(osl_std) else osl_std,
                concurrency=positive_or_none(conf["concurrency"]),
                request_rate=positive_or_none(conf["request_rate"]),
                measured_concurrency=opt_or_none(summary_value(path, body.get("effective_concurrency"),
                                                               "effective_concurrency")),
                num_requests=None if math.isnan(count) else int(count), num_warmups=conf["warmups"])
    metrics = Metrics(ttft=stat_from_summary(path, body["time_to_first_token"], "time_to_first_token"),
                      tpot=stat_from_summary(path, body["inter_token_latency"], "inter_token_latency"),
                      itl=stat_from_summary(path, body.get("inter_chunk_latency"), "inter_chunk_latency"),
                      e2el=stat_from_summary(path, body.get("request_latency"), "request_latency"),
                      request_throughput=req_tput, output_throughput=out_tput, total_token_throughput=total)
    return ClientResult(client=client, load=load, metrics=metrics, source_file=str(path), model=conf["model"],
                        measured_at=measured_at)


def parse(path: Path) -> list[ClientResult]:
    path = Path(path)
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise fail(path, "expected a JSON object (aiperf profile_export_aiperf.json)")
    body = obj["records"] if isinstance(obj.get("records"), dict) else obj
    cfg = obj.get("input_config") or {}
    if not isinstance(cfg, dict):
        raise fail(path, "input_config is not an object")
    if obj.get("was_cancelled") is True:
        raise fail(path, "the aiperf run was cancelled; its statistics cover a partial run")
    return [parse_summary(path, body, cfg, Client.AIPERF, str(obj.get("start_time") or ""))]
