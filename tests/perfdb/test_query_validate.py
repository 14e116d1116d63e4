import json

import numpy as np
import pyarrow as pa
import pytest
from fixtures.tinydb import build, family_table

from perfdb.checkinterp import check_interp
from perfdb.errors import InputError
from perfdb.lookup import PerfDB
from perfdb.query import Filter, Format, query, write_result
from perfdb.storage import TableKey, write_shard
from perfdb.types import Backend, OpKind, Source
from perfdb.validate import validate_db


def test_filters_families_and_columns(tiny_db):
    rows = query(tiny_db, [Filter.parse("op=gemm"), Filter.parse("dtype=fp8"), Filter.parse("m>=128")])
    assert rows.num_rows == 12 and set(rows.column("family").to_pylist()) == {"gemm"}
    assert min(rows.column("m").to_pylist()) >= 128
    comm = query(tiny_db, [Filter.parse("op=all_reduce,all_gather"), Filter.parse("num_gpus=8")])
    assert set(comm.column("op").to_pylist()) == {"all_reduce", "all_gather"}
    both = query(tiny_db, [Filter.parse("op=gemm,moe"), Filter.parse("dtype!=fp8")], columns=["dtype", "latency_ms"])
    assert both.column_names == ["family", "dtype", "latency_ms"] and set(both.column("family").to_pylist()) == {"gemm", "moe"}


def test_bad_filters_name_the_columns(tiny_db):
    with pytest.raises(InputError, match="unknown column 'nope'; columns: .*latency_ms"):
        query(tiny_db, [Filter.parse("nope=1")])
    with pytest.raises(InputError, match="bad filter"):
        Filter.parse("m>=")
    with pytest.raises(InputError, match="bad filter"):
        Filter.parse("=5")
    with pytest.raises(InputError, match="not a valid"):
        query(tiny_db, [Filter.parse("m>=abc")])


def test_write_result_formats_atomically(tiny_db, tmp_path):
    rows = query(tiny_db, [Filter.parse("op=elementwise")])
    for fmt in (Format.CSV, Format.JSON, Format.PARQUET):
        path = write_result(rows, fmt, tmp_path / f"out.{fmt.value}")
        assert path.stat().st_size > 0
    assert len(json.loads((tmp_path / "out.json").read_text())) == rows.num_rows
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def _set(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type))


def test_validate_rejects_impossible_rows_with_reasons(tmp_path):
    root = build(tmp_path / "db")
    assert validate_db(root).ok
    gemm = family_table(OpKind.GEMM)
    gemm = _set(gemm, "latency_ms", 0, -1.0)                       # non-positive
    gemm = _set(gemm, "p10_ms", 1, 1.0)                            # p10 above the median
    big = gemm.to_pandas().query("m == 8192").index[0]
    gemm = _set(gemm, "latency_ms", int(big), 0.01)                # ~20 PFLOP/s: beyond any H200
    comm = family_table(OpKind.COMM)
    ar = comm.to_pandas().query("op == 'all_reduce' and num_gpus == 8 and msg_bytes == 134217728").index[0]
    comm = _set(comm, "latency_ms", int(ar), 0.3)                  # ~780 GB/s bus bandwidth
    key = TableKey("h200_sxm", Backend.TRTLLM, "1.0.0", OpKind.GEMM)
    write_shard(root, key, gemm, counter=7)
    write_shard(root, TableKey("h200_sxm", Backend.TRTLLM, "1.0.0", OpKind.COMM), comm, counter=7)
    (key.dir(root) / "part-broken-1-0.parquet").write_bytes(b"not parquet")
    report = validate_db(root)
    reasons = {r.reason for r in report.rejections}
    assert any("non-positive" in r for r in reasons)
    assert any("p10_ms above" in r for r in reasons)
    assert any("FLOP/s above 88%" in r for r in reasons)
    assert any("bus bandwidth" in r for r in reasons)
    assert any("not readable Parquet" in r for r in reasons)
    assert not report.ok


def test_imported_rows_beyond_a_bound_and_duplicate_cases_are_warnings(tmp_path):
    root = build(tmp_path / "db")
    gemm = family_table(OpKind.GEMM)
    big = int(gemm.to_pandas().query("m == 8192").index[0])
    fast = _set(_set(_set(gemm, "latency_ms", big, 0.01), "p10_ms", big, 0.009), "p90_ms", big, 0.011)  # beyond the bound...
    fast = _set(fast, "timing_method", big, "imported")             # ...in someone else's table
    key = TableKey("h200_sxm", Backend.TRTLLM, "1.0.0", OpKind.GEMM)
    write_shard(root, key, fast.slice(big, 1), counter=8)           # and a case stored twice
    report = validate_db(root)
    assert report.ok, report.rejections[:3]
    reasons = [w.reason for w in report.warnings]
    assert any("FLOP/s above 88%" in r and "imported" in r for r in reasons)
    assert sum("duplicate case" in r for r in reasons) == 1


def test_check_interp_on_the_fixture(tiny_db):
    view = PerfDB(tiny_db).view("h200_sxm", Backend.TRTLLM)
    report = check_interp(view, OpKind.ATTENTION_DECODE, sample=10, seed=3)
    assert report.sampled == 10 and report.table_rows == 18
    overall = report.results[0]
    assert overall.dtype == "all" and overall.rows == 10
    assert 0 <= overall.median_rel_err <= overall.p90_rel_err and overall.median_rel_err < 0.5
    assert Source.MEASURED not in dict(overall.sources)   # a left-out row is never an exact hit
    assert np.isfinite([a.median_rel_err for a in report.results]).all()
