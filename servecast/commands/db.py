"""`servecast db`: inspect, validate, compact and import performance databases."""
from __future__ import annotations

import typer

app = typer.Typer(help="Inspect, validate, compact and import performance databases.", no_args_is_help=True)


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
_register_import()
