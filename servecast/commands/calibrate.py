"""`servecast calibrate`: ingest benchmark results, fit corrections, validate them, show an artifact."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Ingest real benchmark runs, fit corrections to the estimator, validate them with "
                       "cross-validated error bars.", no_args_is_help=True)


def _register_enrich() -> None:
    from servecast.commands import calibrate_enrich

    app.command("enrich")(calibrate_enrich.enrich_cmd)


@app.command("ingest")
def ingest_cmd(
    results: Annotated[list[Path], typer.Argument(help="result files or directories (aiperf, genai-perf, vllm bench serve, "
                                                   "SGLang bench_serving, InferenceX rows, silicon CSV)")],
    out: Annotated[Path, typer.Option("--out", help="measured-run table to write (Parquet)")],
    deployment: Annotated[Path, typer.Option("--deployment", help="deployment spec (YAML/JSON, e.g. from "
                                                                "`servecast plan --save-dir`)")] = None,
    model: Annotated[str, typer.Option(help="deployed model (overrides the spec)")] = None,
    system: Annotated[str, typer.Option(help="system id, e.g. h200_sxm")] = None,
    backend: Annotated[str, typer.Option(help="trtllm | sglang | vllm")] = None,
    version: Annotated[str, typer.Option(help="backend version")] = None,
    mode: Annotated[str, typer.Option(help="agg | disagg")] = None,
    agg: Annotated[str, typer.Option(help="agg parallelism, e.g. 'tp=2,ep=1,workers=1'")] = None,
    prefill: Annotated[str, typer.Option(help="disagg prefill pool, e.g. 'tp=4,ep=4,workers=2'")] = None,
    decode: Annotated[str, typer.Option(help="disagg decode pool, e.g. 'tp=8,ep=8,workers=1'")] = None,
    precision: Annotated[str, typer.Option(help="headline precision, e.g. fp8")] = None,
    fmt: Annotated[str, typer.Option("--format", help="force a parser: aiperf-json, aiperf-csv, aiperf-jsonl, "
                                                   "genai-perf-json, vllm, sglang, inferencex, silicon-csv")] = None,
    concurrency: Annotated[float, typer.Option(help="configured concurrency, for files that do not record it (aiperf CSV/JSONL)")] = None,
    request_rate: Annotated[float, typer.Option(help="configured request rate (req/s), for files that do not record it")] = None,
    append: Annotated[bool, typer.Option(help="add to an existing --out table instead of replacing it")] = False,
) -> None:
    """Read benchmark-client result files into the canonical measured-run table (all files or nothing).

    Example: servecast calibrate ingest artifacts/ --deployment plan/deployment.yaml --out runs.parquet

    Example: servecast calibrate ingest vllm.json --model Qwen/Qwen3-32B --system h200_sxm --backend vllm --mode agg --agg tp=2 --out runs.parquet
    """
    from rich.console import Console

    from calibrate.deployment import DeploymentFlags, resolve
    from calibrate.ingest import LoadOverride, ingest
    from calibrate.parsers import Format
    from perfdb.types import parse_enum

    flags = DeploymentFlags(model=model, system=system, backend=backend, version=version, mode=mode, agg=agg,
                            prefill=prefill, decode=decode, precision=precision)
    dep = resolve(deployment, flags)
    table = ingest(results, out, dep, parse_enum(Format, fmt, "format") if fmt else None,
                   LoadOverride(concurrency=concurrency, request_rate=request_rate), append=append)
    clients = sorted(set(table.column("client").to_pylist()))
    deployments = len(set(table.column("deployment_key").to_pylist()))
    Console().print(f"{table.num_rows} runs ({deployments} deployments; {', '.join(clients)}) -> {out}")


def _progress(base: str, predictions: Path | None):
    """The simulator's progress bar where it predicts the runs (the slow base); else no callback."""
    from servecast.progress import simulating_runs

    return simulating_runs(base == "simulate" and predictions is None)


def _frame(runs: Path, db: Path | None, predictions: Path | None, base: str, statistic: str):
    """Measured runs joined to predictions (servecast.api.predicted_runs), with the progress bar."""
    from servecast.api import predicted_runs
    from servecast.hfcache import hub_cache

    with _progress(base, predictions) as progress:
        return predicted_runs(runs, db=db, predictions=predictions, base=base, statistic=statistic,
                              hf_hub=hub_cache(), progress=progress)


def _error_rich_table(table, title: str):
    from rich.table import Table

    t = Table("metric", "group", "n", "median |err| %", "mean |err| %", "p90 |err| %", "bias %", "stage", title=title)
    for _, r in table.iterrows():
        label = r["group"] if r["grouping"] == "all" else f"{r['grouping']}={r['group']}"
        t.add_row(r["metric"], label, str(r["n"]), f"{r['median_abs_pct']:.1f}", f"{r['mean_abs_pct']:.1f}",
                  f"{r['p90_abs_pct']:.1f}", f"{r['bias_pct']:+.1f}", r["stage"])
    return t


_RUNS_HELP = "measured-run table (.parquet from `calibrate ingest`) or a silicon CSV / InferenceX rows file"


@app.command("fit")
def fit_cmd(
    runs: Annotated[Path, typer.Argument(help=_RUNS_HELP)],
    out: Annotated[Path, typer.Option("--out", help="directory; the artifact goes to <out>/<content hash>/")],
    db: Annotated[Path, typer.Option(help="perfdb directory (default: the bundled database)")] = None,
    predictions: Annotated[Path, typer.Option(help="reuse predictions from `servecast estimate --from-runs` "
                                                   "instead of predicting")] = None,
    base: Annotated[str, typer.Option(help="simulate (the simulator's replay of each run, what `plan` decides on; "
                                           "the default) | estimate (the static estimate: seconds, not minutes)")
                    ] = "simulate",
    statistic: Annotated[str, typer.Option(help="client statistic to fit: mean | p50 | p90 | p99")] = "mean",
    folds: Annotated[int, typer.Option(help="cross-validation folds, grouped by deployment")] = 5,
    residual: Annotated[str, typer.Option(help="residual model on load features: gbm | linear | none")] = "gbm",
    min_rows: Annotated[int, typer.Option(help="rows a scope needs for its own factor")] = 1,
    min_deployments: Annotated[int, typer.Option(help="deployments a scope needs for its own factor")] = 1,
    shrink_ttft: Annotated[float, typer.Option(help="prior weight of the wider scope for TTFT, in deployments: a "
                                                    "scope's own median counts d/(d+shrink); 0 = its own median "
                                                    "(default 8)")] = None,
    shrink_tpot: Annotated[float, typer.Option(help="the same for TPOT (default 2)")] = None,
    clip: Annotated[float, typer.Option(help="how far (natural log) one run may pull its scope's factor from "
                                             "the wider scope's; 0 = no limit (default log 2 = 0.69)")] = None,
    rel_weight_ttft: Annotated[float, typer.Option(help="TTFT residual trees weight each run by predicted / "
                                                        "measured, bounded to exp(+-this); 0 = unweighted "
                                                        "(default 0.5)")] = None,
    loss: Annotated[str, typer.Option(help="residual trees' loss in log space: absolute_error | huber | "
                                           "squared_error")] = "absolute_error",
    plot: Annotated[str, typer.Option(help="predicted-vs-measured PNG (cross-validated); none by default")] = "",
) -> None:
    """Fit corrections (per-scope factors + residual model) with grouped cross-validation; store the artifact.

    Example: servecast calibrate fit runs.parquet --db ./aicdb --out calibrations/

    Example: servecast calibrate fit ../shared/data/e2e_train_silicon.csv --predictions pred.csv --out cal/ --plot cal.png
    """
    from rich.console import Console

    from calibrate.fit import FitOptions
    from servecast.api import fit
    from servecast.hfcache import hub_cache

    tuned = dict(shrink_ttft=shrink_ttft, shrink_tpot=shrink_tpot, clip=clip, rel_weight_ttft=rel_weight_ttft)
    opts = FitOptions(folds=folds, residual=residual, min_rows=min_rows, min_deployments=min_deployments, loss=loss,
                      **{k: v for k, v in tuned.items() if v is not None})   # before predicting: bad ones fail at once
    with _progress(base, predictions) as progress:
        fitted = fit(runs, out=out, db=db, predictions=predictions, base=base, statistic=statistic, options=opts,
                     plot=plot or None, hf_hub=hub_cache(), progress=progress)
    console = Console()
    _report_fit(console, fitted.result, folds)
    console.print(f"calibration {fitted.calibration.id} -> {fitted.path}")


def _report_fit(console, result, folds: int) -> None:
    """What `calibrate fit` prints: CV before/after, held-out errors, fallbacks, unused rows."""
    from calibrate.validate import error_table

    table = error_table(result.rows, {m: (f"measured_{m}", f"pred_{m}", f"cv_{m}") for m in ("ttft", "tpot")})
    console.print(_error_rich_table(table[table["grouping"].isin(["all", "mode"])],
                                    f"{folds}-fold CV grouped by deployment: before vs after"))
    _print_held_out(console, result.rows, result.calibration)
    notes = result.calibration.notes
    if notes:
        console.print(f"{len(notes)} scope fallbacks, e.g.: " + "; ".join(notes[:3]))
    _print_not_used(console, result.excluded)


def _print_not_used(console, excluded) -> None:
    """The rows neither fitted nor scored, by reason (no prediction, no measurement, a cold server ...)."""
    if len(excluded):
        reasons = excluded["status"].str.slice(0, 60).value_counts().head(4)
        console.print(f"{len(excluded)} rows not used: " + "; ".join(f"{n} x {s}" for s, n in reasons.items()))


def _print_held_out(console, rows, cal) -> None:
    """Per held-out protocol: calibrated error and nested 80% interval coverage; what reaches unseen pairs."""
    console.print(_coverage_rich_table(rows))
    _print_reach(console, cal)


def _print_reach(console, cal) -> None:
    for r in cal.reach:
        if r.with_pct is not None:
            console.print(f"{r.metric} {r.part} -> unseen {r.novelty}: {'applied' if r.applied else 'withheld'} "
                          f"(held out {r.with_pct:.1f}% with, {r.without_pct:.1f}% without, {r.n_rows} rows)")


def _coverage_rich_table(rows):
    from rich.table import Table

    from calibrate.validate import coverage_table

    t = Table("protocol", "metric", "mode", "n", "median |err| %", "80% interval covers",
              title="held out (each row calibrated by a fit without it; nested intervals)")
    for _, r in coverage_table(rows).iterrows():
        t.add_row(r["protocol"], r["metric"], r["mode"], str(r["n"]), f"{r['median_abs_pct']:.1f}",
                  f"{r['coverage']:.1%}")
    return t


def _novelty_rich_table(rows, cal):
    from rich.table import Table

    from calibrate.validate import novelty_coverage

    t = Table("metric", "novelty to the calibration", "n", "median |err| %", "80% interval covers",
              title=f"held-out rows by how new they are to calibration {cal.id}")
    for _, r in novelty_coverage(rows, cal).iterrows():
        t.add_row(r["metric"], r["novelty"], str(r["n"]), f"{r['median_abs_pct']:.1f}", f"{r['coverage']:.1%}")
    return t


@app.command("validate")
def validate_cmd(
    runs: Annotated[Path, typer.Argument(help=_RUNS_HELP)],
    calibration: Annotated[Path, typer.Option(help="fitted calibration (directory or calibration.json), or "
                                                   "`stored`: the newest in the database's calibrations/ (the "
                                                   "bundled database ships one); without it, the runs are "
                                                   "cross-validated by fitting on the others")] = None,
    db: Annotated[Path, typer.Option(help="perfdb directory (default: the bundled database)")] = None,
    predictions: Annotated[Path, typer.Option(help="predictions CSV from `servecast estimate --from-runs`")] = None,
    base: Annotated[str, typer.Option(help="simulate | estimate (default: the calibration's; without one, "
                                           "simulate)")] = None,
    statistic: Annotated[str, typer.Option(help="mean | p50 | p90 | p99")] = "mean",
    folds: Annotated[int, typer.Option(help="folds when cross-validating (no --calibration)")] = 5,
    max_error: Annotated[float, typer.Option(help="exit 1 if the calibrated median |error| % of TTFT or TPOT "
                                                  "exceeds this")] = None,
    plot: Annotated[str, typer.Option(help="predicted-vs-measured PNG ('' disables)")] = "calibration_validate.png",
    as_json: Annotated[bool, typer.Option("--json", help="print the error table as JSON")] = False,
) -> None:
    """Error of predictions vs measurements (median/mean/p90 |%|, bias) overall and by backend, mode and load
    band, before and after calibration, on rows not used for fitting.

    Example: servecast calibrate validate heldout.parquet --calibration calibrations/<id> --db ./aicdb --max-error 25

    Example: servecast calibrate validate ../shared/data/e2e_train_silicon.csv --predictions pred.csv

    Example: servecast calibrate validate my_runs.csv --calibration stored   (the bundled database's calibration)
    """
    from rich.console import Console

    from calibrate.validate import error_table

    _check_validate_flags(max_error, plot)
    chosen = None
    if calibration is not None:   # before predicting: a missing or ambiguous one is a one-line error at once
        from calibrate import store

        chosen = store.read(_stored(db, base or "simulate") if str(calibration) == "stored" else calibration)
    base = base or (chosen[0].base if chosen is not None else "simulate")
    frame = _frame(runs, db, predictions, base, statistic)
    console = Console()
    rows, after, title = _validated_rows(frame, chosen, folds, base, console)
    table = error_table(rows, {m: (f"measured_{m}", f"pred_{m}", f"{after}{m}") for m in ("ttft", "tpot")})
    if as_json:
        typer.echo(table.to_json(orient="records", indent=1))
    else:
        console.print(_error_rich_table(table, title))
        if chosen is None:   # cross-validated: every protocol's error and interval coverage
            console.print(_coverage_rich_table(rows))
        else:                # against a calibration: by how new each run is to it
            console.print(_novelty_rich_table(rows, chosen[0]))
        _print_not_used(console, frame[frame["status"] != "ok"])
    if plot:  # a str, not a Path: Path("") is "." and would be written as ".png"
        from calibrate.plot import predicted_vs_measured

        predicted_vs_measured(rows, after, Path(plot), title)
        console.print(f"plot -> {plot}")
    if max_error is not None:
        _gate(table, max_error, console)


def _check_validate_flags(max_error: float | None, plot: str) -> None:
    from perfdb.errors import InputError

    if max_error is not None and not max_error > 0:
        raise InputError(f"--max-error {max_error:g}: must be a median |error| in % above 0, e.g. 25")
    if plot:
        from perfdb.userfiles import check_out_png

        check_out_png(plot, "--plot")


def _validated_rows(frame, chosen, folds: int, base: str, console):
    """(rows, prefix of the held-out predictions, title): against the chosen calibration, or grouped CV."""
    if chosen is not None:
        return _held_out(frame, *chosen, base, console)
    from calibrate.fit import FitOptions
    from calibrate.train import train

    rows = train(frame, FitOptions(folds=folds), base).rows
    return rows, "cv_", f"{folds}-fold cross-validation grouped by deployment"


def _gate(table, max_error: float, console) -> None:
    """--max-error: exit 1 when the calibrated median |error| of TTFT or TPOT is above it."""
    from calibrate.validate import worst_median

    failed = {m: v for m, v in worst_median(table).items() if v > max_error}
    if failed:
        console.print(f"[red]median |error| above {max_error}%:[/red] " +
                      ", ".join(f"{m} {v:.1f}%" for m, v in failed.items()))
        raise typer.Exit(1)


def _stored(db: Path | None, base: str) -> Path:
    """For `--calibration stored`: the newest calibration fitted on `base` in the calibrations/ folder of
    --db (or of the bundled database, which ships one per base)."""
    from estimator.calibration_files import find
    from perfdb.errors import InputError
    from perfdb.lookup import BUNDLED_ROOT

    root = BUNDLED_ROOT if db is None else Path(db)
    folder = root / "calibrations"
    if not folder.is_dir():
        raise InputError(f"--calibration stored: {folder} does not exist; fit one with `servecast calibrate fit "
                         f"RUNS --out {folder}`")
    found = find(root, "", "", base)
    if found is None:
        raise InputError(f"--calibration stored: {folder} holds no calibration fitted with --base {base}; fit one "
                         f"with `servecast calibrate fit RUNS --base {base} --out {folder}`")
    return found


def _held_out(frame, cal, directory: Path, base: str, console):
    """Rows the calibration was not fitted on, with the calibration applied."""
    import pandas as pd

    from calibrate.predict import apply_calibration
    from perfdb.errors import InputError

    if cal.base != base:
        raise InputError(f"{directory}: calibration {cal.id} was fitted with --base {cal.base}, the runs were "
                         f"predicted with --base {base}; pass --base {cal.base}")
    trained = directory / "training_rows.parquet"
    if trained.exists():
        seen = set(pd.read_parquet(trained, columns=["run_id"])["run_id"])
        overlap = frame["run_id"].isin(seen)
        if overlap.any():
            console.print(f"{int(overlap.sum())} rows were used to fit {cal.id}: left out of this report")
            frame = frame[~overlap]
    rows = apply_calibration(frame, cal)
    rows = rows[rows["status"] == "ok"]
    if rows.empty:
        raise InputError(f"no held-out row can be evaluated with calibration {cal.id}")
    return rows, "cal_", f"held-out rows, calibration {cal.id}"


@app.command("show")
def show_cmd(
    calibration: Annotated[Path, typer.Argument(help="calibration directory, its parent, or calibration.json")],
    as_json: Annotated[bool, typer.Option("--json", help="print the artifact JSON")] = False,
) -> None:
    """Print a calibration: scope factors, interval quantiles, fallbacks and its cross-validated errors.
    Given a folder of several (a database's calibrations/; the bundled one holds one per base), each.

    Example: servecast calibrate show calibrations/
    """
    from rich.console import Console

    from calibrate import store

    found = store.read_all(calibration)
    if as_json:   # one object, or an array of them for a folder of several
        texts = [cal.to_json() for cal, _ in found]
        typer.echo(texts[0] if len(texts) == 1 else "[\n" + ",\n".join(texts) + "\n]")
        return
    console = Console()
    for cal, directory in found:
        _show_one(console, cal, directory)


def _show_one(console, cal, directory: Path) -> None:
    import math

    from rich.table import Table

    tr = cal.training
    console.print(f"calibration {cal.id} ({directory}); base: {cal.base}, statistic: {cal.statistic}; "
                  f"{tr.get('rows')} rows from {tr.get('deployments')} deployments")
    t = Table("metric", "scope (system/backend/version/mode/model weight-bits)", "factor", "rows", "deployments",
              title="scope factors")
    for f in sorted(cal.factors, key=lambda f: (f.metric, f.scope.width, f.scope.label())):
        t.add_row(f.metric, f.scope.label(), f"x{math.exp(f.log_factor):.3f}", str(f.n_rows), str(f.n_deployments))
    console.print(t)
    q = Table("metric", "mode", "novelty", "coverage", "low", "high", "rows", title="prediction intervals (x calibrated)")
    for i in cal.intervals:
        q.add_row(i.metric, i.mode, i.novelty, f"{i.coverage:.0%}",
                  f"x{math.exp(i.lo):.3f}", f"x{math.exp(i.hi):.3f}", str(i.n_rows))
    console.print(q)
    for m in ("ttft", "tpot"):
        b, a = tr.get(f"{m}_before"), tr.get(f"{m}_after_cv")
        if b and a:
            console.print(f"{m}: median |error| {b['median_abs_pct']:.1f}% uncalibrated -> {a['median_abs_pct']:.1f}% "
                          f"calibrated (cross-validated); interval coverage {tr.get(f'{m}_interval_coverage_cv', 0):.1%}")
        for what, key in (("model", "leave_one_model_out"), ("system", "leave_one_system_out")):
            if f"{m}_after_{key}" in tr:
                console.print(f"{m}: on a {what} it never saw {tr[f'{m}_after_{key}']['median_abs_pct']:.1f}%; "
                              f"interval coverage {tr.get(f'{m}_interval_coverage_{key}', 0):.1%}")
    _print_reach(console, cal)
    for n in cal.notes[:20]:
        console.print(f"  note: {n}")
    if len(cal.notes) > 20:
        console.print(f"  ... {len(cal.notes) - 20} more notes (--json shows all)")


_register_enrich()
