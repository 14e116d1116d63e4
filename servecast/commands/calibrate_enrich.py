"""`servecast calibrate enrich`: the deployments and benchmark protocol behind run-table rows, recovered
from the public InferenceX configs (calibrate/enrich.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def enrich_cmd(
    runs: Annotated[Path, typer.Argument(help="run table in the e2e_train_silicon.csv layout")],
    out: Annotated[Path, typer.Option("--out", help="enriched table to write (CSV; .csv.gz compressed)")],
    inferencex: Annotated[Path, typer.Option("--inferencex", help="clone of github.com/SemiAnalysisAI/InferenceX "
                                                                 "(bare git dir, checkout, or a plain snapshot)")] = None,
    facts: Annotated[Path, typer.Option(help="instead of --inferencex: facts from an earlier --columns-only run, "
                                             "e.g. the committed calibrate/data/e2e_train_enrichment.csv.gz")] = None,
    srt_slurm: Annotated[Path, typer.Option("--srt-slurm", help="with --inferencex: clone of github.com/NVIDIA/"
                                                              "srt-slurm (formerly ishandhanani/srt-slurm), whose "
                                                              "recipes launched the multi-node runs")] = None,
    dynamo: Annotated[Path, typer.Option("--dynamo", help="with --inferencex: clone of github.com/ai-dynamo/dynamo "
                                                         "(or a fork holding the commits the runs checked out), "
                                                         "whose launch files ran the multi-node runs before "
                                                         "2026-01-28")] = None,
    columns_only: Annotated[bool, typer.Option(help="write only id, the filled worker counts and the enrichment "
                                                    "columns (the derived facts, e.g. to commit)")] = False,
) -> None:
    """Recover each run's deployment and benchmark protocol from the public InferenceX configs at the commit in
    effect when it was measured: worker counts, speculative decoding, engine flags and environment, client protocol, provenance.
    With --srt-slurm, the multi-node runs also get what their srt-slurm recipes and sa-bench client state;
    with --dynamo, those before 2026-01-28 what their Dynamo launch files state. Rows that record one
    measured run twice (same point, the same TTFT and TPOT to 12 digits) get what all their candidates allow.

    Example: servecast calibrate enrich ../shared/data/e2e_train_silicon.csv --inferencex ./InferenceX --srt-slurm ./srt-slurm --out enriched.csv

    Example: servecast calibrate enrich ../shared/data/e2e_train_silicon.csv --facts calibrate/data/e2e_train_enrichment.csv.gz --out enriched.csv
    """
    from rich.console import Console

    from calibrate.enrich import enrich, write
    from perfdb.errors import InputError

    if (inferencex is None) == (facts is None):
        raise InputError("give exactly one of --inferencex DIR (a clone of SemiAnalysisAI/InferenceX) or --facts FILE")
    for name, given in (("--srt-slurm", srt_slurm), ("--dynamo", dynamo)):
        if given is not None and inferencex is None:
            raise InputError(f"{name} DIR needs --inferencex DIR (the runs are matched to their recipes through "
                             "InferenceX's configs)")
    text, report = enrich(runs, inferencex, columns_only=columns_only, facts=facts, srt_slurm=srt_slurm,
                          dynamo=dynamo)
    write(text, out)
    _print_enrich_report(Console(), report)
    if not columns_only:   # a facts file is not a run table: its rows are counted when a table is enriched from it
        _print_set_aside(text, out)
    typer.echo(f"{sum(report.rows.values())} runs -> {out}")


def _print_set_aside(text: str, out: Path) -> None:
    """How many of the enriched runs (`text`, the table written to `out`) the comparisons will set aside, and
    why (estimator.set_aside: measured on a cold server, or of a deployment the row does not pin down)."""
    from estimator.runs import parse_runs
    from estimator.set_aside import cold_start, unknown_deployment

    cold = unknown = 0
    for r in parse_runs(text, out):   # as set_aside orders them: a cold start is said first
        if cold_start(r):
            cold += 1
        elif unknown_deployment(r):
            unknown += 1
    if cold:
        typer.echo(f"{cold} runs measured on a cold server (no warm-up prompts, on an engine that warms only "
                   "decode shapes at start): predicted, but fit, validate and the benchmarks set them aside "
                   "(estimator.set_aside.cold_start)")
    if unknown:
        typer.echo(f"{unknown} runs whose configs list their point both with and without speculative decoding: "
                   "predicted, but fit, validate and the benchmarks set them aside (estimator.set_aside.unknown_deployment)")


def _print_enrich_report(console, report) -> None:
    from rich.table import Table

    from estimator.run_facts import COLUMNS

    sources = sorted(report.rows, key=lambda s: (-report.rows[s], s))
    main = [s for s in sources if "/" not in s][:4]
    other = [s for s in sources if s not in main]
    t = Table("field", *[f"{s} ({report.rows[s]})" for s in main],
              f"other files ({sum(report.rows[s] for s in other)})", title="rows that got each field")
    for name in ("prefill_num_workers", "decode_num_workers", *COLUMNS):
        got = report.fields.get(name, {})
        t.add_row(name, *[str(got.get(s, 0)) for s in main], str(sum(got.get(s, 0) for s in other)))
    console.print(t)
    console.print("status: " + ", ".join(f"{k} {v}" for k, v in report.status.most_common()))
    console.print("spec decoding: " + ", ".join(f"{k} {v}" for k, v in report.spec.most_common()))
    if report.twins:
        typer.echo(f"{report.twins} rows recording a measurement another row records too: given the facts they agree on "
                   "(calibrate/twins.py)")
    for reason, n in report.reasons.most_common(6):
        console.print(f"  {n} x {reason}")
