"""`servecast collect`: plan and run kernel measurements into a performance database.

Thin layer: parse flags, build cases (asking the estimator for model-driven shapes), call the
collectors library, render with rich. torch and the estimator are imported inside the commands.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Measure GPU kernels into a performance database (plan first, then run).\n\n"
                  "Example: servecast collect plan --ops gemm --budget-minutes 30 && "
                  "servecast collect run --ops gemm --budget-minutes 30 --db ./perfdb", no_args_is_help=True)

OPS_HELP = "Comma-separated op families: gemm, attention_prefill, attention_decode, mla_prefill, mla_decode, moe, elementwise, comm, or 'all'."
MODEL_HELP = "Add the exact shapes of a catalog model (HF id, directory or config.json), per --tp."


def _ops(text: str):
    from perfdb.types import OpKind, parse_enum

    if text == "all":
        return [k for k in OpKind if k != OpKind.COMM]
    from servecast import lists

    return [parse_enum(OpKind, t, "op family") for t in lists.items(text)]


def _require_torch() -> None:
    """collect times kernels with torch: without it, one line saying how to install it."""
    from perfdb.errors import InputError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError("collect measures kernels with torch, which is not installed in this Python; install "
                         "it with `pip install 'servecast[torch]'` (CPU or your CUDA build), or "
                         "`pip install 'servecast[gpu]'` on a GPU node") from None


def _device(text: Optional[str]) -> str:
    from perfdb.errors import InputError

    if text is None:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if text not in ("cuda", "cpu"):
        raise InputError(f"unknown device {text!r}; accepted: cuda, cpu")
    return text


def _dist_from_env():
    """torchrun's environment (the CLI may read it; the library takes it as a DistSpec)."""
    from collectors.distributed import DistSpec

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        return None
    return DistSpec(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_WORLD_SIZE", world)),
                    os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500")),
                    agent_store=os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true")


def _model_cases(model: str, tps: str, system, device: str):
    """Per-GPU op cases of a model's prefill and decode steps at each TP (estimator.collect_cases)."""
    from estimator.collect_cases import model_cases
    from estimator.models.catalog import load_model
    from perfdb.errors import InputError
    from servecast import lists
    from servecast.hfcache import hub_cache

    found = model_cases(load_model(model, hf_hub=hub_cache()), system, lists.ints(tps, "tp", "1,2,8"))
    if not found.cases:
        raise InputError(f"no feasible parallel layout of {model} at --tp {tps}: " + "; ".join(found.skipped))
    return list(found.cases)


def _setup(ops, device, system, backend, grid, budget_ms, model, tp, budget_minutes, base=True, ray=None,
           shard_rows=8):
    from collectors.plan import make_plan
    from collectors.registry import GridSize
    from collectors.session import open_session
    from collectors.timer import TimerConfig
    from perfdb.errors import InputError
    from perfdb.types import Backend, parse_enum

    _require_torch()
    dev = _device(device)
    probe_local = not (ray and dev == "cuda" and not _local_cuda())
    if dev == "cuda" and probe_local and not _local_cuda():
        import torch

        raise InputError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU here; use --device cpu, "
                         "or --ray ADDRESS to run on a cluster's GPUs")
    if budget_minutes is not None and not budget_minutes > 0:
        raise InputError(f"--budget-minutes {budget_minutes:g}: must be > 0 (leave it out for no bound)")
    size = parse_enum(GridSize, grid or ("full" if dev == "cuda" else "tiny"), "grid")
    timer = TimerConfig.for_device(dev, budget_s=budget_ms / 1e3)
    dist = _dist_from_env()
    session = open_session(parse_enum(Backend, backend, "backend"), dev, timer, system,
                           rank=dist.rank if dist else 0, world_size=dist.world_size if dist else 1,
                           transport=_transport(dist, dev), probe_local=probe_local,
                           device_index=dist.rank % dist.local_world_size if dist and dev == "cuda" else 0)
    kinds = _ops(ops)
    extra = _model_cases(model, tp, session.spec, dev) if model else []
    budget_s = budget_minutes * 60 if budget_minutes else None
    plan = make_plan(kinds, size, session.ctx, session.spec, timer, extra, budget_s, base=base)
    return session, plan, kinds, dist


def _local_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _transport(dist, device: str):
    from perfdb.types import Transport

    if device == "cpu":
        return Transport.LOOPBACK
    return Transport.NVLINK if dist is None or dist.local_world_size == dist.world_size else Transport.NETWORK


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
    session, plan, _, _ = _setup(ops, device, system, backend, grid, timer_budget_ms, model, tp, budget_minutes,
                                 base=model is None)
    _print_plan(session, plan, budget_minutes)


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

    session, plan, kinds, dist = _setup(ops, device, system, backend, grid, timer_budget_ms, model, tp,
                                        budget_minutes, base=model is None, ray=ray)
    _check_run_flags(kinds, dist, ray, adaptive, sampler, prior_db, prior_system or prior_backend)
    if session.ctx.rank == 0:
        from perfdb.storage import init_db

        init_db(db)   # an unwritable --db fails here, before any case is measured
    console = Console(stderr=True)
    if adaptive:
        prior = _prior_sources(prior_db, prior_system, prior_backend, session) if prior_db is not None else None
        summary = _run_adaptive(plan, db, session, budget_minutes, max_fraction, sampler, prior)
    elif ray:
        summary = _run_ray(ray, plan, db, session, budget_minutes, retry_failed)
    elif dist:
        summary = _run_dist(dist, plan, db, session, budget_minutes, retry_failed)
    else:
        summary = _run_local(plan, db, session, budget_minutes, retry_failed, quiet, console, shard_rows)
    if session.ctx.rank == 0:
        _print_summary(console, summary, db)


def _check_run_flags(kinds, dist, ray, adaptive: bool, sampler: str, prior_db, prior_named) -> None:
    """The flag combinations `collect run` refuses, each a one-line error."""
    from perfdb.errors import InputError
    from perfdb.types import OpKind

    if (OpKind.COMM in kinds) != (dist is not None) or (dist and kinds != [OpKind.COMM]):
        raise InputError("communication cases run alone under torchrun (--ops comm with WORLD_SIZE >= 2); "
                         f"got ops {','.join(k.value for k in kinds)} with world size {dist.world_size if dist else 1}")
    if adaptive and (ray or dist):
        raise InputError("--adaptive runs on one device; drop --ray / torchrun, or drop --adaptive")
    if sampler not in ("auto", "points", "levels"):
        raise InputError(f"unknown --sampler {sampler!r}; accepted: auto, points, levels")
    if prior_named and prior_db is None:
        raise InputError("--prior-system / --prior-backend name a table in --prior-db; add --prior-db DIR (or 'bundled')")
    if prior_db is not None and not adaptive:
        raise InputError("--prior-db steers the adaptive sampler; add --adaptive, or drop --prior-db")


def _run_local(plan, db, session, budget_minutes, retry_failed, quiet, console, shard_rows):
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from collectors import runner

    budget_s = budget_minutes * 60 if budget_minutes else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=console, disable=quiet) as bar:
        task = bar.add_task("measuring", total=None, last="")

        def on_progress(p):
            bar.update(task, total=p.total, completed=p.done, last=escape(f"{p.failed} failed | {p.last}"))

        return runner.run(list(plan.cases), db, session, budget_s, retry_failed, shard_rows, on_progress=on_progress)


def _prior_sources(prior_db, prior_system, prior_backend, session):
    """--prior-system "h100_sxm,h200_sxm/vllm": system[/backend] items; backend default --prior-backend,
    else the run's."""
    from perfdb.lookup import PerfDB
    from perfdb.prior import PriorSource
    from perfdb.types import Backend, parse_enum
    from servecast import lists

    root = None if str(prior_db) == "bundled" else prior_db
    out = []
    for item in lists.items(prior_system or session.prov.system):
        system, _, backend = item.strip().partition("/")
        backend = backend or prior_backend
        source = PriorSource(root, system, parse_enum(Backend, backend, "prior backend") if backend
                             else session.prov.backend)
        PerfDB(root).view(source.system, source.backend)   # an unknown system or a non-database fails here
        out.append(source)
    return tuple(out)


def _run_adaptive(plan, db, session, budget_minutes, max_fraction, sampler, prior=None):
    from collectors.adaptive import AdaptiveConfig
    from collectors.adaptive_points import PointConfig
    from collectors.adaptive_run import AutoConfig, run_adaptive

    cfg = {"auto": AutoConfig, "points": PointConfig, "levels": AdaptiveConfig}[sampler](max_fraction=max_fraction)
    return run_adaptive(list(plan.cases), db, session, cfg, budget_minutes * 60 if budget_minutes else None,
                        prior=prior)


def _run_dist(dist, plan, db, session, budget_minutes, retry_failed):
    from collectors import distributed, runner

    distributed.init(dist, session.ctx.device)
    try:
        return runner.run(list(plan.cases), db, session, budget_minutes * 60 if budget_minutes else None, retry_failed)
    finally:
        distributed.shutdown()


def _run_ray(address, plan, db, session, budget_minutes, retry_failed):
    from collectors import fleet

    return fleet.run_on_ray(address, list(plan.cases), db, session,
                            budget_s=budget_minutes * 60 if budget_minutes else None, retry_failed=retry_failed)


def _print_summary(console, s, db) -> None:
    unneeded = f", not needed by the adaptive sampler {s.unneeded}" if s.unneeded else ""
    console.print(f"measured {s.measured}, failed {s.failed}, already in db {s.skipped}{unneeded}, "
                  f"left for a later run {s.remaining}; {len(s.shards)} shard(s) in {db}")
    if s.failures_file:
        console.print(f"failures (with reasons): {s.failures_file}")
