"""Summarise a collected database: per op family, rows, achieved TFLOP/s and GB/s (from the same
flops()/bytes() as the roofline) and utilisation; optionally compare with a reference database on the
shared keys (e.g. torch bf16 GEMM vs the imported AIConfigurator TRT-LLM GEMM table).

    PYTHONPATH=. python3 scripts/collect_report.py --db DIR [--compare REFDB --compare-system h200_sxm]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from perfdb.family import case_from_stored
from perfdb.ops import OP_CASES
from perfdb.schema import key_columns
from perfdb.storage import list_tables, read_table


def achieved(kind, df):
    cls = OP_CASES[kind]
    flops, nbytes = np.zeros(len(df)), np.zeros(len(df))
    for i, row in enumerate(df.itertuples(index=False)):
        r = row._asdict()
        case = case_from_stored(kind, {c: r[c] for c in cls.categorical_fields()}, {n: r[n] for n in cls.NUMERIC})
        flops[i], nbytes[i] = float(case.flops()), float(case.bytes())
    sec = df.latency_ms.to_numpy() / 1e3
    return flops / sec / 1e12, nbytes / sec / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--compare", type=Path, help="reference database (e.g. from `servecast db import-aic`)")
    ap.add_argument("--compare-system", default=None, help="system of the reference rows (default: same)")
    args = ap.parse_args()
    print("| table | rows | flagged | median util | max TFLOP/s | max GB/s | timing |")
    print("|---|---|---|---|---|---|---|")
    for key in list_tables(args.db):
        df = read_table(args.db, key).to_pandas()
        tflops, gbs = achieved(key.op, df)
        util = (df.sol_ms / df.latency_ms).median()
        flagged = int((df["flags"].fillna("") != "").sum())
        print(f"| {key.system}/{key.backend.value}/{key.version}/{key.op.value} | {len(df)} | {flagged} | {util:.2f} | "
              f"{tflops.max():.1f} | {gbs.max():.0f} | {','.join(sorted(set(df.timing_method)))} |")
        if key.op.value == "gemm":
            big = df[(df.m == 8192) & (df.n == 8192) & (df.k == 8192)]
            for row, t in zip(big.itertuples(), tflops[big.index.to_numpy()], strict=True):
                print(f"|   {row.dtype} 8192^3 | {row.latency_ms:.3f} ms | | | {t:.0f} | | |")
    if args.compare:
        compare(args.db, args.compare, args.compare_system)


def compare(db: Path, ref: Path, ref_system: str | None) -> None:
    print("\n| table | reference | shared keys | median ours/ref latency | p10 | p90 |")
    print("|---|---|---|---|---|---|")
    ref_tables = list_tables(ref)
    for key in list_tables(db):
        for rkey in ref_tables:
            if rkey.op != key.op or rkey.system != (ref_system or key.system):
                continue
            cols = list(key_columns(key.op))
            ours = read_table(db, key).to_pandas().groupby(cols).latency_ms.median()
            theirs = read_table(ref, rkey).to_pandas().groupby(cols).latency_ms.median()
            both = ours.to_frame("ours").join(theirs.to_frame("ref"), how="inner")
            if len(both):
                r = both.ours / both.ref
                print(f"| {key.op.value} {key.backend.value} | {rkey.backend.value} {rkey.version} | {len(both)} | "
                      f"{r.median():.2f} | {r.quantile(0.1):.2f} | {r.quantile(0.9):.2f} |")


if __name__ == "__main__":
    main()
