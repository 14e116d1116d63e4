"""Result files -> the canonical measured-run table, all or nothing.

Every file is parsed before anything is written: one bad file fails the whole ingest with a
one-line error naming it, and the output Parquet is written atomically (temp file + rename).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from calibrate.parsers import Format, parse_file
from calibrate.parsers.common import load_json
from calibrate.runs import ClientResult, Deployment, MeasuredRun
from calibrate.table import read_runs, runs_to_table, write_runs
from perfdb.errors import DataError, InputError
from perfdb.userfiles import check_out_file

_RESULT_SUFFIXES = (".json", ".jsonl", ".csv")
# aiperf writes the same run three ways; in a directory, the JSON summary wins.
_AIPERF_SIBLINGS = ("profile_export_aiperf.csv", "profile_export.jsonl")
# aiperf >= 0.13 writes one folder per benchmark phase (warm-up, profiling) and a manifest naming them
_MANIFEST = "phase_manifest.json"
_NOT_RESULTS = ("inputs", "server_metrics", "gpu_telemetry", "phase_manifest", "profile_export_console")


@dataclass(frozen=True)
class LoadOverride:
    """The load knob for files that do not record it (aiperf CSV/JSONL); None = keep the file's."""

    concurrency: float | None = None
    request_rate: float | None = None


def _warmup_phase(path: Path) -> bool:
    """A summary aiperf wrote for its warm-up phase (<artifacts>/phases/warmup/...): not a measured run."""
    return path.parent.parent.name == "phases" and path.parent.name.startswith("warmup")


def _profiling_files(artifacts: Path) -> list[Path]:
    """The profiling phases' summaries an aiperf phase manifest names (never the warm-up's)."""
    manifest = artifacts / _MANIFEST
    data = load_json(manifest)
    phases = data.get("phases") if isinstance(data, dict) else None
    if not isinstance(phases, list) or not all(isinstance(p, dict) for p in phases):
        raise DataError(f"{manifest}: expected aiperf's phase manifest ({{'phases': [...]}})")
    out = []
    for phase in phases:
        if phase.get("phase_kind") != "profiling":
            continue
        if phase.get("was_cancelled"):
            raise DataError(f"{manifest}: profiling phase {phase.get('phase_name')!r} was cancelled; its "
                            "statistics cover a partial run")
        name = phase.get("metrics_json")
        if not isinstance(name, str) or not (artifacts / name).is_file():
            raise DataError(f"{manifest}: profiling phase {phase.get('phase_name')!r} names no summary file "
                            f"that exists ({name!r})")
        out.append(artifacts / name)
    if not out:
        raise DataError(f"{manifest}: no profiling phase (only {', '.join(str(p.get('phase_kind')) for p in phases)})")
    return out


def _search(directory: Path) -> list[Path]:
    """Result files under a directory: per aiperf artifact directory with a phase manifest, its profiling
    phases; elsewhere the JSON summary of a run rather than its CSV/JSONL twins; never a warm-up phase."""
    found = sorted(f for f in directory.rglob("*") if f.is_file() and f.suffix in _RESULT_SUFFIXES
                   and not f.name.startswith("."))
    manifests = sorted({f.parent for f in found if f.name == _MANIFEST})
    summaries = {f.parent for f in found if f.name == "profile_export_aiperf.json"}
    rest = [f for f in found if not any(m in f.parents for m in manifests)
            and not (f.name in _AIPERF_SIBLINGS and f.parent in summaries)
            and not f.name.startswith(_NOT_RESULTS) and not _warmup_phase(f)
            and not (f.parent.parent.name == "phases" and f.parent.parent.parent in summaries)]
    return sorted(rest + [f for m in manifests for f in _profiling_files(m)])


def run_id_of(path: Path) -> str:
    """<folder>/<file>, and for an aiperf phase summary <artifact folder>/<phase>/<file>."""
    if path.parent.parent.name == "phases":
        return f"{path.parents[2].name}/{path.parent.name}/{path.name}"
    return f"{path.parent.name}/{path.name}"


def expand(paths: list[Path]) -> list[Path]:
    """Files to read: files as given; directories searched recursively for result files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            if _warmup_phase(p):
                raise InputError(f"{p}: aiperf's warm-up phase, not a measured run; give the artifact directory "
                                 "or its phases/profiling summary")
            out.append(p)
        elif p.is_dir():
            found = _search(p)
            if not found:
                raise InputError(f"{p}: no result files (*.json, *.jsonl, *.csv) inside")
            out.extend(found)
        else:
            raise InputError(f"{p}: no such file or directory")
    return out


def _with_load(result: ClientResult, override: LoadOverride) -> ClientResult:
    if override.concurrency is None and override.request_rate is None:
        return result
    load = replace(result.load, concurrency=override.concurrency if override.concurrency is not None
                   else result.load.concurrency,
                   request_rate=override.request_rate if override.request_rate is not None else result.load.request_rate)
    return replace(result, load=load)


def read_results(paths: list[Path], deployment: Deployment | None, fmt: Format | None = None,
                 override: LoadOverride = LoadOverride()) -> list[MeasuredRun]:
    runs: list[MeasuredRun] = []
    for path in expand(paths):
        items = parse_file(path, fmt)
        for i, item in enumerate(items, start=1):
            if isinstance(item, MeasuredRun):
                runs.append(item)
                continue
            if deployment is None:
                raise InputError(f"{path}: {item.client.value} results do not say what was deployed; "
                                 "give --deployment SPEC (from `servecast plan --save-dir`) or --model/--system/"
                                 "--backend/--mode/--agg flags")
            run_id = run_id_of(path) + (f"#{i}" if len(items) > 1 else "")
            try:
                runs.append(MeasuredRun.from_result(_with_load(item, override), deployment, run_id))
            except InputError as exc:   # e.g. no TTFT measured: name the file
                raise DataError(f"{path}: {exc}") from None
    return runs


def ingest(paths: list[Path], out: Path, deployment: Deployment | None = None, fmt: Format | None = None,
           override: LoadOverride = LoadOverride(), append: bool = False) -> pa.Table:
    """Parse every file, then write (or extend, with append) the run table at `out` atomically."""
    check_out_file(out, "--out")   # before parsing: a bad output path fails at once
    runs = read_results(paths, deployment, fmt, override)
    table = runs_to_table(runs)
    if append and Path(out).exists():
        table = pa.concat_tables([read_runs(out), table])
    ids = table.column("run_id").to_pylist()
    dupes = sorted(k for k, n in Counter(ids).items() if n > 1)
    if dupes:
        raise DataError(f"run id(s) {', '.join(dupes[:5])} appear twice; each result file is ingested once")
    write_runs(table, out)
    return table
