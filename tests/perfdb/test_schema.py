import pyarrow as pa
import pytest
from fixtures.tinydb import family_table

from perfdb.errors import DataError
from perfdb.schema import PROVENANCE_COLUMNS, SCHEMAS, STAT_COLUMNS, case_key, conform, key_columns
from perfdb.types import OpKind


def test_every_family_has_one_schema_with_stats_and_provenance():
    assert set(SCHEMAS) == set(OpKind)
    for kind, schema in SCHEMAS.items():
        for field in STAT_COLUMNS + PROVENANCE_COLUMNS:
            assert schema.field(field.name).type == field.type, (kind, field.name)
        assert set(key_columns(kind)) <= set(schema.names)
        assert case_key(kind)[-4:] == ("system", "backend", "backend_version", "kernel_source")


def test_conform_accepts_fixture_rows_and_rejects_missing_or_extra_columns():
    table = family_table(OpKind.GEMM)
    assert conform(OpKind.GEMM, table).num_rows == table.num_rows
    with pytest.raises(DataError, match="lack column"):
        conform(OpKind.GEMM, table.drop_columns(["sol_ms"]))
    with pytest.raises(DataError, match="unknown column"):
        conform(OpKind.GEMM, table.append_column("bogus", pa.array([1] * table.num_rows)))


def test_conform_rejects_nulls_in_required_columns():
    table = family_table(OpKind.GEMM)
    lat = pa.array([None] + table.column("latency_ms").to_pylist()[1:], pa.float64())
    bad = table.set_column(table.schema.get_field_index("latency_ms"), "latency_ms", lat)
    with pytest.raises(DataError, match="latency_ms"):
        conform(OpKind.GEMM, bad)
