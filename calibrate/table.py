"""The canonical measured-run table: one pyarrow schema, declared here and nowhere else.

One row per benchmark run. Deployment columns (model ... engine_extra), load columns, measured
metrics (`<metric>_ms_<stat>` for ttft/tpot/itl/e2el x mean/p50/p90/p99, whole-deployment
throughputs), and provenance (client, source_file). Role columns use the prefixes `agg_`,
`prefill_` and `decode_` (null where the mode has no such role). Readable by pandas/DuckDB directly.
"""
from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calibrate.runs import (
    Client,
    Deployment,
    EngineSettings,
    Load,
    MeasuredRun,
    Metrics,
    Mode,
    Role,
    Stat,
)
from estimator.parallel import ParallelConfig
from perfdb.errors import DataError
from perfdb.types import Backend

METRICS = ("ttft", "tpot", "itl", "e2el")
STATS = ("mean", "p50", "p90", "p99")
ROLES = ("agg", "prefill", "decode")
ROLE_INTS = ("tp", "pp", "attn_dp", "moe_tp", "moe_ep", "workers", "batch_size")
FORMAT_VERSION = "1"

_DEPLOYMENT = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("deployment_key", pa.string(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("system", pa.string(), nullable=False),
    pa.field("backend", pa.string(), nullable=False),
    pa.field("backend_version", pa.string(), nullable=False),
    pa.field("mode", pa.string(), nullable=False),
    pa.field("precision", pa.string(), nullable=False),
    pa.field("gemm_quant", pa.string(), nullable=False),
    pa.field("moe_quant", pa.string(), nullable=False),
    pa.field("num_gpus", pa.int64()),                 # null when a pool's worker count is unknown
]
_ROLES = [pa.field(f"{r}_{k}", pa.int64()) for r in ROLES for k in ROLE_INTS]
_ENGINE = [
    pa.field("engine_max_batch_size", pa.int64()),
    pa.field("engine_max_num_tokens", pa.int64()),
    pa.field("engine_mem_fraction", pa.float64()),
    pa.field("engine_kv_dtype", pa.string()),
    pa.field("engine_extra", pa.string(), nullable=False),
    pa.field("engine_flags", pa.string(), nullable=False),
]
_LOAD = [
    pa.field("isl", pa.float64(), nullable=False),
    pa.field("osl", pa.float64(), nullable=False),
    pa.field("isl_std", pa.float64(), nullable=False),
    pa.field("osl_std", pa.float64(), nullable=False),
    pa.field("concurrency", pa.float64()),
    pa.field("request_rate", pa.float64()),
    pa.field("measured_concurrency", pa.float64()),
    pa.field("num_requests", pa.int64()),
    pa.field("num_warmups", pa.int64()),
]
_METRICS = [pa.field(f"{m}_ms_{s}", pa.float64()) for m in METRICS for s in STATS] + [
    pa.field("request_throughput", pa.float64()),
    pa.field("output_throughput", pa.float64()),
    pa.field("total_token_throughput", pa.float64()),
]
_PROVENANCE = [
    pa.field("client", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("measured_at", pa.string(), nullable=False),
]
RUNS_SCHEMA = pa.schema(_DEPLOYMENT + _ROLES + _ENGINE + _LOAD + _METRICS + _PROVENANCE,
                        metadata={"servecast": "measured-runs", "format_version": FORMAT_VERSION})


def _nan_to_none(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _role_values(prefix: str, role: Role | None) -> dict[str, int | None]:
    if role is None:
        return {f"{prefix}_{k}": None for k in ROLE_INTS}
    p = role.parallel
    vals = (p.tp, p.pp, p.attn_dp, p.moe_tp, p.moe_ep, role.workers, role.batch_size)
    return {f"{prefix}_{k}": v for k, v in zip(ROLE_INTS, vals, strict=True)}


def run_to_row(run: MeasuredRun) -> dict:
    d, ld, m = run.deployment, run.load, run.metrics
    row: dict = {
        "run_id": run.run_id, "deployment_key": d.key(), "model": d.model, "system": d.system,
        "backend": d.backend.value, "backend_version": d.version, "mode": d.mode.value,
        "precision": d.precision, "gemm_quant": d.gemm_quant, "moe_quant": d.moe_quant, "num_gpus": d.num_gpus,
        "engine_max_batch_size": d.engine.max_batch_size, "engine_max_num_tokens": d.engine.max_num_tokens,
        "engine_mem_fraction": d.engine.mem_fraction, "engine_kv_dtype": d.engine.kv_dtype,
        "engine_extra": d.engine.extra, "engine_flags": d.engine.flags,
        "isl": float(ld.isl), "osl": float(ld.osl), "isl_std": float(ld.isl_std), "osl_std": float(ld.osl_std),
        "concurrency": ld.concurrency, "request_rate": ld.request_rate,
        "measured_concurrency": ld.measured_concurrency, "num_requests": ld.num_requests,
        "num_warmups": ld.num_warmups,
        "request_throughput": _nan_to_none(m.request_throughput),
        "output_throughput": _nan_to_none(m.output_throughput),
        "total_token_throughput": _nan_to_none(m.total_token_throughput),
        "client": run.client.value, "source_file": run.source_file, "measured_at": run.measured_at,
    }
    for prefix in ROLES:
        row.update(_role_values(prefix, getattr(d, prefix)))
    for name in METRICS:
        stat: Stat = getattr(m, name)
        for s in STATS:
            row[f"{name}_ms_{s}"] = _nan_to_none(getattr(stat, s))
    return row


def runs_to_table(runs: list[MeasuredRun]) -> pa.Table:
    rows = [run_to_row(r) for r in runs]
    return pa.Table.from_pylist(rows, schema=RUNS_SCHEMA)


def _role_from_row(row: dict, prefix: str) -> Role | None:
    if row.get(f"{prefix}_tp") is None:
        return None
    par = ParallelConfig(tp=row[f"{prefix}_tp"], pp=row[f"{prefix}_pp"], attn_dp=row[f"{prefix}_attn_dp"],
                         moe_tp=row[f"{prefix}_moe_tp"], moe_ep=row[f"{prefix}_moe_ep"])
    return Role(parallel=par, workers=row[f"{prefix}_workers"], batch_size=row[f"{prefix}_batch_size"])


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def row_to_run(row: dict) -> MeasuredRun:
    dep = Deployment(
        model=row["model"], system=row["system"], backend=Backend(row["backend"]), version=row["backend_version"],
        mode=Mode(row["mode"]), agg=_role_from_row(row, "agg"), prefill=_role_from_row(row, "prefill"),
        decode=_role_from_row(row, "decode"), precision=row["precision"], gemm_quant=row["gemm_quant"],
        moe_quant=row["moe_quant"],
        engine=EngineSettings(max_batch_size=row["engine_max_batch_size"],
                              max_num_tokens=row["engine_max_num_tokens"],
                              mem_fraction=row["engine_mem_fraction"], kv_dtype=row["engine_kv_dtype"],
                              extra=row["engine_extra"], flags=row["engine_flags"] or ""))
    load = Load(isl=row["isl"], osl=row["osl"], isl_std=row["isl_std"], osl_std=row["osl_std"],
                concurrency=row["concurrency"], request_rate=row["request_rate"],
                measured_concurrency=row["measured_concurrency"], num_requests=row["num_requests"],
                num_warmups=row["num_warmups"])
    stats = {name: Stat(**{s: _nan(row[f"{name}_ms_{s}"]) for s in STATS}) for name in METRICS}
    metrics = Metrics(**stats, request_throughput=_nan(row["request_throughput"]),
                      output_throughput=_nan(row["output_throughput"]),
                      total_token_throughput=_nan(row["total_token_throughput"]))
    return MeasuredRun(run_id=row["run_id"], deployment=dep, load=load, metrics=metrics,
                       client=Client(row["client"]), source_file=row["source_file"], measured_at=row["measured_at"])


def table_to_runs(table: pa.Table) -> list[MeasuredRun]:
    return [row_to_run(r) for r in conform(table).to_pylist()]


def conform(table: pa.Table, where: str = "table") -> pa.Table:
    """Cast to RUNS_SCHEMA (column order and types) or raise DataError naming the missing columns. A table
    written before engine flags were carried (2026-12-05) has no `engine_flags` column: its runs recorded
    none, so the column is filled empty; one written before warm-up counts were (2026-12-06) has no
    `num_warmups`: unknown (null), as for a client file that does not say."""
    if "engine_flags" not in table.column_names and "engine_extra" in table.column_names:
        table = table.append_column("engine_flags", pa.array([""] * table.num_rows, pa.string()))
    if "num_warmups" not in table.column_names and "num_requests" in table.column_names:
        table = table.append_column("num_warmups", pa.nulls(table.num_rows, pa.int64()))
    missing = [f.name for f in RUNS_SCHEMA if f.name not in table.column_names]
    if missing:
        raise DataError(f"{where} is not a measured-run table: missing column(s) {', '.join(missing[:8])}"
                        f"{' ...' if len(missing) > 8 else ''}; write one with `servecast calibrate ingest`")
    try:
        return table.select(RUNS_SCHEMA.names).cast(RUNS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{where}: columns do not match the measured-run schema ({exc})") from None


def write_runs(table: pa.Table, path: Path) -> Path:
    """Write the table atomically (temp file + rename): a reader sees the whole table or the old file."""
    import os

    table = conform(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_runs(path: Path) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such measured-run table; write one with `servecast calibrate ingest`")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    return conform(table, where=str(path))
