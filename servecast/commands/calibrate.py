"""`servecast calibrate`: not built yet (see the issue tracker)."""
from __future__ import annotations

import typer

app = typer.Typer(help="[not built yet] exits non-zero.", no_args_is_help=False, invoke_without_command=True)


@app.callback()
def _not_built() -> None:
    typer.echo("servecast calibrate: not built yet", err=True)
    raise typer.Exit(3)
