"""Op collectors keyed by op family, and the small types they share.

A collector knows its family's base grid and how to build one timed launch of a case with torch
(`build`). Backend adapters (collectors/backends/) may replace `build` for the ops their engine has
its own kernels for. A case that cannot run here raises `Unsupported` with the reason; the runner
records it and goes on.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

from collectors.timer import Hooks
from perfdb.ops import OpCase
from perfdb.registry import add
from perfdb.types import OpKind, Transport


class GridSize(str, Enum):
    TINY = "tiny"    # a CPU host in tests and docs: seconds per family
    SMALL = "small"  # a quick GPU sanity sweep: minutes per family
    FULL = "full"    # the database sweep on a GPU node (bounded by --budget-minutes)


class Unsupported(Exception):
    """This case cannot run on this device / library (unsupported dtype, shape, GPU generation)."""


@dataclass(frozen=True)
class DeviceCtx:
    device: str                 # "cuda" or "cpu"
    sm_version: int = 0         # 90 Hopper, 100 Blackwell; 0 on CPU
    rank: int = 0               # torch.distributed rank (communication only)
    world_size: int = 1
    transport: Transport = Transport.LOOPBACK  # link the process group's ranks talk over


@dataclass(frozen=True)
class Prepared:
    fn: Callable[[], object]    # one launch of the op; inputs already allocated on the device
    kernel_source: str          # which kernel ran, e.g. "cublas", "sdpa_flash", "triton_paged_decode"
    graph_safe: bool = True     # False: never capture in a CUDA graph (host syncs, collectives)
    hooks: Hooks = Hooks()      # multi-rank ops: agree on repetitions, barrier, slowest-rank samples


Builder = Callable[[OpCase, DeviceCtx], Prepared]


@dataclass(frozen=True)
class OpCollector:
    kind: OpKind
    grid: Callable[[GridSize, DeviceCtx], list[OpCase]]
    build: Builder
    distributed: bool = False   # runs on every rank of a process group (communication)


COLLECTORS: dict[OpKind, OpCollector] = {}


def register(collector: OpCollector) -> OpCollector:
    return add(COLLECTORS, collector.kind, collector, "collector")


def load_all() -> dict[OpKind, OpCollector]:
    """Import every op module (each registers itself) and return the registry."""
    import importlib

    from collectors.ops import FAMILIES

    for name in FAMILIES:
        importlib.import_module(f"collectors.ops.{name}")
    return COLLECTORS


def get_collector(kind: OpKind) -> OpCollector:
    return load_all()[kind]
