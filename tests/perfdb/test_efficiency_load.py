"""The vectorised grouping of efficiency knots equals the plain row-by-row grouping it replaced."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perfdb.efficiency import CURVE_SCHEMA, FILENAME, EfficiencyCurves
from perfdb.errors import DataError
from perfdb.lookup import BUNDLED_ROOT


def _by_rows(table: pa.Table) -> dict:
    """Reference: group row by row, stable sort by log10_sol_ms inside each curve."""
    keys = list(zip(*(table.column(n).to_pylist() for n in ("system", "kind", "dtype", "backend", "group")), strict=True))
    xs = np.asarray(table.column("log10_sol_ms").to_pylist())
    us = np.asarray(table.column("util").to_pylist())
    rows: dict = {}
    for i, k in enumerate(keys):
        rows.setdefault(k, []).append(i)
    return {k: (xs[np.asarray(i)[np.argsort(xs[i], kind="stable")]], us[np.asarray(i)[np.argsort(xs[i], kind="stable")]])
            for k, i in rows.items()}


def _same(curves: EfficiencyCurves, ref: dict) -> None:
    assert curves.keys() == tuple(ref)
    for k, (x, u) in ref.items():
        got = curves._curves[k]
        np.testing.assert_array_equal(got[0], x)
        np.testing.assert_array_equal(got[1], u)


def _shuffled(n_chunks: int) -> pa.Table:
    rows = pq.ParquetFile(BUNDLED_ROOT / FILENAME).read().to_pylist()
    rng = np.random.default_rng(7)
    rows = [rows[i] for i in rng.permutation(len(rows))[:6000]]
    rows += [dict(rows[0], util=0.5), dict(rows[0], util=0.25)]   # tied knots keep their row order
    table = pa.Table.from_pylist(rows, schema=CURVE_SCHEMA)
    return pa.Table.from_batches(table.to_batches(max_chunksize=len(rows) // n_chunks + 1))


@pytest.mark.parametrize("n_chunks", [1, 4])
def test_grouping_matches_row_by_row_on_plain_strings(n_chunks):
    table = _shuffled(n_chunks)
    _same(EfficiencyCurves.from_table(table), _by_rows(table))


def test_load_reads_dictionary_keys_and_matches_row_by_row(tmp_path):
    table = _shuffled(1)
    pq.write_table(table, tmp_path / FILENAME, row_group_size=1500)   # several row groups: several dictionaries
    _same(EfficiencyCurves.load(tmp_path), _by_rows(table))


def test_bundled_curves_match_row_by_row():
    _same(EfficiencyCurves.load(BUNDLED_ROOT), _by_rows(pq.ParquetFile(BUNDLED_ROOT / FILENAME).read()))


def test_empty_values_are_a_data_error(tmp_path):
    schema = pa.schema([f.with_nullable(True) for f in CURVE_SCHEMA])
    table = pa.Table.from_pylist([{"system": "h200_sxm", "kind": "gemm", "dtype": None, "backend": "*", "group": "",
                                   "log10_sol_ms": 0.0, "util": 0.5}], schema=schema)
    with pytest.raises(DataError, match="dtype"):
        EfficiencyCurves.from_table(table)
