"""Find and enumerate an AIConfigurator performance database.

Layout (aiconfigurator-core 0.12.0): `<systems>/data/<system>/<family>/<backend>/<version>/<table>.parquet`
with a `collection_meta.yaml` beside the tables, system YAMLs (`<systems>/<system>.yaml`, which name
the NCCL version the system uses) and `query_versions.yaml` (the `current` version per backend).
Users may point at the `systems` folder, the unpacked package root, or the `.whl` file itself.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from perfdb.errors import DataError, InputError, NotFoundError

PACKAGE = "aiconfigurator-core"
NCCL_BACKEND = "nccl"  # comm/nccl/<nccl version>: shared by every serving backend of a system
_HINT = ("expected <systems>/data/<system>/<family>/<backend>/<version>/*.parquet; pass the "
         "aiconfigurator_core/systems folder, the unpacked package root, or the aiconfigurator_core wheel")


@dataclass(frozen=True)
class AicTable:
    """One AIC Parquet table: data/<system>/<family>/<backend>/<version>/<name>.parquet."""

    system: str
    family: str
    backend: str
    version: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    def rel(self, systems_dir: Path) -> str:
        return self.path.relative_to(systems_dir).as_posix()


@dataclass(frozen=True)
class AicSource:
    systems_dir: Path
    package_version: str | None   # from the wheel's dist-info, when present
    origin: Path                   # what the user passed

    @property
    def collector_version(self) -> str:
        return f"{PACKAGE} {self.package_version or 'unknown'}"

    def systems(self) -> tuple[str, ...]:
        return tuple(sorted(p.name for p in (self.systems_dir / "data").iterdir() if p.is_dir()))

    def tables(self, system: str) -> tuple[AicTable, ...]:
        root = self.systems_dir / "data" / system
        out = []
        for path in sorted(root.glob("*/*/*/*.parquet")):
            family, backend, version = path.relative_to(root).parts[:3]
            out.append(AicTable(system, family, backend, version, path))
        return tuple(out)

    def system_yaml(self, system: str) -> dict:
        path = self.systems_dir / f"{system}.yaml"
        return _read_yaml(path) if path.is_file() else {}

    def current_versions(self, system: str) -> dict[str, str]:
        """backend -> the `current` version named by query_versions.yaml (system overrides first)."""
        doc = _read_yaml(self.systems_dir / "query_versions.yaml") if (self.systems_dir / "query_versions.yaml").is_file() else {}
        slots = dict(doc.get("defaults") or {})
        slots.update((doc.get("overrides") or {}).get(system) or {})
        return {b: str(s["current"]) for b, s in slots.items() if isinstance(s, dict) and s.get("current")}

    def collection_meta(self, table: AicTable) -> dict:
        path = table.path.parent / "collection_meta.yaml"
        return _read_yaml(path) if path.is_file() else {}


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"corrupt YAML {path}: {str(exc).splitlines()[0]}") from None


def version_key(version: str) -> tuple:
    """Order backend versions: 1.3.0rc20 < 1.3.0 < 1.3.0.post1; unparsable strings sort first."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)(.*)$", version)
    if not m:
        return ((), 0, (), version)
    nums = tuple(int(x) for x in m.group(1).split("."))
    rest = m.group(2)
    rank = -1 if re.match(r"^[.-]?(rc|a|b|alpha|beta|dev)", rest) else (1 if "post" in rest else 0)
    return (nums, rank, tuple(int(x) for x in re.findall(r"\d+", rest)), version)


def _is_systems_dir(path: Path) -> bool:
    data = path / "data"
    return data.is_dir() and any(data.glob("*/*/*/*/*.parquet"))


def _package_version(root: Path) -> str | None:
    for meta in sorted(root.glob("aiconfigurator_core-*.dist-info/METADATA")):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return None


def _locate(path: Path) -> tuple[Path, str | None]:
    for cand in (path, path / "systems", path / "aiconfigurator_core" / "systems"):
        if _is_systems_dir(cand):
            # the package root holds the dist-info: systems/ -> aiconfigurator_core/ -> root
            for root in (cand.parent.parent, cand.parent, path):
                version = _package_version(root)
                if version:
                    return cand, version
            return cand, None
    raise InputError(f"{path} is not an AIConfigurator systems folder; {_HINT}")


def _wanted(member: str, system: str | None) -> bool:
    if re.match(r"aiconfigurator_core-[^/]+\.dist-info/METADATA$", member):
        return True
    if not member.startswith("aiconfigurator_core/systems/"):
        return False
    data = "aiconfigurator_core/systems/data/"
    # with one system asked for, unzip only its tables (the YAMLs beside data/ always)
    return system is None or not member.startswith(data) or member.startswith(f"{data}{system}/")


def _extract_wheel(wheel: Path, dest: Path, system: str | None) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            present = sorted({m.split("/")[3] for m in names if m.startswith("aiconfigurator_core/systems/data/")
                              and m.count("/") >= 4})
            if system is not None and present and system not in present:
                raise NotFoundError(f"system {system!r} is not in {wheel}; available: {', '.join(present)}")
            members = [m for m in names if _wanted(m, system)]
            if not members:
                raise InputError(f"{wheel} holds no aiconfigurator_core/systems folder; {_HINT}")
            zf.extractall(dest, members)
    except zipfile.BadZipFile:
        raise InputError(f"{wheel} is not a readable wheel (zip) file; {_HINT}") from None


@contextmanager
def open_aic_source(path: Path, system: str | None = None) -> Iterator[AicSource]:
    """Yield the AicSource at `path` (folder or wheel); a wheel is unpacked to a temp dir removed afterwards
    (only `system`'s tables when one is named)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; {_HINT}")
    if path.is_file():
        tmp = Path(tempfile.mkdtemp(prefix="servecast-aic-"))
        try:
            _extract_wheel(path, tmp, system)
            systems, version = _locate(tmp)
            yield AicSource(systems, version, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    systems, version = _locate(path)
    yield AicSource(systems, version, path)


def require_system(source: AicSource, system: str) -> None:
    if system not in source.systems():
        raise NotFoundError(f"system {system!r} is not in {source.systems_dir / 'data'}; available: "
                            f"{', '.join(source.systems())}")
