"""servecast.collect(): measure kernels into a performance database; servecast.collect_plan(): what a run would
measure and how long it should take (what `servecast collect run` / `collect plan` do, without the printing).

Cases come from the collectors' grids plus, for a model, the estimator's per-GPU shapes of its prefill and
decode steps (the collectors never import the estimator: this layer hands them over as cases).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collectors.distributed import DistSpec
    from collectors.plan import CollectPlan
    from collectors.runner import Progress, RunSummary
    from collectors.session import Session
    from perfdb.prior import PriorSource
    from perfdb.types import OpKind


@dataclass(frozen=True)
class CollectionPlan:
    session: Session       # the device, system, backend adapter and provenance the cases were planned for
    plan: CollectPlan      # the cases, per op family counts and estimated seconds, cases beyond the budget


def collect_plan(*, ops: Sequence[str | OpKind] | None = None, device: str | None = None, system: str | None = None,
                 backend: str = "torch", grid: str | None = None, model: str | None = None, tp: Sequence[int] = (1,),
                 budget_minutes: float | None = None, timer_budget_ms: float = 250.0, hf_hub: Path | None = None,
                 dist: DistSpec | None = None, ray: str | None = None) -> CollectionPlan:
    """The cases a collection would measure. ops: op families (None: every one but comm). device: "cuda" or
    "cpu" (None: cuda when available). grid: "tiny", "small" or "full" (default full on cuda, tiny on cpu).
    model: add the exact shapes of a model at each `tp` (then the base grids only when no model is given)."""
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
    timer = TimerConfig.for_device(dev, budget_s=timer_budget_ms / 1e3)
    session = open_session(parse_enum(Backend, backend, "backend"), dev, timer, system,
                           rank=dist.rank if dist else 0, world_size=dist.world_size if dist else 1,
                           transport=_transport(dist, dev), probe_local=probe_local,
                           device_index=dist.rank % dist.local_world_size if dist and dev == "cuda" else 0)
    kinds = _kinds(ops)
    extra = _model_cases(model, tp, session.spec, hf_hub) if model else []
    budget_s = budget_minutes * 60 if budget_minutes else None
    return CollectionPlan(session, make_plan(kinds, size, session.ctx, session.spec, timer, extra, budget_s,
                                             base=model is None))


def collect(db: Path | str, *, ops: Sequence[str | OpKind] | None = None, device: str | None = None,
            system: str | None = None, backend: str = "torch", grid: str | None = None, model: str | None = None,
            tp: Sequence[int] = (1,), budget_minutes: float | None = None, timer_budget_ms: float = 250.0,
            retry_failed: bool = False, ray: str | None = None, shard_rows: int = 8, adaptive: bool = False,
            max_fraction: float = 0.10, sampler: str = "auto", prior_db: Path | str | None = None,
            prior_systems: Sequence[str] = (), prior_backend: str | None = None, dist: DistSpec | None = None,
            hf_hub: Path | None = None, progress: Callable[[Progress], None] | None = None) -> RunSummary:
    """Measure every planned case (collect_plan's arguments) not yet in the database `db`; resumable, and
    collectors started into one `db` share the cases. ray: a Ray address (one task per GPU); dist: this
    process's torchrun rank (communication cases). adaptive: a coarse grid, then refine where interpolation
    is worst, up to `max_fraction` of each group's cases, `sampler` "auto", "points" or "levels", steered by
    `prior_db` tables (`prior_systems` items "system" or "system/backend"; "bundled": the bundled database).
    progress(collectors.runner.Progress) after each case (plain runs)."""
    db = Path(db)
    planned = collect_plan(ops=ops, device=device, system=system, backend=backend, grid=grid, model=model, tp=tp,
                           budget_minutes=budget_minutes, timer_budget_ms=timer_budget_ms, hf_hub=hf_hub, dist=dist,
                           ray=ray)
    session, cases = planned.session, list(planned.plan.cases)
    kinds = _kinds(ops)
    _check_run(kinds, dist, ray, adaptive, sampler, prior_db, bool(prior_systems) or bool(prior_backend))
    if session.ctx.rank == 0:
        from perfdb.storage import init_db

        init_db(db)   # an unwritable db fails here, before any case is measured
    budget_s = budget_minutes * 60 if budget_minutes else None
    if adaptive:
        prior = _priors(prior_db, prior_systems, prior_backend, session) if prior_db is not None else None
        return _adaptive(cases, db, session, budget_s, max_fraction, sampler, prior)
    if ray:
        from collectors import fleet

        return fleet.run_on_ray(ray, cases, db, session, budget_s=budget_s, retry_failed=retry_failed)
    from collectors import runner

    if dist:   # communication cases under torchrun (_check_run)
        from collectors import distributed

        distributed.init(dist, session.ctx.device)
        try:
            return runner.run(cases, db, session, budget_s, retry_failed)
        finally:
            distributed.shutdown()
    return runner.run(cases, db, session, budget_s, retry_failed, shard_rows, on_progress=progress)


def _kinds(ops: Sequence[str | OpKind] | None) -> list[OpKind]:
    from perfdb.types import OpKind, parse_enum

    if ops is None:
        return [k for k in OpKind if k != OpKind.COMM]
    return [parse_enum(OpKind, t, "op family") for t in ops]


def _require_torch() -> None:
    """collect times kernels with torch: without it, one line saying how to install it."""
    from perfdb.errors import InputError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError("collect measures kernels with torch, which is not installed in this Python; install "
                         "it with `pip install 'servecast[torch]'` (CPU or your CUDA build), or "
                         "`pip install 'servecast[gpu]'` on a GPU node") from None


def _device(text: str | None) -> str:
    from perfdb.errors import InputError

    if text is None:
        return "cuda" if _local_cuda() else "cpu"
    if text not in ("cuda", "cpu"):
        raise InputError(f"unknown device {text!r}; accepted: cuda, cpu")
    return text


def _local_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _transport(dist, device: str):
    from perfdb.types import Transport

    if device == "cpu":
        return Transport.LOOPBACK
    return Transport.NVLINK if dist is None or dist.local_world_size == dist.world_size else Transport.NETWORK


def _model_cases(model: str, tps: Sequence[int], system, hf_hub: Path | None):
    """Per-GPU op cases of a model's prefill and decode steps at each TP (estimator.collect_cases)."""
    from estimator.collect_cases import model_cases
    from estimator.models.catalog import load_model
    from perfdb.errors import InputError

    found = model_cases(load_model(model, hf_hub=hf_hub), system, list(tps))
    if not found.cases:
        raise InputError(f"no feasible parallel layout of {model} at --tp {','.join(map(str, tps))}: "
                         + "; ".join(found.skipped))
    return list(found.cases)


def _check_run(kinds, dist, ray, adaptive: bool, sampler: str, prior_db, prior_named: bool) -> None:
    """The argument combinations a run refuses, each a one-line error."""
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


def _priors(prior_db, items: Sequence[str], prior_backend: str | None, session) -> tuple[PriorSource, ...]:
    """system[/backend] items (default: the run's system); backend default `prior_backend`, else the run's."""
    from perfdb.lookup import PerfDB
    from perfdb.prior import PriorSource
    from perfdb.types import Backend, parse_enum

    root = None if str(prior_db) == "bundled" else Path(prior_db)
    out = []
    for item in items or [session.prov.system]:
        system, _, backend = item.strip().partition("/")
        backend = backend or prior_backend
        source = PriorSource(root, system, parse_enum(Backend, backend, "prior backend") if backend
                             else session.prov.backend)
        PerfDB(root).view(source.system, source.backend)   # an unknown system or a non-database fails here
        out.append(source)
    return tuple(out)


def _adaptive(cases, db: Path, session, budget_s, max_fraction: float, sampler: str, prior):
    from collectors.adaptive import AdaptiveConfig
    from collectors.adaptive_points import PointConfig
    from collectors.adaptive_run import AutoConfig, run_adaptive

    cfg = {"auto": AutoConfig, "points": PointConfig, "levels": AdaptiveConfig}[sampler](max_fraction=max_fraction)
    return run_adaptive(cases, db, session, cfg, budget_s, prior=prior)
