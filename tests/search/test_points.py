"""The points table: blocks, concatenation, and the files it writes (real Parquet and CSV)."""
import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from perfdb.errors import DataError
from perfdb.types import Backend, Source
from search.points import COLUMNS, PointTable
from search.types import Mode


def test_blocks_broadcast_scalars_and_default_the_rest():
    t = PointTable.block(3, mode=1, backend=2, ttft_ms=np.array([1.0, 2.0, 3.0]), feasible=True)
    assert len(t) == 3 and t["mode"].tolist() == [1, 1, 1] and np.isnan(t["tpot_ms"]).all()
    assert t["feasible"].all() and not t["meets_sla"].any()
    with pytest.raises(DataError, match="unknown point table columns"):
        PointTable.block(1, nope=1)


def test_files_hold_every_row_with_readable_labels(tmp_path):
    a = PointTable.block(2, mode=0, backend=0, source=Source.ROOFLINE.code, ttft_ms=np.array([10.0, 20.0]),
                         d_tp=np.array([1, 2]), feasible=np.array([True, False]))
    b = PointTable.block(1, mode=1, backend=2, source=Source.MEASURED.code, ttft_ms=5.0, meets_sla=True)
    t = PointTable.concat([a, b])
    pq_path, csv_path = t.write(tmp_path)
    table = pq.read_table(pq_path)
    assert table.column_names == list(COLUMNS) and table.num_rows == 3
    assert table.column("mode").to_pylist() == [Mode.AGG.value, Mode.AGG.value, Mode.DISAGG.value]
    assert table.column("backend").to_pylist() == [Backend.TRTLLM.value] * 2 + [Backend.VLLM.value]
    assert table.column("source").to_pylist() == ["roofline", "roofline", "measured"]
    assert table.column("feasible").to_pylist() == [True, False, False]
    assert table.column("meets_sla").to_pylist() == [False, False, True]
    assert table.column("ttft_ms").to_pylist() == [10.0, 20.0, 5.0]
    csv = pcsv.read_csv(csv_path)
    assert csv.num_rows == 3 and csv.column("mode").to_pylist() == ["agg", "agg", "disagg"]
    assert csv.column("d_tp").to_pylist() == [1, 2, 0]


def test_one_row_comes_back_as_a_typed_candidate():
    t = PointTable.block(1, mode=1, backend=1, replicas=2, p_tp=2, p_pp=1, p_dp=1, p_moe_tp=1, p_moe_ep=1,
                         p_workers=3, p_batch=1, p_max_tokens=16384, d_tp=4, d_pp=1, d_dp=1, d_moe_tp=1,
                         d_moe_ep=1, d_workers=1, d_batch=64, d_max_tokens=8192, total_gpus=32, gpus_used=20,
                         ttft_ms=300.0, tpot_ms=12.0, source=Source.INTERPOLATED.code)
    c = t.candidate(0, "0.5")
    assert c.mode == Mode.DISAGG and c.backend == Backend.SGLANG and c.version == "0.5"
    assert c.prefill.workers == 3 and c.decode.max_batch == 64 and c.gpus_used == 20
    assert c.label() == "2x [3P tp2 + 1D tp4]" and c.metrics.source == Source.INTERPOLATED
