"""Schema and sanity checks of stored rows (`servecast db validate`).

A row is rejected when it cannot be a real measurement:
  - non-positive or non-finite latency, or p10 > median or median > p90;
  - provenance that disagrees with the directory it is stored in (system / backend / version);
  - faster than well-tuned kernels get (REFERENCE.md, corrected 2026-12): achieved FLOP/s above 88% of
    the dense peak on Hopper (PyTorch's BF16 8192^3 GEMM reaches ~790 of 989 TFLOP/s, 80%; 88% leaves
    room for clock and shape variation), 80% elsewhere (the best published Blackwell figure is 76%),
    achieved HBM traffic above 95% of the datasheet bandwidth, or a collective's bus bandwidth above
    480 GB/s per 450 GB/s of NVLink (8x H100/H200: ~479 GB/s is the published NCCL best); network
    transports get the same ratio of their link.
Rows of imported tables (timing_method `imported`: someone else's measurements, with their own clocks and
kernels) beyond a sanity bound are warnings, not rejections; so are cases stored more than once (two
collectors measured them, or a table was imported twice: `servecast db compact` keeps the newest).
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
from perfdb.schema import conform, key_columns
from perfdb.specs import SystemSpec, load_system
from perfdb.storage import TableKey, list_tables, shard_paths
from perfdb.types import OpKind, TimingMethod, Transport

HOPPER_COMPUTE_BOUND = 0.88
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
    warnings: tuple[Rejection, ...] = ()   # imported rows beyond a bound; duplicate cases

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


def _validate_shard(path: Path, key: TableKey, system: SystemSpec | None
                    ) -> tuple[pa.Table | None, list[Rejection], list[Rejection]]:
    """(the shard's table, rejections, warnings)."""
    try:
        table = _read(path, key.op)
    except ServecastError as exc:
        return None, [Rejection(path, None, str(exc))], []
    out: list[Rejection] = []
    warn: list[Rejection] = []
    imported = np.asarray(table.column("timing_method").to_pylist(), dtype=object) == TimingMethod.IMPORTED.value
    checks = _basic(table, key)
    if system is None:
        out.append(Rejection(path, None, f"unknown system directory {key.system!r}; bounds not checked"))
    else:
        usable = table.filter(pa.array(~checks[0][0]))
        keep = np.flatnonzero(~checks[0][0])
        for mask, reason in _bounds(usable, key, system):
            full = np.zeros(table.num_rows, bool)
            full[keep] = mask
            warn.extend(Rejection(path, int(r), f"{reason} (imported row)") for r in np.flatnonzero(full & imported))
            checks.append((full & ~imported, reason))
    for mask, reason in checks:
        out.extend(Rejection(path, int(r), reason) for r in np.flatnonzero(mask))
    return table, out, warn


def _duplicates(keyed: list[tuple[Path, pa.Table]], kind: OpKind) -> list[Rejection]:
    """One warning per case stored more than once in a table (across its shards), at its later copies."""
    seen: dict[tuple, Path] = {}
    out = []
    cols = list(key_columns(kind))
    for path, table in keyed:
        values = [table.column(c).to_pylist() for c in cols]
        for row, case in enumerate(zip(*values, strict=True)):
            if case in seen:
                out.append(Rejection(path, row, f"duplicate case (also in {seen[case].name}); `servecast db compact` "
                                                "keeps the newest"))
            else:
                seen[case] = path
    return out


def validate_db(root: Path, system: str | None = None, op: OpKind | None = None) -> ValidationReport:
    tables = shards = rows = 0
    rejections: list[Rejection] = []
    warnings: list[Rejection] = []
    for key in list_tables(root):
        if (system and key.system != system) or (op and key.op != op):
            continue
        try:
            spec = load_system(key.system)
        except ServecastError:
            spec = None
        tables += 1
        keyed = []
        for path in shard_paths(root, key):
            shards += 1
            table, rej, warn = _validate_shard(path, key, spec)
            if table is not None:
                rows += table.num_rows
                keyed.append((path, table))
            rejections += rej
            warnings += warn
        warnings += _duplicates(keyed, key.op)
    return ValidationReport(tables, shards, rows, tuple(rejections), tuple(warnings))
