"""Speed-of-light time of an op case on a system: the bound no kernel can beat.

Compute ops: max(flops / dense peak for the dtype, bytes / HBM bandwidth). Communication: bytes on
the link / link bandwidth of its transport. This is the `sol_ms` column of every perfdb row and the
denominator of utilisation (util = sol_ms / latency_ms) used by interpolation.
"""
from __future__ import annotations

import numpy as np

from perfdb.ops import CommCase, OpCase
from perfdb.specs import SystemSpec
from perfdb.types import Transport


def link_bw_bytes_per_s(system: SystemSpec, transport: Transport) -> float:
    return {
        Transport.NVLINK: system.nvlink_bw_bytes_per_s,
        Transport.NETWORK: system.network_bw_bytes_per_s,
        Transport.PCIE: system.pcie_bw_bytes_per_s,
        Transport.LOOPBACK: system.gpu.mem_bw_bytes_per_s,
    }[transport]


def sol_ms(case: OpCase, system: SystemSpec) -> np.ndarray:
    if isinstance(case, CommCase):
        return case.bytes() / link_bw_bytes_per_s(system, case.transport) * 1e3
    peak = system.gpu.peak_flops(case.dtype)
    compute = case.flops() / peak if peak > 0 else np.zeros(case.shape)
    memory = case.bytes() / system.gpu.mem_bw_bytes_per_s
    return np.maximum(compute, memory) * 1e3
