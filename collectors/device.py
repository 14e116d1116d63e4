"""Device identity and health: which GPU ran the rows, at what clocks, and whether it was throttled or shared.

GPU facts come from NVML (nvidia-ml-py); on a CPU host the system is `cpu_host` and the "GPU name" is
the CPU model. A snapshot is taken before and after each shard's cases; rows carry the mean SM clock
and a `flags` string ("throttled", "shared_gpu") when either snapshot saw a problem.
"""
from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path

from perfdb.errors import NotFoundError
from perfdb.specs import list_systems

# NVML names -> bundled system id. Order matters: "GB200" contains "B200".
_NAME_TO_SYSTEM = (
    ("GB300", "gb300"), ("GB200", "gb200"), ("B300", "b300_sxm"), ("B200", "b200_sxm"),
    ("H200", "h200_sxm"), ("H100 80GB HBM3", "h100_sxm"), ("H100 SXM", "h100_sxm"), ("A100-SXM", "a100_sxm"),
    ("A100 80GB", "a100_sxm"),
)
# NVML clocks-event (throttle) bits that mean the GPU ran below its application clocks for a bad reason.
# Idle (0x1), application-clock setting (0x2) and software power cap at idle are not counted.
_BAD_THROTTLE = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                 0x80: "hw_power_brake"}


@dataclass(frozen=True)
class DeviceInfo:
    device: str               # "cuda" or "cpu"
    index: int
    gpu_name: str
    serial_hash: str          # sha256[:12] of the board serial / UUID (identifies a board without exposing it)
    driver: str
    detected_system: str | None


@dataclass(frozen=True)
class Health:
    sm_clock_mhz: float | None
    mem_clock_mhz: float | None
    power_w: float | None
    throttle: tuple[str, ...]
    other_processes: int      # compute processes on the GPU besides this one


def detect_system(gpu_name: str) -> str | None:
    """Bundled system id for an NVML GPU name, or None when no bundled spec matches."""
    upper = gpu_name.upper()
    for needle, system in _NAME_TO_SYSTEM:
        if needle.upper() in upper:
            return system
    return None


def resolve_system(info: DeviceInfo, override: str | None) -> str:
    """The system id rows are filed under: the override if given, else the detected one."""
    if override:
        if override not in list_systems():
            raise NotFoundError(f"unknown system {override!r}; known systems: {', '.join(list_systems())}")
        return override
    if info.detected_system is None:
        raise NotFoundError(f"no bundled system spec matches GPU {info.gpu_name!r}; pass --system "
                            f"(known: {', '.join(list_systems())})")
    return info.detected_system


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def probe(device: str, index: int = 0) -> DeviceInfo:
    """Identify the device. CUDA identity needs NVML; without it the name comes from torch."""
    if device == "cpu":
        name = _cpu_model()
        return DeviceInfo("cpu", 0, name, _hash(name + platform.node()), platform.release(), "cpu_host")
    nvml = _nvml()
    if nvml is None:
        import torch

        name = torch.cuda.get_device_name(index)
        return DeviceInfo("cuda", index, name, "", "", detect_system(name))
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(nvml.nvmlDeviceGetName(handle))
    try:
        serial = _text(nvml.nvmlDeviceGetSerial(handle))
    except nvml.NVMLError:
        serial = _text(nvml.nvmlDeviceGetUUID(handle))
    driver = _text(nvml.nvmlSystemGetDriverVersion())
    return DeviceInfo("cuda", index, name, _hash(serial), driver, detect_system(name))


def health(info: DeviceInfo, own_pid: int) -> Health:
    """Clocks, power, throttle reasons and other tenants right now (all None/empty on CPU)."""
    nvml = _nvml() if info.device == "cuda" else None
    if nvml is None:
        return Health(None, None, None, (), 0)
    h = nvml.nvmlDeviceGetHandleByIndex(info.index)
    sm = float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
    mem = float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM))
    power = nvml.nvmlDeviceGetPowerUsage(h) / 1e3  # mW -> W
    reasons = nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)
    throttle = tuple(name for bit, name in _BAD_THROTTLE.items() if reasons & bit)
    procs = nvml.nvmlDeviceGetComputeRunningProcesses(h)
    others = sum(1 for p in procs if p.pid != own_pid)
    return Health(sm, mem, power, throttle, others)


def flags(before: Health, after: Health) -> str:
    """Comma-separated problems seen in either snapshot; "" for a clean run."""
    out = []
    if before.throttle or after.throttle:
        out.append("throttled")
    if before.other_processes or after.other_processes:
        out.append("shared_gpu")
    return ",".join(out)


def mean_clock(before: Health, after: Health) -> float | None:
    clocks = [c for c in (before.sm_clock_mhz, after.sm_clock_mhz) if c is not None]
    return sum(clocks) / len(clocks) if clocks else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_NVML_STATE: dict[str, object] = {}


def _nvml():
    """The initialised pynvml module, or None when nvidia-ml-py or the driver is absent."""
    if "mod" not in _NVML_STATE:
        _NVML_STATE["mod"] = None
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            _NVML_STATE["mod"] = pynvml
        except pynvml.NVMLError:
            pass  # no driver on this host: identity falls back to torch
    return _NVML_STATE["mod"]
