"""A collection session: the probed device, the system its rows are filed under, the backend adapter,
and the measurement of one case into one row (or one recorded failure)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from collectors import COLLECTOR_VERSION
from collectors import device as devinfo
from collectors.backends import Adapter, get_adapter
from collectors.cases import key
from collectors.failures import Failure
from collectors.registry import DeviceCtx, Unsupported
from collectors.sinks import host_name
from collectors.timer import TimerConfig, Timing, time_op
from perfdb.ops import OpCase
from perfdb.roofline import sol_ms
from perfdb.specs import SystemSpec, load_system
from perfdb.types import Backend, Transport

# What a case may raise that means "this case cannot run here", recorded and skipped. RuntimeError
# covers torch's OOM (torch.OutOfMemoryError) and "not implemented for dtype" errors.
CASE_ERRORS = (Unsupported, MemoryError, RuntimeError, NotImplementedError, ValueError)


@dataclass(frozen=True)
class Provenance:
    system: str
    gpu_name: str
    backend: Backend
    backend_version: str
    driver: str
    host: str
    collector_version: str = COLLECTOR_VERSION


@dataclass(frozen=True)
class Session:
    info: devinfo.DeviceInfo
    spec: SystemSpec
    adapter: Adapter
    ctx: DeviceCtx
    prov: Provenance
    timer: TimerConfig


def open_session(backend: Backend, device: str, timer: TimerConfig, system: str | None = None,
                 rank: int = 0, world_size: int = 1, transport: Transport | None = None,
                 host: str | None = None, probe_local: bool = True, device_index: int = 0) -> Session:
    """probe_local=False: a Ray driver without the workers' GPUs (the system must then be given)."""
    if probe_local:
        info = devinfo.probe(device, device_index)
    else:
        info = devinfo.DeviceInfo(device, 0, "(remote Ray workers)", "", "", None)
    system_id = devinfo.resolve_system(info, system)
    spec = load_system(system_id)
    adapter = get_adapter(backend)
    if transport is None:
        transport = Transport.LOOPBACK if device == "cpu" else Transport.NVLINK
    ctx = DeviceCtx(device, spec.gpu.sm_version, rank, world_size, transport)
    prov = Provenance(system_id, info.gpu_name, backend, adapter.version, info.driver, host_name(host))
    return Session(info, spec, adapter, ctx, prov, timer)


def _row(case: OpCase, timing: Timing, kernel: str, s: Session, before, after) -> dict:
    sol = float(sol_ms(case, s.spec))
    flags = [f for f in devinfo.flags(before, after).split(",") if f]
    if timing.median_ms < sol:
        flags.append("faster_than_sol")  # beats the roofline: a measurement error, kept but marked
    row = dict(case.categoricals())
    row.update({n: int(getattr(case, n)) for n in case.NUMERIC})
    row.update(latency_ms=timing.median_ms, p10_ms=timing.p10_ms, p90_ms=timing.p90_ms, n_samples=timing.n,
               timing_method=timing.method.value, sol_ms=sol, kernel_source=kernel,
               sm_clock_mhz=devinfo.mean_clock(before, after), collected_at=datetime.now(timezone.utc),
               flags=",".join(flags))
    row.update({f.name: getattr(s.prov, f.name) for f in dataclasses.fields(Provenance)})
    row["backend"] = s.prov.backend.value
    return row


def measure(case: OpCase, s: Session) -> dict | Failure:
    """Time one point case: a perfdb row, or the Failure that says why it could not run."""
    try:
        before = devinfo.health(s.info, os.getpid())
        prepared = s.adapter.build(case, s.ctx)
        cfg = s.timer if prepared.graph_safe else dataclasses.replace(s.timer, use_graph=False)
        timing = time_op(prepared.fn, s.ctx.device, cfg, prepared.hooks)
        after = devinfo.health(s.info, os.getpid())
        return _row(case, timing, prepared.kernel_source, s, before, after)
    except CASE_ERRORS as exc:
        _release_memory(s.ctx.device)
        reason = (str(exc).splitlines() or [""])[0][:300]
        return Failure(case.KIND, key(case), s.prov.system, s.prov.backend.value, s.prov.backend_version,
                       type(exc).__name__, reason)


def _release_memory(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def db_version_dir(root: Path, s: Session) -> Path:
    return Path(root) / s.prov.system / s.prov.backend.value / s.prov.backend_version
