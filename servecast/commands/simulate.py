"""`servecast simulate`: discrete-event simulation of one deployment under a benchmark load (or a sweep)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from servecast.commands.estimate import MOE_A2A_HELP

EXAMPLE = ("Example: servecast simulate --model Qwen/Qwen3-32B-FP8 --system h200_sxm --backend vllm --tp 2 "
           "--replicas 4 --isl 4000 --osl 500 --concurrency 256 --num-requests 10000  |  Sweep: "
           "servecast simulate --model Qwen/Qwen3-32B --system h200_sxm --backend sglang --tp 2 --isl 4000 "
           "--osl 500 --concurrency 1,4,16,64  |  Disagg: servecast simulate --model deepseek-ai/DeepSeek-R1 "
           "--system b200_sxm --backend trtllm --mode disagg --prefill-tp 4 --prefill-moe-ep 4 --prefill-workers 2 "
           "--decode-tp 8 --decode-moe-ep 8 --request-rate 2,4,8  |  From a plan: servecast simulate --plan "
           "plans/agg-1/deployment.yaml --concurrency 16,64  |  Calibrated: add --calibration cal/<id> (fitted with "
           "`servecast calibrate fit RUNS --base simulate`)")


def _parallel(tp: int, pp: int, dp: int, moe_tp: int, moe_ep: int):
    """--moe-tp 0: the engines' default, tp*dp/moe_ep."""
    from estimator.parallel import ParallelConfig

    return ParallelConfig(tp=tp, pp=pp, attn_dp=dp, moe_tp=moe_tp or max(1, tp * dp // max(moe_ep, 1)), moe_ep=moe_ep)


def _deployment(system: str, backend: str, router: str, mode: str, same_node: bool, moe_a2a: str, agg, prefill,
                decode):
    """The Deployment the flags describe; agg / prefill / decode build the pools (only the mode's are built,
    so the other mode's flags are never checked), every one with the --moe-a2a exchange."""
    from dataclasses import replace

    from estimator.deployment import moe_a2a_exchange
    from estimator.sim import Deployment, RoutePolicy
    from perfdb.errors import InputError
    from perfdb.specs import load_system
    from perfdb.types import Backend, Transport, parse_enum

    domain_gpus = load_system(system).nvlink_domain_gpus
    be = parse_enum(Backend, backend, "backend")
    route = parse_enum(RoutePolicy, router, "router")
    a2a = moe_a2a_exchange(be, moe_a2a)

    def pool(build):
        return replace(build(), moe_exchange=a2a)

    if mode == "agg":
        return Deployment(be, agg=pool(agg), router=route)
    if mode != "disagg":
        raise InputError(f"unknown --mode {mode!r}; accepted: agg, disagg")
    forced = {"kv_path": Transport.NVLINK} if same_node else {}
    return Deployment.disaggregated(be, pool(prefill), pool(decode), domain_gpus, router=route, **forced)


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


CALIBRATION_HELP = ("calibration directory fitted with `servecast calibrate fit --base simulate` (default: the newest "
                    "such in <db>/calibrations/; the bundled database ships one; `none`: uncalibrated): adds calibrated "
                    "mean TTFT/TPOT with 80% intervals per point")


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
    range_ratio: float = typer.Option(None, help="ISL/OSL drawn uniformly between x(1-r) and x(1+r) (vLLM/aiperf random dataset; default 0, or the plan's)"),
    concurrency: str = typer.Option(None, help="closed-loop clients, e.g. 1,4,16,64"),
    request_rate: str = typer.Option(None, help="open-loop requests/s, e.g. 2,4,8"),
    arrival: str = typer.Option("poisson", help="open loop: poisson | constant"),
    trace: Path = typer.Option(None, help="JSONL trace: arrival_s, isl, osl per line"),
    num_requests: int = typer.Option(None, help="requests per point (default max(100, 10 x concurrency); 1000 open loop)"),
    warmup_requests: int = typer.Option(0, help="requests sent first and left out of the metrics (aiperf --warmup-request-count)"),
    seed: int = typer.Option(0),
    records: Path = typer.Option(None, help="per-request records (.parquet or .jsonl); sweeps add -c<N>/-r<R>"),
    plot: str = typer.Option(None, help="sweep PNG (default simulate_sweep.png for sweeps; '' disables)"),
    kv_dtype: str = typer.Option(None, help="KV cache dtype: bf16 | fp8 (default: the plan's, else what the engine stores for the model)"),
    gemm_quant: str = typer.Option(None, help="override GEMM weight format"),
    moe_quant: str = typer.Option(None, help="override expert weight format"),
    moe_a2a: str = typer.Option("none", help=MOE_A2A_HELP),
    db: Path = typer.Option(None, help="perfdb directory (default: the bundled database)"),
    calibration: Path = typer.Option(None, help=CALIBRATION_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    from estimator.sim import Pool
    from servecast import lists
    from servecast.api import simulate
    from servecast.hfcache import hub_cache

    dep = None
    if plan is None and model and system:   # else servecast.simulate says what is missing
        dep = _deployment(
            system, backend, router, mode, same_node, moe_a2a,
            agg=lambda: Pool(_parallel(tp, pp, dp, moe_tp, moe_ep), replicas, max_batch, max_num_tokens),
            prefill=lambda: Pool(_parallel(prefill_tp, prefill_pp, prefill_dp, prefill_moe_tp, prefill_moe_ep),
                                 prefill_workers, None, prefill_max_num_tokens),
            decode=lambda: Pool(_parallel(decode_tp, decode_pp, decode_dp, decode_moe_tp, decode_moe_ep),
                                decode_workers, max_batch, None))
    elif moe_a2a.strip().lower() != "none":
        from perfdb.errors import InputError

        raise InputError("--moe-a2a describes a deployment given by its flags (--model, --system, ...); a plan's "
                         "deployment.yaml records its own engine")
    concs, rates = lists.ints(concurrency, "concurrency"), lists.floats(request_rate, "request-rate")
    sweep = max(len(concs), len(rates)) > 1   # a sweep draws simulate_sweep.png unless --plot says otherwise
    sim = simulate(deployment=dep, model=model, system=system, plan=plan, version=version, isl=isl, osl=osl,
                   concurrency=concs, request_rate=rates, arrival=arrival, trace=trace, num_requests=num_requests,
                   warmup_requests=warmup_requests, range_ratio=range_ratio, seed=seed, kv_dtype=kv_dtype,
                   gemm_quant=gemm_quant, moe_quant=moe_quant, db=db, calibration=calibration, hf_hub=hub_cache(),
                   records=records, plot=plot if plot is not None else ("simulate_sweep.png" if sweep else ""))
    _render(sim.points, sim.results, sim.load_label, sim.title, as_json, sim.calibrated)
    if sim.plot is not None:
        typer.echo(f"sweep plot -> {sim.plot}", err=as_json)


def register(app: typer.Typer) -> None:
    app.command("simulate", help="Simulate a deployment under benchmark load, request by request and step by "
                "step, and report the client-side metrics (TTFT/TPOT/ITL mean, p50, p90, p99, throughput). "
                f"Comma lists sweep the load. {EXAMPLE}")(simulate_cmd)
