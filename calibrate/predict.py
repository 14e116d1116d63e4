"""Predictions for measured runs: the estimator's batch predictor (estimator.runs) or the simulator
(estimator.sim.runs) at each run's measured concurrency, joined to the measurements in one frame.

The frame (pandas, one row per run) is what fitting and validation work on:
  run_id, deployment_key, model, system, backend, version, mode, isl, osl, concurrency (per agg replica or xPyD group), gpus,
  weight_bits, measured_ttft, measured_tpot, pred_ttft, pred_tpot, status
`gpus` = GPUs of one engine instance (agg replica / decode worker); `weight_bits` = the served model's
narrowest weights as the estimator prices the run (estimator.calibration_features.model_weight_bits of
estimator.runs.model_for); `status` is 'ok' or why no prediction (or no measurement) exists for the row.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.runs import EngineSettings, MeasuredRun, Mode, Role, Statistic
from estimator.run_facts import RunFacts, parse_flags
from estimator.runs import RunRow, Worker, predict_runs
from estimator.set_aside import set_aside
from perfdb.lookup import PerfDB


class Base(str, Enum):
    ESTIMATE = "estimate"     # analytic steady state (estimator.estimate): fast, what plan/estimate print
    SIMULATE = "simulate"     # discrete-event simulation at the measured concurrency: slower, queueing-aware


def _worker(role: Role | None) -> Worker | None:
    return None if role is None else Worker(role.parallel, role.batch_size, role.workers)


def concurrency_of(run: MeasuredRun) -> float | None:
    """Requests in flight for the whole deployment: the configured cap, else the client's measured average."""
    c = run.load.effective_concurrency
    return None if c is None or not math.isfinite(c) or c <= 0 else float(c)


def to_run_row(run: MeasuredRun) -> RunRow:
    d = run.deployment
    conc = concurrency_of(run)
    return RunRow(id=run.run_id, backend=d.backend.value, backend_version=d.version or None, model=d.model,
                  system=d.system, mode=d.mode.value, isl=int(round(run.load.isl)), osl=int(round(run.load.osl)),
                  gemm_quant=d.gemm_quant or None, moe_quant=d.moe_quant or None,
                  concurrency=None if conc is None else max(1, int(round(conc))),
                  agg=_worker(d.agg), prefill=_worker(d.prefill), decode=_worker(d.decode),
                  ttft_ms=run.metrics.ttft.mean, tpot_ms=run.metrics.tpot.mean,
                  facts=run_facts(d.engine, run.load.num_requests, run.load.num_warmups))


def run_facts(engine: EngineSettings, num_prompts: int | None, num_warmups: int | None) -> RunFacts:
    """The estimator's RunFacts of a measured run: the enrichment facts `extra` carries, the engine's
    recorded limits and every launch flag, so a calibration is fitted on the predictions
    `servecast estimate --from-runs` makes for the same rows (per-role flags, expert slots, agg limits);
    the warm-up count the client's file reported where the enrichment does not say (estimator.set_aside.cold_start)."""
    facts = RunFacts.from_extra(engine.extra, num_prompts)
    return replace(facts, max_batch=engine.max_batch_size, max_num_tokens=engine.max_num_tokens,
                   mem_fraction=engine.mem_fraction, flags=parse_flags(engine.flags),
                   num_warmups=facts.num_warmups if facts.num_warmups is not None else num_warmups)


def _units(run: MeasuredRun) -> int:
    """Agg replicas (a run's xPyD deployment is one group): the concurrency feature is per unit."""
    d = run.deployment
    return (d.agg.workers or 1) if d.mode is Mode.AGG else 1


def _instance_gpus(run: MeasuredRun) -> int:
    d = run.deployment
    return (d.agg if d.mode is Mode.AGG else d.decode).parallel.num_gpus


def _weight_bits(row: RunRow, hf_hub: Path | None, cache: dict) -> float:
    """The residual's weight-bits feature of a run (NaN where its model or system does not load: the
    prediction fails on it too)."""
    from estimator.calibration_features import model_weight_bits
    from estimator.runs import model_for
    from perfdb.errors import ServecastError
    from perfdb.specs import load_system

    key = (row.model, row.system, row.backend, row.gemm_quant, row.moe_quant)
    if key not in cache:
        try:
            cache[key] = model_weight_bits(model_for(row, load_system(row.system), hf_hub))
        except (ServecastError, ValueError):
            cache[key] = math.nan
    return cache[key]


def base_frame(runs: list[MeasuredRun], statistic: Statistic = Statistic.MEAN,
               hf_hub: Path | None = None) -> pd.DataFrame:
    """The measurement half of the frame; rows without the statistic or a concurrency, measured on a cold
    server or of a deployment the row does not pin down (estimator.set_aside), say so in status.
    `hf_hub`: where models outside the catalog load from (their weight numerics)."""
    rows, cache = [], {}
    for r in runs:
        d, row = r.deployment, to_run_row(r)
        ttft, tpot = r.metrics.ttft.get(statistic), r.metrics.tpot.get(statistic)
        conc = concurrency_of(r)
        status = "ok"
        if not (math.isfinite(ttft) and math.isfinite(tpot)) or ttft <= 0 or tpot <= 0:
            status = f"no measured {statistic.value} TTFT/TPOT"
        elif conc is None:
            status = "no concurrency (open-loop run without a measured in-flight average)"
        elif why := set_aside(row):
            status = why
        rows.append({"run_id": r.run_id, "deployment_key": d.key(), "model": d.model, "system": d.system,
                     "backend": d.backend.value, "version": d.version, "mode": d.mode.value, "isl": r.load.isl,
                     "osl": r.load.osl, "concurrency": conc / _units(r) if conc is not None else math.nan,
                     "gpus": _instance_gpus(r), "weight_bits": _weight_bits(row, hf_hub, cache),
                     "measured_ttft": ttft, "measured_tpot": tpot, "status": status, "source_file": r.source_file})
    return pd.DataFrame(rows)


def predict(runs: list[MeasuredRun], db: PerfDB, base: Base = Base.ESTIMATE,
            statistic: Statistic = Statistic.MEAN, progress: Callable[[int], Callable[[], None]] | None = None,
            hf_hub: Path | None = None) -> pd.DataFrame:
    """The frame with pred_ttft/pred_tpot from the chosen base; rows it cannot predict keep the reason.
    `progress(n)` (simulate base only: seconds per run) returns the callback to tick once per run. `hf_hub`:
    the local Hugging Face hub cache for models outside the catalog (the estimate base)."""
    frame = base_frame(runs, statistic, hf_hub)
    todo = [to_run_row(r) for r, s in zip(runs, frame["status"], strict=True) if s == "ok"]
    if base is Base.SIMULATE:
        from estimator.sim.runs import simulate_runs

        tick = progress(len(todo)) if progress else None
        preds = [s.prediction(statistic.value) for s in simulate_runs(todo, db, on_row=tick)]
    else:
        preds = predict_runs(todo, db, hf_hub)
    return attach_predictions(frame, preds)


def attach_predictions(frame: pd.DataFrame, preds) -> pd.DataFrame:
    """`base_frame` + pred_ttft/pred_tpot/status from estimator Predictions (by run id), for its usable rows."""
    by_id = {p.id: p for p in preds}
    hits = [by_id[i] if s == "ok" and i in by_id else None for i, s in zip(frame["run_id"], frame["status"],
                                                                                 strict=True)]
    frame["pred_ttft"] = [p.ttft_ms if p else math.nan for p in hits]
    frame["pred_tpot"] = [p.tpot_ms if p else math.nan for p in hits]
    frame["status"] = [p.status if p else s for p, s in zip(hits, frame["status"], strict=True)]
    return _finite(frame)


def _finite(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose prediction or weight numerics are not finite are not usable, and say why."""
    bad = (frame["status"] == "ok") & ~(np.isfinite(frame["pred_ttft"]) & np.isfinite(frame["pred_tpot"]))
    frame.loc[bad, "status"] = "no finite prediction"
    unknown = (frame["status"] == "ok") & ~np.isfinite(frame["weight_bits"])
    frame.loc[unknown, "status"] = "the model's weight numerics are unknown (it does not load here)"
    return frame


def from_predictions_file(runs: list[MeasuredRun], path, statistic: Statistic = Statistic.MEAN,
                          base: str | None = None, hf_hub: Path | None = None) -> pd.DataFrame:
    """The frame with predictions read from a `servecast estimate --from-runs` CSV (id, pred_ttft_ms,
    pred_tpot_ms, status; `base` since 2026-12-05), e.g. to refit without predicting again. A file made
    on another base than `base` is refused (a file without the column is taken as it is). `hf_hub`: as
    base_frame."""

    import io

    from perfdb.errors import DataError
    from perfdb.userfiles import read_text

    text = read_text(path, "--predictions", "a predictions CSV from `servecast estimate --from-runs RUNS --out FILE`")
    try:
        p = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read predictions CSV ({exc})") from None
    missing = {"id", "pred_ttft_ms", "pred_tpot_ms", "status"} - set(p.columns)
    if missing:
        raise DataError(f"{path}: predictions CSV lacks {sorted(missing)}; write one with "
                        "`servecast estimate --from-runs RUNS --out FILE`")
    made = sorted(set(p["base"].dropna().astype(str))) if "base" in p.columns else []
    if base is not None and made and made != [base]:
        raise DataError(f"{path}: holds --base {'/'.join(made)} predictions, and this fit is --base {base}; pass "
                        f"--base {made[0]}, or predict again with `servecast estimate --from-runs RUNS --base {base} "
                        "--out FILE`")
    frame = base_frame(runs, statistic, hf_hub)
    by_id = p.drop_duplicates("id").set_index("id")
    known = frame["run_id"].isin(by_id.index)
    frame["pred_ttft"] = frame["run_id"].map(by_id["pred_ttft_ms"]).astype(float)
    frame["pred_tpot"] = frame["run_id"].map(by_id["pred_tpot_ms"]).astype(float)
    pst = frame["run_id"].map(by_id["status"]).astype(object)
    frame["status"] = np.where(frame["status"] != "ok", frame["status"],
                               np.where(known, pst, "not in the predictions file"))
    return _finite(frame)


def apply_calibration(frame: pd.DataFrame, cal) -> pd.DataFrame:
    """frame + cal_ttft / cal_tpot: the calibration applied to each usable row's prediction."""
    from calibrate.fit import corrected_logs

    out = frame.copy()
    ok = (out["status"] == "ok").to_numpy()
    for m in ("ttft", "tpot"):
        out[f"cal_{m}"] = np.nan
        if ok.any():
            sub = out[ok].reset_index(drop=True)
            out.loc[ok, f"cal_{m}"] = sub[f"pred_{m}"].to_numpy() * np.exp(corrected_logs(cal, sub, m))
    return out


def calibrated_columns(frame: pd.DataFrame, cal) -> pd.DataFrame:
    """Per run_id: calibrated TTFT/TPOT (ms) and their prediction intervals (as wide as the held-out spread
    of runs as new to their fit as this run is to the calibration), for `servecast estimate --from-runs`."""
    from estimator.calibration import model_key

    out = apply_calibration(frame, cal)
    keys = out["model"].map(model_key)
    cols = {"id": out["run_id"], "cal_ttft_ms": out["cal_ttft"], "cal_tpot_ms": out["cal_tpot"]}
    for m in ("ttft", "tpot"):
        qs = [cal.interval(m, mode, key, system, backend) for mode, key, system, backend in
              zip(out["mode"], keys, out["system"], out["backend"], strict=True)]
        lo = np.array([np.nan if q is None else math.exp(q.lo) for q in qs])
        hi = np.array([np.nan if q is None else math.exp(q.hi) for q in qs])
        cols[f"{m}_lo_ms"], cols[f"{m}_hi_ms"] = out[f"cal_{m}"] * lo, out[f"cal_{m}"] * hi
    res = pd.DataFrame(cols)
    res["calibration_id"] = cal.id
    return res
