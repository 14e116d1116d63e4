"""`servecast plan`: the best aggregated and disaggregated deployments under TTFT/TPOT targets.

Thin: parse flags, call search.plan, render with rich, write files. The Pareto PNG is drawn by a
helper process started first (PngHelper), so that its matplotlib import overlaps with the search on
the second core; the command waits for it before exiting.
"""
from __future__ import annotations

import sys
from pathlib import Path

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

_WRITER = "from servecast.commands.plan import writer_main; writer_main()"


def _draw_from(stream, errors) -> None:
    """Import matplotlib (while the parent searches), then draw the job that arrives (a pickle).
    A failure to write the file goes to `errors` as one line for the parent's message."""
    import pickle

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    from search.plot import write_pareto_png

    try:
        job = pickle.load(stream)
    except EOFError:   # the parent stopped early (an error it reports itself)
        return
    try:
        write_pareto_png(job["pareto"], Path(job["save_dir"]) / "pareto.png")
    except (OSError, ValueError, RuntimeError) as exc:
        errors.write(f"{type(exc).__name__}: {exc}")
        errors.flush()
        raise SystemExit(1) from None


def writer_main() -> None:
    """Entry point of the helper when it runs as a fresh interpreter (platforms without fork)."""
    _draw_from(sys.stdin.buffer, sys.stderr)


class PngHelper:
    """The helper process that draws pareto.png. On Linux it is a fork of this process taken before
    the search imports anything heavy (no threads yet, nothing to re-import but matplotlib);
    elsewhere a fresh interpreter. Either way it runs on the other core while the search runs."""

    def __init__(self):
        import os

        self.code = None
        if sys.platform.startswith("linux"):
            r, w = os.pipe()
            er, ew = os.pipe()
            pid = os.fork()
            if pid == 0:   # the helper: never returns into the CLI
                os.close(w)
                os.close(er)
                code = 1
                try:
                    with os.fdopen(r, "rb") as fh, os.fdopen(ew, "w") as errors:
                        _draw_from(fh, errors)
                    code = 0
                except SystemExit as exc:
                    code = int(exc.code or 0)
                finally:   # anything unexpected keeps its traceback (a bug), then exits non-zero
                    if code and sys.exc_info()[0] not in (None, SystemExit):
                        import traceback

                        traceback.print_exc()
                    os._exit(code)
            os.close(r)
            os.close(ew)
            self.pid, self.proc, self.pipe, self.errors = pid, None, os.fdopen(w, "wb"), os.fdopen(er, "r")
        else:
            import subprocess

            self.proc = subprocess.Popen([sys.executable, "-c", _WRITER], stdin=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=False)
            self.pid, self.pipe, self.errors = None, self.proc.stdin, None

    def _wait(self) -> int:
        import os

        if self.code is None:
            self.code = self.proc.wait() if self.proc is not None else \
                os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.code

    def send(self, job: dict) -> None:
        import pickle

        try:
            self.pipe.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
            self.pipe.close()
        except BrokenPipeError:
            pass

    def wait(self) -> None:
        from perfdb.errors import DataError

        if self._wait() != 0:
            text = self.errors.read() if self.errors is not None else self.proc.stderr.read().decode(errors="replace")
            raise DataError(f"drawing pareto.png failed: {text.strip().splitlines()[-1] if text.strip() else 'see above'}")

    def abort(self) -> None:
        try:
            self.pipe.close()
        except OSError:
            pass
        self._wait()


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
        ttft: float = typer.Option(..., help="time-to-first-token target, ms"),
        tpot: float = typer.Option(..., help="time-per-output-token target, ms"),
        request_latency: float = typer.Option(None, "--request-latency", help="end-to-end latency target, ms (optional)"),
        mode: str = typer.Option("both", help="agg, disagg or both"),
        top_n: int = typer.Option(5, "--top-n", help="configurations shown (and written) per mode"),
        save_dir: str = typer.Option(None, "--save-dir", help="write points, pareto.png and artifacts here"),
        db: str = typer.Option(None, help="perfdb directory (default: the bundled database)"),
        calibration: str = typer.Option(None, help="calibration artifact from `servecast calibrate fit`"),
        version: str = typer.Option(None, help="backend version in the database (default: newest)"),
        gemm_quant: str = typer.Option(None, "--gemm-quant", help="override dense GEMM numerics: bf16, fp8, fp8_block, nvfp4, ..."),
        moe_quant: str = typer.Option(None, "--moe-quant", help="override expert numerics, e.g. nvfp4 for an FP4 checkpoint"),
        kv_dtype: str = typer.Option(None, "--kv-dtype", help="KV-cache dtype (default: the checkpoint's), e.g. fp8"),
        simulate: bool = typer.Option(True, "--simulate/--no-simulate",
                                      help="replay the best of each mode in the discrete-event simulator at its "
                                           "predicted concurrency (shown beside the static TTFT/TPOT)"),
    ) -> None:
        helper = PngHelper() if save_dir is not None else None
        try:
            code = _run(locals(), helper)
        finally:
            if helper is not None:
                helper.abort()
        raise typer.Exit(code)


def _run(a: dict, helper) -> int:
    from perfdb.lookup import PerfDB
    from search.plan import plan

    req = _request(a)
    db = PerfDB(a["db"])
    result = plan(req, db)
    out = Path(a["save_dir"]) if a["save_dir"] is not None else None
    if out is not None:   # the helper draws while this process simulates and writes the rest
        from search.outputs import pareto_data

        out.mkdir(parents=True, exist_ok=True)
        helper.send({"save_dir": str(out), "pareto": pareto_data(result)})
    sims = None
    if a["simulate"] and result.winner is not None:
        from search.simcheck import simulate_top

        sims = simulate_top(result, db)
    written = None
    if out is not None:
        from search.outputs import write_artifacts

        written = write_artifacts(result, out)
        result.points.write(out)
    render(result, sims, a["save_dir"], written)
    if helper is not None:
        helper.wait()
    return 0 if result.winner is not None else 1


def _request(a: dict):
    from perfdb.errors import InputError, NotFoundError
    from perfdb.types import Backend, Dtype, parse_enum
    from search.types import Mode, PlanRequest, Sla

    if a["backend"] == "all":
        backends = (Backend.TRTLLM, Backend.SGLANG, Backend.VLLM)
    elif a["backend"] in ("trtllm", "sglang", "vllm"):
        backends = (Backend(a["backend"]),)
    else:
        raise InputError(f"unknown backend {a['backend']!r}; accepted: trtllm, sglang, vllm, all")
    if a["calibration"] is not None:
        if not Path(a["calibration"]).is_file():
            raise NotFoundError(f"calibration file {a['calibration']} does not exist")
        raise InputError("--calibration: applying a calibration needs the estimator's calibration support, "
                         "which this build does not have yet; run without --calibration")
    quant = {k: parse_enum(Dtype, a[k], k.replace("_", "-")) if a[k] else None for k in ("gemm_quant", "moe_quant", "kv_dtype")}
    return PlanRequest(
        model=a["model"], system=a["system"], backends=backends, total_gpus=a["total_gpus"], isl=a["isl"],
        osl=a["osl"], prefix=a["prefix"], sla=Sla(a["ttft"], a["tpot"], a["request_latency"]),
        mode=parse_enum(Mode, a["mode"], "mode"), top_n=a["top_n"], version=a["version"],
        db_root=a["db"], calibration=a["calibration"], **quant)


# ---- rendering -------------------------------------------------------------------------------------
def _row(table, rank: int, c, sim=None, artifacts: str | None = None) -> None:
    m = c.metrics
    cells = [str(rank), c.backend.value, c.label(), str(c.gpus_used), f"{m.ttft_ms:.0f}", f"{m.tpot_ms:.2f}",
             f"{m.tokens_per_s_per_gpu:.1f}", f"{m.tokens_per_s_per_user:.1f}", f"{m.concurrency:.0f}",
             _batch(c), f"{m.mem_headroom:.0%}", _source(m)]
    if sim is not None:
        got = sim.get(c.row)
        cells.append("-" if got is None else f"{got.ttft_ms:.0f} / {got.tpot_ms:.2f}" + ("" if got.meets_sla else " (misses)"))
    table.add_row(*cells)


def _source(m) -> str:
    """Worst kernel-data source, with the share of kernel time that is not from measured rows."""
    if m.estimated_share <= 0.0 or m.estimated_share >= 0.995:
        return m.source.value
    return f"{m.source.value} ({m.estimated_share:.0%} of time)"


def _batch(c) -> str:
    if c.prefill is None:
        return f"{c.decode.max_batch} @ {c.decode.max_num_tokens} tok"
    return f"P{c.prefill.max_batch} / D{c.decode.max_batch}"


def _table(title: str, cands, sims):
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold")
    for name in ("#", "backend", "deployment", "GPUs", "TTFT ms", "TPOT ms", "tok/s/GPU", "tok/s/user",
                 "concurrency", "batch limit", "KV free", "data"):
        t.add_column(name, justify="right" if name not in ("backend", "deployment", "data", "batch limit") else "left")
    if sims is not None:
        t.add_column("sim p50 TTFT / TPOT")
    for i, c in enumerate(cands, 1):
        _row(t, i, c, sims)
    return t


def render(result, sims, save_dir, written) -> None:
    from rich.console import Console

    con = Console(highlight=False, width=None if sys.stdout.isatty() else 190)
    req = result.request
    versions = ", ".join(f"{b.value} {v or 'roofline-only'}" for b, v in result.versions.items())
    con.print(f"[bold]servecast plan[/] {req.model} on {req.total_gpus}x {req.system} ({versions}); "
              f"ISL {req.isl}, OSL {req.osl}, prefix {req.prefix}; targets TTFT <= {req.sla.ttft_ms:g} ms, "
              f"TPOT <= {req.sla.tpot_ms:g} ms" + (f", request latency <= {req.sla.request_latency_ms:g} ms"
                                                    if req.sla.request_latency_ms else ""))
    pts = result.points
    con.print(f"evaluated {result.points_evaluated:,} points ({len(pts):,} deployments + "
              f"{result.worker_points:,} prefill/decode worker points); {int(pts['meets_sla'].sum()):,} meet every target")
    for mode, cands in result.top.items():
        if cands:
            con.print(_table(f"{mode.value}: top {len(cands)} meeting the targets", cands, sims))
        else:
            con.print(f"{mode.value}: no configuration meets the targets")
    if len(req.backends) > 1:
        ranked = sorted(result.per_backend.values(), key=lambda c: -c.metrics.tokens_per_s_per_gpu)
        if ranked:
            con.print(_table("best per backend", ranked, sims))
        missing = [b.value for b in req.backends if b not in result.per_backend]
        if missing:
            con.print(f"no configuration meets the targets with: {', '.join(missing)}")
    if result.winner is None:
        _render_miss(con, result)
    else:
        w = result.winner
        extra = f", {result.speedup:.2f}x the best {'disagg' if w.mode.value == 'agg' else 'agg'}" if result.speedup else ""
        con.print(f"[bold green]winner[/]: {w.mode.value} {w.backend.value} {w.label()} - "
                  f"{w.metrics.tokens_per_s_per_gpu:.1f} tok/s/GPU at {w.metrics.tokens_per_s_per_user:.1f} tok/s/user, "
                  f"concurrency {w.metrics.concurrency:.0f}{extra}")
    if save_dir is not None:
        con.print(f"wrote {save_dir}/points.parquet, points.csv, pareto.png, plan.json and "
                  f"{len(written or {})} artifact directories under {save_dir}/top/")


def _render_miss(con, result) -> None:
    from search.points import MODES

    d = result.diagnosis
    req = result.request
    con.print(f"[bold red]no configuration meets every target[/] (TTFT <= {req.sla.ttft_ms:g} ms, "
              f"TPOT <= {req.sla.tpot_ms:g} ms{', request latency' if req.sla.request_latency_ms else ''}); "
              f"binding constraint: [bold]{d.binding.value}[/]")
    con.print("feasible points meeting each target alone: " +
              ", ".join(f"{k.value} {v:,}" for k, v in d.meeting_each.items()) + f" (of {d.feasible_points:,})")
    if d.closest_rows:
        closest = [result.points.candidate(r) for r in d.closest_rows]
        con.print(_table("closest points (none meets the targets)", closest, None))
        modes = {MODES[int(result.points['mode'][r])].value for r in d.closest_rows}
        con.print(f"relax --{d.binding.value}, add GPUs, or try another backend ({', '.join(sorted(modes))} shown)")
