"""The table of every evaluated point: one numpy array per column, one row per deployment.

Agg rows: the replica's parallelism and limits are in the `d_` columns, `d_workers` is the replica
count and the `p_` columns are 0. Disagg rows: `p_`/`d_` describe the prefill and decode workers
of one xPyD group and `replicas` groups run side by side. Enumerations are stored as small integer
codes in memory (fast filtering) and as strings in the written files.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from estimator.parallel import ParallelConfig
from perfdb.errors import DataError
from perfdb.types import Backend, Source
from search.types import Candidate, Metrics, Mode, WorkerSetup

MODES = (Mode.AGG, Mode.DISAGG)
BACKENDS = tuple(Backend)
_WORKER = ("tp", "pp", "dp", "moe_tp", "moe_ep", "workers", "batch", "max_tokens")

INT_COLUMNS = ("mode", "backend", "replicas", *(f"p_{k}" for k in _WORKER), *(f"d_{k}" for k in _WORKER),
               "gpus_used", "total_gpus", "source")
FLOAT_COLUMNS = ("ttft_ms", "tpot_ms", "request_latency_ms", "tokens_per_s_per_gpu", "tokens_per_s_per_user",
                 "concurrency", "mem_headroom", "estimated_share")
BOOL_COLUMNS = ("feasible", "meets_sla")
COLUMNS = INT_COLUMNS + FLOAT_COLUMNS + BOOL_COLUMNS
# present only in calibrated plans (search.calibrated): prediction-interval bounds, ms
OPTIONAL_COLUMNS = ("ttft_lo_ms", "ttft_hi_ms", "tpot_lo_ms", "tpot_hi_ms")


def _arrow(values: np.ndarray):
    """A numpy column as an Arrow array through its buffer. pa.array(ndarray) would import pandas
    on first use (~0.4 s of the command's one-second budget)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if values.dtype == bool:
        return pa.Array.from_buffers(pa.bool_(), len(values),
                                     [None, pa.py_buffer(np.packbits(values, bitorder="little"))])
    types = {np.dtype(np.int64): pa.int64(), np.dtype(np.int32): pa.int32(), np.dtype(np.float64): pa.float64()}
    return pa.Array.from_buffers(types[values.dtype], len(values), [None, pa.py_buffer(values)])


def _strings(names: list[str]):
    """A string Arrow array through its buffers (see _arrow for why not pa.array)."""
    import pyarrow as pa

    data = [n.encode() for n in names]
    offsets = np.concatenate(([0], np.cumsum([len(d) for d in data]))).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(names), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def _coded_strings(codes: np.ndarray, names: list[str]):
    """Plain string Arrow array of names[codes], built with numpy (offsets) and one bytes join."""
    import pyarrow as pa

    enc = [n.encode() for n in names]
    lens = np.array([len(e) for e in enc], dtype=np.int32)
    codes = np.asarray(codes, dtype=np.int64)
    offsets = np.zeros(len(codes) + 1, dtype=np.int32)
    np.cumsum(lens[codes], out=offsets[1:])
    data = b"".join(np.array(enc, dtype=object)[codes].tolist())
    return pa.Array.from_buffers(pa.string(), len(codes), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


class PointTable:
    """Columns of equal length; build blocks with `block()`, join with `concat()`."""

    def __init__(self, columns: Mapping[str, np.ndarray]):
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise DataError(f"point table lacks columns {missing}")
        n = {len(columns[c]) for c in COLUMNS}
        if len(n) != 1:
            raise DataError(f"point table columns differ in length: {sorted(n)}")
        self.cols = {c: np.asarray(columns[c]) for c in COLUMNS + OPTIONAL_COLUMNS if c in columns}

    def __len__(self) -> int:
        return len(self.cols["mode"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    @staticmethod
    def block(n: int, **values) -> "PointTable":
        """A block of n rows: scalars broadcast, unnamed columns are 0 / False / NaN."""
        cols: dict[str, np.ndarray] = {}
        for c in COLUMNS:
            dtype = np.int64 if c in INT_COLUMNS else (bool if c in BOOL_COLUMNS else np.float64)
            default = np.nan if c in FLOAT_COLUMNS else 0
            cols[c] = np.broadcast_to(np.asarray(values.pop(c, default), dtype=dtype), (n,))
        if values:
            raise DataError(f"unknown point table columns {sorted(values)}")
        return PointTable(cols)

    @staticmethod
    def concat(tables: list["PointTable"]) -> "PointTable":
        if not tables:
            return PointTable.block(0)
        return PointTable({c: np.concatenate([t.cols[c] for t in tables]) for c in COLUMNS})

    def with_column(self, name: str, values: np.ndarray) -> "PointTable":
        cols = dict(self.cols)
        if name not in cols and name not in OPTIONAL_COLUMNS:
            raise DataError(f"unknown point table column {name!r}")
        cols[name] = np.asarray(values, dtype=cols[name].dtype if name in cols else np.float64)
        return PointTable(cols)

    # ---- one row as typed objects ----------------------------------------------------------
    def _worker(self, row: int, prefix: str) -> WorkerSetup:
        c = self.cols
        parallel = ParallelConfig(tp=int(c[f"{prefix}tp"][row]), pp=int(c[f"{prefix}pp"][row]),
                                  attn_dp=int(c[f"{prefix}dp"][row]), moe_tp=int(c[f"{prefix}moe_tp"][row]),
                                  moe_ep=int(c[f"{prefix}moe_ep"][row]))
        return WorkerSetup(parallel=parallel, workers=int(c[f"{prefix}workers"][row]),
                           max_batch=int(c[f"{prefix}batch"][row]), max_num_tokens=int(c[f"{prefix}max_tokens"][row]))

    def candidate(self, row: int, version: str | None = None) -> Candidate:
        c = self.cols
        mode = MODES[int(c["mode"][row])]
        metrics = Metrics(
            ttft_ms=float(c["ttft_ms"][row]), tpot_ms=float(c["tpot_ms"][row]),
            request_latency_ms=float(c["request_latency_ms"][row]),
            tokens_per_s_per_gpu=float(c["tokens_per_s_per_gpu"][row]),
            tokens_per_s_per_user=float(c["tokens_per_s_per_user"][row]),
            concurrency=float(c["concurrency"][row]), mem_headroom=float(c["mem_headroom"][row]),
            source=Source.from_code(int(c["source"][row])), estimated_share=float(c["estimated_share"][row]),
        )
        return Candidate(
            mode=mode, backend=BACKENDS[int(c["backend"][row])], version=version,
            decode=self._worker(row, "d_"), prefill=self._worker(row, "p_") if mode == Mode.DISAGG else None,
            replicas=int(c["replicas"][row]), total_gpus=int(c["total_gpus"][row]), metrics=metrics, row=row,
        )

    # ---- files ---------------------------------------------------------------------------------
    def to_arrow(self, dictionary: bool = True):
        """Arrow table; mode/backend/source as dictionary-encoded strings, or plain strings (CSV)."""
        import pyarrow as pa

        def labels(codes: np.ndarray, names: list[str]):
            if not dictionary:   # not DictionaryArray.cast/dictionary_decode: both import pyarrow.compute (~0.2 s)
                return _coded_strings(codes, names)
            return pa.DictionaryArray.from_arrays(_arrow(codes.astype(np.int32)), _strings(names))

        arrays, names = [], []
        for c in self.cols:
            if c == "mode":
                arr = labels(self.cols[c], [m.value for m in MODES])
            elif c == "backend":
                arr = labels(self.cols[c], [b.value for b in BACKENDS])
            elif c == "source":
                arr = labels(self.cols[c], [s.value for s in Source])
            else:
                arr = _arrow(self.cols[c])
            arrays.append(arr)
            names.append(c)
        return pa.Table.from_arrays(arrays, names=names)

    def write(self, directory: Path) -> tuple[Path, Path]:
        """points.parquet and points.csv in `directory` (strings for mode/backend/source)."""
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        pq_path, csv_path = Path(directory) / "points.parquet", Path(directory) / "points.csv"
        pq.write_table(self.to_arrow(), pq_path, compression="zstd")
        pcsv.write_csv(self.to_arrow(dictionary=False), csv_path)
        return pq_path, csv_path
