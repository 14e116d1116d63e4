import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fixtures.tinydb import family_table

from perfdb.errors import DataError, NotFoundError
from perfdb.storage import TableKey, init_db, list_tables, read_table, require_db, shard_paths, write_shard
from perfdb.types import Backend, OpKind

KEY = TableKey("h200_sxm", Backend.TRTLLM, "1.0.0", OpKind.GEMM)
REPO = Path(__file__).resolve().parents[2]


def test_round_trip_and_listing(tmp_path):
    root = init_db(tmp_path / "db")
    table = family_table(OpKind.GEMM)
    write_shard(root, KEY, table, counter=0)
    write_shard(root, KEY, table, counter=1)
    assert read_table(root, KEY).num_rows == 2 * table.num_rows
    assert list_tables(root) == [KEY]
    with pytest.raises(NotFoundError):
        read_table(root, TableKey("h200_sxm", Backend.TRTLLM, "1.0.0", OpKind.MOE))


def test_not_a_database_and_corrupt_shard(tmp_path):
    with pytest.raises(DataError, match="not a servecast database"):
        require_db(tmp_path)
    root = init_db(tmp_path / "db")
    path = write_shard(root, KEY, family_table(OpKind.GEMM), counter=0)
    path.write_bytes(path.read_bytes()[: 100])
    with pytest.raises(DataError, match="corrupt Parquet shard"):
        read_table(root, KEY)


WRITER = textwrap.dedent("""
    import sys
    import pyarrow as pa
    sys.path.insert(0, sys.argv[2]); sys.path.insert(1, sys.argv[2] + "/tests")
    from fixtures.tinydb import family_table
    from perfdb.storage import TableKey, write_shard
    from perfdb.types import Backend, OpKind
    key = TableKey("h200_sxm", Backend.TRTLLM, "1.0.0", OpKind.GEMM)
    small = family_table(OpKind.GEMM)
    write_shard(sys.argv[1], key, small, counter=0)
    big = pa.concat_tables([small] * 20000)   # 800k rows: a shard that takes a while to write
    for counter in range(1, 1000):
        write_shard(sys.argv[1], key, big, counter=counter)
""")


def test_writer_killed_mid_shard_leaves_only_whole_shards(tmp_path):
    root = init_db(tmp_path / "db")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(REPO)])
    directory = KEY.dir(root)
    deadline = time.time() + 60
    try:
        while time.time() < deadline:   # kill while a temp file (a shard being written) exists
            names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
            if any(n.startswith("part-") for n in names) and any(n.startswith(".tmp-") for n in names):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        else:
            pytest.fail("the writer never started a shard")
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    shards = shard_paths(root, KEY)
    assert shards, "the first whole shard must be visible"
    for path in shards:   # every visible shard is complete Parquet
        assert pq.ParquetFile(path).metadata.num_rows in (40, 800000)
    assert read_table(root, KEY).num_rows == sum(pq.ParquetFile(p).metadata.num_rows for p in shards)
    assert any(p.name.startswith(".tmp-") for p in directory.iterdir())   # the torn file is ignored, not read
