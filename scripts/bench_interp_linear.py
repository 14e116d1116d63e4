"""Leave-one-out interpolation error of the imported linear-attention tables, per mixer kind (GDN, KDA,
Mamba-2) and phase: `servecast db check-interp` reports a family as a whole; this splits it by the
`kind` column. Same ladder and protocol (perfdb.checkinterp.loo_predict, every row predicted).

`iso spread`: how far the table's rows sit from the median utilisation of their iso-work line
(perfdb.coords: equal batch x value heads, sequence and v/k; lines of 3+ rows), median / p90. The
kernels' parallel work is the same along a line, so this is the table's own scatter: a
leave-one-out error near it is noise in the measurement, not in the interpolation.

    servecast db import-aic /tmp/aic/pkg/aiconfigurator_core/systems --out /tmp/aicdb --system h200_sxm
    python scripts/bench_interp_linear.py /tmp/aicdb h200_sxm
"""
from __future__ import annotations

import argparse

import numpy as np

from perfdb.checkinterp import loo_predict
from perfdb.coords import iso_coordinates
from perfdb.lookup import PerfDB
from perfdb.types import Backend, OpKind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("system")
    a = ap.parse_args()
    db = PerfDB(a.db)
    print(f"{'backend':8} {'version':12} {'op':15} {'kind':7} {'rows':>5} {'median':>7} {'p90':>7}  iso spread")
    for backend in Backend:
        if not db.versions(a.system, backend):
            continue
        view = db.view(a.system, backend)
        for op in (OpKind.LINEAR_PREFILL, OpKind.LINEAR_DECODE):
            fam = view.family(op)
            if fam is None:
                continue
            rows = np.arange(fam.num_rows)
            pred, _ = loo_predict(view, fam, rows)
            err = np.abs(pred / fam.latency[rows] - 1.0)
            labels = np.empty(fam.num_rows, dtype=object)
            at = fam.cat_fields.index("kind")
            for combo in fam.groups:
                labels[fam.group_rows(combo)] = combo[at]
            spread = _iso_spread(fam)
            for kind in sorted(set(labels)):
                e = err[(labels == kind) & np.isfinite(err)]
                s = spread[(labels == kind) & np.isfinite(spread)]
                iso = f"{np.median(s) * 100:5.2f}% / {np.percentile(s, 90) * 100:5.2f}%" if s.size else "-"
                print(f"{backend.value:8} {fam.version:12} {op.value:15} {kind:7} {e.size:5d} "
                      f"{np.median(e) * 100:6.2f}% {np.percentile(e, 90) * 100:6.2f}%  {iso}")


def _iso_spread(fam) -> np.ndarray:
    """|util / median util of its iso-work line - 1| per table row (NaN off lines of 3+ rows)."""
    out = np.full(fam.num_rows, np.nan)
    for combo, rows in fam.groups.items():
        util = fam.sol_of_rows(combo, rows) / fam.latency[rows]
        keys = iso_coordinates(fam.kind, fam.axes, fam.raw[rows])[0][0]
        _, line, count = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        for g in np.flatnonzero(count >= 3):
            on = np.flatnonzero(line.ravel() == g)
            out[rows[on]] = np.abs(util[on] / np.median(util[on]) - 1.0)
    return out


if __name__ == "__main__":
    main()
