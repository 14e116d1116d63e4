"""`servecast db`: inspect, validate, compact and import performance databases."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Inspect, validate, compact and import performance databases.", no_args_is_help=True)

DB_HELP = "Database directory (default: the bundled database shipped with servecast)."
DbOpt = Annotated[Path | None, typer.Option("--db", help=DB_HELP)]


def _root(db: Path | None) -> Path:
    from perfdb.errors import DataError
    from perfdb.lookup import BUNDLED_ROOT
    from perfdb.storage import require_db

    if db is None:
        if not BUNDLED_ROOT.is_dir():
            raise DataError(f"the bundled database is not built ({BUNDLED_ROOT} is missing); pass --db DIR")
        return require_db(BUNDLED_ROOT)
    return require_db(db)


def _console():
    from rich.console import Console

    return Console()


def _op(op: str | None):
    from perfdb.types import OpKind, parse_enum

    return parse_enum(OpKind, op, "op family") if op else None


def _register_import() -> None:
    from servecast.commands import db_import

    db_import.register(app)


@app.command("systems")
def systems() -> None:
    """List the bundled system specs (GPU peaks, memory, interconnect).

    Example: servecast db systems
    """
    from rich.console import Console
    from rich.table import Table

    from perfdb.specs import list_systems, load_system

    table = Table("system", "gpu", "HBM GiB", "HBM TB/s", "BF16 TFLOP/s", "FP8 TFLOP/s", "FP4 TFLOP/s", "GPUs/node")
    for name in list_systems():
        s = load_system(name)
        g = s.gpu
        table.add_row(name, g.name, f"{g.mem_bytes / 2**30:.0f}", f"{g.mem_bw_bytes_per_s / 1e12:.2f}",
                      f"{g.bf16_dense_flops / 1e12:,.0f}", f"{g.fp8_dense_flops / 1e12:,.0f}",
                      f"{g.fp4_dense_flops / 1e12:,.0f}", str(s.gpus_per_node))
    Console().print(table)


@app.command("info")
def info(db: DbOpt = None) -> None:
    """Summarise a database: versions, tables, rows, efficiency curves, leftover temp files.

    Example: servecast db info --db /tmp/aicdb
    """
    from perfdb.dbinfo import db_info
    from perfdb.kernels import shared_shape_lines
    from perfdb.lookup import PerfDB
    from perfdb.prior import missing_priors
    from perfdb.served import served_flow_lines

    d = db_info(_root(db))
    pdb = PerfDB(d.root)
    con = _console()
    con.print(f"[bold]{d.root}[/bold]  format {d.format_version}  {len(d.tables)} tables  {d.rows:,} rows  "
              f"efficiency curves: {'yes' if d.has_efficiency_curves else 'no'}")
    for system, backend, version, meta in d.meta:
        tables = [t for t in d.tables if (t.key.system, t.key.backend.value, t.key.version) == (system, backend, version)]
        ops = ", ".join(f"{t.key.op.value} ({t.rows:,})" for t in tables)
        con.print(f"  {system}/{backend}/{version}: {ops}" + (f"  meta: {', '.join(sorted(meta))}" if meta else ""))
        for path in missing_priors(meta, d.root):   # its sparse tables are served by their points alone
            con.print(f"    [yellow]prior database missing:[/yellow] {path} (collected with it; served without it)")
        kinds = {t.key.op for t in tables}
        for line in (*served_flow_lines(pdb, system, backend, version, kinds),
                     *shared_shape_lines(d.root, system, backend, version, kinds)):
            con.print(f"    {line}")
    if d.stray_temp_files:
        con.print(f"  {len(d.stray_temp_files)} temp file(s) from interrupted writers (ignored by readers), "
                  f"e.g. {d.stray_temp_files[0]}")


@app.command("ls")
def ls(db: DbOpt = None,
       system: Annotated[str | None, typer.Option("--system", help="Only this system, e.g. h200_sxm.")] = None,
       backend: Annotated[str | None, typer.Option("--backend", help="Only this backend: trtllm, sglang, vllm, torch.")] = None,
       version: Annotated[str | None, typer.Option("--version", help="Only this backend version.")] = None,
       op: Annotated[str | None, typer.Option("--op", help="Only this op family, e.g. gemm.")] = None) -> None:
    """List tables: one line per (system, backend, version, op family) with rows, shards and size.

    Example: servecast db ls --db /tmp/aicdb --system h200_sxm --op gemm
    """
    from rich.table import Table

    from perfdb.dbinfo import list_table_infos

    infos = list_table_infos(_root(db), system, backend, version, _op(op) and op)
    table = Table("system", "backend", "version", "op", "rows", "shards", "MiB")
    for t in infos:
        table.add_row(t.key.system, t.key.backend.value, t.key.version, t.key.op.value, f"{t.rows:,}",
                      str(t.shards), f"{t.bytes / 2**20:.2f}")
    _console().print(table)


@app.command("query")
def query(db: DbOpt = None,
          where: Annotated[list[str] | None, typer.Option("--where", "-w",
                                          help="Filter COLUMN OP VALUE (OP: = != >= <= > <; '=' takes a comma "
                                               "list). Repeat to AND. op=<family> selects op families.")] = None,
          op: Annotated[str | None, typer.Option("--op", help="Op family (same as --where op=FAMILY).")] = None,
          columns: Annotated[str | None, typer.Option("--columns", help="Comma-separated columns to keep.")] = None,
          limit: Annotated[int | None, typer.Option("--limit", help="At most this many rows.")] = None,
          fmt: Annotated[str, typer.Option("--format", help="table, csv, json or parquet (parquet needs --out).")] = "table",
          out: Annotated[Path | None, typer.Option("--out", help="Write to this file (atomically) instead of the terminal.")] = None) -> None:
    """Query rows with filters; print a table or write CSV / JSON / Parquet.

    Example: servecast db query --db /tmp/aicdb --where op=gemm --where dtype=fp8 --where m>=128 --format csv --out fp8.csv
    """
    import sys

    from perfdb.errors import InputError
    from perfdb.query import Filter, Format, render_bytes, write_result
    from perfdb.query import query as run_query
    from perfdb.types import parse_enum

    form = parse_enum(Format, fmt, "--format")
    filters = [Filter.parse(w) for w in where or []]
    from servecast import lists

    cols = lists.items(columns) or None
    result = run_query(_root(db), filters, _op(op), cols, limit)
    if out is not None:
        if form == Format.TABLE:
            raise InputError("--out needs --format csv, json or parquet")
        write_result(result, form, out)
        typer.echo(f"wrote {result.num_rows:,} rows to {out}", err=True)
    elif form == Format.PARQUET:
        raise InputError("--format parquet needs --out FILE")
    elif form == Format.TABLE:
        _print_table(result)
    else:
        sys.stdout.buffer.write(render_bytes(result, form))


def _print_table(result, shown: int = 50) -> None:
    from rich.table import Table

    table = Table(*result.column_names)
    for row in result.slice(0, shown).to_pylist():
        table.add_row(*("" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.values()))
    con = _console()
    con.print(table)
    if result.num_rows > shown:
        con.print(f"{result.num_rows:,} rows; first {shown} shown (use --format csv/json/parquet --out FILE for all)")


@app.command("validate")
def validate(db: DbOpt = None,
             system: Annotated[str | None, typer.Option("--system", help="Only this system.")] = None,
             op: Annotated[str | None, typer.Option("--op", help="Only this op family.")] = None,
             show: Annotated[int, typer.Option("--show", help="Rejected rows to print (all are counted).")] = 20) -> None:
    """Check schemas and REFERENCE.md sanity bounds; list rejected rows and why. Exit 1 when any. Imported rows
    beyond a bound, and cases stored more than once, are warnings (exit 0).

    Example: servecast db validate --db /tmp/aicdb --system h200_sxm
    """
    from collections import Counter

    from perfdb.validate import validate_db

    report = validate_db(_root(db), system, _op(op))
    con = _console()
    con.print(f"checked {report.tables} tables, {report.shards} shards, {report.rows:,} rows: "
              f"{len(report.rejections):,} rejected, {len(report.warnings):,} warnings")
    for label, found in (("warning", report.warnings), ("rejected", report.rejections)):
        tables = Counter(("/".join(r.shard.parts[-5:-1]), r.reason.split(" (also in ")[0]) for r in found)
        for (table, reason), count in tables.most_common():
            con.print(f"  {label}: {table}: {count:,} x {reason}", soft_wrap=True)
    for r in report.rejections[:show]:
        con.print(f"  {r.shard}" + (f" row {r.row}" if r.row is not None else "") + f": {r.reason}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@app.command("compact")
def compact(db: Annotated[Path, typer.Option("--db", help="Database directory (the bundled one is read-only).")],
            system: Annotated[str | None, typer.Option("--system", help="Only this system.")] = None,
            op: Annotated[str | None, typer.Option("--op", help="Only this op family.")] = None) -> None:
    """Merge each table's shards into one and drop duplicate cases (newest collected_at wins).

    Example: servecast db compact --db ./mydb
    """
    from perfdb.compact import compact_db

    results = compact_db(_root(db), system, _op(op) and op)
    con = _console()
    for r in results:
        k = r.key
        what = f"{r.shards_before} shards, {r.rows_before:,} -> {r.rows_after:,} rows" if r.new_shard else "already compact"
        stale = f"; removed {r.stale_temp_removed} temp file(s) of killed writers" if r.stale_temp_removed else ""
        con.print(f"{k.system}/{k.backend.value}/{k.version}/{k.op.value}: {what}{stale}")


@app.command("check-interp")
def check_interp(op: Annotated[str, typer.Option("--op", help="Op family, e.g. gemm, attention_prefill, attention_decode.")],
                 system: Annotated[str, typer.Option("--system", help="System, e.g. h200_sxm.")],
                 backend: Annotated[str, typer.Option("--backend", help="Backend: trtllm, sglang, vllm, torch.")],
                 db: DbOpt = None,
                 version: Annotated[str | None, typer.Option("--version", help="Backend version (default: the newest).")] = None,
                 sample: Annotated[int, typer.Option("--sample", help="Rows to predict, drawn at random (seeded).")] = 2000,
                 seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0) -> None:
    """Leave-one-out accuracy of the lookup ladder: predict stored rows from the others.

    Example: servecast db check-interp --db /tmp/aicdb --op gemm --system h200_sxm --backend trtllm
    """
    from rich.table import Table

    from perfdb.checkinterp import check_interp as run
    from perfdb.lookup import PerfDB
    from perfdb.types import Backend, OpKind, parse_enum

    perf = PerfDB(_root(db) if db is not None else None)
    view = perf.view(system, parse_enum(Backend, backend, "backend"), version)
    report = run(view, parse_enum(OpKind, op, "op family"), sample=sample, seed=seed)   # required: '' is an error
    con = _console()
    sampled = "all rows" if report.sampled >= report.table_rows else f"a seeded sample of {report.sampled:,} (seed {seed})"
    con.print(f"{report.system}/{report.backend}/{report.version} {report.op.value}: {report.table_rows:,} rows, "
              f"leave-one-out over {sampled}")
    table = Table("op", "dtype", "rows", "median rel err", "p90 rel err", "answered by")
    for a in report.results:
        table.add_row(a.op.value, a.dtype, f"{a.rows:,}", f"{a.median_rel_err:.2%}", f"{a.p90_rel_err:.2%}",
                      ", ".join(f"{s.value} {n}" for s, n in a.sources))
    con.print(table)


_register_import()
