"""`servecast estimate`: TTFT, TPOT and throughput of one deployment, or of every row of a run table."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

AGG_EXAMPLE = ("Example: servecast estimate --model Qwen/Qwen3-32B --system h200_sxm --backend trtllm "
               "--tp 2 --concurrency 32 --isl 4000 --osl 500 --breakdown")


def _dtype(value: str | None, what: str):
    from perfdb.types import Dtype, parse_enum

    return parse_enum(Dtype, value, what) if value else None


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
        summary["breakdown"] = [{"op": o.name, "phase": o.phase.value, "ms": float(o.ms), "source": o.source.value}
                                for o in est.breakdown]
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
        for o in est.breakdown:
            b.add_row(o.name, o.phase.value, f"{float(o.ms):.4f}", o.source.value)
        console.print(b)


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


def _calibrate(a: dict, est, database, version: str | None):
    """The CalibratedEstimate for --calibration DIR (or one stored in --db), else None."""
    from estimator.calibration import calibrate_estimate, context_for
    from estimator.calibration_files import calibration_flag, resolve

    if not est.feasible:
        return None
    root = database.root if a["db"] is not None else None
    explicit, stored = calibration_flag(a["calibration"])
    cal = resolve(explicit, root, a["system"], a["backend"], base="estimate", stored=stored)   # analytic numbers
    if cal is None:
        return None
    if a["mode"] == "agg":
        gpus, total = a["tp"] * a["pp"] * a["dp"], a["concurrency"]
    else:
        gpus = a["decode_tp"] * a["decode_pp"] * a["decode_dp"]
        total = a["concurrency"] * a["decode_workers"]     # Estimate.concurrency is per decode worker
    ctx = context_for(a["system"], a["backend"], version, a["mode"], a["isl"], a["osl"], gpus, total, a["model"])
    return calibrate_estimate(est, cal, ctx)


def _from_runs(runs: Path, out: Path, db, calibration, db_given: bool) -> None:
    from estimator.calibration_files import calibration_flag, resolve
    from estimator.runs import predict_runs, read_runs, write_predictions

    start = time.perf_counter()
    explicit, stored = calibration_flag(calibration)   # a bad --calibration fails before anything is written
    cal = resolve(explicit, db.root if db_given else None, "", "", base="estimate", stored=stored)
    rows = read_runs(runs)
    from servecast.hfcache import hub_cache

    preds = predict_runs(rows, db, hub_cache())
    ok = sum(p.status == "ok" for p in preds)
    note = ""
    if cal is not None:
        from perfdb.errors import DataError

        try:
            _write_calibrated(runs, preds, out, cal)
            note = f"; calibrated columns from calibration {cal.id}"
        except DataError as exc:   # the raw predictions stand; say why the calibrated columns do not
            note = f"; no calibrated columns ({exc})"
    if not note.startswith("; calibrated"):
        write_predictions(preds, out)
    typer.echo(f"{len(preds)} rows, {ok} predicted ({100 * ok / max(len(preds), 1):.1f}%), "
               f"{time.perf_counter() - start:.1f} s -> {out}{note}")


def _write_calibrated(runs: Path, preds, out: Path, cal) -> None:
    """The predictions CSV with cal_ttft_ms, cal_tpot_ms, their 80% intervals and the calibration id after
    the raw pred_* columns (which `calibrate fit --predictions` fits on), written once, atomically."""
    import pandas as pd

    from calibrate.ingest import read_results
    from calibrate.predict import attach_predictions, base_frame, calibrated_columns
    from perfdb.storage import atomic_write_bytes

    frame = attach_predictions(base_frame(read_results([runs], None)), preds)
    extra = calibrated_columns(frame, cal).drop_duplicates("id")   # a repeated id must not repeat rows
    raw = pd.DataFrame({"id": [p.id for p in preds], "pred_ttft_ms": [p.ttft_ms for p in preds],
                        "pred_tpot_ms": [p.tpot_ms for p in preds],
                        "pred_tokens_per_s_per_gpu": [p.tokens_per_s_per_gpu for p in preds],
                        "status": [p.status for p in preds]})
    table = raw.merge(extra, on="id", how="left")
    atomic_write_bytes(out, table.to_csv(index=False, float_format="%.6g", na_rep="nan").encode())


HELP = (f"Estimate TTFT, TPOT and throughput of one deployment, or predict every "
        f"row of a measured-run table with --from-runs. {AGG_EXAMPLE}  |  Disagg: servecast estimate "
        f"--model deepseek-ai/DeepSeek-R1 --system gb200 --backend trtllm --mode disagg --prefill-tp 4 "
        f"--prefill-moe-ep 4 --prefill-workers 2 --decode-tp 8 --decode-moe-ep 8 --concurrency 64 "
        f"--isl 8192 --osl 1024  |  Runs: servecast estimate --from-runs runs.csv --db DB --out pred.csv")


def register(app: typer.Typer) -> None:
    @app.command("estimate", help=HELP)
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
        concurrency: Annotated[int, typer.Option("--concurrency", "--batch",
                                                 help="requests in flight per replica (agg) / per decode worker (disagg)")] = 1,
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
        kv_dtype: Annotated[str | None, typer.Option(help="KV cache dtype: bf16 | fp8 (default: the checkpoint's)")] = None,
        gemm_quant: Annotated[str | None, typer.Option(help="override GEMM weight format: bf16 | fp8 | fp8_block | nvfp4 | mxfp4")] = None,
        moe_quant: Annotated[str | None, typer.Option(help="override expert weight format")] = None,
        spec_tokens: Annotated[int, typer.Option(help="speculative decoding draft tokens per step (e.g. 1 for DeepSeek MTP)")] = 0,
        spec_acceptance: Annotated[float | None, typer.Option(help="acceptance probability of each draft token (default 0.85)")] = None,
        db: Annotated[Path | None, typer.Option(help="perfdb directory (default: the bundled database)")] = None,
        calibration: Annotated[Path | None, typer.Option(help="calibration directory from `servecast calibrate fit` "
                               "(default: the newest in <db>/calibrations/; the bundled database ships one; `none`: "
                               "uncalibrated): prints calibrated TTFT/TPOT with 80% intervals; with --from-runs, adds "
                               "cal_* and interval columns beside the raw pred_* ones")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
        breakdown: Annotated[bool, typer.Option(help="time per op with its source, memory per category")] = False,
        from_runs: Annotated[Path | None, typer.Option(help="CSV of measured runs (format of e2e_train_silicon.csv)")] = None,
        out: Annotated[Path | None, typer.Option(help="output CSV for --from-runs")] = None,
    ) -> None:
        from perfdb.errors import InputError
        from perfdb.lookup import PerfDB

        database = PerfDB(db)
        if from_runs is not None:
            _checked_from_runs(from_runs, out, database, calibration, db is not None)
            return
        if not model or not system:
            raise InputError("--model and --system are required (or --from-runs)")
        _single(locals(), database)


def _checked_from_runs(runs: Path, out: Path | None, database, calibration, own_db: bool) -> None:
    from perfdb.errors import InputError
    from perfdb.userfiles import check_out_file

    if out is None:
        raise InputError("--from-runs needs --out FILE")
    check_out_file(out, "--out")   # before predicting: a bad path fails at once
    _from_runs(runs, out, database, calibration, own_db)


def _single(a: dict, database) -> None:
    from estimator.engine import EngineConfig
    from estimator.estimate import WorkerSpec, estimate, estimate_disagg
    from estimator.models import load_model
    from estimator.workload import Workload
    from perfdb.errors import InputError
    from perfdb.specs import load_system
    from perfdb.types import Backend, parse_enum
    from servecast.hfcache import hub_cache

    gq, mq = _dtype(a["gemm_quant"], "gemm quant"), _dtype(a["moe_quant"], "moe quant")
    model = load_model(a["model"], gemm_quant=gq, moe_quant=mq or gq, kv_dtype=_dtype(a["kv_dtype"], "kv dtype"),
                       hf_hub=hub_cache())
    system = load_system(a["system"])
    backend = parse_enum(Backend, a["backend"], "backend")
    view = database.view(system.name, backend, a["version"])
    engine = EngineConfig(backend, a["version"], spec_tokens=a["spec_tokens"], spec_acceptance=a["spec_acceptance"])
    # the closed-loop benchmark (estimator.workload): what the aiperf command of a plan measures
    load = Workload.benchmark(a["isl"], a["osl"], a["prefix"], a["concurrency"])
    if a["mode"] == "agg":
        est = estimate(model, system, _parallel(a["tp"], a["pp"], a["dp"], a["moe_tp"], a["moe_ep"]), engine, load, view)
    elif a["mode"] == "disagg":
        pre = WorkerSpec(_parallel(*(a[f"prefill_{k}"] for k in ("tp", "pp", "dp", "moe_tp", "moe_ep"))), engine,
                         a["prefill_workers"], a["prefill_batch"])
        dec = WorkerSpec(_parallel(*(a[f"decode_{k}"] for k in ("tp", "pp", "dp", "moe_tp", "moe_ep"))), engine,
                         a["decode_workers"], None)
        est = estimate_disagg(model, system, pre, dec, load, view)
    else:
        raise InputError(f"unknown --mode {a['mode']!r}; accepted: agg, disagg")
    _render(est, a["breakdown"], a["as_json"], _calibrate(a, est, database, view.version))
