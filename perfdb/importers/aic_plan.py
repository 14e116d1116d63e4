"""Which AIC tables go into which servecast (system, backend, version): the import plan.

Version selection (`version` argument):
  "current"  per backend, the `current` slot of AIC's query_versions.yaml (newest version present if
             it names none); a table missing at that version is back-filled from the newest older
             version that has it, as AIConfigurator itself does (never forward).
  "all"      every version directory separately, no back-fill.
  <exact>    that version directory only.
NCCL tables (comm/nccl/<nccl version>) are measured once per system and serve every backend: the
plan copies the system's NCCL version (its YAML's misc.nccl_version, else the newest) into each target.
"""
from __future__ import annotations

from dataclasses import dataclass

from perfdb.errors import NotFoundError
from perfdb.importers.aic_source import NCCL_BACKEND, AicSource, AicTable, version_key
from perfdb.types import Backend

AIC_BACKENDS: dict[str, Backend] = {"trtllm": Backend.TRTLLM, "sglang": Backend.SGLANG, "vllm": Backend.VLLM}


@dataclass(frozen=True)
class PlannedTable:
    table: AicTable
    backfilled: bool   # taken from an older version than the target's


@dataclass(frozen=True)
class Target:
    system: str
    backend: Backend
    version: str                     # the servecast version directory written
    tables: tuple[PlannedTable, ...]


def _newest_at_or_below(tables: list[AicTable], ceiling: str) -> list[PlannedTable]:
    best: dict[str, AicTable] = {}
    top = version_key(ceiling)
    for t in tables:
        if version_key(t.version) > top:
            continue
        key = f"{t.family}/{t.name}"
        if key not in best or version_key(t.version) > version_key(best[key].version):
            best[key] = t
    return [PlannedTable(t, t.version != ceiling) for t in sorted(best.values(), key=lambda t: t.path)]


def nccl_tables(source: AicSource, system: str, tables: tuple[AicTable, ...]) -> list[PlannedTable]:
    nccl = [t for t in tables if t.backend == NCCL_BACKEND]
    if not nccl:
        return []
    versions = sorted({t.version for t in nccl}, key=version_key)
    wanted = str((source.system_yaml(system).get("misc") or {}).get("nccl_version") or "")
    chosen = wanted if wanted in versions else versions[-1]
    return [PlannedTable(t, False) for t in nccl if t.version == chosen]


def plan_system(source: AicSource, system: str, backends: tuple[Backend, ...] | None, version: str) -> list[Target]:
    tables = source.tables(system)
    nccl = nccl_tables(source, system, tables)
    current = source.current_versions(system)
    targets = []
    for aic_backend, backend in AIC_BACKENDS.items():
        if backends is not None and backend not in backends:
            continue
        own = [t for t in tables if t.backend == aic_backend]
        if not own:
            continue
        present = sorted({t.version for t in own}, key=version_key)
        if version == "current":
            target = current.get(aic_backend)
            target = target if target in present else present[-1]
            targets.append(Target(system, backend, target, tuple(_newest_at_or_below(own, target)) + tuple(nccl)))
        elif version == "all":
            for v in present:
                targets.append(Target(system, backend, v, tuple(PlannedTable(t, False) for t in own if t.version == v) + tuple(nccl)))
        elif version in present:
            targets.append(Target(system, backend, version, tuple(PlannedTable(t, False) for t in own if t.version == version) + tuple(nccl)))
    return targets


def available_versions(source: AicSource, system: str) -> str:
    tables = source.tables(system)
    parts = []
    for aic_backend in AIC_BACKENDS:
        vs = sorted({t.version for t in tables if t.backend == aic_backend}, key=version_key)
        if vs:
            parts.append(f"{aic_backend}: {', '.join(vs)}")
    return "; ".join(parts) or "none"


def plan(source: AicSource, systems: tuple[str, ...], backends: tuple[Backend, ...] | None, version: str) -> list[Target]:
    targets = [t for s in systems for t in plan_system(source, s, backends, version)]
    if not targets:
        detail = " | ".join(f"{s}: {available_versions(source, s)}" for s in systems)
        raise NotFoundError(f"no AIC tables match version {version!r}"
                            f"{' and backend(s) ' + ', '.join(b.value for b in backends) if backends else ''}; "
                            f"accepted: current, all, or one of {detail}")
    return targets
