"""Measured-run tables (the format of ../shared/data/e2e_train_silicon.csv) -> predictions.

`read_runs(path)` parses every row into a frozen `RunRow`; `predict_runs(rows, db)` predicts each one
with the estimator and returns `Prediction`s whose `status` is 'ok' or says why no prediction was
possible. Calibration reuses both. Rows are grouped by deployment so that one StepModel serves every
concurrency of the same deployment (one vectorised call per group).
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from estimator.deployment import agg_layout, role_exchange, role_moe_kernel, role_pools, role_slots
from estimator.engine import EngineConfig
from estimator.engines import profile_for
from estimator.estimate import Estimate, WorkerSpec, estimate, estimate_disagg
from estimator.models import AttentionKind, load_model
from estimator.models.catalog import block_fp8_families, family_name
from estimator.parallel import ParallelConfig
from estimator.run_facts import RunFacts, SpecStatus
from estimator.workload import BENCH_REQUESTS_PER_CONCURRENCY, Workload
from perfdb.errors import DataError, ServecastError
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend, Dtype
from perfdb.userfiles import read_text

_CONC = re.compile(r"silicon_concurrency=(\d+)")
# quant-mode strings of the run table -> Dtype; empty means the checkpoint's own numerics
_QUANT = {"fp8": Dtype.FP8, "fp8_block": Dtype.FP8_BLOCK, "nvfp4": Dtype.NVFP4, "mxfp4": Dtype.MXFP4,
          "w4a16_mxfp4": Dtype.MXFP4, "bf16": Dtype.BF16, "float16": Dtype.FP16, "fp16": Dtype.FP16,
          "int8": Dtype.INT8}


@dataclass(frozen=True)
class Worker:
    parallel: ParallelConfig
    batch: int | None
    workers: int | None


@dataclass(frozen=True)
class RunRow:
    id: str
    backend: str
    backend_version: str | None
    model: str
    system: str
    mode: str                    # agg | disagg
    isl: int
    osl: int
    gemm_quant: str | None
    moe_quant: str | None
    concurrency: int | None      # measured requests in flight (whole deployment)
    agg: Worker | None
    prefill: Worker | None
    decode: Worker | None
    ttft_ms: float | None        # measured, when the table has it
    tpot_ms: float | None
    facts: RunFacts = RunFacts()  # from `servecast calibrate enrich` columns; unknown when the table has none


@dataclass(frozen=True)
class Prediction:
    id: str
    ttft_ms: float
    tpot_ms: float
    tokens_per_s_per_gpu: float
    status: str


def _num(raw: dict, key: str) -> float | None:
    v = (raw.get(key) or "").strip()
    if not v or v.lower() == "nan":
        return None
    try:
        return float(v)
    except ValueError:
        raise DataError(f"run table column {key}={v!r} is not a number") from None


def _int(raw: dict, key: str, zero_is_unset: bool = True) -> int | None:
    v = _num(raw, key)
    if v is None or (zero_is_unset and v == 0):
        return None
    return int(v)


def _worker(raw: dict, prefix: str) -> Worker | None:
    tp = _int(raw, prefix + "tp_size")
    if tp is None:
        return None
    par = ParallelConfig(tp=tp, pp=_int(raw, prefix + "pp_size") or 1, attn_dp=_int(raw, prefix + "attention_dp_size") or 1,
                         moe_tp=_int(raw, prefix + "moe_tp_size") or 1, moe_ep=_int(raw, prefix + "moe_ep_size") or 1)
    return Worker(par, _int(raw, prefix + "batch_size"), _int(raw, prefix + "num_workers"))


def parse_row(raw: dict) -> RunRow:
    m = _CONC.search(raw.get("silicon_data_source") or "")
    mode = (raw.get("mode") or "agg").strip()
    return RunRow(
        id=raw["id"], backend=raw["backend"].strip(), backend_version=(raw.get("backend_version") or "").strip() or None,
        model=raw["model_path"].strip(), system=raw["system"].strip(), mode=mode,
        isl=int(_num(raw, "isl") or 0), osl=int(_num(raw, "osl") or 0),
        gemm_quant=(raw.get("gemm_quant_mode") or "").strip() or None, moe_quant=(raw.get("moe_quant_mode") or "").strip() or None,
        concurrency=int(m.group(1)) if m else None,
        agg=_worker(raw, "") if mode == "agg" else None,
        prefill=_worker(raw, "prefill_") if mode == "disagg" else None,
        decode=_worker(raw, "decode_") if mode == "disagg" else None,
        ttft_ms=_num(raw, "silicon_ttft_ms"), tpot_ms=_num(raw, "silicon_tpot_ms"),
        facts=RunFacts.from_row(raw),
    )


def read_runs(path: Path) -> list[RunRow]:
    text = read_text(path, "run table", "a CSV of measured runs in the format of e2e_train_silicon.csv (a "
                     "Parquet table from `calibrate ingest` is read by `calibrate fit` / `calibrate validate`)")
    return parse_runs(text, path)


def parse_runs(text: str, path: Path) -> list[RunRow]:
    """The rows of a run table's CSV text (`path` names it in errors)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"id", "backend", "model_path", "system", "isl", "osl"} - set(reader.fieldnames or ())
    if missing:
        raise DataError(f"run table {path} lacks columns {sorted(missing)}; expected a CSV in the format of "
                        "e2e_train_silicon.csv")
    rows = []
    for line, raw in enumerate(reader, start=2):
        try:
            rows.append(parse_row(raw))
        except (AttributeError, TypeError, ValueError) as exc:   # a short or mistyped row: name it
            raise DataError(f"run table {path} line {line}: cannot read the row ({exc})") from None
    if not rows:
        raise DataError(f"run table {path} has a header but no rows (truncated?); nothing to predict")
    return rows



# Requests per decode worker assumed when a disaggregated row gives no worker count (the run tables
# record only total concurrency). Fitted on e2e_train_silicon.csv disagg rows.
DECODE_BATCH_PRIOR = 256

# Speculative decoding is not recorded in the run tables. TRT-LLM disaggregated DeepSeek (MLA) runs
# behave as with one MTP draft token (median TPOT error +68% without, +1% with, on the training rows;
# SGLang and aggregated runs do not), so those rows are predicted with spec_tokens=1.
RUN_SPEC_TOKENS = {(Backend.TRTLLM, "disagg", AttentionKind.MLA): 1}

# The KV-cache dtype is not recorded either. NVIDIA's quantized (ModelOpt fp8/fp4) checkpoints declare
# kv_cache_quant_algo FP8 and TensorRT-LLM follows the checkpoint by default, while vLLM's and SGLang's
# `--kv-cache-dtype auto` keep the model dtype. The rows agree: TRT-LLM Llama-3.1-70B fp8 on one H200
# at 1024/8192 serves 32 requests at 0.45 s TTFT and queues at 64 (bf16 KV would hold 22, fp8 45).
# Uncalibrated TPOT error (imported tables): TRT-LLM agg 20.9% -> 16.1%, disagg 36.1% -> 33.8%; the
# same rule for SGLang (14.7% -> 21.9% agg) or vLLM (8.4% -> 8.8%) is worse, so it is TRT-LLM only.
# Both only where the launch flags state no KV dtype (launched_kv_dtype): a stated one is what ran.
RUN_FP8_KV = {Backend.TRTLLM}
# Engines that, on a GPU with fp4 tensor cores, run a natively mxfp4 checkpoint's experts (gpt-oss) with
# mxfp8 activations, which the table's "fp4" label does not say: InferenceX's vLLM launch sets
# VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1 (benchmarks/single_node/.../gptoss_fp4_b200.sh) and its TRT-LLM
# launch the TRTLLM MoE backend (gptoss_fp4_b200_trt.sh), whose Blackwell mxfp4 path takes mxfp8
# activations. Against pricing the label (nvfp4 attention and experts), simulated on the imported tables:
# TRT-LLM B200 agg (86 runs) TPOT 8.8 -> 4.4%, TTFT 18.5 -> 13.9%; GB200 disagg (42) TTFT 56.9 -> 39.6%;
# vLLM B200 (67) TPOT 24.9 -> 14.8%, TTFT 19.7 -> 23.8% (BENCHMARKS.md, nineteenth session). SGLang: no
# such runs, the label stands.
MXFP8_ACTIVATION_MOE = {Backend.TRTLLM, Backend.VLLM}
_FP8_KV_QUANTS = (Dtype.FP8, Dtype.FP8_BLOCK, Dtype.NVFP4)

# Disaggregated rows often omit worker counts. Decode workers: as few as hold the measured
# concurrency in their KV pools (and batch caps). Prefill workers: rate-matched by the estimator
# (WorkerSpec.workers=None, see estimator.serving.PREFILL_TARGET_UTIL).


def pick_version(db: PerfDB, system: str, backend: Backend, version: str | None) -> str | None:
    """The row's backend version if the database has it, else the newest older one, else the newest."""
    from perfdb.lookup import version_sort_key

    available = db.versions(system, backend)
    if version is None or version in available:
        return version if version in available else (available[0] if available else None)
    older = [v for v in available if version_sort_key(v) <= version_sort_key(version)]
    return older[0] if older else (available[0] if available else None)


def model_for(row: RunRow, system, hf_hub: Path | None = None):
    gemm = _QUANT.get(row.gemm_quant.lower()) if row.gemm_quant else None
    moe = _QUANT.get(row.moe_quant.lower()) if row.moe_quant else None
    if row.gemm_quant and gemm is None:
        raise DataError(f"unknown gemm_quant_mode {row.gemm_quant!r}; known: {', '.join(_QUANT)}")
    base = load_model(row.model, hf_hub=hf_hub)
    kv = launched_kv_dtype(row)
    own_mxfp4 = base.moe_quant == Dtype.MXFP4 and (moe or gemm) == Dtype.NVFP4   # gpt-oss labelled "fp4"
    if own_mxfp4 and not system.gpu.fp4_dense_flops:
        # without fp4 tensor cores the engines run its own mxfp4 experts (w4a16) and bf16 attention
        return base if kv is None else load_model(row.model, kv_dtype=kv, hf_hub=hf_hub)
    mxfp8 = own_mxfp4 and Backend(row.backend) in MXFP8_ACTIVATION_MOE
    if kv is None and Backend(row.backend) in RUN_FP8_KV and (mxfp8 or gemm in _FP8_KV_QUANTS):
        kv = Dtype.FP8
    if mxfp8:   # with fp4 tensor cores: its own mxfp4 experts at mxfp8 activations, attention bf16
        return load_model(row.model, moe_quant=Dtype.W4A8_MXFP4, kv_dtype=kv, hf_hub=hf_hub)
    spec = load_model(row.model, gemm_quant=gemm, moe_quant=moe or gemm, kv_dtype=kv, hf_hub=hf_hub)
    if gemm == Dtype.FP8 and (base.gemm_quant == Dtype.FP8_BLOCK or family_name(row.model) in block_fp8_families()):
        # labelled fp8, it served the block-scaled FP8 checkpoint of its family, whose activations are
        # quantized on every call (per 1x128 group): priced on the per-tensor rows, which time that too
        spec = replace(spec, fp8_dynamic_activations=True)
    return spec


def launched_kv_dtype(row: RunRow) -> Dtype | None:
    """The KV-cache dtype the run's launch flags state (EngineProfile.kv_dtype_flag): the aggregated
    engine's, or a disaggregated run's decode engine's (whose pool holds the requests), else its prefill
    engine's; None where no flag states one (`auto`, absent, unresolved): the defaults above stand."""
    prof = profile_for(Backend(row.backend))
    roles = ("agg",) if row.mode == "agg" else ("decode", "prefill")
    return next((kv for role in roles if (kv := prof.kv_dtype(row.facts.role_flags(role))) is not None), None)


def client_mean_lengths(row: RunRow) -> tuple[int, int]:
    """The mean ISL and OSL the run's client sent: InferenceX's client draws integers in [r x nominal,
    nominal] (`client_range_ratio` r, estimator.sim.types.client_spread), so nominal x (1 + r) / 2; the
    nominal lengths where no r < 1 is recorded. The static estimate prices these means and the simulator
    draws around them (estimator.sim.runs), so both model the load the client sent."""
    r = row.facts.range_ratio
    scale = 1.0 if r is None or not 0 <= r < 1 else (1 + r) / 2
    return max(1, round(row.isl * scale)), max(1, round(row.osl * scale))


def _mean_lengths(rows: list[RunRow]) -> tuple[np.ndarray, np.ndarray]:
    """client_mean_lengths of each row as (ISL, OSL) arrays."""
    isl, osl = zip(*(client_mean_lengths(r) for r in rows), strict=True)
    return np.array(isl, dtype=np.float64), np.array(osl, dtype=np.float64)


def group_key(row: RunRow) -> tuple:
    """Rows predicted together share one deployment: the table's columns and every enrichment fact (the
    first row's attention DP, EP and decode batch cap stand for the group's, so rows that differ in them
    must not share a group, else a row's prediction would depend on which rows it was predicted with)."""
    return (row.model, row.gemm_quant, row.moe_quant, row.system, row.backend, row.backend_version, row.mode,
            row.agg, row.prefill, row.decode, row.facts)


def spec_tokens(row: RunRow, backend: Backend, model) -> int:
    """Draft tokens per step: what the enrichment recorded (0 when off), else the RUN_SPEC_TOKENS rule
    (unknown, or the configs list the point both ways: never decided from the measurement)."""
    known = row.facts.spec_draft_tokens()
    rule = RUN_SPEC_TOKENS.get((backend, row.mode, model.attention), 0)
    if known is None and row.facts.spec is SpecStatus.ON:
        return max(rule, 1)           # on, depth not stated: at least one draft token
    return known if known is not None else rule


def num_requests(rows: list[RunRow], conc: np.ndarray) -> np.ndarray:
    """Requests each run's client sent: the enrichment's count, else BENCH_REQUESTS_PER_CONCURRENCY x conc."""
    return np.array([r.facts.num_prompts or c * BENCH_REQUESTS_PER_CONCURRENCY for r, c in zip(rows, conc, strict=True)],
                    dtype=np.float64)


def _fail(rows: list[RunRow], status: str) -> list[Prediction]:
    nan = math.nan
    return [Prediction(r.id, nan, nan, nan, status) for r in rows]


def _collect(rows: list[RunRow], est: Estimate) -> list[Prediction]:
    out = []
    cols = [np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (est.ttft_ms, est.tpot_ms, est.tokens_per_s_per_gpu)]
    feas = np.broadcast_to(np.atleast_1d(np.asarray(est.feasible)), (len(rows),))
    for i, r in enumerate(rows):
        ttft, tpot, tps = (float(np.broadcast_to(c, (len(rows),))[i]) for c in cols)
        if not feas[i] or not (math.isfinite(ttft) and math.isfinite(tpot)):
            out.append(Prediction(r.id, math.nan, math.nan, math.nan, f"infeasible: {est.reason or 'no finite estimate'}"))
        else:
            out.append(Prediction(r.id, ttft, tpot, tps, "ok"))
    return out


def _predict_agg(rows: list[RunRow], model, system, view, acceptance: float | None = None) -> list[Prediction]:
    w = rows[0].agg
    if w is None:
        return _fail(rows, "no tp_size for an agg row")
    backend = Backend(rows[0].backend)
    engine = EngineConfig(backend, spec_tokens=spec_tokens(rows[0], backend, model),
                          expert_slots=role_slots(rows[0], "agg", model.num_experts),
                          dp_moe_exchange=role_exchange(rows[0], "agg"),
                          spec_acceptance=acceptance,
                          moe_kernel=role_moe_kernel(rows[0], "agg", model.moe_quant, system),
                          # the launch's memory share, as the replay's (sim.runs.row_engine): one KV pool on
                          # both paths; the recorded batch / token limits stay the replay's (f859d7e)
                          mem_fraction=rows[0].facts.mem_fraction)
    # requests in flight per replica: the run's clients spread over its replicas (estimator.deployment)
    total = np.array([r.concurrency or rows[0].agg.batch or 1 for r in rows], dtype=np.float64)
    conc, replicas = total / (w.workers or 1), float(w.workers or 1)
    isl, osl = _mean_lengths(rows)
    load = Workload(isl=isl, osl=osl, concurrency=conc, num_requests=num_requests(rows, total) / replicas)
    return _collect(rows, estimate(model, system, agg_layout(rows[0], system), engine, load, view))


def _predict_disagg(rows: list[RunRow], model, system, view, acceptance: float | None = None) -> list[Prediction]:
    from estimator.serving import max_batch
    from estimator.steps import StepModel

    r0 = rows[0]
    if r0.prefill is None or r0.decode is None:
        return _fail(rows, "disagg row lacks prefill_tp_size or decode_tp_size")
    backend = Backend(r0.backend)
    engine = EngineConfig(backend, spec_tokens=spec_tokens(r0, backend, model), spec_acceptance=acceptance)
    isl, osl = _mean_lengths(rows)
    conc = np.array([r.concurrency or (r0.decode.batch or 1) * (r0.decode.workers or 1) for r in rows], dtype=np.float64)
    pre, dec = role_pools(r0, system, model.num_experts, model.moe_quant)   # estimator.deployment: the simulator's too
    p_par, d_par, d_batch = pre.parallel, dec.parallel, dec.max_batch
    p_engine, d_engine = pre.engine_for(engine), dec.engine_for(engine)
    if r0.decode.workers is not None:
        d_workers = np.full(len(rows), float(r0.decode.workers))
    else:
        sd = StepModel.build(model, system, d_par, d_engine, view)
        cap = np.clip(max_batch(sd, isl, osl), 1.0, DECODE_BATCH_PRIOR)
        if d_batch:
            cap = np.minimum(cap, d_batch)
        d_workers = np.maximum(1.0, np.ceil(conc / cap))
    est = estimate_disagg(model, system, WorkerSpec(p_par, p_engine, r0.prefill.workers, r0.prefill.batch),
                          WorkerSpec(d_par, d_engine, d_workers, d_batch),
                          Workload(isl=isl, osl=osl, concurrency=conc / d_workers,
                                   num_requests=num_requests(rows, conc) / d_workers), view)
    return _collect(rows, est)


def predict_runs(rows: list[RunRow], db: PerfDB, hf_hub: Path | None = None,
                 spec_acceptance: float | None = None) -> list[Prediction]:
    """One Prediction per row, in the input order. spec_acceptance: the draft acceptance of rows with
    speculative decoding (None: estimator.spec's default; scripts/fit_spec_acceptance.py varies it)."""
    groups: dict[tuple, list[RunRow]] = defaultdict(list)
    for r in rows:
        groups[group_key(r)].append(r)
    by_id: dict[str, Prediction] = {}
    for group in groups.values():
        r0 = group[0]
        if r0.backend not in {b.value for b in Backend}:
            by_id.update((p.id, p) for p in _fail(group, f"unsupported backend {r0.backend!r}; known: "
                                                          f"{', '.join(b.value for b in Backend)}"))
            continue
        try:
            backend = Backend(r0.backend)
            system = load_system(r0.system)
            model = model_for(r0, system, hf_hub)
            view = db.view(r0.system, backend, pick_version(db, r0.system, backend, r0.backend_version))
            predict = _predict_disagg if r0.mode == "disagg" else _predict_agg
            preds = predict(group, model, system, view, spec_acceptance)
        except ServecastError as exc:
            preds = _fail(group, f"{type(exc).__name__}: {exc}")
        by_id.update((p.id, p) for p in preds)
    return [by_id[r.id] for r in rows]


def write_predictions(preds: list[Prediction], path: Path, base: str = "estimate") -> None:
    """The predictions CSV, written atomically (a temporary file beside it, then renamed); `base` (estimate
    or simulate: what made them) goes in every row so a fit on the other base refuses the file."""
    import io

    from perfdb.storage import atomic_write_bytes

    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["id", "pred_ttft_ms", "pred_tpot_ms", "pred_tokens_per_s_per_gpu", "status", "base"])
    for p in preds:
        w.writerow([p.id, f"{p.ttft_ms:.6g}", f"{p.tpot_ms:.6g}", f"{p.tokens_per_s_per_gpu:.6g}", p.status, base])
    atomic_write_bytes(Path(path), buf.getvalue().encode())
