"""The on-disk memo of sparse-table fits: a second process reads the fit instead of redoing it."""
import numpy as np
from test_scatter import AXES, _gemm_table, _sol, _split, _table

from perfdb.completion_store import stored_completions
from perfdb.lookup import COMPLETIONS_DIR, PerfDB
from perfdb.scatter import CompletionInterp
from perfdb.storage import TableKey, init_db, write_shard
from perfdb.types import Backend, OpKind


def _fit(raw, lat):
    return CompletionInterp(OpKind.GEMM, AXES, raw, _sol(raw) / lat, lat, sol_fn=_sol)


def _sample():
    raw, lat = _table()
    take, rest = _split(len(raw), 0.12)
    return raw[take], lat[take], raw[rest][:300]


def test_the_second_fit_is_read_back_and_answers_identically(tmp_path):
    raw, lat, q = _sample()
    with stored_completions(tmp_path):
        first, second = _fit(raw, lat), _fit(raw, lat)
    assert not first.from_store and second.from_store
    assert (first.rank, first.variant) == (second.rank, second.variant)
    np.testing.assert_array_equal(first.query(q)[0], second.query(q)[0])
    outside = _fit(raw, lat)                           # no store active: fitted, nothing read
    assert not outside.from_store


def test_changed_rows_miss_and_broken_or_unwritable_stores_only_refit(tmp_path):
    raw, lat, q = _sample()
    with stored_completions(tmp_path):
        _fit(raw, lat)
        moved = lat.copy()
        moved[0] *= 1.5
        assert not _fit(raw, moved).from_store       # content-keyed: a changed row is another fit
        for f in tmp_path.glob("*.npz"):
            f.write_bytes(b"truncated")
        assert not _fit(raw, lat).from_store         # unreadable entry: refit, no error
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with stored_completions(blocker / "store"):      # cannot be created: the fit stands
        assert not _fit(raw, lat).from_store


def test_a_database_memoises_its_sparse_tables_for_the_next_process(tmp_path):
    raw, lat, q = _sample()
    root = init_db(tmp_path / "db")
    write_shard(root, TableKey("h200_sxm", Backend.TRTLLM, "1.0", OpKind.GEMM), _gemm_table(raw, lat), counter=0,
                host="test")
    first = PerfDB(root).view("h200_sxm", Backend.TRTLLM).family(OpKind.GEMM).interp(("bf16",))
    assert not first.from_store and any((root / COMPLETIONS_DIR).glob("*.npz"))
    again = PerfDB(root).view("h200_sxm", Backend.TRTLLM).family(OpKind.GEMM).interp(("bf16",))   # a new "process"
    assert again.from_store
    np.testing.assert_array_equal(first.query(q)[0], again.query(q)[0])
