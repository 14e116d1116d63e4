"""Leave-one-out interpolation error of the imported module tables (dsa_module_* with DeepSeek-V3.2 /
GLM-5 geometry, msa_module_* with MiniMax-M3's, mhc_module and dsv4_module_* with DeepSeek-V4's), per
backend, phase and architecture, every row predicted (or a seeded sample with --sample): the ladder and protocol of `servecast db
check-interp` (perfdb.checkinterp.loo_predict).

`formats`: each row against the median of the rows of its shape measured with the other gemm_type
values (bf16 / fp8_block / nvfp4), median / p90: the projection format changes only the GEMM share of
a block, so where that share is small (decode, short prefill) rows far apart here are scatter in the
table itself, which no interpolant of neighbours can beat.

`neighbour`: each interior row against the straight line (log latency over log length) through its two
neighbours along the sequence axis (seq_len in prefill, kv_len in decode; num_tokens for mHC), every
other key and axis equal, median / p90: the crudest interpolant; on a smooth table it reads a few percent
(curvature), on a noisy one it reads the noise.

`pieces`: what servecast priced the same block at before the module tables were imported: the sum of
the module's parts (perfdb.ops.sparse_module: projection GEMMs and BMMs from the same database's GEMM
table, the indexer + top-k attention from its roofline rung) against the measured module: median / p90
|error| and the median ratio pieces / measured (below 1: the pieces priced the block too fast).

    servecast db import-aic /tmp/aic/pkg/aiconfigurator_core/systems --out /tmp/aicdb --system h200_sxm
    python scripts/bench_interp_modules.py /tmp/aicdb h200_sxm
    python scripts/bench_interp_modules.py /tmp/aicdb h200_sxm --family msa --sample 2000
    python scripts/bench_interp_modules.py /tmp/aicdb b200_sxm --family mhc
    python scripts/bench_interp_modules.py /tmp/aicdb b200_sxm --family dsv4 --sample 2000
"""
from __future__ import annotations

import argparse

import numpy as np

from perfdb.checkinterp import loo_predict
from perfdb.family import make_case
from perfdb.lookup import PerfDB
from perfdb.types import Backend, OpKind

# by op family and hidden size (perfdb.importers.aic_module: DSA_GEOMETRY, MSA_GEOMETRY)
ARCH = {("dsa", 7168): "V3.2", ("dsa", 6144): "GLM-5", ("msa", 6144): "M3", ("mhc", 4096): "V4-F",
        ("mhc", 7168): "V4-Pro", ("dsv4", 4096): "V4-F", ("dsv4", 7168): "V4-Pro"}
OPS = (OpKind.DSA_MODULE_PREFILL, OpKind.DSA_MODULE_DECODE, OpKind.MSA_MODULE_PREFILL, OpKind.MSA_MODULE_DECODE,
       OpKind.MHC_MODULE, OpKind.DSV4_MODULE_PREFILL, OpKind.DSV4_MODULE_DECODE)
SEQ_AXIS = ("seq_len", "kv_len", "num_tokens")


def _pct(e: np.ndarray) -> str:
    return f"{np.median(e) * 100:5.2f}% / {np.percentile(e, 90) * 100:5.2f}%"


def pieces_ms(view, fam, rows: np.ndarray) -> np.ndarray:
    """Sum of the parts' ladder latencies for each row (the estimator's path without module tables)."""
    out = np.full(len(rows), np.nan)
    for combo, members in fam.groups.items():
        sel = np.flatnonzero(np.isin(rows, members))
        if not sel.size:
            continue
        numeric = {a: fam.raw[rows[sel], j] for j, a in enumerate(fam.axes)}
        case = make_case(fam.kind, combo, numeric)
        if not hasattr(case, "parts"):   # not a sum of servecast ops (mHC)
            continue
        out[sel] = sum(np.ravel(view.latency(p).ms) for p in case.parts())
    return out


def neighbour_spread(fam) -> np.ndarray:
    """|latency / the log-log line through its two neighbours along the sequence axis - 1| per interior row."""
    at = next(fam.axes.index(a) for a in SEQ_AXIS if a in fam.axes)
    lines: dict[tuple, list[int]] = {}
    for combo, members in fam.groups.items():
        for r in members:
            rest = tuple(np.delete(fam.raw[r], at))
            lines.setdefault((combo, rest), []).append(int(r))
    out = np.full(fam.num_rows, np.nan)
    for rows in lines.values():
        rows = sorted(rows, key=lambda r: fam.raw[r, at])
        x, y = np.log(fam.raw[rows, at]), np.log(fam.latency[rows])
        for i in range(1, len(rows) - 1):
            w = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1])
            out[rows[i]] = abs(np.exp(y[i - 1] * (1 - w) + y[i + 1] * w - y[i]) - 1.0)
    return out


def format_spread(fam) -> np.ndarray:
    """|latency / median latency of the same shape's rows in the other projection formats - 1| per row."""
    at = fam.cat_fields.index("dtype")
    if len({combo[at] for combo in fam.groups}) < 2:
        return np.full(fam.num_rows, np.nan)
    keys: dict[tuple, list[int]] = {}
    for combo, members in fam.groups.items():
        rest = combo[:at] + combo[at + 1:]
        for r in members:
            keys.setdefault((rest, *fam.raw[r]), []).append(int(r))
    out = np.full(fam.num_rows, np.nan)
    for rows in keys.values():
        if len(rows) >= 2:
            for r in rows:
                others = [fam.latency[o] for o in rows if o != r]
                out[r] = abs(fam.latency[r] / np.median(others) - 1.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("system")
    ap.add_argument("--sample", type=int, default=0, help="rows per table, seeded (0: every row)")
    ap.add_argument("--family", choices=("dsa", "msa", "mhc", "dsv4"), help="only this module family (default: all)")
    a = ap.parse_args()
    db = PerfDB(a.db)
    print(f"{'backend':8} {'version':10} {'op':19} {'model':6} {'rows':>6}  {'leave-one-out':17}  {'neighbour':17}  "
          f"{'formats':17}  pieces (before): |error|, ratio")
    for backend in Backend:
        if not db.versions(a.system, backend):
            continue
        view = db.view(a.system, backend)
        for op in OPS:
            if a.family and not op.value.startswith(a.family):
                continue
            fam = view.family(op)
            if fam is None:
                continue
            rows = np.arange(fam.num_rows)
            if 0 < a.sample < fam.num_rows:
                rows = np.sort(np.random.default_rng(0).choice(fam.num_rows, a.sample, replace=False))
            pred, _ = loo_predict(view, fam, rows)
            meas = fam.latency[rows]
            ratio = pieces_ms(view, fam, rows) / meas
            err, before = np.abs(pred / meas - 1.0), np.abs(ratio - 1.0)
            spread, line = format_spread(fam)[rows], neighbour_spread(fam)[rows]
            hidden = np.empty(fam.num_rows, dtype=np.int64)
            at = fam.cat_fields.index("hidden")
            for combo, members in fam.groups.items():
                hidden[members] = combo[at]
            for (family, h), name in ARCH.items():
                on = (hidden[rows] == h) & np.isfinite(err) & op.value.startswith(family)
                if on.any():
                    print(f"{backend.value:8} {fam.version:10} {op.value:19} {name:6} {int(on.sum()):6d}  "
                          + _columns(on, err, line, spread, before, ratio))


def _columns(on, err, line, spread, before, ratio) -> str:
    """leave-one-out, neighbour, formats, pieces columns of one model's rows (`-` where a column has none)."""
    def pct(values, mask):
        return _pct(values[mask]) if mask.any() else "-"

    both = on & np.isfinite(ratio)
    pieces = f"{_pct(before[both])}  x{np.median(ratio[both]):.2f}" if both.any() else "-"
    return (f"{_pct(err[on]):17}  {pct(line, on & np.isfinite(line)):17}  {pct(spread, on & np.isfinite(spread)):17}  "
            f"{pieces}")

if __name__ == "__main__":
    main()
