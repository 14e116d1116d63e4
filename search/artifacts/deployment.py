"""The deployment spec: one YAML file that says exactly what was planned, for the people who deploy
it and for `servecast calibrate ingest --deployment`, which pairs it with the benchmark result.

    format: servecast-deployment        format_version: 1
    deployment: {...}                   # the calibration's spec format (calibrate/deployment.py):
                                        # model, system, backend, version, mode, agg | prefill+decode
                                        # {tp, pp, attn_dp, moe_tp, moe_ep, workers, batch_size}, engine
    model, system, backend, version, mode (agg | disagg), gemm_quant, moe_quant
    isl, osl, prefix, concurrency       # concurrency: requests in flight over the whole deployment, as the
                                        # simulator replayed it (backed off when the static one missed a
                                        # target under load), else the static estimate's
    total_gpus, gpus_used
    workers: [{role: agg|prefill|decode, count, tp, pp, attn_dp, moe_tp, moe_ep, gpus_per_worker,
               max_batch, max_num_tokens}]        # counts over the whole deployment
    engine: {kv_cache_dtype, mem_fraction, max_model_len}
    sla: {ttft_ms, tpot_ms, request_latency_ms, at (median | upper: which value met them, `plan --sla-at`)}
    predicted: {ttft_ms, tpot_ms, request_latency_ms, tokens_per_s_per_gpu, tokens_per_s_per_user,
                concurrency, source, estimated_share}   # the static estimate at its own concurrency;
                                        # estimated_share: kernel time from extrapolation/roofline
    simulated: {ttft_ms, tpot_ms, tokens_per_s_per_gpu, concurrency, statistic, calibrated, ttft_hi_ms,
                tpot_hi_ms, backed_off_from}   # the replay the plan decided on (absent: --no-simulate)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from estimator.parallel import ParallelConfig
from perfdb.errors import DataError
from perfdb.types import Backend
from perfdb.userfiles import read_text
from search.artifacts.engines import EngineSettings, Role, candidate_launch_flags
from search.types import Candidate, Mode, SimCheck, Sla

FORMAT, FORMAT_VERSION = "servecast-deployment", 1


@dataclass(frozen=True)
class WorkerEntry:
    role: Role
    count: int
    tp: int
    pp: int
    attn_dp: int
    moe_tp: int
    moe_ep: int
    gpus_per_worker: int
    max_batch: int
    max_num_tokens: int

    @property
    def parallel(self) -> ParallelConfig:
        return ParallelConfig(tp=self.tp, pp=self.pp, attn_dp=self.attn_dp, moe_tp=self.moe_tp, moe_ep=self.moe_ep)


@dataclass(frozen=True)
class DeploymentSpec:
    model: str
    system: str
    backend: Backend
    version: str | None
    mode: Mode
    isl: int
    osl: int
    prefix: int
    concurrency: int
    total_gpus: int
    gpus_used: int
    workers: tuple[WorkerEntry, ...]
    engine: dict
    sla: dict
    predicted: dict
    gemm_quant: str = ""       # perfdb Dtype value when the plan overrode the checkpoint's numerics
    moe_quant: str = ""
    simulated: dict | None = None   # the simulator's replay at `concurrency` (None: not simulated)
    range_ratio: float = 0.0        # request lengths uniform in [x(1 - r), x(1 + r)] (search.types.PlanRequest)
    # role -> the flags its workers are launched with, in the engine's own names (engines.launch_flags):
    # what `servecast simulate --plan` replays, as the plan did ({}: a file written before they were kept)
    launch_flags: dict | None = None

    def role_flags(self):
        """launch_flags as the simulator takes them (estimator.run_facts.RoleFlags); None when not kept."""
        from estimator.run_facts import RoleFlags

        return RoleFlags.of_roles(self.launch_flags) if self.launch_flags else None

    def calibrate_section(self) -> dict:
        """The same deployment in the calibration's spec format (one engine section: the decode side's)."""
        roles = {}
        for w in self.workers:
            roles[w.role.value] = {"tp": w.tp, "pp": w.pp, "attn_dp": w.attn_dp, "moe_tp": w.moe_tp, "moe_ep": w.moe_ep,
                                   "workers": w.count, "batch_size": max(1, -(-w.max_batch // w.attn_dp))}
        main = self.workers[-1]
        engine = {"max_batch_size": main.max_batch, "max_num_tokens": main.max_num_tokens,
                  "mem_fraction": self.engine["mem_fraction"], "kv_dtype": self.engine["kv_cache_dtype"]}
        out = {"model": self.model, "system": self.system, "backend": self.backend.value,
               "version": self.version or "", "mode": self.mode.value, **roles, "engine": engine}
        if self.gemm_quant:
            out["gemm_quant"] = self.gemm_quant
        if self.moe_quant:
            out["moe_quant"] = self.moe_quant
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["backend"], d["mode"] = self.backend.value, self.mode.value
        d["workers"] = [dict(asdict(w), role=w.role.value) for w in self.workers]
        if self.simulated is None:
            del d["simulated"]
        if not self.launch_flags:
            del d["launch_flags"]
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "deployment": self.calibrate_section(), **d}

    @staticmethod
    def from_dict(d: dict) -> "DeploymentSpec":
        if d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
            raise DataError(f"not a {FORMAT} v{FORMAT_VERSION} file (format={d.get('format')!r}, "
                            f"format_version={d.get('format_version')!r})")
        try:
            workers = tuple(WorkerEntry(**dict(w, role=Role(w["role"]))) for w in d["workers"])
            fields = {k: d[k] for k in ("model", "system", "version", "isl", "osl", "prefix", "concurrency",
                                        "total_gpus", "gpus_used", "engine", "sla", "predicted")}
            fields.update({k: d.get(k) or "" for k in ("gemm_quant", "moe_quant")}, simulated=d.get("simulated"),
                          range_ratio=float(d.get("range_ratio") or 0.0), launch_flags=d.get("launch_flags") or None)
            return DeploymentSpec(backend=Backend(d["backend"]), mode=Mode(d["mode"]), workers=workers, **fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"deployment spec is missing or has a bad field: {exc}") from None


def _entry(role: Role, w, count: int) -> WorkerEntry:
    p = w.parallel
    return WorkerEntry(role=role, count=count, tp=p.tp, pp=p.pp, attn_dp=p.attn_dp, moe_tp=p.moe_tp, moe_ep=p.moe_ep,
                       gpus_per_worker=p.num_gpus, max_batch=w.max_batch, max_num_tokens=w.max_num_tokens)


def simulated_fields(sim: SimCheck) -> dict:
    """A replay as deployment.yaml's `simulated` and plan.json's replays hold it."""
    d = {"ttft_ms": round(sim.ttft_ms, 3), "tpot_ms": round(sim.tpot_ms, 4),
         "tokens_per_s_per_gpu": round(sim.tokens_per_s_per_gpu, 3), "concurrency": round(sim.concurrency, 2),
         "statistic": sim.statistic, "calibrated": sim.calibrated, "meets_sla": sim.meets_sla, "runs": sim.runs}
    if sim.ttft_hi_ms is not None:
        d["ttft_hi_ms"] = round(sim.ttft_hi_ms, 3)
    if sim.tpot_hi_ms is not None:
        d["tpot_hi_ms"] = round(sim.tpot_hi_ms, 4)
    if sim.at_static is not None:
        d["backed_off_from"] = simulated_fields(sim.at_static)
    return d


def deployment_spec(c: Candidate, system: str, isl: int, osl: int, prefix: int, sla: Sla,
                    s: EngineSettings, gemm_quant: str = "", moe_quant: str = "",
                    sim: SimCheck | None = None, range_ratio: float = 0.0) -> DeploymentSpec:
    if c.mode == Mode.AGG:
        workers = (_entry(Role.AGG, c.decode, c.decode.workers),)
    else:
        workers = (_entry(Role.PREFILL, c.prefill, c.prefill.workers * c.replicas),
                   _entry(Role.DECODE, c.decode, c.decode.workers * c.replicas))
    m = c.metrics
    return DeploymentSpec(
        model=s.model, system=system, backend=c.backend, version=c.version, mode=c.mode, isl=isl, osl=osl,
        prefix=prefix, concurrency=max(1, int(math.ceil(m.concurrency if sim is None else sim.concurrency))),
        total_gpus=c.total_gpus,
        gpus_used=c.gpus_used, workers=workers,
        engine={"kv_cache_dtype": s.kv_dtype.value, "mem_fraction": round(s.mem_fraction, 3),
                "max_model_len": s.max_model_len},
        sla={"ttft_ms": sla.ttft_ms, "tpot_ms": sla.tpot_ms, "request_latency_ms": sla.request_latency_ms,
             "at": sla.at.value},
        predicted={"ttft_ms": round(m.ttft_ms, 3), "tpot_ms": round(m.tpot_ms, 4),
                   "request_latency_ms": round(m.request_latency_ms, 2),
                   "tokens_per_s_per_gpu": round(m.tokens_per_s_per_gpu, 2),
                   "tokens_per_s_per_user": round(m.tokens_per_s_per_user, 2),
                   "concurrency": round(m.concurrency, 2), "source": m.source.value,
                   "estimated_share": round(m.estimated_share, 3)},
        gemm_quant=gemm_quant, moe_quant=moe_quant, simulated=None if sim is None else simulated_fields(sim),
        range_ratio=round(range_ratio, 4),
        launch_flags=candidate_launch_flags(c, s),
    )


def load_deployment(path: Path) -> DeploymentSpec:
    """Read a deployment.yaml written by `servecast plan`."""
    import yaml

    try:
        raw = yaml.safe_load(read_text(path, "deployment spec", "a deployment.yaml from `servecast plan --save-dir`"))
    except yaml.YAMLError as exc:
        raise DataError(f"cannot read deployment spec {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"deployment spec {path} is not a mapping")
    return DeploymentSpec.from_dict(raw)
