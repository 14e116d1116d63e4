"""`servecast estimate`: TTFT, TPOT and throughput of one deployment, or of every row of a run table."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

# --moe-a2a (estimate and simulate): the values estimator.deployment.moe_a2a_exchange accepts
MOE_A2A_HELP = ("sglang attention-DP workers' MoE exchange: none (the default gather / all-reduce) | deepep (as "
                "launched with --moe-a2a-backend deepep: tokens sent to their experts' ranks)")

AGG_EXAMPLE = ("Example: servecast estimate --model Qwen/Qwen3-32B --system h200_sxm --backend trtllm "
               "--tp 2 --concurrency 32 --isl 4000 --osl 500 --breakdown")


def _parallel(tp, pp, dp, moe_tp, moe_ep):
    from estimator.parallel import ParallelConfig

    return ParallelConfig(tp=tp, pp=pp, attn_dp=dp, moe_tp=moe_tp, moe_ep=moe_ep)


def _render(est, breakdown: bool, as_json: bool, cal=None) -> None:
    from rich.console import Console
    from rich.table import Table

    mem = est.memory
    summary = {
        "feasible": bool(est.feasible), "reason": est.reason, "ttft_ms": est.ttft_ms, "tpot_ms": est.tpot_ms,
        "request_latency_ms": est.request_latency_ms, "tokens_per_s_per_gpu": est.tokens_per_s_per_gpu,
        "tokens_per_s_per_user": est.tokens_per_s_per_user, "concurrency": est.concurrency,
        "num_gpus": est.num_gpus, "source": est.source.value,
        "memory_gib": {k: getattr(mem, k) / 2**30 for k in ("weights_bytes", "activation_bytes", "reserve_bytes", "kv_pool_bytes")},
        "kv_bytes_per_token": mem.kv_bytes_per_token, "kv_capacity_tokens": mem.kv_capacity_tokens, "max_batch": mem.max_batch,
    }
    if breakdown or as_json:
        summary["breakdown"] = [{"op": o.name, "phase": o.phase.value, "ms": float(o.ms), "source": o.source.value,
                                 **({"note": o.note} if o.note else {})} for o in est.breakdown]
    if cal is not None:
        summary["calibrated"] = _calibrated_summary(cal)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=float))
        return
    console = Console()
    if not est.feasible:
        console.print(f"[red]infeasible[/red]: {est.reason}")
        raise typer.Exit(1)
    t = Table("metric", "value", title=f"estimate ({est.source.value})")
    for k in ("ttft_ms", "tpot_ms", "request_latency_ms", "tokens_per_s_per_gpu", "tokens_per_s_per_user"):
        t.add_row(k, f"{summary[k]:,.2f}")
    t.add_row("num_gpus", str(est.num_gpus))
    t.add_row("kv capacity (tokens)", f"{mem.kv_capacity_tokens:,.0f}")
    t.add_row("max batch (this workload)", str(mem.max_batch))
    console.print(t)
    if cal is not None:
        _render_calibrated(console, est, cal)
    if breakdown:
        m = Table("memory per GPU", "GiB")
        for k, v in summary["memory_gib"].items():
            m.add_row(k.replace("_bytes", ""), f"{v:.2f}")
        console.print(m)
        b = Table("op", "phase", "ms per step", "source", title="time per op")
        notes = {}
        for o in est.breakdown:
            mark = notes.setdefault(o.note, len(notes) + 1) if o.note else None
            b.add_row(o.name, o.phase.value, f"{float(o.ms):.4f}", o.source.value + (f" [{mark}]" if mark else ""))
        console.print(b)
        for note, mark in notes.items():
            console.print(f"[{mark}] {note}")


def _calibrated_summary(cal) -> dict:
    c = cal.estimate
    out = {"calibration_id": cal.calibration_id, "scope": cal.scope, "ttft_ms": c.ttft_ms, "tpot_ms": c.tpot_ms,
           "request_latency_ms": c.request_latency_ms, "tokens_per_s_per_gpu": c.tokens_per_s_per_gpu}
    for name, iv in (("ttft", cal.ttft), ("tpot", cal.tpot)):
        if iv is not None:
            out[f"{name}_interval_ms"] = [float(iv.lo), float(iv.hi)]
            out["interval_coverage"] = iv.coverage
    return out


def _render_calibrated(console, est, cal) -> None:
    from rich.table import Table

    c = cal.estimate
    t = Table("metric", "calibrated", "uncalibrated",
              title=f"calibrated (calibration {cal.calibration_id}, scope {cal.scope})")
    for name, iv, value, raw in (("TTFT", cal.ttft, c.ttft_ms, est.ttft_ms), ("TPOT", cal.tpot, c.tpot_ms, est.tpot_ms)):
        text = iv.text(float(value)) if iv is not None else f"{float(value):,.1f} ms"
        t.add_row(name, text, f"{float(raw):,.1f} ms")
    t.add_row("request latency", f"{float(c.request_latency_ms):,.0f} ms", f"{float(est.request_latency_ms):,.0f} ms")
    t.add_row("tokens/s/GPU", f"{float(c.tokens_per_s_per_gpu):,.1f}", f"{float(est.tokens_per_s_per_gpu):,.1f}")
    console.print(t)


HELP = (f"Estimate TTFT, TPOT and throughput of one deployment, or predict every "
        f"row of a measured-run table with --from-runs. {AGG_EXAMPLE}  |  Disagg: servecast estimate "
        f"--model deepseek-ai/DeepSeek-R1 --system gb200 --backend trtllm --mode disagg --prefill-tp 4 "
        f"--prefill-moe-ep 4 --prefill-workers 2 --decode-tp 8 --decode-moe-ep 8 --concurrency 64 "
        f"--isl 8192 --osl 1024  |  Runs: servecast estimate --from-runs runs.csv --db DB --out pred.csv [--base estimate]")


CALIBRATION_HELP = ("calibration directory from `servecast calibrate fit` (default: the newest in "
                    "<db>/calibrations/; the bundled database ships one; `none`: uncalibrated): prints calibrated "
                    "TTFT/TPOT with 80% intervals; with --from-runs, adds cal_* and interval columns beside the raw "
                    "pred_* ones")
BASE_HELP = ("with --from-runs: simulate (the simulator's replay of each run at its concurrency, what plan decides "
             "on; the default) | estimate (the static estimate, seconds); with the calibration fitted on that base")
CONCURRENCY_HELP = "requests in flight per replica (agg) / per decode worker (disagg)"


def estimate_cmd(
    model: Annotated[str | None, typer.Option(help="HF id in the catalog, a model directory, a config.json, or a model in the HF cache")] = None,
    system: Annotated[str | None, typer.Option(help="system id, e.g. h200_sxm (servecast db systems)")] = None,
    backend: Annotated[str, typer.Option(help="trtllm | sglang | vllm")] = "trtllm",
    version: Annotated[str | None, typer.Option(help="backend version in the database (default newest)")] = None,
    mode: Annotated[str, typer.Option(help="agg | disagg")] = "agg",
    tp: Annotated[int, typer.Option(help="tensor parallel (attention)")] = 1,
    pp: Annotated[int, typer.Option(help="pipeline parallel")] = 1,
    dp: Annotated[int, typer.Option(help="attention data parallel")] = 1,
    moe_tp: Annotated[int, typer.Option(help="MoE tensor parallel")] = 1,
    moe_ep: Annotated[int, typer.Option(help="MoE expert parallel")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", "--batch", help=CONCURRENCY_HELP)] = 1,
    isl: Annotated[int, typer.Option(help="input tokens per request")] = 1024,
    osl: Annotated[int, typer.Option(help="output tokens per request")] = 1024,
    prefix: Annotated[int, typer.Option(help="cached prefix tokens")] = 0,
    prefill_tp: Annotated[int, typer.Option()] = 1,
    prefill_pp: Annotated[int, typer.Option()] = 1,
    prefill_dp: Annotated[int, typer.Option()] = 1,
    prefill_moe_tp: Annotated[int, typer.Option()] = 1,
    prefill_moe_ep: Annotated[int, typer.Option()] = 1,
    prefill_workers: Annotated[int, typer.Option()] = 1,
    prefill_batch: Annotated[int, typer.Option(help="requests per prefill iteration")] = 1,
    decode_tp: Annotated[int, typer.Option()] = 1,
    decode_pp: Annotated[int, typer.Option()] = 1,
    decode_dp: Annotated[int, typer.Option()] = 1,
    decode_moe_tp: Annotated[int, typer.Option()] = 1,
    decode_moe_ep: Annotated[int, typer.Option()] = 1,
    decode_workers: Annotated[int, typer.Option()] = 1,
    kv_dtype: Annotated[str | None, typer.Option(help="KV cache dtype: bf16 | fp8 (default: what the engine stores for the model: the checkpoint's; FP8 for DeepSeek-V4 on SGLang / vLLM)")] = None,
    gemm_quant: Annotated[str | None, typer.Option(help="override GEMM weight format: bf16 | fp8 | fp8_block | nvfp4 | mxfp4")] = None,
    moe_quant: Annotated[str | None, typer.Option(help="override expert weight format")] = None,
    spec_tokens: Annotated[int, typer.Option(help="speculative decoding draft tokens per step (e.g. 1 for DeepSeek MTP)")] = 0,
    spec_acceptance: Annotated[float | None, typer.Option(help="acceptance probability of each draft token (default: 0.65 for DeepSeek-V3/R1 MTP, fitted; 0.85 otherwise; estimator/spec.py)")] = None,
    moe_a2a: Annotated[str, typer.Option(help=MOE_A2A_HELP)] = "none",
    db: Annotated[Path | None, typer.Option(help="perfdb directory (default: the bundled database)")] = None,
    calibration: Annotated[Path | None, typer.Option(help=CALIBRATION_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    breakdown: Annotated[bool, typer.Option(help="time per op with its source, memory per category")] = False,
    from_runs: Annotated[Path | None, typer.Option(help="CSV of measured runs (format of e2e_train_silicon.csv)")] = None,
    out: Annotated[Path | None, typer.Option(help="output CSV for --from-runs")] = None,
    base: Annotated[str | None, typer.Option(help=BASE_HELP)] = None,
) -> None:
    from servecast.api import estimate
    from servecast.hfcache import hub_cache

    if _runs_mode(from_runs, out, db, calibration, base, bool(model and system)):
        return

    disagg = mode == "disagg"
    result = estimate(
        model=model, system=system, backend=backend, version=version, mode=mode,   # only the mode's layouts
        parallel=_parallel(tp, pp, dp, moe_tp, moe_ep) if mode == "agg" else None,
        prefill=_parallel(prefill_tp, prefill_pp, prefill_dp, prefill_moe_tp, prefill_moe_ep) if disagg else None,
        decode=_parallel(decode_tp, decode_pp, decode_dp, decode_moe_tp, decode_moe_ep) if disagg else None,
        prefill_workers=prefill_workers, decode_workers=decode_workers, prefill_batch=prefill_batch,
        concurrency=concurrency, isl=isl, osl=osl, prefix=prefix, kv_dtype=kv_dtype, gemm_quant=gemm_quant,
        moe_quant=moe_quant, spec_tokens=spec_tokens, spec_acceptance=spec_acceptance, moe_a2a=moe_a2a, db=db,
        calibration=calibration, hf_hub=hub_cache())
    _render(result.estimate, breakdown, as_json, result.calibrated)


def register(app: typer.Typer) -> None:
    app.command("estimate", help=HELP)(estimate_cmd)


def _runs_mode(from_runs: Path | None, out: Path | None, db: Path | None, calibration: Path | None,
               base: str | None, one_deployment: bool) -> bool:
    """True when --from-runs was given (and its predictions printed); the one-line errors of a command line
    that is neither a runs table nor one deployment (--model and --system)."""
    from perfdb.errors import InputError
    from servecast.hfcache import hub_cache

    if base is not None and from_runs is None:
        raise InputError(f"--base {base} applies to --from-runs (a single deployment: `servecast simulate`)")
    if from_runs is not None:
        _print_runs(from_runs, out, db, calibration, hub_cache(), base or "simulate")
        return True
    if not one_deployment:
        raise InputError("--model and --system are required (or --from-runs)")
    return False


def _print_runs(runs: Path, out: Path | None, db: Path | None, calibration: Path | None, hf_hub: Path,
                base: str) -> None:
    """--from-runs: predict every row into --out and say how many were predicted."""
    from servecast.api import estimate_runs
    from servecast.progress import simulating_runs

    if out is None:
        from perfdb.errors import InputError

        raise InputError("--from-runs needs --out FILE")
    start = time.perf_counter()
    with simulating_runs(base == "simulate") as progress:
        got = estimate_runs(runs, out, db=db, calibration=calibration, hf_hub=hf_hub, base=base, progress=progress)
    note = (f"; calibrated columns from calibration {got.calibration_id}" if got.calibration_id else
            f"; no calibrated columns ({got.calibration_error})" if got.calibration_error else "")
    n = len(got.predictions)
    typer.echo(f"{n} rows, {got.predicted} predicted ({100 * got.predicted / max(n, 1):.1f}%), "
               f"{time.perf_counter() - start:.1f} s -> {out}{note}")
