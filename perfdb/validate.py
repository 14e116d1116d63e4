"""Schema and sanity checks of stored rows (`servecast db validate`).

A row is rejected when it cannot be a real measurement:
  - non-positive or non-finite latency, or p10 > median or median > p90;
  - provenance that disagrees with the directory it is stored in (system / backend / version);
  - faster than well-tuned kernels get (REFERENCE.md): achieved FLOP/s above 75% of the dense peak on
    Hopper (80% elsewhere: the best published Blackwell figure is 76%), achieved HBM traffic above 95%
    of the datasheet bandwidth, or a collective's bus bandwidth above 480 GB/s per 450 GB/s of
    NVLink (8x H100/H200: ~479 GB/s is the published NCCL best); network transports get the same
    ratio of their link.
A shard that is not readable Parquet of the family's schema is rejected as a whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from perfdb.errors import DataError, ServecastError
from perfdb.family import FamilyTable, make_case
from perfdb.ops import CommCase
from perfdb.roofline import link_bw_bytes_per_s
from perfdb.schema import conform
from perfdb.specs import SystemSpec, load_system
from perfdb.storage import TableKey, list_tables, shard_paths
from perfdb.types import OpKind, Transport

HOPPER_COMPUTE_BOUND = 0.75
OTHER_COMPUTE_BOUND = 0.80
HBM_BOUND = 0.95
BUS_BW_PER_LINK = 480.0 / 450.0


@dataclass(frozen=True)
class Rejection:
    shard: Path
    row: int | None       # row inside the shard; None = the whole shard
    reason: str


@dataclass(frozen=True)
class ValidationReport:
    tables: int
    shards: int
    rows: int
    rejections: tuple[Rejection, ...]

    @property
    def ok(self) -> bool:
        return not self.rejections


def _read(path: Path, kind: OpKind) -> pa.Table:
    try:
        return conform(kind, pq.ParquetFile(path).read())
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"not readable Parquet: {exc}") from None


def _basic(table: pa.Table, key: TableKey) -> list[tuple[np.ndarray, str]]:
    lat = table.column("latency_ms").to_numpy(zero_copy_only=False).astype(float)
    p10 = table.column("p10_ms").to_numpy(zero_copy_only=False).astype(float)
    p90 = table.column("p90_ms").to_numpy(zero_copy_only=False).astype(float)
    checks = [(~np.isfinite(lat) | (lat <= 0), "non-positive or non-finite latency_ms"),
              (p10 > lat, "p10_ms above the median latency_ms"), (p90 < lat, "p90_ms below the median latency_ms")]
    for column, expected in (("system", key.system), ("backend", key.backend.value), ("backend_version", key.version)):
        values = np.asarray(table.column(column).to_pylist(), dtype=object)
        checks.append((values != expected, f"{column} differs from its directory ({expected})"))
    return checks


def _bounds(table: pa.Table, key: TableKey, system: SystemSpec) -> list[tuple[np.ndarray, str]]:
    fam = FamilyTable(key.op, table, system, key.version)
    n = table.num_rows
    compute_frac, mem_frac, bus = np.zeros(n), np.zeros(n), np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for combo, rows in fam.groups.items():
            case = make_case(key.op, combo, {a: fam.raw[rows, j] for j, a in enumerate(fam.axes)})
            seconds = fam.latency[rows] * 1e-3
            if isinstance(case, CommCase):
                if case.transport != Transport.LOOPBACK:
                    bus[rows] = case.bytes() / seconds / (BUS_BW_PER_LINK * link_bw_bytes_per_s(system, case.transport))
                continue
            peak = system.gpu.peak_flops(case.dtype)
            compute_frac[rows] = case.flops() / seconds / peak if peak > 0 else 0.0
            mem_frac[rows] = case.bytes() / seconds / system.gpu.mem_bw_bytes_per_s
    compute_bound = HOPPER_COMPUTE_BOUND if system.gpu.sm_version == 90 else OTHER_COMPUTE_BOUND
    checks = [(np.nan_to_num(bus) > 1.0, "collective bus bandwidth above the NVLink/NIC sanity bound"),
              (np.nan_to_num(mem_frac) > HBM_BOUND, f"achieved memory traffic above {HBM_BOUND:.0%} of HBM bandwidth")]
    if system.gpu.sm_version > 0:  # CPU hosts have nominal peaks; no published kernel bound applies
        checks.append((np.nan_to_num(compute_frac) > compute_bound,
                       f"achieved FLOP/s above {compute_bound:.0%} of the dense {system.name} peak"))
    return checks


def _validate_shard(path: Path, key: TableKey, system: SystemSpec | None) -> tuple[int, list[Rejection]]:
    try:
        table = _read(path, key.op)
    except ServecastError as exc:
        return 0, [Rejection(path, None, str(exc))]
    out: list[Rejection] = []
    checks = _basic(table, key)
    if system is None:
        out.append(Rejection(path, None, f"unknown system directory {key.system!r}; bounds not checked"))
    else:
        usable = table.filter(pa.array(~checks[0][0]))
        keep = np.flatnonzero(~checks[0][0])
        for mask, reason in _bounds(usable, key, system):
            full = np.zeros(table.num_rows, bool)
            full[keep] = mask
            checks.append((full, reason))
    for mask, reason in checks:
        out.extend(Rejection(path, int(r), reason) for r in np.flatnonzero(mask))
    return table.num_rows, out


def validate_db(root: Path, system: str | None = None, op: OpKind | None = None) -> ValidationReport:
    tables = shards = rows = 0
    rejections: list[Rejection] = []
    for key in list_tables(root):
        if (system and key.system != system) or (op and key.op != op):
            continue
        try:
            spec = load_system(key.system)
        except ServecastError:
            spec = None
        tables += 1
        for path in shard_paths(root, key):
            shards += 1
            n, rej = _validate_shard(path, key, spec)
            rows += n
            rejections += rej
    return ValidationReport(tables, shards, rows, tuple(rejections))
