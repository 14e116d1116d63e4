"""Re-examine the training rows identical in every recorded field but measured differently, with the
enrichment columns of `servecast calibrate enrich` (docs/bench/calibration.md).

    servecast calibrate enrich ../shared/data/e2e_train_silicon.csv \
        --facts calibrate/data/e2e_train_enrichment.csv.gz --out /tmp/enriched.csv
    python scripts/bench_identical.py /tmp/enriched.csv

Groups rows by the table's own fields (deployment, ISL, OSL, concurrency: what bench_ceiling's noise
floor uses) and keeps the groups of 2+ rows whose TTFT or TPOT differ; then regroups those rows adding
the enrichment's facts (worker counts, speculative decoding and depth, parallel roles, engine flags,
client protocol; not its provenance columns) and counts how many now differ in a recorded field. Also
the error of predicting a row from the median of its twins, before and after. Seconds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimator.run_facts import COLUMNS  # noqa: E402

FACTS = [c for c in COLUMNS if not c.startswith("enrich_")]
MEASURED = ("silicon_ttft_ms", "silicon_tpot_ms")


def keys(raw: pd.DataFrame, cols: list[str]) -> pd.Series:
    sub = raw[cols]
    return sub.astype(object).where(sub.notna(), "").map(str).agg("|".join, axis=1)


def differing(raw: pd.DataFrame, key: pd.Series) -> pd.Series:
    """Rows in groups of 2+ whose measurements are not all equal."""
    grp = raw.groupby(key)
    size = grp["id"].transform("size")
    spread = grp[list(MEASURED)].transform("nunique").max(axis=1)
    return (size > 1) & (spread > 1)


def twin_error(raw: pd.DataFrame, key: pd.Series, col: str) -> float:
    """Median |error| % over rows that have twins, each predicted by the median of its twins' measurements."""
    y, errs = raw[col].to_numpy(), []
    for idx in key.groupby(key).indices.values():
        for i in idx if len(idx) > 1 else ():
            others = np.median(y[[j for j in idx if j != i]])
            errs.append(abs(others - y[i]) / y[i] * 100.0)
    return float(np.median(errs)) if errs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("enriched", type=Path, help="output of `servecast calibrate enrich`")
    raw = pd.read_csv(ap.parse_args().enriched)
    raw["concurrency"] = raw["silicon_data_source"].str.extract(r"silicon_concurrency=([0-9.]+)")[0].astype(float)
    table = [c for c in raw.columns if c not in ("id", "silicon_data_source", *MEASURED, *COLUMNS)]
    # the table's own worker columns were filled by the enrichment: "before" reads them as the input had them
    before = raw.copy()
    filled = raw["enrich_status"].isin(["matched", "ambiguous"])
    for c in ("prefill_num_workers", "decode_num_workers"):
        before.loc[filled & (raw["mode"] == "disagg"), c] = np.nan
    k0 = keys(before, table)
    twins = differing(before, k0)
    sub = raw[twins]
    k1 = keys(sub, table + FACTS)
    split = sub.groupby(k0[twins])[[]].size()
    still = differing(sub.reset_index(drop=True), k1.reset_index(drop=True)).to_numpy()
    separated = int((~still).sum())
    print(f"{int(twins.sum())} rows ({int((sub['mode'] == 'disagg').sum())} disaggregated) in {len(split)} groups "
          "identical in every recorded field, measured differently")
    print(f"with the enrichment: {separated} of them now differ from every twin in a recorded field or have "
          f"no differently-measured twin left; {int(still.sum())} still sit with a twin measured differently")
    grp_key = k0[twins]
    differ = sub.groupby(grp_key).apply(lambda g: keys(g, FACTS).nunique() > 1)
    print(f"groups whose rows now differ in at least one enrichment field: {int(differ.sum())} of {len(differ)}")
    for name, cols in (("worker counts", ["prefill_num_workers", "decode_num_workers"]),
                       ("spec decoding", ["spec_decoding", "spec_tokens"]),
                       ("parallel roles (dp-attn, ep)", [c for c in FACTS if c.endswith(("_dp_attn", "_ep"))]),
                       ("engine flags and per-role limits", [c for c in FACTS if c.startswith("engine_") or c.endswith(
                           ("_max_batch", "_max_num_tokens", "_mem_fraction", "_cuda_graph_max_bs"))]),
                       ("client protocol", [c for c in FACTS if c.startswith("client_")])):
        n = int(sub.groupby(grp_key).apply(lambda g, c=cols: keys(g, c).nunique() > 1).sum())
        print(f"  groups told apart by {name}: {n}")
    status = sub["spec_decoding"].value_counts().to_dict()
    print(f"spec decoding of these rows: {status}")
    for col in MEASURED:
        print(f"{col}: predicting a twin row by the median of its twins errs {twin_error(before[twins], k0[twins], col):.1f}% "
              f"at median; with the enrichment's fields in the key {twin_error(sub, k1, col):.1f}% "
              f"(over the rows that still have twins)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
