"""The measured-run CSV layout of ../shared/data/e2e_train_silicon.csv (AIConfigurator silicon dumps).

One row per run, deployment included: `backend, backend_version, model_path, system, precision,
mode, isl, osl, gemm_quant_mode, moe_quant_mode`; agg rows `batch_size, tp_size, pp_size,
attention_dp_size, moe_tp_size, moe_ep_size`; disagg rows the same with `prefill_`/`decode_`
prefixes and `*_num_workers` (often empty: worker counts unknown); `silicon_ttft_ms,
silicon_tpot_ms`. The load is in `silicon_data_source`, a `key=value; ...` string whose
`silicon_concurrency` is the client's concurrency (whole deployment). The file states one TTFT and
one TPOT per run and not which statistic: servecast reads them as means (the InferenceX sweeps it
was curated from report mean TTFT/TPOT); TPOT = (latency - TTFT) / (output tokens - 1).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from calibrate.parsers.common import fail, read_text
from calibrate.runs import Client, Deployment, EngineSettings, Load, MeasuredRun, Metrics, Mode, Role, Stat
from estimator.deployment import launched_stage
from estimator.parallel import ParallelConfig
from estimator.run_facts import RunFacts
from perfdb.errors import InputError
from perfdb.types import Backend, parse_enum

REQUIRED = ("id", "silicon_data_source", "backend", "backend_version", "model_path", "system", "mode", "isl",
            "osl", "silicon_ttft_ms", "silicon_tpot_ms")


def looks_like(header: list[str]) -> bool:
    return "silicon_ttft_ms" in header and "silicon_data_source" in header


def _f(path: Path, row: dict, key: str, line: int) -> float:
    text = (row.get(key) or "").strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise fail(path, f"line {line}: {key} is {text!r}, expected a number") from None


def _i(path: Path, row: dict, key: str, line: int, default: int | None) -> int | None:
    """An integer column; empty or 0 (the dumps' "not set") -> default."""
    v = _f(path, row, key, line)
    return default if math.isnan(v) or v == 0 else int(round(v))


def _role(path: Path, row: dict, prefix: str, line: int, workers: int | None, gpus: int | None = None) -> Role:
    """A role as the table writes it, its GPU count the launch's where the enrichment states another
    (`gpus`: estimator.deployment.launched_stage, as the estimator and simulator read the row)."""
    g = lambda k, d=1: _i(path, row, f"{prefix}{k}", line, d)  # noqa: E731
    tp = g("tp_size")
    if tp is None:
        raise fail(path, f"line {line}: missing {prefix}tp_size")
    try:
        par = ParallelConfig(tp=tp, pp=g("pp_size"), attn_dp=g("attention_dp_size"), moe_tp=g("moe_tp_size"),
                             moe_ep=g("moe_ep_size"))
    except InputError as exc:
        raise fail(path, f"line {line}: {exc}") from None
    return Role(parallel=launched_stage(par, gpus), workers=workers, batch_size=g("batch_size", None))


def source_fields(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _engine(row: dict, facts: RunFacts) -> EngineSettings:
    """Engine flags and speculative decoding the enrichment recovered (engine_* columns, engine_extra)."""
    def num(key: str, cast):
        text = (row.get(key) or "").strip()
        return cast(float(text)) if text else None

    return EngineSettings(max_batch_size=facts.max_batch, max_num_tokens=facts.max_num_tokens,
                          mem_fraction=facts.mem_fraction,
                          kv_dtype=(row.get("engine_kv_dtype") or "").strip() or None, extra=facts.to_extra(),
                          flags=(row.get("engine_flags") or "").strip())


def parse_row(path: Path, row: dict, line: int) -> MeasuredRun:
    src = source_fields(row["silicon_data_source"] or "")
    try:
        backend = parse_enum(Backend, row["backend"], "backend")
        mode = parse_enum(Mode, row["mode"], "mode")
    except InputError as exc:
        raise fail(path, f"line {line}: {exc}") from None
    try:    # `servecast calibrate enrich` columns, when the file has them
        facts = RunFacts.from_row(row)
        engine = _engine(row, facts)
    except ValueError as exc:
        raise fail(path, f"line {line}: enrichment column ({exc})") from None
    common = dict(model=row["model_path"], system=row["system"], backend=backend, version=row["backend_version"] or "",
                  precision=row.get("precision") or "", gemm_quant=row.get("gemm_quant_mode") or "",
                  moe_quant=row.get("moe_quant_mode") or "", engine=engine)
    if mode is Mode.AGG:
        dep = Deployment(mode=mode, agg=_role(path, row, "", line, 1), **common)
    else:
        dep = Deployment(mode=mode, prefill=_role(path, row, "prefill_", line,
                                                  _i(path, row, "prefill_num_workers", line, None), facts.prefill.gpus),
                         decode=_role(path, row, "decode_", line, _i(path, row, "decode_num_workers", line, None),
                                      facts.decode.gpus),
                         **common)
    conc = float(src["silicon_concurrency"]) if src.get("silicon_concurrency") else math.nan
    if math.isnan(conc) and mode is Mode.AGG and dep.agg.batch_size is not None:
        conc = float(dep.agg.batch_size * dep.agg.parallel.attn_dp)   # requests in flight per rank x ranks
    ttft, tpot = _f(path, row, "silicon_ttft_ms", line), _f(path, row, "silicon_tpot_ms", line)
    if math.isnan(ttft) or math.isnan(tpot):
        raise fail(path, f"line {line}: missing silicon_ttft_ms/silicon_tpot_ms")
    load = Load(isl=_f(path, row, "isl", line), osl=_f(path, row, "osl", line),
                concurrency=None if math.isnan(conc) else conc, num_requests=facts.num_prompts,
                num_warmups=facts.num_warmups)
    metrics = Metrics(ttft=Stat(mean=ttft), tpot=Stat(mean=tpot))
    return MeasuredRun(run_id=row["id"], deployment=dep, load=load, metrics=metrics, client=Client.SILICON_CSV,
                       source_file=str(path), measured_at=src.get("measured", ""))


def parse(path: Path) -> list[MeasuredRun]:
    path = Path(path)
    text = read_text(path)
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise fail(path, f"missing column(s) {', '.join(missing)} of the silicon CSV layout")
    runs = []
    for line, row in enumerate(reader, start=2):
        if None in row or any(row.get(c) is None for c in header):
            raise fail(path, f"line {line} does not have the header's {len(header)} fields (truncated file?)")
        runs.append(parse_row(path, row, line))
    if not runs:
        raise fail(path, "no rows")
    return runs
