"""`servecast plan`: not built yet (see the issue tracker)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("plan", help="[not built yet] exits non-zero.", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def _not_built() -> None:
        typer.echo("servecast plan: not built yet", err=True)
        raise typer.Exit(3)
