"""`servecast db import-aic`: not built yet."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("import-aic", help="[not built yet] exits non-zero.")
    def _not_built() -> None:
        typer.echo("servecast db import-aic: not built yet", err=True)
        raise typer.Exit(3)
