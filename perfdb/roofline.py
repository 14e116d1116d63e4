"""Speed-of-light time of an op case on a system: the bound no kernel can beat.

Compute ops: max(flops / dense peak for the dtype, bytes / HBM bandwidth). Communication: bytes on
the link / link bandwidth of its transport. This is the `sol_ms` column of every perfdb row and the
denominator of utilisation (util = sol_ms / latency_ms) used by interpolation.
"""
from __future__ import annotations

import numpy as np

from perfdb.ops import CommCase, OpCase
from perfdb.ops.base import ModuleCase
from perfdb.specs import SystemSpec
from perfdb.types import Transport


def link_bw_bytes_per_s(system: SystemSpec, transport: Transport) -> float:
    return {
        Transport.NVLINK: system.nvlink_bw_bytes_per_s,
        Transport.NETWORK: system.network_bw_bytes_per_s,
        Transport.PCIE: system.pcie_bw_bytes_per_s,
        Transport.LOOPBACK: system.gpu.mem_bw_bytes_per_s,
    }[transport]


def roofline_s(case: OpCase, system: SystemSpec) -> tuple[np.ndarray, np.ndarray]:
    """(compute seconds, memory seconds) of a compute case, broadcast to its shape (compute 0 where the
    dtype has no compute peak). A module's times are its parts' sums, each part at its own dtype's peak."""
    if isinstance(case, ModuleCase):
        times = [roofline_s(p, system) for p in case.parts()]
        return (np.broadcast_to(sum(c for c, _ in times), case.shape),
                np.broadcast_to(sum(m for _, m in times), case.shape))
    peak = system.gpu.peak_flops(case.dtype)
    compute = case.flops() / peak if peak > 0 else np.zeros(case.shape)
    memory = case.bytes() / system.gpu.mem_bw_bytes_per_s
    return np.broadcast_to(compute, case.shape), np.broadcast_to(memory, case.shape)


def sol_ms(case: OpCase, system: SystemSpec) -> np.ndarray:
    if isinstance(case, CommCase):
        return case.bytes() / link_bw_bytes_per_s(system, case.transport) * 1e3
    compute, memory = roofline_s(case, system)
    return np.maximum(compute, memory) * 1e3


def log_ratio(compute: np.ndarray, memory: np.ndarray) -> np.ndarray:
    """log10(compute time / memory time): < 0 memory-bound, > 0 compute-bound, -inf without a peak."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(compute / memory)


def intensity_ratio(case: OpCase, system: SystemSpec) -> np.ndarray:
    """log10(compute time / memory time) of the case on the roofline: < 0 memory-bound, > 0 compute-bound
    (-inf for communication and dtypes without a compute peak). Kernels of the same sol_ms reach
    different shares of their roofline in the two regimes: on H200 an fp8 GEMM of sol 0.06 ms reaches
    ~65% of HBM bandwidth when weight-bound (decode) but ~48% of peak FLOP/s when compute-bound, so
    the efficiency curves are fitted and looked up per regime (perfdb.efficiency)."""
    if isinstance(case, CommCase):
        return np.full(case.shape, -np.inf)
    return log_ratio(*roofline_s(case, system))
