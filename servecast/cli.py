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

# typer >= 0.29 vendors click as typer._click; its exception classes are what a parse raises
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

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
    # The callback carries --version, and keeps the app a group when only one command is registered
    # (typer runs a lone command as the program itself otherwise).
    app.callback()(_root)
    for register in (GROUPS.values() if only is None else (GROUPS[only],)):
        register(app)
    return app


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"servecast {version('servecast')}")
        except PackageNotFoundError:   # run from a source tree that was never installed
            typer.echo("servecast (not installed: no version recorded)")
        raise typer.Exit(0)


def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the servecast version and exit")) -> None:
    """Measure GPU kernels, estimate LLM serving performance, and plan deployments."""


def _named_command(argv: list[str]) -> str | None:
    return argv[0] if argv and argv[0] in GROUPS else None


def __getattr__(name: str):
    if name == "app":   # the full app, built once on first access
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_error(exc: UsageError) -> str:
    """click's usage error (missing or unknown option, bad value) as one line naming the command and where
    its accepted options are listed, instead of typer's multi-line box."""
    where = exc.ctx.command_path if exc.ctx is not None else "servecast"
    return f"error: {where}: {_one_line(exc.format_message())} (accepted options: {where} --help)"


def run(argv: list[str]) -> int:
    """Run the CLI on `argv` (without the program name) in this process; returns the exit status. Usage
    errors and library errors (`ServecastError`) are printed as one `error:` line on stderr."""
    command = _named_command(argv)
    try:
        cli = typer.main.get_command(build_app(command))
        rv = cli.main(args=list(argv), prog_name="servecast", standalone_mode=False)
    except NoArgsIsHelpError as exc:   # a group without a command: its help, as before
        exc.show()
        return exc.exit_code
    except UsageError as exc:
        typer.echo(_usage_error(exc), err=True)
        return exc.exit_code
    except ClickException as exc:   # e.g. a file option click could not open
        typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except ServecastError as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


def main() -> None:
    """Entry point of the console script."""
    if _named_command(sys.argv[1:]) == "plan" and "numpy" not in sys.modules:
        # plan's arrays are element-wise (no large matrix products): OpenBLAS's worker threads only
        # cost start-up time (~0.03 CPU s). An explicit setting by the user wins.
        import os

        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
