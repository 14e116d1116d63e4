"""Rebuild the bundled default database (perfdb/bundled/): efficiency curves fitted from the kernel
tables of aiconfigurator-core 0.12.0, for every servecast system spec, with provenance in meta.yaml.

    python scripts/build_bundled_db.py                      # pip-downloads the wheel itself
    python scripts/build_bundled_db.py --aic /tmp/aic/pkg   # or a wheel / unpacked package / systems folder

Steps: import every system that has a servecast spec (`servecast db import-aic`, current versions)
into a temporary database; fit curves per (system, op family, dtype, backend) from its rows
(perfdb.efficiency_fit); fit an elementwise (memory-bound) curve from AIC's quantize/scale_matrix
tables, the only plain streaming kernel AIC measures; copy curves into systems lacking a family/dtype
from the closest system; write efficiency.parquet + meta.yaml. Deterministic: same input, same bytes.
No AIC row is copied into the bundle, only the fitted knots.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from perfdb.efficiency import ANY_BACKEND, FILENAME
from perfdb.efficiency_fit import CurveFit, fill_from_closest, fit_db, fit_knots, to_table
from perfdb.importers import import_aic, open_aic_source
from perfdb.specs import SystemSpec, list_systems, load_system
from perfdb.storage import atomic_write_bytes, init_db
from perfdb.types import Dtype, OpKind

PACKAGE_SPEC = "aiconfigurator-core==0.12.0"
BUNDLED = Path(__file__).resolve().parents[1] / "perfdb" / "bundled"


def download(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE_SPEC, "-d", str(dest)], check=True)
    return sorted(dest.glob("aiconfigurator_core-*.whl"))[-1]


def supported(spec: SystemSpec, kind: str, dtype: str) -> bool:
    """Copy a curve into a system only for formats its tensor cores run natively."""
    if dtype in (Dtype.FP8.value, Dtype.FP8_BLOCK.value):
        return spec.gpu.fp8_dense_flops > 0
    if dtype == Dtype.NVFP4.value:
        return spec.gpu.fp4_dense_flops > 0
    return True


def elementwise_fits(aic: Path, specs: dict[str, SystemSpec]) -> list[CurveFit]:
    """Memory-bound streaming curve from quantize/scale_matrix (read bf16 m x k, write fp8 m x k)."""
    fits = []
    with open_aic_source(aic) as source:
        for system, spec in sorted(specs.items()):
            if system not in source.systems():
                continue
            tables = [t for t in source.tables(system) if t.name == "scale_matrix_perf"]
            if not tables:
                continue
            frame = pd.concat([pq.read_table(t.path, columns=["m", "k", "latency"]).to_pandas() for t in tables])
            sol = frame["m"].to_numpy(float) * frame["k"].to_numpy(float) * 3.0 / spec.gpu.mem_bw_bytes_per_s * 1e3
            knots = fit_knots(sol, frame["latency"].to_numpy(float))
            if knots is not None:
                rels = tuple(sorted(t.rel(source.systems_dir) for t in tables))
                fits.append(CurveFit(system, OpKind.ELEMENTWISE.value, Dtype.BF16.value, ANY_BACKEND, "",
                                     tuple(knots[0].round(6)), tuple(knots[1].round(6)), len(frame), system, rels))
    return fits


def meta_doc(source_file: Path | None, version: str, fits: list[CurveFit], imports: dict) -> dict:
    digest = hashlib.sha256(source_file.read_bytes()).hexdigest() if source_file and source_file.is_file() else None
    return {
        "format": "servecast-efficiency-curves",
        "source": {"package": "aiconfigurator-core", "version": version, "wheel": source_file.name if source_file else None,
                   "sha256": digest, "note": "kernel tables only (systems/data/*); no end-to-end file is read"},
        "fit": {"x": "log10(sol_ms)", "y": "util = sol_ms / latency_ms", "bin_decades": 0.2, "util_cap": 1.5,
                "smoothing": "binned medians, weighted isotonic (non-decreasing)",
                "regimes": "compute families: group '' pools every row; groups 'mem' / 'compute' hold the rows "
                           "whose own shape is memory- / compute-bound on the roofline (perfdb.roofline.intensity_ratio < 0 / >= 0)",
                "comm": "fastest kernel per message; groups <op>/<num_gpus>/<transport>; '' = all-reduce over NVLink pooled"},
        "imports": imports,
        "curves": [{"system": f.system, "kind": f.kind, "dtype": f.dtype, "backend": f.backend, "group": f.group,
                    "source_system": f.source_system, "rows": f.rows, "knots": len(f.xs), "tables": list(f.tables)}
                   for f in sorted(fits, key=lambda f: f.key)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aic", type=Path, help="aiconfigurator-core wheel, unpacked package or systems folder "
                                                 "(default: pip download " + PACKAGE_SPEC + ")")
    parser.add_argument("--out", type=Path, default=BUNDLED, help="bundled database directory to write")
    args = parser.parse_args()
    specs = {s: load_system(s) for s in list_systems() if load_system(s).gpu.sm_version > 0}
    with tempfile.TemporaryDirectory(prefix="servecast-bundle-") as tmp:
        aic = args.aic or download(Path(tmp) / "wheel")
        wheel = aic if aic.is_file() else None
        start = time.perf_counter()
        report = import_aic(aic, Path(tmp) / "db")
        version = report.collector_version.split(" ", 1)[1]
        imports: dict[str, list[str]] = {}
        for r in report.tables:
            if r.op is not None:
                imports.setdefault(f"{r.system}/{r.backend.value}/{r.version}", []).append(r.aic_table)
        print(f"imported {report.rows_written:,} rows ({time.perf_counter() - start:.0f} s)")
        fits = fit_db(Path(tmp) / "db", tuple(sorted(specs)))
        fits += elementwise_fits(aic, specs)
        fits = fill_from_closest(fits, specs, supported)
    out = init_db(args.out)
    buf = pq_bytes(to_table(fits))
    atomic_write_bytes(out / FILENAME, buf)
    atomic_write_bytes(out / "meta.yaml", yaml.safe_dump(meta_doc(wheel, version, fits, {k: sorted(v) for k, v in sorted(imports.items())}),
                                                         sort_keys=False).encode())
    copied = sum(1 for f in fits if f.source_system != f.system)
    print(f"wrote {len(fits)} curves ({copied} copied from the closest system), {len(buf) / 1024:.0f} KiB, "
          f"to {out / FILENAME} in {time.perf_counter() - start:.0f} s")


def pq_bytes(table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
