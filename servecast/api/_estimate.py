"""servecast.estimate(): one deployment's TTFT, TPOT, throughput and memory; servecast.estimate_runs(): every row
of a measured-run table predicted (what `servecast estimate` and `servecast estimate --from-runs` do)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from estimator.calibration import CalibratedEstimate
    from estimator.estimate import Estimate
    from estimator.parallel import ParallelConfig
    from estimator.runs import Prediction
    from perfdb.types import Backend, Dtype


@dataclass(frozen=True)
class EstimateResult:
    estimate: Estimate                     # the analytic estimate (estimator.estimate.Estimate)
    calibrated: CalibratedEstimate | None  # the same corrected by the calibration, with 80% intervals; None: none applied
    version: str | None                    # backend version of the database used (None: roofline only)


@dataclass(frozen=True)
class RunPredictions:
    predictions: tuple[Prediction, ...]    # one per input row, in order (status "ok" or the reason it was not predicted)
    out: Path                              # the CSV written
    calibration_id: str | None             # calibrated columns were added from this calibration
    calibration_error: str | None          # why a calibration that applied could not add its columns

    @property
    def predicted(self) -> int:
        return sum(p.status == "ok" for p in self.predictions)


def estimate(*, model: str, system: str, backend: str | Backend = "trtllm", version: str | None = None,
             mode: str = "agg", parallel: ParallelConfig | None = None, prefill: ParallelConfig | None = None,
             decode: ParallelConfig | None = None, prefill_workers: int = 1, decode_workers: int = 1,
             prefill_batch: int = 1, concurrency: int = 1, isl: int = 1024, osl: int = 1024, prefix: int = 0,
             kv_dtype: str | Dtype | None = None, gemm_quant: str | Dtype | None = None,
             moe_quant: str | Dtype | None = None, spec_tokens: int = 0, spec_acceptance: float | None = None,
             moe_a2a: str | None = None, db: Path | str | None = None, calibration: Path | str | None = None,
             hf_hub: Path | None = None) -> EstimateResult:
    """TTFT, TPOT, throughput and memory of one deployment under the closed-loop benchmark load.

    mode "agg": `concurrency` requests in flight on one replica of `parallel` (default tp1). mode "disagg":
    `prefill_workers` of `prefill` feed `decode_workers` of `decode`, `concurrency` per decode worker.
    calibration: a directory from fit(), None (the newest stored in the database) or "none".
    moe_a2a: "deepep" prices SGLang's attention-DP workers launched with --moe-a2a-backend deepep (an
    all-to-all MoE exchange; estimator.deployment.moe_a2a_exchange); None / "none": the engine's default.
    An infeasible deployment is an Estimate with feasible False and the reason, not an exception.
    """
    from estimator.deployment import moe_a2a_exchange
    from estimator.engine import EngineConfig
    from estimator.estimate import WorkerSpec, estimate_disagg
    from estimator.estimate import estimate as estimate_agg
    from estimator.models import load_model
    from estimator.parallel import ParallelConfig
    from estimator.workload import Workload
    from perfdb.errors import InputError
    from perfdb.lookup import PerfDB
    from perfdb.specs import load_system
    from perfdb.types import Backend, parse_enum

    database = PerfDB(db)
    gq, mq = _dtype(gemm_quant, "gemm quant"), _dtype(moe_quant, "moe quant")
    kv = _dtype(kv_dtype, "kv dtype")   # None: the engine's default for the model (estimator.engine.kv_cache_dtype)
    spec = load_model(model, gemm_quant=gq, moe_quant=mq or gq, kv_dtype=kv, hf_hub=hf_hub)
    sysspec = load_system(system)
    be = parse_enum(Backend, backend, "backend")
    view = database.view(sysspec.name, be, version)
    engine = EngineConfig(be, version, kv_dtype=kv, spec_tokens=spec_tokens, spec_acceptance=spec_acceptance,
                          dp_moe_exchange=moe_a2a_exchange(be, moe_a2a))
    # the closed-loop benchmark (estimator.workload): what the aiperf command of a plan measures
    load = Workload.benchmark(isl, osl, prefix, concurrency)
    if mode == "agg":
        par = parallel or ParallelConfig()
        est = estimate_agg(spec, sysspec, par, engine, load, view)
        gpus, total = par.num_gpus, concurrency
    elif mode == "disagg":
        dec = decode or ParallelConfig()
        est = estimate_disagg(spec, sysspec, WorkerSpec(prefill or ParallelConfig(), engine, prefill_workers, prefill_batch),
                              WorkerSpec(dec, engine, decode_workers, None), load, view)
        gpus, total = dec.num_gpus, concurrency * decode_workers   # Estimate.concurrency is per decode worker
    else:
        raise InputError(f"unknown --mode {mode!r}; accepted: agg, disagg")
    cal = None
    if est.feasible:
        from estimator.calibration import calibrate_estimate, context_for

        found = _calibration(calibration, database.root if db is not None else None, system, be.value, "estimate")
        if found is not None:
            ctx = context_for(system, be.value, view.version, mode, isl, osl, gpus, total, spec)
            cal = calibrate_estimate(est, found, ctx)
    return EstimateResult(est, cal, view.version)


def estimate_runs(runs: Path | str, out: Path | str, *, db: Path | str | None = None,
                  calibration: Path | str | None = None, hf_hub: Path | None = None, base: str = "simulate",
                  progress: Callable[[int, int], None] | None = None) -> RunPredictions:
    """Predict every row of a measured-run CSV (the format of e2e_train_silicon.csv) and write the predictions
    CSV to `out` atomically; with a calibration (explicit, or stored in `db`) its cal_* and interval columns too.
    `base`: "simulate" (the default: the simulator's replay of each run at its concurrency and client protocol,
    what `plan` decides on, with the calibration fitted on that base; seconds per hundred rows,
    `progress(done, total)` per row) or "estimate" (the static estimate, what `plan` screens with)."""
    from calibrate.predict import Base
    from estimator.runs import predict_runs, read_runs, write_predictions
    from perfdb.errors import DataError
    from perfdb.lookup import PerfDB
    from perfdb.types import parse_enum
    from perfdb.userfiles import check_out_file

    which = parse_enum(Base, base, "--base")
    database = PerfDB(db)
    out = check_out_file(out, "--out")   # before predicting: a bad path fails at once
    cal = _calibration(calibration, database.root if db is not None else None, "", "", which.value)
    rows = read_runs(Path(runs))
    if which is Base.SIMULATE:
        from estimator.sim.runs import simulate_runs
        from servecast.api._fit import _ticks

        tick = _ticks(progress)(len(rows)) if progress else None
        preds = [s.prediction("mean") for s in simulate_runs(rows, database, on_row=tick)]
    else:
        preds = predict_runs(rows, database, hf_hub)
    cal_id = cal_error = None
    if cal is not None:
        try:
            _write_calibrated(Path(runs), preds, out, cal, which.value, hf_hub)
            cal_id = cal.id
        except DataError as exc:   # the raw predictions stand; say why the calibrated columns do not
            cal_error = str(exc)
    if cal_id is None:
        write_predictions(preds, out, which.value)
    return RunPredictions(tuple(preds), out, cal_id, cal_error)


def _dtype(value, what: str):
    from perfdb.types import Dtype, parse_enum

    return parse_enum(Dtype, value, what) if value else None


def _calibration(value, db_root: Path | None, system: str, backend: str, base: str):
    """The calibration to apply: `value` a directory, None (the newest stored) or "none"."""
    from estimator.calibration_files import calibration_flag, resolve

    explicit, stored = calibration_flag(value)
    return resolve(explicit, db_root, system, backend, base=base, stored=stored)


def _write_calibrated(runs: Path, preds, out: Path, cal, base: str, hf_hub: Path | None = None) -> None:
    """The predictions CSV with cal_ttft_ms, cal_tpot_ms, their 80% intervals and the calibration id after
    the raw pred_* columns (which `calibrate fit --predictions` fits on), written once, atomically."""
    import pandas as pd

    from calibrate.ingest import read_results
    from calibrate.predict import attach_predictions, base_frame, calibrated_columns
    from perfdb.storage import atomic_write_bytes

    frame = attach_predictions(base_frame(read_results([runs], None), hf_hub=hf_hub), preds)
    extra = calibrated_columns(frame, cal).drop_duplicates("id")   # a repeated id must not repeat rows
    raw = pd.DataFrame({"id": [p.id for p in preds], "pred_ttft_ms": [p.ttft_ms for p in preds],
                        "pred_tpot_ms": [p.tpot_ms for p in preds],
                        "pred_tokens_per_s_per_gpu": [p.tokens_per_s_per_gpu for p in preds],
                        "status": [p.status for p in preds], "base": base})
    table = raw.merge(extra, on="id", how="left")
    atomic_write_bytes(out, table.to_csv(index=False, float_format="%.6g", na_rep="nan").encode())
