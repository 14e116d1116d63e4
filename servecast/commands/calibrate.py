"""`servecast calibrate`: ingest benchmark results, fit corrections, validate them, show an artifact."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Ingest real benchmark runs, fit corrections to the estimator, validate them with "
                       "cross-validated error bars.", no_args_is_help=True)


@app.command("ingest")
def ingest_cmd(
    results: Annotated[list[Path], typer.Argument(help="result files or directories (aiperf, genai-perf, vllm bench serve, "
                                                   "SGLang bench_serving, InferenceX rows, silicon CSV)")],
    out: Annotated[Path, typer.Option("--out", help="measured-run table to write (Parquet)")],
    deployment: Annotated[Path, typer.Option("--deployment", help="deployment spec (YAML/JSON, e.g. from "
                                                                "`servecast plan --save-dir`)")] = None,
    model: Annotated[str, typer.Option(help="deployed model (overrides the spec)")] = None,
    system: Annotated[str, typer.Option(help="system id, e.g. h200_sxm")] = None,
    backend: Annotated[str, typer.Option(help="trtllm | sglang | vllm")] = None,
    version: Annotated[str, typer.Option(help="backend version")] = None,
    mode: Annotated[str, typer.Option(help="agg | disagg")] = None,
    agg: Annotated[str, typer.Option(help="agg parallelism, e.g. 'tp=2,ep=1,workers=1'")] = None,
    prefill: Annotated[str, typer.Option(help="disagg prefill pool, e.g. 'tp=4,ep=4,workers=2'")] = None,
    decode: Annotated[str, typer.Option(help="disagg decode pool, e.g. 'tp=8,ep=8,workers=1'")] = None,
    precision: Annotated[str, typer.Option(help="headline precision, e.g. fp8")] = None,
    fmt: Annotated[str, typer.Option("--format", help="force a parser: aiperf-json, aiperf-csv, aiperf-jsonl, "
                                                   "genai-perf-json, vllm, sglang, inferencex, silicon-csv")] = None,
    concurrency: Annotated[float, typer.Option(help="configured concurrency, for files that do not record it (aiperf CSV/JSONL)")] = None,
    request_rate: Annotated[float, typer.Option(help="configured request rate (req/s), for files that do not record it")] = None,
    append: Annotated[bool, typer.Option(help="add to an existing --out table instead of replacing it")] = False,
) -> None:
    """Read benchmark-client result files into the canonical measured-run table (all files or nothing).

    Example: servecast calibrate ingest artifacts/ --deployment plan/deployment.yaml --out runs.parquet

    Example: servecast calibrate ingest vllm.json --model Qwen/Qwen3-32B --system h200_sxm --backend vllm --mode agg --agg tp=2 --out runs.parquet
    """
    from rich.console import Console

    from calibrate.deployment import DeploymentFlags, resolve
    from calibrate.ingest import LoadOverride, ingest
    from calibrate.parsers import Format
    from perfdb.types import parse_enum

    flags = DeploymentFlags(model=model, system=system, backend=backend, version=version, mode=mode, agg=agg,
                            prefill=prefill, decode=decode, precision=precision)
    dep = resolve(deployment, flags)
    table = ingest(results, out, dep, parse_enum(Format, fmt, "format") if fmt else None,
                   LoadOverride(concurrency=concurrency, request_rate=request_rate), append=append)
    clients = sorted(set(table.column("client").to_pylist()))
    deployments = len(set(table.column("deployment_key").to_pylist()))
    Console().print(f"{table.num_rows} runs ({deployments} deployments; {', '.join(clients)}) -> {out}")
