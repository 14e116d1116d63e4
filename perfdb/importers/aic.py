"""Import an AIConfigurator performance database into a servecast database.

    report = import_aic(Path("aiconfigurator_core/systems"), Path("db"), systems=("h200_sxm",))

Everything is read and converted before anything is written, so a missing or corrupt source table
fails the import with nothing half-written. Each servecast table of a target (system, backend,
version) is then written as ONE shard named `part-aic-*` (atomic, perfdb.storage.write_shard), and
the `part-aic-*` shards of an earlier import of the same table are removed afterwards: re-running
replaces that import's rows and never duplicates them. Rows that collide on the case key (AIC keys
carry columns servecast does not, e.g. MLA tp_size) are merged into one row at their median latency.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from perfdb.errors import DataError, NotFoundError
from perfdb.importers.aic_plan import PlannedTable, Target, plan
from perfdb.importers.aic_sol import frame_sol_ms
from perfdb.importers.aic_source import PACKAGE, AicSource, open_aic_source, require_system
from perfdb.importers.aic_tables import CONVERTERS
from perfdb.schema import SCHEMAS, key_columns
from perfdb.specs import SystemSpec, list_systems, load_system
from perfdb.storage import TableKey, init_db, read_meta, write_meta, write_shard
from perfdb.types import Backend, OpKind, TimingMethod

SHARD_HOST = "aic"   # shard names part-aic-<pid>-<n>.parquet mark this importer's shards
Progress = Callable[[str], None]   # called once per AIC table converted, with its relative path


@dataclass(frozen=True)
class TableReport:
    system: str
    backend: Backend
    version: str                  # servecast version directory
    aic_table: str                # path relative to the systems folder
    op: OpKind | None             # None: table skipped as a whole
    rows_read: int
    rows_imported: int
    skipped: tuple[tuple[str, int], ...]   # (reason, rows)
    backfilled: bool


@dataclass(frozen=True)
class WrittenTable:
    key: TableKey
    rows: int
    duplicates_merged: int
    path: Path


@dataclass(frozen=True)
class ImportReport:
    source: Path
    collector_version: str
    tables: tuple[TableReport, ...]
    written: tuple[WrittenTable, ...]
    skipped_systems: tuple[str, ...]   # AIC systems with no servecast system spec

    @property
    def rows_written(self) -> int:
        return sum(w.rows for w in self.written)


def _collected_at(source: AicSource, planned: PlannedTable) -> pd.Timestamp | None:
    tables = source.collection_meta(planned.table).get("tables") or {}
    value = (tables.get(planned.table.name) or {}).get("collected_at")
    if not value:
        return None
    try:
        return pd.Timestamp(str(value), tz="UTC")
    except ValueError:
        return None


def _read(planned: PlannedTable) -> pd.DataFrame:
    try:
        return pq.read_table(planned.table.path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"corrupt or unreadable AIC table {planned.table.path}: {str(exc).splitlines()[0]}") from None


def _convert_one(source: AicSource, target: Target, planned: PlannedTable,
                 spec: SystemSpec) -> list[tuple[TableReport, OpKind | None, pd.DataFrame | None]]:
    """One (report, op, frame) per servecast family the table feeds (the linear-attention tables feed two)."""
    rel = planned.table.rel(source.systems_dir)
    converter = CONVERTERS.get(planned.table.name)
    if converter is None:
        rows = pq.ParquetFile(planned.table.path).metadata.num_rows if planned.table.path.is_file() else 0
        reason = "no servecast op family for this table"
        return [(TableReport(target.system, target.backend, target.version, rel, None, rows, 0, ((reason, rows),),
                             planned.backfilled), None, None)]
    raw = _read(planned)
    try:
        converted = converter(raw, spec, target.backend.value)
    except KeyError as exc:
        raise DataError(f"AIC table {planned.table.path} lacks column {exc}; cannot convert it") from None
    out = []
    for conv in converted if isinstance(converted, list) else [converted]:
        frame = conv.frame
        frame["sol_ms"] = frame_sol_ms(conv.kind, frame, spec)
        frame["collected_at"] = _collected_at(source, planned)
        report = TableReport(target.system, target.backend, target.version, rel, conv.kind, len(raw), len(frame),
                             tuple(sorted(conv.skipped.items())), planned.backfilled)
        out.append((report, conv.kind, frame))
    return out


def _merge_duplicates(kind: OpKind, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    keys = list(key_columns(kind)) + ["kernel_source"]
    dup = frame.duplicated(keys, keep=False)
    if not dup.any():
        return frame, 0
    merged = frame[dup].groupby(keys, sort=False, dropna=False).agg(
        {c: ("median" if c in ("latency_ms", "sol_ms") else "first") for c in frame.columns if c not in keys}).reset_index()
    out = pd.concat([frame[~dup], merged[frame.columns]], ignore_index=True)
    return out, len(frame) - len(out)


def _to_arrow(kind: OpKind, frame: pd.DataFrame, target: Target, collector_version: str) -> pa.Table:
    n = len(frame)
    cols = {c: frame[c].to_numpy() for c in key_columns(kind)}
    cols.update({
        "latency_ms": frame["latency_ms"].to_numpy(float), "p10_ms": pa.nulls(n, pa.float64()),
        "p90_ms": pa.nulls(n, pa.float64()), "n_samples": pa.nulls(n, pa.int64()),
        "timing_method": [TimingMethod.IMPORTED.value] * n, "sol_ms": frame["sol_ms"].to_numpy(float),
        "system": [target.system] * n, "gpu_name": frame["gpu_name"].astype(object).where(frame["gpu_name"].notna(), None).tolist(),
        "backend": [target.backend.value] * n, "backend_version": [target.version] * n,
        "kernel_source": frame["kernel_source"].astype(str).tolist(), "driver": pa.nulls(n, pa.string()),
        "sm_clock_mhz": pa.nulls(n, pa.float64()), "collector_version": [collector_version] * n,
        "host": pa.nulls(n, pa.string()),
        "collected_at": pa.array(pd.to_datetime(frame["collected_at"], utc=True), type=pa.timestamp("us", tz="UTC")),
        "flags": [""] * n,
    })
    return pa.table({name: cols[name] for name in SCHEMAS[kind].names})


def _resolve_systems(source: AicSource, system: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ours = set(list_systems())
    if system is not None:
        require_system(source, system)
        if system not in ours:
            raise NotFoundError(f"AIC system {system!r} has no servecast system spec (needed for sol_ms); "
                                f"servecast systems: {', '.join(sorted(ours))}")
        return (system,), ()
    return tuple(s for s in source.systems() if s in ours), tuple(s for s in source.systems() if s not in ours)


def convert_targets(source: AicSource, targets: list[Target], progress: Progress | None):
    """Read and convert every planned table; returns (table reports, {(target, op): frame})."""
    reports, frames = [], {}
    for target in targets:
        spec = load_system(target.system)
        for planned in target.tables:
            for report, kind, frame in _convert_one(source, target, planned, spec):
                reports.append(report)
                if kind is not None and len(frame):
                    frames.setdefault((target, kind), []).append(frame)
            if progress is not None:
                progress(report.aic_table)
    return reports, frames


def _write(root: Path, frames: dict, collector_version: str) -> list[WrittenTable]:
    written = []
    for (target, kind), parts in frames.items():
        frame, merged = _merge_duplicates(kind, pd.concat(parts, ignore_index=True))
        key = TableKey(target.system, target.backend, target.version, kind)
        old = set(key.dir(root).glob(f"part-{SHARD_HOST}-*.parquet")) if key.dir(root).is_dir() else set()
        path = write_shard(root, key, _to_arrow(kind, frame, target, collector_version), counter=0, host=SHARD_HOST)
        for stale in old - {path}:
            stale.unlink(missing_ok=True)
        written.append(WrittenTable(key, len(frame), merged, path))
    return written


def _write_meta(root: Path, source: AicSource, targets: list[Target], reports: list[TableReport]) -> None:
    for target in targets:
        mine = [r for r in reports if (r.system, r.backend, r.version) == (target.system, target.backend, target.version)]
        meta = read_meta(root, target.system, target.backend, target.version)
        meta.setdefault("imports", {})[PACKAGE] = {
            "package": PACKAGE, "package_version": source.package_version, "source": str(source.origin),
            "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "tables": [{"aic_table": r.aic_table, "op": r.op.value, "rows_read": r.rows_read, "rows_imported": r.rows_imported,
                        "backfilled": r.backfilled} for r in mine if r.op is not None],
            "skipped_tables": [{"aic_table": r.aic_table, "rows": r.rows_read} for r in mine if r.op is None],
        }
        write_meta(root, target.system, target.backend, target.version, meta)


def import_aic(path: Path, out: Path, system: str | None = None, backends: tuple[Backend, ...] | None = None,
               version: str = "current", progress: Progress | None = None,
               on_plan: Callable[[int], None] | None = None) -> ImportReport:
    """Convert the AIC database at `path` (systems folder, package root or wheel) into the servecast db `out`."""
    with open_aic_source(path, system) as source:
        systems, skipped_systems = _resolve_systems(source, system)
        targets = plan(source, systems, backends, version)
        if on_plan is not None:
            on_plan(sum(len(t.tables) for t in targets))
        reports, frames = convert_targets(source, targets, progress)
        root = init_db(out)
        written = _write(root, frames, source.collector_version)
        _write_meta(root, source, targets, reports)
        return ImportReport(Path(path), source.collector_version, tuple(reports), tuple(written), skipped_systems)

