"""servecast.simulate(): a deployment replayed request by request under a benchmark load, or a sweep of loads
(what `servecast simulate` does, without the printing)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from estimator.deployment import Deployment
    from estimator.run_facts import RoleFlags
    from estimator.sim import SimResult
    from estimator.sim.calibrated import CalibratedPoint
    from perfdb.types import Dtype
    from search.artifacts.deployment import DeploymentSpec


@dataclass(frozen=True)
class Simulation:
    model: str
    system: str
    deployment: Deployment
    isl: int
    osl: int
    load_label: str                    # "concurrency", "request rate (req/s)" or "trace": what `points` are
    points: tuple[float, ...]          # the load of each result (0.0 for a trace)
    results: tuple[SimResult, ...]     # estimator.sim.SimResult per point: TTFT/TPOT/ITL stats, throughput, records
    calibrated: tuple[CalibratedPoint, ...] | None   # calibrated mean TTFT/TPOT with 80% intervals; None: uncalibrated
    plot: Path | None = None           # the sweep PNG written, if any

    @property
    def title(self) -> str:
        d = self.deployment
        return (f"{self.model} on {self.system} / {d.backend.value} {d.mode.value}, {d.num_gpus} GPUs, "
                f"ISL {self.isl} OSL {self.osl}")


def simulate(*, deployment: Deployment | None = None, model: str | None = None, system: str | None = None,
             plan: Path | str | None = None, version: str | None = None, isl: int | None = None,
             osl: int | None = None, concurrency: Sequence[int] = (), request_rate: Sequence[float] = (),
             arrival: str = "poisson", trace: Path | str | None = None, num_requests: int | None = None,
             warmup_requests: int = 0, range_ratio: float | None = None, seed: int = 0,
             kv_dtype: str | Dtype | None = None,
             gemm_quant: str | Dtype | None = None, moe_quant: str | Dtype | None = None,
             db: Path | str | None = None, calibration: Path | str | None = None, hf_hub: Path | None = None,
             records: Path | str | None = None, plot: Path | str | None = None,
             progress: Callable[[int, int], None] | None = None) -> Simulation:
    """Simulate `deployment` of `model` on `system` (or the deployment.yaml a plan wrote, `plan`, whose model,
    system, version, quantization, KV-cache dtype, ISL/OSL, length spread (`range_ratio`) and concurrency
    are the defaults) at each load:
    closed-loop `concurrency` clients, open-loop `request_rate` (req/s, `arrival` poisson or constant) or a
    JSONL `trace`.

    isl/osl default 1024 (or the plan's). num_requests per point default max(100, 10 x concurrency), 1000
    open loop. records: per-request records (.parquet or .jsonl; sweeps add -c<N>/-r<R> to the name).
    plot: a sweep PNG. calibration: a `fit(base="simulate")` directory, None (the newest stored) or "none".
    progress(done, total) after each point.
    """
    from estimator.engine import EngineConfig
    from estimator.sim import build_steps
    from estimator.sim import simulate as run_sim
    from estimator.sim.calibrated import BASE, calibrate_sweep
    from perfdb.lookup import PerfDB
    from perfdb.specs import load_system
    from servecast.api._estimate import _calibration

    w = _what(deployment, plan, model, system, version, gemm_quant, moe_quant, kv_dtype, isl, osl, range_ratio)
    deployment, model, system, version, isl, osl = w.deployment, w.model, w.system, w.version, w.isl, w.osl
    _check_outputs(records, plot)
    label, loads = _loads(isl, osl, concurrency, request_rate, arrival, trace, num_requests, warmup_requests,
                          w.range_ratio, w.concurrency)
    sysspec = load_system(system)
    cal = _calibration(calibration, db, sysspec.name, deployment.backend.value, BASE)   # before simulating
    view = PerfDB(db).view(sysspec.name, deployment.backend, version)
    kv = _kv(w.kv_dtype)
    spec = _model(model, w.gemm_quant, w.moe_quant, kv, hf_hub)
    steps = build_steps(spec, sysspec, deployment, EngineConfig(deployment.backend, version, kv_dtype=kv), view)
    results = []
    for i, (_, load) in enumerate(loads):
        results.append(run_sim(steps, deployment, load, seed=seed, records=records is not None,
                               engine_flags=w.engine_flags))
        if progress is not None:
            progress(i + 1, len(loads))
    points = tuple(x for x, _ in loads)
    cals = None
    if cal is not None:
        in_flight = [x if label == "concurrency" else None for x in points]
        cals = tuple(calibrate_sweep(results, in_flight, cal, deployment, sysspec.name, view.version, isl, osl, spec))
    out = Simulation(model, system, deployment, isl, osl, label, points, tuple(results), cals)
    return _write(out, records, plot)


@dataclass(frozen=True)
class _What:
    """What a simulation replays: the deployment and its workload, from the arguments or a plan's
    deployment.yaml (whose values fill the arguments not given)."""
    deployment: Deployment
    model: str
    system: str
    version: str | None
    gemm_quant: str | Dtype | None
    moe_quant: str | Dtype | None
    kv_dtype: str | Dtype | None
    isl: int
    osl: int
    range_ratio: float
    concurrency: int | None   # the plan's, the default load
    engine_flags: RoleFlags | None = None   # the plan's launch flags per role; None: the engines' defaults


def _what(deployment, plan, model, system, version, gemm_quant, moe_quant, kv_dtype, isl, osl,
          range_ratio) -> _What:
    from perfdb.errors import InputError

    if plan is not None and deployment is not None:
        raise InputError("give a deployment or a plan's deployment.yaml, not both")
    if plan is not None:
        deployment, spec = deployment_from_plan(Path(plan))
        w = _What(deployment, spec.model, spec.system, spec.version, gemm_quant or spec.gemm_quant or None,
                  moe_quant or spec.moe_quant or None,
                  kv_dtype or spec.engine.get("kv_cache_dtype") or None,   # the KV cache the plan priced
                  _given(isl, spec.isl), _given(osl, spec.osl),
                  spec.range_ratio if range_ratio is None else range_ratio, spec.concurrency, spec.role_flags())
    else:
        if not model or not system or deployment is None:
            raise InputError("--model and --system are required (or --plan deployment.yaml)")
        w = _What(deployment, model, system, version, gemm_quant, moe_quant, kv_dtype, _given(isl, 1024),
                  _given(osl, 1024), range_ratio or 0.0, None)
    if w.isl < 1 or w.osl < 1:
        raise InputError(f"--isl {w.isl} / --osl {w.osl}: both must be >= 1 token")
    return w


def deployment_from_plan(path: Path) -> tuple[Deployment, DeploymentSpec]:
    """(Deployment, DeploymentSpec) from a `plan(save_dir=...)` deployment.yaml (or its directory). The plan
    composes coprime xPyD groups, so the gcd of the worker counts is the number of groups."""
    import math

    from estimator.parallel import ParallelConfig
    from estimator.sim import Deployment, Pool
    from perfdb.errors import InputError
    from perfdb.specs import load_system
    from search.artifacts.deployment import load_deployment

    spec = load_deployment(path / "deployment.yaml" if path.is_dir() else path)
    pools = {}
    for w in spec.workers:
        par = ParallelConfig(tp=w.tp, pp=w.pp, attn_dp=w.attn_dp, moe_tp=w.moe_tp, moe_ep=w.moe_ep)
        pools[w.role.value] = Pool(par, w.count, w.max_batch, w.max_num_tokens)
    if "agg" in pools:
        return Deployment(spec.backend, agg=pools["agg"]), spec
    if "prefill" in pools and "decode" in pools:
        pre, dec = pools["prefill"], pools["decode"]
        return Deployment.disaggregated(spec.backend, pre, dec, load_system(spec.system).nvlink_domain_gpus,
                                        groups=math.gcd(pre.workers, dec.workers)), spec
    raise InputError(f"{path}: a deployment needs an agg worker or prefill + decode workers")


def _given(value: int | None, default: int) -> int:
    """The argument when given (0 included, so that it is rejected as too short rather than replaced), else the default."""
    return default if value is None else value


def _check_outputs(records, plot) -> None:
    """Before simulating: a bad output path fails at once."""
    from perfdb.errors import InputError
    from perfdb.userfiles import check_out_file, check_out_png

    if records is not None:
        check_out_file(records, "--records")
        if Path(records).suffix not in (".parquet", ".jsonl"):
            raise InputError(f"--records {records}: accepted suffixes are .parquet and .jsonl")
    if plot:
        check_out_png(plot, "--plot")


def _loads(isl: int, osl: int, concs: Sequence[int], rates: Sequence[float], arrival: str, trace, num_requests,
           warm: int, range_ratio: float, default_conc: int | None):
    """(label, [(load value, LoadSpec)]) for the sweep asked for."""
    from estimator.sim import Arrival, Lengths, LoadSpec
    from estimator.sim.load import read_trace
    from perfdb.errors import InputError
    from perfdb.types import parse_enum

    if num_requests is not None and num_requests < 1:   # 0 must not silently mean the default
        raise InputError(f"--num-requests {num_requests}: must be >= 1 (leave it out for the default)")
    if trace is not None:
        return "trace", [(0.0, LoadSpec.replay(read_trace(Path(trace)), warm))]
    isl_l, osl_l = Lengths.of(isl, range_ratio), Lengths.of(osl, range_ratio)
    if concs and rates:
        raise InputError("give --concurrency or --request-rate, not both")
    if rates:
        how = parse_enum(Arrival, arrival, "arrival")
        return "request rate (req/s)", [(r, LoadSpec.open(r, isl_l, osl_l, num_requests or 1000, how, warm))
                                        for r in rates]
    concs = list(concs) or ([default_conc] if default_conc else [])
    if not concs:
        raise InputError("give --concurrency N[,N...], --request-rate R[,R...] or --trace FILE")
    return "concurrency", [(c, LoadSpec.closed(c, isl_l, osl_l, num_requests or max(100, 10 * c), warm))
                           for c in concs]


def _kv(kv):
    """The --kv-dtype asked for (None: the engine's default for the model, estimator.engine.kv_cache_dtype)."""
    from servecast.api._estimate import _dtype

    return _dtype(kv, "kv dtype")


def _model(name: str, gemm, moe, kv, hf_hub: Path | None):
    from estimator.models import load_model
    from servecast.api._estimate import _dtype

    gq, mq = _dtype(gemm, "gemm quant"), _dtype(moe, "moe quant")
    return load_model(name, gemm_quant=gq, moe_quant=mq or gq, kv_dtype=kv, hf_hub=hf_hub)


def _records_path(base: Path, label: str, x: float, many: bool) -> Path:
    if not many:
        return base
    tag = ("c" if label == "concurrency" else "r") + f"{x:g}"
    return base.with_name(f"{base.stem}-{tag}{base.suffix}")


def _write(sim: Simulation, records, plot) -> Simulation:
    """The per-request records and the sweep PNG (not for a trace)."""
    from dataclasses import replace

    if records is not None:
        for x, r in zip(sim.points, sim.results, strict=True):
            r.records.write(_records_path(Path(records), sim.load_label, x, len(sim.points) > 1))
    if plot and sim.load_label != "trace":
        from estimator.sim.plot import plot_sweep

        return replace(sim, plot=plot_sweep(list(sim.results), list(sim.points), sim.load_label, sim.title, Path(plot)))
    return sim
