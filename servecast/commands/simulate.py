"""`servecast simulate`: discrete-event simulation of one deployment under a benchmark load (or a sweep)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

EXAMPLE = ("Example: servecast simulate --model Qwen/Qwen3-32B-FP8 --system h200_sxm --backend vllm --tp 2 "
           "--replicas 4 --isl 4000 --osl 500 --concurrency 256 --num-requests 10000  |  Sweep: "
           "servecast simulate --model Qwen/Qwen3-32B --system h200_sxm --backend sglang --tp 2 --isl 4000 "
           "--osl 500 --concurrency 1,4,16,64  |  Disagg: servecast simulate --model deepseek-ai/DeepSeek-R1 "
           "--system b200_sxm --backend trtllm --mode disagg --prefill-tp 4 --prefill-moe-ep 4 --prefill-workers 2 "
           "--decode-tp 8 --decode-moe-ep 8 --request-rate 2,4,8  |  From a plan: servecast simulate --plan "
           "plans/agg-1/deployment.yaml --concurrency 16,64  |  Calibrated: add --calibration cal/<id> (fitted with "
           "`servecast calibrate fit RUNS --base simulate`)")


def _parallel(a: dict, prefix: str = ""):
    from estimator.parallel import ParallelConfig

    g = lambda k: a[prefix + k]  # noqa: E731
    return ParallelConfig(tp=g("tp"), pp=g("pp"), attn_dp=g("dp"), moe_tp=g("moe_tp") or max(1, g("tp") * g("dp") // max(g("moe_ep"), 1)),
                          moe_ep=g("moe_ep"))


def _deployment_from_flags(a: dict, domain_gpus: int):
    from estimator.sim import Deployment, Pool, RoutePolicy
    from perfdb.errors import InputError
    from perfdb.types import Backend, Transport, parse_enum

    backend = parse_enum(Backend, a["backend"], "backend")
    router = parse_enum(RoutePolicy, a["router"], "router")
    if a["mode"] == "agg":
        pool = Pool(_parallel(a), a["replicas"], a["max_batch"], a["max_num_tokens"])
        return Deployment(backend, agg=pool, router=router)
    if a["mode"] != "disagg":
        raise InputError(f"unknown --mode {a['mode']!r}; accepted: agg, disagg")
    pre = Pool(_parallel(a, "prefill_"), a["prefill_workers"], None, a["prefill_max_num_tokens"])
    dec = Pool(_parallel(a, "decode_"), a["decode_workers"], a["max_batch"], None)
    forced = {"kv_path": Transport.NVLINK} if a["same_node"] else {}
    return Deployment.disaggregated(backend, pre, dec, domain_gpus, router=router, **forced)


def _deployment_from_plan(path: Path, domain_gpus) -> tuple:
    """(Deployment, DeploymentSpec) from a `servecast plan --save-dir` deployment.yaml (or its directory).
    `domain_gpus(system name)`: the system's NVLink domain. The plan composes coprime xPyD groups, so
    the gcd of the worker counts is the number of groups."""
    import math

    from estimator.parallel import ParallelConfig
    from estimator.sim import Deployment, Pool
    from perfdb.errors import InputError
    from search.artifacts.deployment import load_deployment

    path = Path(path)
    spec = load_deployment(path / "deployment.yaml" if path.is_dir() else path)
    pools = {}
    for w in spec.workers:
        par = ParallelConfig(tp=w.tp, pp=w.pp, attn_dp=w.attn_dp, moe_tp=w.moe_tp, moe_ep=w.moe_ep)
        pools[w.role.value] = Pool(par, w.count, w.max_batch, w.max_num_tokens)
    if "agg" in pools:
        return Deployment(spec.backend, agg=pools["agg"]), spec
    if "prefill" in pools and "decode" in pools:
        pre, dec = pools["prefill"], pools["decode"]
        return Deployment.disaggregated(spec.backend, pre, dec, domain_gpus(spec.system),
                                        groups=math.gcd(pre.workers, dec.workers)), spec
    raise InputError(f"{path}: a deployment needs an agg worker or prefill + decode workers")


def _given(value: int | None, default: int) -> int:
    """The flag when given (0 included, so that it is rejected as too short rather than replaced), else the default."""
    return default if value is None else value


def _loads(a: dict, isl: int, osl: int, default_conc: int | None):
    """[(label value, LoadSpec)] for the sweep the flags ask for."""
    from estimator.sim import Arrival, Lengths, LoadSpec
    from estimator.sim.load import read_trace
    from perfdb.errors import InputError
    from perfdb.types import parse_enum

    warm = a["warmup_requests"]
    if a["num_requests"] is not None and a["num_requests"] < 1:   # 0 must not silently mean the default
        raise InputError(f"--num-requests {a['num_requests']}: must be >= 1 (leave it out for the default)")
    if a["trace"] is not None:
        return "trace", [(0.0, LoadSpec.replay(read_trace(a["trace"]), warm))]
    isl_l, osl_l = Lengths.of(isl, a["range_ratio"]), Lengths.of(osl, a["range_ratio"])
    from servecast import lists

    concs, rates = lists.ints(a["concurrency"], "concurrency"), lists.floats(a["request_rate"], "request-rate")
    if concs and rates:
        raise InputError("give --concurrency or --request-rate, not both")
    if rates:
        arrival = parse_enum(Arrival, a["arrival"], "arrival")
        return "request rate (req/s)", [
            (r, LoadSpec.open(r, isl_l, osl_l, a["num_requests"] or 1000, arrival, warm)) for r in rates]
    concs = concs or ([default_conc] if default_conc else [])
    if not concs:
        raise InputError("give --concurrency N[,N...], --request-rate R[,R...] or --trace FILE")
    return "concurrency", [(c, LoadSpec.closed(c, isl_l, osl_l, a["num_requests"] or max(100, 10 * c), warm))
                           for c in concs]


def _model(a: dict, name: str, gemm: str | None, moe: str | None):
    from estimator.models import load_model
    from perfdb.types import Dtype, parse_enum

    dt = lambda v, w: parse_enum(Dtype, v, w) if v else None  # noqa: E731
    from servecast.hfcache import hub_cache

    gq, mq = dt(gemm, "gemm quant"), dt(moe, "moe quant")
    return load_model(name, gemm_quant=gq, moe_quant=mq or gq, kv_dtype=dt(a["kv_dtype"], "kv dtype"),
                      hf_hub=hub_cache())


def _calibrated_json(c) -> dict:
    out = {"calibration_id": c.calibration_id, "scope": c.scope, "statistic": c.statistic, "ttft_ms": c.ttft_ms,
           "tpot_ms": c.tpot_ms}
    for name, iv in (("ttft", c.ttft), ("tpot", c.tpot)):
        if iv is not None:
            out[f"{name}_interval_ms"] = [float(iv.lo), float(iv.hi)]
            out["interval_coverage"] = iv.coverage
    return out


def _render_calibrated(console, points: list, cals: list, load_label: str) -> None:
    from rich.table import Table

    c0 = cals[0]
    t = Table(load_label, f"TTFT {c0.statistic}", f"TPOT {c0.statistic}", f"uncalibrated TTFT / TPOT {c0.statistic}",
              title=f"calibrated (calibration {c0.calibration_id}, scope {c0.scope})")
    for x, c in zip(points, cals, strict=True):
        ttft = c.ttft.text(c.ttft_ms) if c.ttft is not None else f"{c.ttft_ms:,.1f} ms"
        tpot = c.tpot.text(c.tpot_ms) if c.tpot is not None else f"{c.tpot_ms:,.2f} ms"
        t.add_row(f"{x:g}", ttft, tpot, f"{c.raw_ttft_ms:,.1f} / {c.raw_tpot_ms:,.2f}")
    console.print(t)


def _render(points: list, results: list, load_label: str, title: str, as_json: bool, cals: list | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if as_json:
        rows = [{"load": x, **{k: (vars(v) if hasattr(v, "p50") or hasattr(v, "queue_ms") else v) for k, v in vars(r).items() if k != "records"}}
                for x, r in zip(points, results, strict=True)]
        for row, c in zip(rows, cals or [], strict=False):
            row["calibrated"] = _calibrated_json(c)
        typer.echo(json.dumps(rows, indent=2, default=float))
        return
    t = Table(load_label, "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "ITL p99", "req/s", "out tok/s/GPU",
              "tok/s/user", "preempt", title=title)
    for x, r in zip(points, results, strict=True):
        t.add_row(f"{x:g}", f"{r.ttft.p50:,.1f}", f"{r.ttft.p99:,.1f}", f"{r.tpot.p50:,.2f}", f"{r.tpot.p99:,.2f}",
                  f"{r.itl.p99:,.2f}", f"{r.request_throughput:,.2f}", f"{r.output_tokens_per_s_per_gpu:,.1f}",
                  f"{r.tokens_per_s_per_user:,.1f}", str(r.preemptions))
    console = Console()
    console = console if console.is_terminal else Console(width=150)
    console.print(t)
    typer.echo("latencies in ms (client view: TPOT = (latency - TTFT) / (osl - 1)); tok/s/GPU counts input + output")
    if cals:
        _render_calibrated(console, points, cals, load_label)


def _records_path(base: Path, label: str, x: float, many: bool) -> Path:
    if not many:
        return base
    tag = ("c" if label == "concurrency" else "r") + f"{x:g}"
    return base.with_name(f"{base.stem}-{tag}{base.suffix}")


def _check_records(path: Path) -> None:
    from perfdb.errors import InputError
    from perfdb.userfiles import check_out_file

    check_out_file(path, "--records")
    if Path(path).suffix not in (".parquet", ".jsonl"):
        raise InputError(f"--records {path}: accepted suffixes are .parquet and .jsonl")


def _run(a: dict) -> None:
    from estimator.calibration_files import calibration_flag, resolve
    from estimator.engine import EngineConfig
    from estimator.sim import build_steps, simulate
    from estimator.sim.calibrated import BASE as SIM_BASE
    from estimator.sim.calibrated import calibrate_sweep
    from estimator.sim.plot import plot_sweep
    from perfdb.errors import InputError
    from perfdb.lookup import PerfDB
    from perfdb.specs import load_system

    spec = None
    if a["plan"] is not None:
        dep, spec = _deployment_from_plan(a["plan"], lambda name: load_system(name).nvlink_domain_gpus)
        name, system_name, version = spec.model, spec.system, spec.version
        gemm, moe = a["gemm_quant"] or spec.gemm_quant or None, a["moe_quant"] or spec.moe_quant or None
        isl, osl = _given(a["isl"], spec.isl), _given(a["osl"], spec.osl)
    else:
        if not a["model"] or not a["system"]:
            raise InputError("--model and --system are required (or --plan deployment.yaml)")
        dep = _deployment_from_flags(a, load_system(a["system"]).nvlink_domain_gpus)
        name, system_name, version, gemm, moe = a["model"], a["system"], a["version"], a["gemm_quant"], a["moe_quant"]
        isl, osl = _given(a["isl"], 1024), _given(a["osl"], 1024)
    if isl < 1 or osl < 1:
        raise InputError(f"--isl {isl} / --osl {osl}: both must be >= 1 token")
    if a["records"] is not None:   # before simulating: a bad path fails at once
        _check_records(a["records"])
    if a["plot"]:
        from perfdb.userfiles import check_out_png

        check_out_png(a["plot"], "--plot")
    label, loads = _loads(a, isl, osl, spec.concurrency if spec else None)
    system = load_system(system_name)
    explicit, stored = calibration_flag(a["calibration"])
    cal = resolve(explicit, a["db"], system.name, dep.backend.value, base=SIM_BASE, stored=stored)   # before simulating
    view = PerfDB(a["db"]).view(system.name, dep.backend, version)
    steps = build_steps(_model(a, name, gemm, moe), system, dep, EngineConfig(dep.backend, version), view)
    keep = a["records"] is not None
    results = [simulate(steps, dep, load, seed=a["seed"], records=keep) for _, load in loads]
    points = [x for x, _ in loads]
    title = f"{name} on {system_name} / {dep.backend.value} {dep.mode.value}, {dep.num_gpus} GPUs, ISL {isl} OSL {osl}"
    cals = None
    if cal is not None:
        in_flight = [x if label == "concurrency" else None for x in points]
        cals = calibrate_sweep(results, in_flight, cal, dep, system.name, view.version, isl, osl, name)
    _render(points, results, label, title, a["as_json"], cals)
    if keep:
        for x, r in zip(points, results, strict=True):
            r.records.write(_records_path(a["records"], label, x, len(points) > 1))
    plot = a["plot"] if a["plot"] is not None else ("simulate_sweep.png" if len(points) > 1 else "")
    if plot and label != "trace":
        typer.echo(f"sweep plot -> {plot_sweep(results, points, label, title, Path(plot))}", err=a["as_json"])


def register(app: typer.Typer) -> None:
    @app.command("simulate", help="Simulate a deployment under benchmark load, request by request and step by "
                 "step, and report the client-side metrics (TTFT/TPOT/ITL mean, p50, p90, p99, throughput). "
                 f"Comma lists sweep the load. {EXAMPLE}")
    def simulate_cmd(
        model: str = typer.Option(None, help="HF id in the catalog, a model directory or a config.json"),
        system: str = typer.Option(None, help="system id, e.g. h200_sxm"),
        backend: str = typer.Option("trtllm", help="trtllm | sglang | vllm"),
        version: str = typer.Option(None, help="backend version in the database (default newest)"),
        plan: Path = typer.Option(None, help="deployment.yaml written by `servecast plan --save-dir` (or its directory)"),
        mode: str = typer.Option("agg", help="agg | disagg"),
        tp: int = typer.Option(1), pp: int = typer.Option(1), dp: int = typer.Option(1, help="attention data parallel"),
        moe_tp: int = typer.Option(0, help="MoE tensor parallel (default tp*dp/moe_ep)"), moe_ep: int = typer.Option(1),
        replicas: int = typer.Option(1, help="aggregated replicas behind the router"),
        prefill_tp: int = typer.Option(1), prefill_pp: int = typer.Option(1), prefill_dp: int = typer.Option(1),
        prefill_moe_tp: int = typer.Option(0), prefill_moe_ep: int = typer.Option(1),
        prefill_workers: int = typer.Option(1), prefill_max_num_tokens: int = typer.Option(None),
        decode_tp: int = typer.Option(1), decode_pp: int = typer.Option(1), decode_dp: int = typer.Option(1),
        decode_moe_tp: int = typer.Option(0), decode_moe_ep: int = typer.Option(1),
        decode_workers: int = typer.Option(1),
        max_batch: int = typer.Option(None, help="requests in flight per worker (engine default if unset)"),
        max_num_tokens: int = typer.Option(None, help="tokens per engine step (engine default if unset)"),
        router: str = typer.Option("least_loaded", help="least_loaded | round_robin"),
        same_node: bool = typer.Option(False, help="disagg: KV moves over NVLink (default: NVLink when the xPyD group fits one NVLink domain, else the network)"),
        isl: int = typer.Option(None, help="input tokens per request (default 1024, or the plan's)"),
        osl: int = typer.Option(None, help="output tokens per request (default 1024, or the plan's)"),
        range_ratio: float = typer.Option(0.0, help="ISL/OSL drawn uniformly in [x(1-r), x(1+r)] (vLLM/aiperf random dataset)"),
        concurrency: str = typer.Option(None, help="closed-loop clients, e.g. 1,4,16,64"),
        request_rate: str = typer.Option(None, help="open-loop requests/s, e.g. 2,4,8"),
        arrival: str = typer.Option("poisson", help="open loop: poisson | constant"),
        trace: Path = typer.Option(None, help="JSONL trace: arrival_s, isl, osl per line"),
        num_requests: int = typer.Option(None, help="requests per point (default max(100, 10 x concurrency); 1000 open loop)"),
        warmup_requests: int = typer.Option(0, help="requests sent first and left out of the metrics (aiperf --warmup-request-count)"),
        seed: int = typer.Option(0),
        records: Path = typer.Option(None, help="per-request records (.parquet or .jsonl); sweeps add -c<N>/-r<R>"),
        plot: str = typer.Option(None, help="sweep PNG (default simulate_sweep.png for sweeps; '' disables)"),
        kv_dtype: str = typer.Option(None, help="KV cache dtype: bf16 | fp8"),
        gemm_quant: str = typer.Option(None, help="override GEMM weight format"),
        moe_quant: str = typer.Option(None, help="override expert weight format"),
        db: Path = typer.Option(None, help="perfdb directory (default: the bundled database)"),
        calibration: Path = typer.Option(None, help="calibration directory fitted with `servecast calibrate fit "
                                         "--base simulate` (default: the newest such in <db>/calibrations/; the bundled "
                                         "database ships one; `none`: uncalibrated): adds calibrated mean TTFT/TPOT "
                                         "with 80% intervals per point"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        _run(dict(locals()))
