"""Files of a plan in --save-dir: artifacts per top candidate, plan.json, and the inputs of the
points files and the Pareto PNG (which a helper process may write while the search runs).

    <save-dir>/plan.json          request, winner, top-N per mode with their artifact directories
    <save-dir>/points.parquet     every evaluated point (search.points)
    <save-dir>/points.csv
    <save-dir>/pareto.png         search.plot
    <save-dir>/top/<NN-mode-backend-shape>/   search.artifacts.writer
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from estimator.models.spec import ModelSpec
from perfdb.types import Dtype
from search.artifacts.deployment import simulated_fields
from search.artifacts.dynamo import DEFAULT_TAG
from search.artifacts.engines import EngineSettings, settings_for
from search.artifacts.writer import remove_written, write_candidate, written_by_servecast
from search.calibrated import interval
from search.plan import PlanResult
from search.plot import ParetoData, Series, sample
from search.points import BACKENDS, MODES
from search.types import Candidate, SimCheck


def engine_settings(result: PlanResult, c: Candidate) -> EngineSettings:
    return settings_for(result.request, result.model, result.system, c)


def _quant(model: ModelSpec, override: Dtype | None) -> str:
    return override.value if override else ""


def clear_stale(top_dir: Path) -> list[Path]:
    """Remove what an earlier plan wrote under top/ (only the files servecast wrote: writer.written_by_servecast);
    returns the directories left because they hold other files."""
    kept = []
    if not top_dir.is_dir():
        return kept
    for d in sorted(top_dir.iterdir()):
        if d.is_dir() and not d.is_symlink() and written_by_servecast(d) is not None and not remove_written(d):
            kept.append(d)
    return kept


def write_artifacts(result: PlanResult, save_dir: Path, dynamo_tag: str = DEFAULT_TAG) -> dict:
    """Artifacts of every top candidate, after clearing an earlier plan's (clear_stale); returns
    {row: directory name} for the summary. dynamo_tag: the Dynamo release of the k8s manifests' images."""
    req = result.request
    top_dir = Path(save_dir) / "top"
    clear_stale(top_dir)
    written: dict[int, str] = {}
    rank = 0
    for _mode, cands in result.top.items():
        for c in cands:
            rank += 1
            out = write_candidate(top_dir, c, rank, req.system, result.system.gpus_per_node, req.isl, req.osl,
                                  req.prefix, req.sla, engine_settings(result, c),
                                  _quant(result.model, req.gemm_quant), _quant(result.model, req.moe_quant),
                                  calibrated_fields(result, c), dynamo_tag, result.sims.get(c.row),
                                  req.range_ratio)
            written[c.row] = str(out.relative_to(save_dir))
    (Path(save_dir) / "plan.json").write_text(json.dumps(summary(result, written), indent=1, default=str))
    return written


def calibrated_fields(result: PlanResult, c: Candidate) -> dict:
    """calibration_id and the prediction intervals of a calibrated candidate ({} when uncalibrated)."""
    cal = result.calibrations.get(c.backend)
    iv = interval(cal, c.mode, c.metrics.ttft_ms, c.metrics.tpot_ms, result.model.name, result.system.name)
    if cal is None:
        return {}
    out = {"calibration_id": cal.id}
    if iv is not None:
        out.update(ttft_interval_ms=[round(v, 3) for v in iv.ttft_ms], tpot_interval_ms=[round(v, 4) for v in iv.tpot_ms],
                   interval_coverage=iv.coverage)
    return out


def _cand(c: Candidate, artifacts: str | None, calibrated: dict | None = None, sim: SimCheck | None = None) -> dict:
    """One candidate of plan.json: its static `metrics` at their own concurrency and, when replayed, `simulated`
    (the replay the plan decided on, at the concurrency its artifacts use)."""
    d = {"mode": c.mode.value, "backend": c.backend.value, "version": c.version, "shape": c.label(),
         "gpus_used": c.gpus_used, "replicas": c.replicas,
         "decode": {"parallel": asdict(c.decode.parallel), "workers": c.decode.workers,
                    "max_batch": c.decode.max_batch, "max_num_tokens": c.decode.max_num_tokens},
         "metrics": {k: (v.value if hasattr(v, "value") else round(v, 4)) for k, v in asdict(c.metrics).items()},
         "artifacts": artifacts}
    if calibrated:
        d["calibrated"] = calibrated
    if sim is not None:
        d["simulated"] = _sim(sim)
    if c.prefill is not None:
        d["prefill"] = {"parallel": asdict(c.prefill.parallel), "workers": c.prefill.workers,
                        "max_batch": c.prefill.max_batch, "max_num_tokens": c.prefill.max_num_tokens}
    return d


def summary(result: PlanResult, written: dict) -> dict:
    req = result.request
    return {
        "request": {"model": req.model, "system": req.system, "backends": [b.value for b in req.backends],
                    "total_gpus": req.total_gpus, "isl": req.isl, "osl": req.osl, "prefix": req.prefix,
                    "sla": asdict(req.sla), "mode": req.mode.value},
        "points_evaluated": result.points_evaluated,
        "winner": _cand(result.winner, written.get(result.winner.row), calibrated_fields(result, result.winner),
                        result.sims.get(result.winner.row)) if result.winner else None,
        "speedup_over_other_mode": result.speedup,
        "top": {m.value: [_cand(c, written.get(c.row), calibrated_fields(result, c), result.sims.get(c.row)) for c in cs]
                for m, cs in result.top.items()},
        "calibration": {b.value: cal.id for b, cal in result.calibrations.items()} or None,
        "simulated": {str(row): _sim(s) for row, s in result.sims.items()} or None,   # search.decide's replays
        "why": result.why or None,
    }


def _sim(s: SimCheck) -> dict:
    d = simulated_fields(s)
    if s.parts is not None:
        d["ttft_parts_ms"] = {k: round(v, 3) for k, v in asdict(s.parts).items()}
    return d


def pareto_data(result: PlanResult) -> ParetoData:
    pts, req = result.points, result.request
    code = np.array([req.backends.index(b) if b in req.backends else -1 for b in BACKENDS], dtype=np.int64)

    def series(rows) -> Series:
        return Series.of(pts["tokens_per_s_per_user"][rows], pts["tokens_per_s_per_gpu"][rows], pts["ttft_ms"][rows],
                         code[pts["backend"][rows].astype(np.int64)])

    clouds, fronts, missed = {}, {}, {}
    for mode, rows in result.frontier.items():
        feasible = np.flatnonzero(pts["feasible"] & (pts["mode"] == MODES.index(mode)))
        clouds[mode.value] = series(feasible[sample(len(feasible))])
        fronts[mode.value] = series(rows)
        if result.winner is None:
            missed[mode.value] = series(result.frontier_all[mode])
    w = result.winner
    winner = (w.metrics.tokens_per_s_per_user, w.metrics.tokens_per_s_per_gpu, w.metrics.ttft_ms,
              f"{w.mode.value} {w.backend.value} {w.label()}" + _sim_note(result.sims.get(w.row))) if w else None
    lat_tps = None
    if req.sla.request_latency_ms:
        lat_tps = 1000.0 * max(req.osl - 1, 1) / max(req.sla.request_latency_ms - 0.0, 1e-9)
    title = (f"{req.model} on {req.total_gpus}x {req.system} ({', '.join(b.value for b in req.backends)}), "
             f"ISL {req.isl} OSL {req.osl}, TTFT<={req.sla.ttft_ms:g} ms, TPOT<={req.sla.tpot_ms:g} ms")
    return ParetoData(title=title, tpot_ms=req.sla.tpot_ms, ttft_ms=req.sla.ttft_ms, request_latency_user_tps=lat_tps,
                      backends=tuple(b.value for b in req.backends), clouds=clouds, frontiers=fronts, winner=winner,
                      missed=missed, note=_miss_note(result) if w is None else "",
                      best={b.value: (c.metrics.tokens_per_s_per_user, c.metrics.tokens_per_s_per_gpu, c.metrics.ttft_ms,
                                      c.mode.value) for b, c in result.per_backend.items()})


def _sim_note(s: SimCheck | None) -> str:
    """The winner's legend entry marks its static point; what the simulator decided on goes beside."""
    if s is None:
        return ""
    return f" (static point; simulated {s.tokens_per_s_per_gpu:,.1f} tok/s/GPU at {s.concurrency:,.0f} clients)"


def _miss_note(result: PlanResult) -> str:
    """The boxed note of a plan where nothing meets the targets."""
    sla, d = result.request.sla, result.diagnosis
    targets = f"TTFT <= {sla.ttft_ms:g} ms, TPOT <= {sla.tpot_ms:g} ms"
    if sla.request_latency_ms:
        targets += f", request latency <= {sla.request_latency_ms:g} ms"
    name = {"ttft": "TTFT", "tpot": "TPOT"}.get(d.binding.value, d.binding.value) if d is not None else ""
    why = f"; the closest points miss the {name} target" if d is not None else ""
    return (f"Nothing meets the targets ({targets}){why}. Dashed: the best points ignoring the targets; "
            "no deployment is recommended.")
