import datetime as dt
import shutil

import pyarrow as pa
from fixtures.tinydb import family_table

from perfdb.compact import compact_db, compact_table
from perfdb.storage import TableKey, init_db, read_table, shard_paths, write_shard
from perfdb.types import Backend, OpKind

KEY = TableKey("h200_sxm", Backend.TRTLLM, "1.0.0", OpKind.GEMM)


def _with(table: pa.Table, latency_scale: float, when: dt.datetime) -> pa.Table:
    lat = pa.array([v * latency_scale for v in table.column("latency_ms").to_pylist()], pa.float64())
    table = table.set_column(table.schema.get_field_index("latency_ms"), "latency_ms", lat)
    stamps = pa.array([when] * table.num_rows, pa.timestamp("us", tz="UTC"))
    return table.set_column(table.schema.get_field_index("collected_at"), "collected_at", stamps)


def test_compact_merges_shards_and_keeps_the_newest_duplicate(tmp_path):
    root = init_db(tmp_path)
    base = family_table(OpKind.GEMM)
    old = _with(base, 1.0, dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))
    new = _with(base.slice(0, 10), 2.0, dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc))
    write_shard(root, KEY, old, counter=0)
    write_shard(root, KEY, new, counter=1)
    result = compact_table(root, KEY)
    assert (result.shards_before, result.rows_before, result.rows_after) == (2, 50, 40)
    assert len(shard_paths(root, KEY)) == 1
    merged = read_table(root, KEY).to_pandas().set_index(["dtype", "m", "n", "k"])
    first = base.slice(0, 10).to_pandas()
    for _, row in first.iterrows():
        assert merged.loc[(row["dtype"], row["m"], row["n"], row["k"]), "latency_ms"] == row["latency_ms"] * 2.0
    again = compact_db(root)
    assert again[0].new_shard is None and again[0].rows_after == 40   # idempotent


def test_crash_between_write_and_remove_is_repaired_by_the_next_compact(tmp_path):
    root = init_db(tmp_path)
    shard = write_shard(root, KEY, family_table(OpKind.GEMM), counter=0)
    # The state a crash after "write merged shard" and before "remove old shards" leaves: rows twice.
    shutil.copy(shard, shard.with_name("part-other-1-0.parquet"))
    assert read_table(root, KEY).num_rows == 80
    compact_table(root, KEY)
    assert read_table(root, KEY).num_rows == 40
    assert len(shard_paths(root, KEY)) == 1


def test_compact_removes_temp_files_of_dead_writers_only(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    root = init_db(tmp_path)
    write_shard(root, KEY, family_table(OpKind.GEMM), counter=0)
    host = socket.gethostname().replace("-", "_")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited: its temp file is debris
    directory = KEY.dir(root)
    debris = directory / f".tmp-part-{host}-{dead_pid}-0.parquet"
    live = directory / f".tmp-part-{host}-{os.getpid()}-7.parquet"      # a writer still running: keep
    foreign = directory / ".tmp-part-otherhost-123-0.parquet"            # another host's: cannot tell, keep
    for p in (debris, live, foreign):
        p.write_bytes(b"partial")
    result = compact_table(root, KEY)
    assert result.stale_temp_removed == 1
    assert not debris.exists() and live.exists() and foreign.exists()
    assert read_table(root, KEY).num_rows == 40
