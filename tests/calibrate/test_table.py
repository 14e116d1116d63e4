from __future__ import annotations

import math

import pyarrow as pa
import pytest

from calibrate.parsers import parse_file
from calibrate.table import RUNS_SCHEMA, read_runs, runs_to_table, table_to_runs, write_runs
from perfdb.errors import DataError


def test_round_trip_through_parquet(fixtures, tmp_path):
    runs = parse_file(fixtures / "format_samples" / "silicon_sample.csv") + \
        parse_file(fixtures / "format_samples" / "inferencex_rows.json")
    path = write_runs(runs_to_table(runs), tmp_path / "runs.parquet")
    table = read_runs(path)
    assert table.schema.equals(RUNS_SCHEMA, check_metadata=False)
    back = table_to_runs(table)
    assert back == runs
    assert math.isnan(back[0].metrics.itl.mean) and back[2].deployment.num_gpus is None


def test_not_a_run_table(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match="missing column"):
        read_runs(tmp_path / "x.parquet")
    (tmp_path / "y.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="y.parquet"):
        read_runs(tmp_path / "y.parquet")
    with pytest.raises(DataError, match="no such"):
        read_runs(tmp_path / "absent.parquet")


def test_warm_up_counts_travel_and_an_older_table_reads_them_as_unknown(fixtures, tmp_path):
    """A run's warm-up count (what estimator.set_aside.cold_start reads) survives the Parquet table; a table written
    before the column existed conforms with it unknown (null), as a client file that does not say."""
    from dataclasses import replace

    runs = parse_file(fixtures / "format_samples" / "silicon_sample.csv")
    runs = [replace(r, load=replace(r.load, num_warmups=n)) for r, n in zip(runs, (0, 8, None), strict=False)]
    table = runs_to_table(runs)
    assert [r.load.num_warmups for r in table_to_runs(table)] == [r.load.num_warmups for r in runs]
    old = table.drop_columns(["num_warmups"])
    assert all(r.load.num_warmups is None for r in table_to_runs(old))
