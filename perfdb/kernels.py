"""Shapes a table times with more than one kernel (several `kernel_source`s on one case key).

The lookup keys on shape, not kernel: where several rows sit on one node the fastest is kept
(perfdb.interp), and an engine whose launch settings name another kernel is priced from that kernel's
own rows (`PerfDB.view(..., moe_kernel=...)`, estimator.engines.profile.MoeKernelSwitch). `servecast db
info` says where a table holds such shapes, so a reader knows a price may depend on the kernel launched.
Only the MoE family is read: it is the one family kernel switches apply to.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from perfdb.schema import key_columns
from perfdb.storage import TableKey, read_table
from perfdb.types import LAUNCHED_ONLY_KERNELS, Backend, OpKind


@dataclass(frozen=True)
class SharedShapes:
    """`shapes` case keys of one table timed by more than one of `kernels`."""

    kind: OpKind
    shapes: int
    kernels: tuple[str, ...]


def shared_shapes(root: Path, system: str, backend: Backend, version: str,
                  kind: OpKind = OpKind.MOE) -> SharedShapes | None:
    """The case keys of one table that more than one kernel_source times, or None where there are none."""
    keys = list(key_columns(kind))
    table = read_table(root, TableKey(system, backend, version, kind), keys + ["kernel_source"])
    counted = table.group_by(keys).aggregate([("kernel_source", "count_distinct")])
    multi = counted.filter(pc.greater(counted["kernel_source_count_distinct"], 1))
    if not multi.num_rows:
        return None
    shared = table.join(multi.select(keys), keys=keys, join_type="inner")
    kernels = tuple(sorted(set(shared["kernel_source"].to_pylist())))
    return SharedShapes(kind, multi.num_rows, kernels)


def shared_shape_lines(root: Path, system: str, backend: str, version: str, kinds) -> list[str]:
    """One line per table of (system, backend, version) whose shapes several kernels time (`servecast db info`)."""
    if OpKind.MOE not in kinds:
        return []
    s = shared_shapes(root, system, Backend(backend), version)
    if s is None:
        return []
    launched = [k for k in s.kernels if re.search(LAUNCHED_ONLY_KERNELS, k)]
    only = f", {', '.join(launched)} only for an engine launched to run it" if launched else ""
    return [f"{s.kind.value}: {s.shapes:,} shapes timed by {len(s.kernels)} kernels ({', '.join(s.kernels)}); the "
            f"lookup takes the fastest, an engine whose launch settings name another is priced by that one's rows{only} "
            "(estimator.engines.profile.MoeKernelSwitch)"]
