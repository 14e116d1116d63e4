"""The `servecast` console script: one typer app, one module per command group under commands/.

Heavy libraries (pandas, matplotlib, torch) are imported inside commands, not here, so that
`servecast plan` starts fast. Errors from the library (`ServecastError`) are printed on one line
with a non-zero exit and no traceback; any other exception is a bug and keeps its traceback.

Lazy registration: the console script imports and registers only the command group named on the
command line (`servecast plan ...` imports servecast.commands.plan and nothing else); with no
command, an option first (`servecast --help`) or an unknown name it registers all of them, so the
top-level help and typer's "No such command" are what they always were. `servecast.cli.app` (used
by the tests and by anyone embedding the CLI) is the full app, built on first access.
"""
from __future__ import annotations

import sys

import typer

from perfdb.errors import ServecastError
from servecast import fast_options

HELP = "Measure GPU kernels, estimate LLM serving performance, and plan deployments that meet TTFT/TPOT targets."


def _collect(app: typer.Typer) -> None:
    from servecast.commands import collect

    app.add_typer(collect.app, name="collect")


def _db(app: typer.Typer) -> None:
    from servecast.commands import db

    app.add_typer(db.app, name="db")


def _calibrate(app: typer.Typer) -> None:
    from servecast.commands import calibrate

    app.add_typer(calibrate.app, name="calibrate")


def _estimate(app: typer.Typer) -> None:
    from servecast.commands import estimate

    estimate.register(app)


def _plan(app: typer.Typer) -> None:
    from servecast.commands import plan

    plan.register(app)


def _simulate(app: typer.Typer) -> None:
    from servecast.commands import simulate

    simulate.register(app)


# In the order `servecast --help` lists them.
GROUPS = {"collect": _collect, "db": _db, "calibrate": _calibrate, "estimate": _estimate, "plan": _plan,
          "simulate": _simulate}


def build_app(only: str | None = None) -> typer.Typer:
    """The typer app with every command group, or with just `only` (a key of GROUPS)."""
    fast_options.install()
    app = typer.Typer(name="servecast", help=HELP, no_args_is_help=True, pretty_exceptions_enable=False,
                      add_completion=False)
    if only is None:
        for register in GROUPS.values():
            register(app)
    else:
        # A callback keeps the app a group: typer runs a lone command as the program itself otherwise.
        app.callback()(lambda: None)
        GROUPS[only](app)
    return app


def _named_command(argv: list[str]) -> str | None:
    return argv[0] if argv and argv[0] in GROUPS else None


def __getattr__(name: str):
    if name == "app":   # the full app, built once on first access
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point: typer handles usage errors itself (exit 2); library errors become one line here."""
    command = _named_command(sys.argv[1:])
    if command == "plan" and "numpy" not in sys.modules:
        # plan's arrays are element-wise (no large matrix products): OpenBLAS's worker threads only
        # cost start-up time (~0.03 CPU s). An explicit setting by the user wins.
        import os

        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        build_app(command)()
    except ServecastError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
