"""Options converted without pydantic give the same values and the same errors as typer's own path,
and `servecast plan` imports neither pydantic nor the other command groups."""
from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from servecast import fast_options
from servecast.cli import build_app


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def show(n: int = typer.Option(8), x: float = typer.Option(1.5), s: str = typer.Option(None),
             flag: bool = typer.Option(True, "--flag/--no-flag")) -> None:
        typer.echo(f"{n!r} {x!r} {s!r} {flag!r}")

    return app


VALUES = [[], ["--n", "12"], ["--n", "-3"], ["--x", "16.67"], ["--x", "1e3"], ["--x", ".5"], ["--x", "nan"],
          ["--x", "1_000"], ["--n", " 5"], ["--n", "4.0"], ["--n", "abc"], ["--x", "fast"], ["--s", "Qwen/Qwen3-8B"],
          ["--no-flag"], ["--n", ""]]


def _run_with_typer_only(args: list[str]) -> tuple[int, str]:
    """The same command through typer's unpatched coercion (a fresh interpreter)."""
    code = ("import typer, sys; from typer.testing import CliRunner; sys.path.insert(0, '.');"
            "from tests.servecast.test_fast_options import _app;"
            f"r = CliRunner().invoke(_app(), {args!r}); print(r.exit_code); print(r.output, end='')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    first, _, rest = out.partition("\n")
    return int(first), rest


def test_same_values_and_errors_as_typer():
    assert fast_options.install()
    for args in VALUES:
        r = CliRunner().invoke(_app(), args)
        assert (r.exit_code, r.output) == _run_with_typer_only(args), args


def test_plan_imports_no_pydantic_and_no_other_group():
    code = ("import sys; sys.argv = ['servecast', 'plan', '--help'];"
            "from servecast.cli import main\ntry:\n main()\nexcept SystemExit:\n pass\n"
            "bad = [m for m in ('pydantic', 'servecast.commands.estimate', 'servecast.commands.collect', "
            "'servecast.commands.db', 'servecast.commands.calibrate', 'servecast.commands.simulate', 'matplotlib', "
            "'pandas') if m in sys.modules]; print('LOADED', bad, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in proc.stderr


@pytest.mark.parametrize("args", [["plan", "--help"], ["db", "--help"], ["db", "ls", "--help"], ["estimate", "--help"],
                                  ["collect", "run", "--help"], ["calibrate", "fit", "--help"], ["simulate", "--help"],
                                  ["plan", "--bogus"], ["db", "nope"]])
def test_lazy_app_prints_what_the_full_app_prints(args):
    lazy = CliRunner().invoke(build_app(args[0]), args)
    full = CliRunner().invoke(build_app(), args)
    assert (lazy.exit_code, lazy.output) == (full.exit_code, full.output)
    assert f"servecast {args[0]}" in lazy.output
