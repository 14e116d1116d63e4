"""Fit efficiency curves (perfdb.efficiency) from measured rows of a servecast database.

Per (system, op family, dtype) and per backend plus a backend-agnostic pool ('*'):
  1. util = sol_ms / latency_ms per row (capped at 1.5 so a few rows beating a simple roofline,
     e.g. MoE with skewed routing, cannot drag a bin);
  2. rows binned by log10(sol_ms) (compute families: all rows for the pooled curve "", and the rows
     of each roofline regime for the MEMORY_GROUP / COMPUTE_GROUP curves) in BIN_DECADES-wide bins; each bin with >= min_rows rows gives one
     knot (median log10 sol_ms, median util);
  3. isotonic (non-decreasing) regression over the knots, weighted by rows per bin, then knots on a
     flat run collapsed to its two ends.
Comm rows are first reduced to the fastest kernel per message (an engine picks its fastest
all-reduce: custom kernel for small messages, NCCL for large ones) and fitted per
"<op>/<num_gpus>/<transport>" group, plus a pooled group "" made of the all-reduce groups.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from perfdb.efficiency import ANY_BACKEND, COMPUTE_GROUP, CURVE_SCHEMA, MEMORY_GROUP
from perfdb.ops import OP_CASES
from perfdb.roofline import intensity_ratio
from perfdb.specs import SystemSpec, load_system
from perfdb.storage import list_tables, shard_paths
from perfdb.types import LAUNCHED_ONLY_KERNELS, OpKind

BIN_DECADES = 0.2
UTIL_CAP = 1.5


@dataclass(frozen=True)
class CurveFit:
    system: str
    kind: str
    dtype: str
    backend: str
    group: str
    xs: tuple[float, ...]        # log10 sol_ms knots
    us: tuple[float, ...]        # util knots, non-decreasing
    rows: int                    # measured rows behind the curve
    source_system: str           # system whose rows were fitted (differs when copied from the closest)
    tables: tuple[str, ...]      # servecast tables (system/backend/version/op) the rows came from

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.system, self.kind, self.dtype, self.backend, self.group)


def _isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted pool-adjacent-violators: the closest non-decreasing sequence in weighted least squares."""
    vals, wts, sizes = [], [], []
    for yi, wi in zip(y, w, strict=True):
        vals.append(float(yi)), wts.append(float(wi)), sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v, wt, s = vals.pop(), wts.pop(), sizes.pop()
            total = wts[-1] + wt
            vals[-1] = (vals[-1] * wts[-1] + v * wt) / total
            wts[-1], sizes[-1] = total, sizes[-1] + s
    return np.repeat(vals, sizes)


def fit_knots(sol_ms: np.ndarray, latency_ms: np.ndarray, min_rows: int = 5) -> tuple[np.ndarray, np.ndarray] | None:
    """(log10 sol_ms knots, util knots) of one curve, or None when fewer than two bins qualify."""
    ok = np.isfinite(sol_ms) & np.isfinite(latency_ms) & (sol_ms > 0) & (latency_ms > 0)
    x = np.log10(sol_ms[ok])
    u = np.minimum(sol_ms[ok] / latency_ms[ok], UTIL_CAP)
    if x.size < min_rows:
        return None
    bins = np.floor(x / BIN_DECADES).astype(np.int64)
    frame = pd.DataFrame({"bin": bins, "x": x, "u": u})
    stats = frame.groupby("bin").agg(x=("x", "median"), u=("u", "median"), n=("u", "size"))
    stats = stats[stats["n"] >= min_rows]
    if len(stats) < 2:
        return None
    xs, us = stats["x"].to_numpy(), _isotonic(stats["u"].to_numpy(), stats["n"].to_numpy())
    keep = np.ones(len(us), dtype=bool)
    keep[1:-1] = ~((us[1:-1] == us[:-2]) & (us[1:-1] == us[2:]))   # interior of a flat run adds nothing
    return xs[keep], us[keep]


def _read(root: Path, key, columns: list[str]) -> pd.DataFrame:
    parts = [pq.read_table(p, columns=columns) for p in shard_paths(root, key)]
    return pa.concat_tables(parts).to_pandas()


def _regimes(kind: OpKind, frame: pd.DataFrame, spec: SystemSpec) -> np.ndarray:
    """MEMORY_GROUP / COMPUTE_GROUP per row: the roofline regime of the row's own shape."""
    from perfdb.family import case_from_stored

    cats = list(OP_CASES[kind].categorical_fields())
    frame = frame.reset_index(drop=True)
    out = np.empty(len(frame), dtype=object)
    for combo, part in frame.groupby(cats, sort=False, dropna=False):
        categoricals = dict(zip(cats, combo if isinstance(combo, tuple) else (combo,), strict=True))
        numeric = {n: part[n].to_numpy(np.float64) for n in OP_CASES[kind].NUMERIC}
        mem = np.broadcast_to(intensity_ratio(case_from_stored(kind, categoricals, numeric), spec) < 0, (len(part),))
        out[part.index.to_numpy()] = np.where(mem, MEMORY_GROUP, COMPUTE_GROUP)
    return out


def _fastest_comm(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["op", "num_gpus", "transport", "dtype", "msg_bytes"]
    return frame.groupby(keys, as_index=False).agg(sol_ms=("sol_ms", "first"), latency_ms=("latency_ms", "min"))


def _fits(system: str, kind: str, backend: str, frame: pd.DataFrame, tables: tuple[str, ...],
          min_rows: int) -> list[CurveFit]:
    out = []
    if kind == OpKind.COMM.value:
        frame = _fastest_comm(frame)
        frame["group"] = frame["op"] + "/" + frame["num_gpus"].astype(str) + "/" + frame["transport"]
        pooled = frame[(frame["op"] == "all_reduce") & (frame["transport"] == "nvlink")].assign(group="")
        frame = pd.concat([frame, pooled], ignore_index=True)
        min_rows = 1   # one row per message size after the fastest-kernel reduction
    else:   # the pooled curve ("") and one per roofline regime
        frame = pd.concat([frame.assign(group=""), frame.assign(group=frame["regime"])], ignore_index=True)
    for (dtype, group), part in frame.groupby(["dtype", "group"]):
        knots = fit_knots(part["sol_ms"].to_numpy(float), part["latency_ms"].to_numpy(float), min_rows)
        if knots is not None:
            out.append(CurveFit(system, kind, dtype, backend, group, tuple(knots[0].round(6)),
                                tuple(knots[1].round(6)), len(part), system, tables))
    return out


def fit_db(root: Path, systems: tuple[str, ...], min_rows: int = 5) -> list[CurveFit]:
    """Curves of every (system, op family, dtype) with measured rows in the database at root.

    A bin becomes a knot with >= min_rows rows (comm: any row).
    """
    tables = [k for k in list_tables(root) if k.system in systems and k.op != OpKind.ELEMENTWISE]
    fits = []
    for system in systems:
        spec = load_system(system)
        for kind in sorted({k.op for k in tables if k.system == system}, key=lambda k: k.value):
            comm = kind == OpKind.COMM
            shape = [] if comm else list(OP_CASES[kind].categorical_fields() + OP_CASES[kind].NUMERIC)
            cols = list(dict.fromkeys(["dtype", "sol_ms", "latency_ms"] + shape +
                                      (["op", "num_gpus", "transport", "msg_bytes"] if comm else []) +
                                      (["kernel_source"] if kind is OpKind.MOE else [])))
            mine = [k for k in tables if k.system == system and k.op == kind]
            frames = {k: _read(root, k, cols) for k in mine}
            if kind is OpKind.MOE:   # a kernel only an engine launched for it runs describes no default lookup
                frames = {k: f[~f["kernel_source"].astype(str).str.contains(LAUNCHED_ONLY_KERNELS)]
                          for k, f in frames.items()}
            if not comm:
                frames = {k: f.assign(regime=_regimes(kind, f, spec))[["dtype", "sol_ms", "latency_ms", "regime"]]
                          for k, f in frames.items()}
            names = {k: f"{k.system}/{k.backend.value}/{k.version}/{k.op.value}" for k in mine}
            for k, frame in frames.items():
                fits += _fits(system, kind.value, k.backend.value, frame, (names[k],), min_rows)
            pooled = pd.concat(list(frames.values()), ignore_index=True)
            fits += _fits(system, kind.value, ANY_BACKEND, pooled, tuple(sorted(names.values())), min_rows)
    return fits


def system_distance(a: SystemSpec, b: SystemSpec) -> float:
    """How unlike two systems' kernels behave: GPU generation first, then bandwidth and peak ratios."""
    gen = 0.0 if a.gpu.sm_version == b.gpu.sm_version else 10.0
    ratios = [(a.gpu.mem_bw_bytes_per_s, b.gpu.mem_bw_bytes_per_s), (a.gpu.bf16_dense_flops, b.gpu.bf16_dense_flops),
              (a.nvlink_bw_bytes_per_s, b.nvlink_bw_bytes_per_s)]
    return gen + sum(abs(np.log(x / y)) for x, y in ratios if x > 0 and y > 0)


def fill_from_closest(fits: list[CurveFit], specs: dict[str, SystemSpec], supported) -> list[CurveFit]:
    """Copy curves into systems that lack a (family, dtype) from the closest system that has it.

    `supported(spec, kind, dtype) -> bool` says whether a copy makes sense (e.g. no fp4 on Hopper).
    """
    have = {(f.system, f.kind, f.dtype) for f in fits if f.backend == ANY_BACKEND}
    combos = sorted({(f.kind, f.dtype) for f in fits})
    out = list(fits)
    for system, spec in sorted(specs.items()):
        for kind, dtype in combos:
            if (system, kind, dtype) in have or not supported(spec, kind, dtype):
                continue
            donors = sorted((s for s in specs if (s, kind, dtype) in have and s != system),
                            key=lambda s: (system_distance(spec, specs[s]), s))
            if not donors:
                continue
            donor = donors[0]
            out += [CurveFit(system, f.kind, f.dtype, f.backend, f.group, f.xs, f.us, f.rows, donor, f.tables)
                    for f in fits if (f.system, f.kind, f.dtype) == (donor, kind, dtype)]
    return out


def to_table(fits: list[CurveFit]) -> pa.Table:
    rows = {name: [] for name in CURVE_SCHEMA.names}
    for f in sorted(fits, key=lambda f: f.key):
        for x, u in zip(f.xs, f.us, strict=True):
            for name, value in zip(("system", "kind", "dtype", "backend", "group", "log10_sol_ms", "util"),
                                   (*f.key, x, u), strict=True):
                rows[name].append(value)
    return pa.table(rows, schema=CURVE_SCHEMA)
