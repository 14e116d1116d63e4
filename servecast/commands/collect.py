"""`servecast collect`: plan and run kernel measurements into a performance database.

Thin: flags (comma lists through servecast.lists, torchrun's environment read here) -> servecast.api.collect
/ collect_plan (session, cases, the run modes) -> rendering with rich.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Measure GPU kernels into a performance database (plan first, then run).\n\n"
                  "Example: servecast collect plan --ops gemm --budget-minutes 30 && "
                  "servecast collect run --ops gemm --budget-minutes 30 --db ./perfdb", no_args_is_help=True)

OPS_HELP = "Comma-separated op families: gemm, attention_prefill, attention_decode, mla_prefill, mla_decode, moe, elementwise, comm, or 'all'."
MODEL_HELP = "Add the exact shapes of a catalog model (HF id, directory or config.json), per --tp."


def _ops(text: str) -> list[str] | None:
    """--ops: "all" (every family but comm) or a comma list."""
    from servecast import lists

    return None if text == "all" else lists.items(text)


def _tp(text: str, model: str | None) -> tuple[int, ...]:
    """--tp, read only with --model (which it applies to)."""
    from servecast import lists

    return tuple(lists.ints(text, "tp", "1,2,8")) if model else (1,)


def _dist_from_env():
    """torchrun's environment (the CLI may read it; the library takes it as a DistSpec)."""
    from collectors.distributed import DistSpec

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        return None
    return DistSpec(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_WORLD_SIZE", world)),
                    os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500")),
                    agent_store=os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true")


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _print_plan(session, plan, budget_minutes) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("op family", "cases", "est. duration", title=f"collect plan: {session.prov.system} / "
                  f"{session.prov.backend.value} {session.prov.backend_version} on {session.info.gpu_name}")
    for fam in plan.families:
        table.add_row(fam.kind.value, str(fam.cases), _duration(fam.est_seconds))
    table.add_row("total", str(len(plan.cases)), _duration(plan.est_seconds), style="bold")
    console = Console()
    console.print(table)
    if plan.dropped_by_budget:
        console.print(f"{plan.dropped_by_budget} more cases exceed --budget-minutes {budget_minutes:g}; "
                      "re-run the same command to continue with them.")


DB_OPT = typer.Option(..., help="Database directory (created if missing).")
DEVICE_OPT = typer.Option(None, help="cuda or cpu (default: cuda when available).")
GRID_OPT = typer.Option(None, help="Base grid: tiny (CPU tests), small (quick GPU check), full (default on GPU).")
SYSTEM_OPT = typer.Option(None, help="System id (default: detected from the GPU name; cpu_host on CPU).")
BACKEND_OPT = typer.Option("torch", help="torch, vllm, sglang or trtllm (engines must be installed).")
TP_OPT = typer.Option("1", help="Tensor-parallel sizes for --model, e.g. 1,2,4,8.")
TIMER_OPT = typer.Option(250.0, help="Timed repetitions per case, in ms of wall time.")


@app.command("plan")
def plan_cmd(
    ops: str = typer.Option("all", help=OPS_HELP),
    device: Optional[str] = DEVICE_OPT,
    system: Optional[str] = SYSTEM_OPT,
    backend: str = BACKEND_OPT,
    grid: Optional[str] = GRID_OPT,
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    tp: str = TP_OPT,
    budget_minutes: Optional[float] = typer.Option(None, help="Bound the run to this many minutes (coarse cases first)."),
    timer_budget_ms: float = TIMER_OPT,
) -> None:
    """Show how many cases a run would measure per op family and how long it should take.

    Example: servecast collect plan --model Qwen/Qwen3-32B --tp 1,2,4,8 --ops gemm,attention_prefill,attention_decode
    """
    from servecast.api import collect_plan
    from servecast.hfcache import hub_cache

    planned = collect_plan(ops=_ops(ops), device=device, system=system, backend=backend, grid=grid, model=model,
                           tp=_tp(tp, model), budget_minutes=budget_minutes, timer_budget_ms=timer_budget_ms,
                           hf_hub=hub_cache(), dist=_dist_from_env())
    _print_plan(planned.session, planned.plan, budget_minutes)


@app.command("run")
def run_cmd(
    db: Path = DB_OPT,
    ops: str = typer.Option("all", help=OPS_HELP),
    device: Optional[str] = DEVICE_OPT,
    system: Optional[str] = SYSTEM_OPT,
    backend: str = BACKEND_OPT,
    grid: Optional[str] = GRID_OPT,
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    tp: str = TP_OPT,
    budget_minutes: Optional[float] = typer.Option(None, help="Stop starting new cases after this many minutes."),
    timer_budget_ms: float = TIMER_OPT,
    retry_failed: bool = typer.Option(False, help="Measure again the cases recorded as failed."),
    ray: Optional[str] = typer.Option(None, help="Ray cluster address ('auto', 'ray://host:10001', 'local'): one task per GPU."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    shard_rows: int = typer.Option(8, help="Cases per shard: a killed run re-measures at most this many."),
    adaptive: bool = typer.Option(False, help="Measure a coarse grid, then refine where interpolation is worst."),
    max_fraction: float = typer.Option(0.10, help="--adaptive: stop each group after this fraction of its cases."),
    sampler: str = typer.Option("auto", help="--adaptive: 'points' (single shapes, served by the completion "
                                "interpolator), 'levels' (whole grid slabs) or 'auto' (per op family, "
                                "whichever measured better)."),
    prior_db: Optional[Path] = typer.Option(None, help="--adaptive: a database holding a related table (another GPU "
                                            "or engine, e.g. an AIC import); its shape steers the sampler and serves "
                                            "the sparse tables. 'bundled' for the bundled database."),
    prior_system: Optional[str] = typer.Option(None, help="--prior-db: the prior's system (default: the run's); "
                                               "several priors as system or system/backend items, e.g. "
                                               "h100_sxm/trtllm,h200_sxm/vllm."),
    prior_backend: Optional[str] = typer.Option(None, help="--prior-db: the prior's backend (default: the run's)."),
) -> None:
    """Measure every planned case that is not yet in the database; safe to interrupt and re-run.

    Example: servecast collect run --backend torch --device cpu --ops gemm --db ./mydb --budget-minutes 1
    Example (GPU node): servecast collect run --db ./perfdb --ops gemm,attention_decode --budget-minutes 60
    Example (adaptive): servecast collect run --db ./perfdb --ops gemm --adaptive --max-fraction 0.1
    Example (adaptive, single points): servecast collect run --db ./perfdb --ops attention_decode --adaptive --sampler points
    Example (adaptive, with priors): servecast collect run --db ./perfdb --ops gemm --adaptive --max-fraction 0.1 --prior-db ./aicdb --prior-system h100_sxm/trtllm,h200_sxm/vllm,h200_sxm/sglang
    Example (comm, 8 GPUs): torchrun --nproc-per-node 8 -m servecast.cli collect run --ops comm --db ./perfdb
    """
    from rich.console import Console

    from servecast import lists
    from servecast.api import collect
    from servecast.hfcache import hub_cache

    dist = _dist_from_env()
    console = Console(stderr=True)
    with _bar(console, quiet) as progress:
        summary = collect(db, ops=_ops(ops), device=device, system=system, backend=backend, grid=grid, model=model,
                          tp=_tp(tp, model), budget_minutes=budget_minutes, timer_budget_ms=timer_budget_ms,
                          retry_failed=retry_failed, ray=ray, shard_rows=shard_rows, adaptive=adaptive,
                          max_fraction=max_fraction, sampler=sampler, prior_db=prior_db,
                          prior_systems=lists.items(prior_system), prior_backend=prior_backend, dist=dist,
                          hf_hub=hub_cache(), progress=progress)
    if dist is None or dist.rank == 0:
        _print_summary(console, summary, db)


@contextmanager
def _bar(console, off: bool):
    """The progress bar of a plain run on stderr, started by the first case measured (so that an error while
    planning prints only its line); none with --quiet."""
    if off:
        yield None
        return
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"))
    bar = Progress(*columns, console=console)
    task = []

    def update(p) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task("measuring", total=None, last=""))
        bar.update(task[0], total=p.total, completed=p.done, last=escape(f"{p.failed} failed | {p.last}"))

    try:
        yield update
    finally:
        if task:
            bar.stop()


def _print_summary(console, s, db) -> None:
    unneeded = f", not needed by the adaptive sampler {s.unneeded}" if s.unneeded else ""
    console.print(f"measured {s.measured}, failed {s.failed}, already in db {s.skipped}{unneeded}, "
                  f"left for a later run {s.remaining}; {len(s.shards)} shard(s) in {db}")
    if s.failures_file:
        console.print(f"failures (with reasons): {s.failures_file}")
