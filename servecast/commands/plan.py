"""`servecast plan`: the best aggregated and disaggregated deployments under TTFT/TPOT targets.

Thin: flags -> servecast.api.plan (search, the simulator's decision, the files) -> rendering with rich.
"""
from __future__ import annotations

import sys

import typer

EXAMPLE = ("Example: servecast plan --model Qwen/Qwen3-32B-FP8 --system h200_sxm --backend trtllm "
           "--total-gpus 8 --isl 4000 --osl 500 --ttft 600 --tpot 16.67 --save-dir plan-qwen32b")
HELP = f"""Search aggregated and disaggregated deployments that meet the TTFT/TPOT (and request-latency)
targets and rank them by output tokens/s per GPU of the whole budget.

Prints the top configurations of each mode, the winner and its speedup over the other mode, and
how many points were evaluated. With --save-dir: points.parquet/.csv (every point), pareto.png,
plan.json, and per top configuration the engine launch command/config, Dynamo Kubernetes
manifests, the aiperf benchmark command and deployment.yaml (for `servecast calibrate`).
Exits 1 when nothing meets the targets (after showing the closest points and the binding constraint).

{EXAMPLE}

Example: servecast plan --model deepseek-ai/DeepSeek-R1 --moe-quant nvfp4 --system b200_sxm --backend all
--total-gpus 64 --isl 15000 --osl 500 --ttft 1000 --tpot 15"""


def register(app: typer.Typer) -> None:
    @app.command("plan", help=HELP, epilog=EXAMPLE)
    def plan_cmd(
        model: str = typer.Option(..., help="HF id in the catalog, a model directory or a config.json path"),
        system: str = typer.Option(..., help="system id, e.g. h200_sxm, b200_sxm (servecast db systems)"),
        backend: str = typer.Option("trtllm", help="trtllm, sglang, vllm, or all (ranks the three in one run)"),
        total_gpus: int = typer.Option(8, "--total-gpus", help="GPU budget; idle GPUs still count in tokens/s/GPU"),
        isl: int = typer.Option(..., help="input tokens per request (prefix included)"),
        osl: int = typer.Option(..., help="output tokens per request"),
        prefix: int = typer.Option(0, help="input tokens served from the prefix cache"),
        range_ratio: float = typer.Option(None, "--range-ratio",
                                          help="request lengths the simulator replays and aiperf.sh benchmarks, "
                                               "uniform between x(1-r) and x(1+r) around --isl / --osl (default 0.111: "
                                               "the InferenceX client's spread, which the shipped calibrations were "
                                               "fitted on; 0: fixed lengths, where a closed loop runs in lockstep "
                                               "waves)"),
        ttft: float = typer.Option(..., help="time-to-first-token target, ms"),
        tpot: float = typer.Option(..., help="time-per-output-token target, ms"),
        request_latency: float = typer.Option(None, "--request-latency", help="end-to-end latency target, ms (optional)"),
        sla_at: str = typer.Option("median", "--sla-at",
                                   help="median: the calibrated prediction must meet the targets; upper: the upper end "
                                        "of its 80% interval must (the measured mean then meets them with ~90% "
                                        "probability, from the calibration's cross-validated residuals; needs a "
                                        "calibration)"),
        mode: str = typer.Option("both", help="agg, disagg or both"),
        top_n: int = typer.Option(5, "--top-n", help="configurations shown (and written) per mode"),
        save_dir: str = typer.Option(None, "--save-dir", help="write points, pareto.png and artifacts here (an "
                                     "earlier plan's artifact directories there are removed)"),
        dynamo_version: str = typer.Option(None, "--dynamo-version",
                                           help="NVIDIA Dynamo release (image tag) of top/*/k8s/dynamo.yaml; "
                                                "default: the release the manifests are written for (1.6.1)"),
        db: str = typer.Option(None, help="perfdb directory (default: the bundled database)"),
        calibration: str = typer.Option(None, help="calibration directory from `servecast calibrate fit` (--base "
                                        "estimate; default: the newest in <db>/calibrations/, and the bundled database "
                                        "ships one; `none`: uncalibrated): the targets are checked on calibrated "
                                        "TTFT/TPOT, shown with 80% intervals"),
        version: str = typer.Option(None, help="backend version in the database (default: newest)"),
        gemm_quant: str = typer.Option(None, "--gemm-quant", help="override dense GEMM numerics: bf16, fp8, fp8_block, nvfp4, ..."),
        moe_quant: str = typer.Option(None, "--moe-quant", help="override expert numerics, e.g. nvfp4 for an FP4 checkpoint"),
        kv_dtype: str = typer.Option(None, "--kv-dtype", help="KV-cache dtype, e.g. fp8 (default: what the engine stores for the model: the checkpoint's; FP8 for DeepSeek-V4 on SGLang / vLLM)"),
        simulate: bool = typer.Option(True, "--simulate/--no-simulate",
                                      help="replay the best of each mode in the discrete-event simulator at its "
                                           "predicted concurrency, backed off to fewer clients where a target is "
                                           "missed there, and decide on those numbers (shown beside the static ones)"),
    ) -> None:
        from servecast.api import plan
        from servecast.hfcache import hub_cache

        result = plan(model=model, system=system, backend=backend, total_gpus=total_gpus, isl=isl, osl=osl,
                      prefix=prefix, ttft_ms=ttft, tpot_ms=tpot, request_latency_ms=request_latency, sla_at=sla_at,
                      mode=mode, top_n=top_n, version=version, gemm_quant=gemm_quant, moe_quant=moe_quant,
                      kv_dtype=kv_dtype, db=db, calibration=calibration, hf_hub=hub_cache(), simulate=simulate,
                      save_dir=save_dir, dynamo_version=dynamo_version, range_ratio=range_ratio)
        render(result, result.sims if simulate else None, save_dir, result.artifacts)
        raise typer.Exit(0 if result.winner is not None else 1)


# ---- rendering -------------------------------------------------------------------------------------
def _row(table, rank: int, c, sim=None, cals=None, model: tuple[str, str] | None = None) -> None:
    m = c.metrics
    cells = [str(rank), c.backend.value, c.label(), str(c.gpus_used), f"{m.ttft_ms:.0f}", f"{m.tpot_ms:.2f}",
             f"{m.tokens_per_s_per_gpu:.1f}", f"{m.tokens_per_s_per_user:.1f}", f"{m.concurrency:.0f}",
             _batch(c), f"{m.mem_headroom:.0%}", _source(m)]
    if cals:
        cells.append(_interval_text(c, cals, model))
    if sim is not None:
        got = sim.get(c.row)
        cells.append("-" if got is None else f"{got.ttft_ms:.0f} / {got.tpot_ms:.2f} / {got.tokens_per_s_per_gpu:.1f} "
                     f"@ {got.concurrency:.0f}" + ("" if got.meets_sla else " (misses)"))
    table.add_row(*cells)


def _interval_text(c, cals, model: tuple[str, str] | None) -> str:
    """'500-610 / 12.1-15.3': the calibrated TTFT and TPOT prediction intervals (ms) of a candidate."""
    from search.calibrated import interval

    iv = interval(cals.get(c.backend), c.mode, c.metrics.ttft_ms, c.metrics.tpot_ms, *(model or (None, None)))
    if iv is None:
        return "-"
    return f"{iv.ttft_ms[0]:,.0f}-{iv.ttft_ms[1]:,.0f} / {iv.tpot_ms[0]:.2f}-{iv.tpot_ms[1]:.2f}"


def _source(m) -> str:
    """Worst kernel-data source, with the share of kernel time that is not from measured rows."""
    if m.estimated_share <= 0.0 or m.estimated_share >= 0.995:
        return m.source.value
    return f"{m.source.value} ({m.estimated_share:.0%} of time)"


def _batch(c) -> str:
    if c.prefill is None:
        return f"{c.decode.max_batch} @ {c.decode.max_num_tokens} tok"
    return f"P{c.prefill.max_batch} / D{c.decode.max_batch}"


def _table(title: str, cands, sims, cals=None, model: tuple[str, str] | None = None):
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold")
    for name in ("#", "backend", "deployment", "GPUs", "TTFT ms", "TPOT ms", "tok/s/GPU", "tok/s/user",
                 "concurrency", "batch limit", "KV free", "data"):
        t.add_column(name, justify="right" if name not in ("backend", "deployment", "data", "batch limit") else "left")
    if cals:
        t.add_column(f"{_coverage(cals):.0%} interval TTFT / TPOT ms")
    if sims is not None:
        calibrated = any(x.calibrated for x in sims.values())
        t.add_column("sim TTFT / TPOT / tok/s/GPU @ concurrency (calibrated mean)" if calibrated else
                     "sim mean TTFT / TPOT / tok/s/GPU @ concurrency" + (" (uncalibrated)" if cals else ""))
    for i, c in enumerate(cands, 1):
        _row(t, i, c, sims, cals, model)
    return t


def _coverage(cals) -> float:
    return next((q.coverage for cal in cals.values() for q in cal.intervals), 0.8)


def render(result, sims, save_dir, written) -> None:
    from rich.console import Console

    from search.types import SlaAt

    con = Console(highlight=False, width=None if sys.stdout.isatty() else 190)
    req = result.request
    versions = ", ".join(f"{b.value} {v or 'roofline-only'}" for b, v in result.versions.items())
    con.print(f"[bold]servecast plan[/] {req.model} on {req.total_gpus}x {req.system} ({versions}); "
              f"ISL {req.isl}, OSL {req.osl}, prefix {req.prefix}; targets TTFT <= {req.sla.ttft_ms:g} ms, "
              f"TPOT <= {req.sla.tpot_ms:g} ms" + (f", request latency <= {req.sla.request_latency_ms:g} ms"
                                                    if req.sla.request_latency_ms else "")
              + (f" at the upper end of the {_coverage(result.calibrations):.0%} interval"
                 if req.sla.at == SlaAt.UPPER else ""))
    cals = result.calibrations
    if cals:
        con.print("[bold]calibrated[/]: TTFT/TPOT of every point corrected by calibration " +
                  ", ".join(f"{cal.id} ({b.value})" for b, cal in cals.items()) +
                  " before the targets were checked; intervals from its cross-validated residuals")
    pts = result.points
    con.print(f"evaluated {result.points_evaluated:,} points ({len(pts):,} deployments + "
              f"{result.worker_points:,} prefill/decode worker points); {int(pts['meets_sla'].sum()):,} meet every target")
    for mode, cands in result.top.items():
        if cands:
            con.print(_table(f"{mode.value}: top {len(cands)} meeting the targets", cands, sims, cals,
                             (result.model.name, result.system.name)))
        else:
            con.print(f"{mode.value}: no configuration meets the targets")
    if len(req.backends) > 1:
        from search.decide import load_tokens
        ranked = sorted(result.per_backend.values(), key=lambda c: -load_tokens(c, sims))
        if ranked:
            con.print(_table("best per backend", ranked, sims, cals, (result.model.name, result.system.name)))
        missing = [b.value for b in req.backends if b not in result.per_backend]
        if missing:
            con.print(f"no configuration meets the targets with: {', '.join(missing)}")
    if result.winner is None:
        _render_miss(con, result)
    else:
        _render_winner(con, result)
    if save_dir is not None:
        con.print(f"wrote {save_dir}/points.parquet, points.csv, pareto.png, plan.json and "
                  f"{len(written or {})} artifact directories under {save_dir}/top/")


def _render_winner(con, result) -> None:
    from search.decide import load_label, static_label

    w, sims = result.winner, result.sims
    other = "disagg" if w.mode.value == "agg" else "agg"
    extra = f", {result.speedup:.2f}x the best {other}" if result.speedup else ""
    sim = sims.get(w.row)
    if sim is None:   # --no-simulate: the static ranking decided
        con.print(f"[bold green]winner[/]: {w.mode.value} {w.backend.value} {w.label()} - "
                  f"{w.metrics.tokens_per_s_per_gpu:.1f} tok/s/GPU at {w.metrics.tokens_per_s_per_user:.1f} tok/s/user, "
                  f"concurrency {w.metrics.concurrency:.0f}{extra} (static estimate; no simulation)")
        return
    con.print(f"[bold green]winner[/]: {w.mode.value} {w.backend.value} {w.label()} - simulated "
              f"{sim.tokens_per_s_per_gpu:.1f} tok/s/GPU, TTFT {sim.ttft_ms:,.0f} ms, TPOT {sim.tpot_ms:.2f} ms "
              f"({sim.statistic}) {load_label(result, sim)}{extra}; {static_label(w)}")
    for mode, cands in result.top.items():
        s = sims.get(cands[0].row) if cands else None
        if s is not None and s.parts is not None:
            con.print(f"  {mode.value} pick {cands[0].label()} at {s.concurrency:,.0f} clients: raw simulated mean "
                      f"TTFT = {s.parts.shares()} ms")
    sw = result.static_winner
    if sw is not None and sw.row != w.row:
        con.print(f"  the static estimate alone would have picked {sw.mode.value} {sw.label()} ({static_label(sw)})")
    if result.why:
        con.print(f"[bold]why[/]: {result.why}")


def _render_miss(con, result) -> None:
    from search.points import MODES
    from search.types import SlaAt

    d = result.diagnosis
    req = result.request
    upper = req.sla.at == SlaAt.UPPER
    if d is None:   # static points met the targets, none of their simulated replays did (the why line says more)
        con.print("[bold red]no configuration meets every target under load[/] (the simulator's replay of the "
                  "statically feasible candidates); try --no-simulate for the static ranking, or relax the targets")
        return
    con.print(f"[bold red]no configuration meets every target[/] (TTFT <= {req.sla.ttft_ms:g} ms, "
              f"TPOT <= {req.sla.tpot_ms:g} ms{', request latency' if req.sla.request_latency_ms else ''}"
              f"{' at the upper end of the interval' if upper else ''}); binding constraint: [bold]{d.binding.value}[/]")
    con.print("feasible points meeting each target alone: " +
              ", ".join(f"{k.value} {v:,}" for k, v in d.meeting_each.items()) + f" (of {d.feasible_points:,})")
    if d.closest_rows:
        closest = [result.points.candidate(r) for r in d.closest_rows]
        con.print(_table("closest points (none meets the targets)", closest, None, result.calibrations,
                         (result.model.name, result.system.name)))
        modes = {MODES[int(result.points['mode'][r])].value for r in d.closest_rows}
        con.print(f"relax --{d.binding.value}, add GPUs, or try another backend ({', '.join(sorted(modes))} shown)"
                  + ("; or check the medians with --sla-at median" if upper else ""))
