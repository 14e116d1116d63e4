"""`servecast db import-aic`: convert an AIConfigurator performance database into a servecast one."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _render(report, elapsed_s: float) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("target", "AIC table", "op", "read", "imported", "dropped", title="imported AIConfigurator tables")
    reasons = Counter()
    for r in sorted((r for r in report.tables if r.op), key=lambda r: (r.system, r.backend.value, r.aic_table)):
        family, _backend, aic_version, name = r.aic_table.split("/")[2:6]
        label = f"{family}/{name.removesuffix('_perf.parquet')}" + ("" if aic_version == r.version else f"@{aic_version}")
        dropped = sum(n for _, n in r.skipped)
        reasons.update(dict(r.skipped))
        table.add_row(f"{r.system}/{r.backend.value}/{r.version}", label, r.op.value, f"{r.rows_read:,}",
                      f"{r.rows_imported:,}", f"{dropped:,}" if dropped else "-")
    console.print(table)
    for reason, n in sorted(reasons.items()):
        console.print(f"dropped {n:,} rows: {reason}")
    files, rows = Counter(), Counter()
    for r in report.tables:
        if r.op is None:
            name = r.aic_table.rsplit("/", 1)[-1].removesuffix(".parquet")
            files[name] += 1
            rows[name] += r.rows_read
    if files:
        skipped = Table("AIC table", "files", "rows", title="skipped tables (no servecast op family)")
        for name in sorted(files):
            skipped.add_row(name, str(files[name]), f"{rows[name]:,}")
        console.print(skipped)
    written = Table("target", "op", "rows", "duplicates merged", title="servecast tables written")
    for w in report.written:
        written.add_row(f"{w.key.system}/{w.key.backend.value}/{w.key.version}", w.key.op.value, f"{w.rows:,}",
                        f"{w.duplicates_merged:,}")
    console.print(written)
    if report.skipped_systems:
        console.print(f"skipped AIC systems without a servecast system spec: {', '.join(report.skipped_systems)}")
    console.print(f"imported {report.rows_written:,} rows from {report.collector_version} in {elapsed_s:.1f} s")


def register(app: typer.Typer) -> None:
    @app.command("import-aic")
    def import_aic_cmd(
        source: Annotated[Path, typer.Argument(help="AIConfigurator `aiconfigurator_core/systems` folder, the unpacked "
                                                    "package root, or the aiconfigurator_core wheel (.whl).")],
        out: Annotated[Path, typer.Option("--out", help="servecast database directory to write (created if missing).")],
        system: Annotated[str | None, typer.Option("--system", help="Import one system only (e.g. h200_sxm); default: "
                                                                    "every AIC system that has a servecast system spec.")] = None,
        backend: Annotated[list[str] | None, typer.Option("--backend", help="trtllm, sglang or vllm; repeatable; default all.")] = None,
        version: Annotated[str, typer.Option("--version", help="'current' (AIC's current version per backend, older "
                                                               "tables back-filled), 'all', or an exact version.")] = "current",
    ) -> None:
        """Import an AIConfigurator (aiconfigurator-core) kernel database into a servecast database.

        GEMM, context/generation attention and MLA, MoE, NCCL, custom all-reduce and MoE all-to-all tables
        are converted (with sol_ms on the servecast system spec); other tables are skipped and listed.
        Re-running replaces the earlier import's rows.

        Example: servecast db import-aic /tmp/aic/aiconfigurator_core-0.12.0-cp311-abi3-manylinux_2_28_x86_64.whl
        --out ./aicdb --system h200_sxm   (get the wheel with: pip download --no-deps aiconfigurator-core==0.12.0 -d /tmp/aic)
        """
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from perfdb.importers import import_aic
        from perfdb.types import Backend, parse_enum

        backends = tuple(parse_enum(Backend, b, "backend") for b in backend) if backend else None
        start = time.perf_counter()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      transient=True) as bar:
            task = bar.add_task("reading AIC tables", total=None)
            report = import_aic(source, out, system=system, backends=backends, version=version,
                                on_plan=lambda n: bar.update(task, total=n),
                                progress=lambda name: bar.update(task, advance=1, description=name.split("/", 2)[-1]))
        _render(report, time.perf_counter() - start)
