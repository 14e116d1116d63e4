"""How far the training table lets any calibration go: three ceilings on median |error|.

    servecast estimate --from-runs ../shared/data/e2e_train_silicon.csv --db /tmp/aicdb_all --out pred.csv
    python scripts/bench_ceiling.py ../shared/data/e2e_train_silicon.csv pred.csv

1. noise   Rows identical in every recorded field (deployment, lengths, concurrency) predicted by
           the one value best for their group: what no model of the recorded fields can beat.
2. oracle  A perfect per-deployment factor on top of the predictions (the deployment's own median
           log ratio, which no held-out fit has): what the load shape alone leaves.
3. free    Gradient-boosted trees on every recorded field plus the predictions, 5-fold CV grouped by
           deployment as `calibrate fit` scores, with the calibration's loss (absolute error in log
           space, TTFT rows weighted by FitOptions.rel_weight_ttft): a flexible fit with nothing
           physical in it (it would not carry to another model; it only shows how much the recorded
           fields explain).
About 20 s on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_calibration import scored_frame  # noqa: E402  (scripts/ is on sys.path when run as a script)

from calibrate.fit import METRICS, FitOptions, fold_ids, log_ratio  # noqa: E402
from estimator.run_facts import COLUMNS, Kind  # noqa: E402

RAW_NUMERIC = ("tp_size", "pp_size", "attention_dp_size", "moe_ep_size", "prefill_tp_size", "decode_tp_size",
               "prefill_moe_ep_size", "decode_moe_ep_size")
CATEGORIES = ("model", "system", "backend", "version", "mode", "precision")


def _ape(log_r: np.ndarray) -> np.ndarray:
    """|prediction / measured - 1| in % from log(measured / prediction)."""
    return np.abs(np.exp(-log_r) - 1.0) * 100.0


def _summary(err: np.ndarray) -> tuple[float, float]:
    """(median |error| %, % of rows beyond 10%)."""
    return float(np.median(err)), float(np.mean(err > 10.0) * 100.0)


def noise_floor(raw: pd.DataFrame) -> dict[str, tuple[float, float]]:
    # every recorded field, the enrichment's facts included and its provenance (enrich_*) not: two rows
    # matched through different config commits describe the same deployment
    inputs = [c for c in raw.columns if c not in ("id", "silicon_ttft_ms", "silicon_tpot_ms", "silicon_data_source")
              and not c.startswith("enrich_")]
    cols = raw[[*inputs, "concurrency"]]
    key = cols.astype(object).where(cols.notna(), "").map(str).agg("|".join, axis=1)
    out = {}
    for m, col in (("ttft", "silicon_ttft_ms"), ("tpot", "silicon_tpot_ms")):
        y = raw[col].to_numpy()
        err = np.zeros(len(raw))
        for idx in key.groupby(key).indices.values():   # row positions of each group
            vals = y[idx]   # the group's best constant for the summed relative error is one of its values
            best = min(vals, key=lambda p, v=vals: float(np.sum(np.abs(p - v) / v)))
            err[idx] = np.abs(best - vals) / vals * 100.0
        out[m] = _summary(err)
    return out


def oracle(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    out = {}
    for m in METRICS:
        r = pd.Series(log_ratio(frame, m))
        out[m] = _summary(_ape((r - r.groupby(frame["deployment_key"]).transform("median")).to_numpy()))
    return out


def free_fit(frame: pd.DataFrame, raw: pd.DataFrame) -> dict[str, tuple[float, float]]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    # the enrichment's facts count as recorded fields when the table has them (calibrate enrich)
    facts = [c for c, (kind, _) in COLUMNS.items() if c in raw.columns and kind in (Kind.INT, Kind.FLOAT)]
    bools = [c for c, (kind, _) in COLUMNS.items() if c in raw.columns and kind is Kind.BOOL]
    numeric = [*RAW_NUMERIC, "prefill_num_workers", "decode_num_workers", *facts]
    texts = [c for c in ("spec_decoding", "client_length_dist") if c in raw.columns]
    joined = frame.join(raw.set_index("id")[[*numeric, *bools, *texts, "precision"]], on="run_id")
    x = pd.DataFrame({c: joined[c].astype("category").cat.codes for c in (*CATEGORIES, *texts, *bools)})
    for c in ("isl", "osl", "concurrency", "gpus", *numeric):
        x[c] = np.log1p(joined[c].astype(float)).fillna(-1.0)
    x["pred_ttft"], x["pred_tpot"] = np.log(joined["pred_ttft"]), np.log(joined["pred_tpot"])
    x = x.loc[:, x.nunique() > 1]
    cats = [c for c in (*CATEGORIES, *texts, *bools) if c in x.columns]
    folds = fold_ids(frame, 5, 0)
    out, opts = {}, FitOptions()
    for m in METRICS:
        y, fit = log_ratio(frame, m), np.zeros(len(frame))
        bound = opts.rel_weight_for(m)
        for k in range(5):
            tr, te = folds != k, folds == k
            model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=300, learning_rate=0.05, max_depth=6,
                                                  min_samples_leaf=20, categorical_features=cats, random_state=0)
            weight = np.exp(-np.clip(y[tr], -bound, bound)) if bound > 0 else None
            fit[te] = model.fit(x[tr], y[tr], sample_weight=weight).predict(x[te])
        out[m] = _summary(_ape(y - fit))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, help="the e2e_train_silicon.csv-format run table")
    ap.add_argument("predictions", type=Path, help="servecast estimate --from-runs output")
    args = ap.parse_args()
    raw = pd.read_csv(args.runs)
    raw["concurrency"] = raw["silicon_data_source"].str.extract(r"silicon_concurrency=([0-9.]+)")[0].astype(float)
    frame = scored_frame(args.runs, args.predictions)
    rows = {"noise (identical rows)": noise_floor(raw), "oracle per-deployment factor": oracle(frame),
            "free trees on every field (grouped CV)": free_fit(frame, raw),
            "uncalibrated": {m: _summary(_ape(log_ratio(frame, m))) for m in METRICS}}
    print(f"{len(frame)} predicted rows of {len(raw)} (noise: all {len(raw)} rows)")
    print("| ceiling | TTFT median abs % | TTFT rows > 10% | TPOT median abs % | TPOT rows > 10% |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['ttft'][0]:.1f} | {r['ttft'][1]:.1f}% | {r['tpot'][0]:.1f} | {r['tpot'][1]:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
