"""The `servecast` console script: one typer app, one module per command group under commands/.

Heavy libraries (pandas, matplotlib, torch) are imported inside commands, not here, so that
`servecast plan` starts fast. Errors from the library (`ServecastError`) are printed on one line
with a non-zero exit and no traceback; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys

import typer

from perfdb.errors import ServecastError
from servecast.commands import calibrate, collect, db, estimate, plan, simulate

app = typer.Typer(
    name="servecast",
    help="Measure GPU kernels, estimate LLM serving performance, and plan deployments that meet TTFT/TPOT targets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(collect.app, name="collect")
app.add_typer(db.app, name="db")
app.add_typer(calibrate.app, name="calibrate")
estimate.register(app)
plan.register(app)
simulate.register(app)


def main() -> None:
    """Entry point: typer handles usage errors itself (exit 2); library errors become one line here."""
    try:
        app()
    except ServecastError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
