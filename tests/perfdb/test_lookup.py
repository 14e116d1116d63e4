import numpy as np
import pytest
from fixtures.tinydb import build, family_table

from perfdb.errors import DataError, InputError, NotFoundError
from perfdb.lookup import PerfDB, version_sort_key
from perfdb.ops import AttentionDecodeCase, AttentionPrefillCase, GemmCase, MoeCase
from perfdb.roofline import sol_ms
from perfdb.storage import TableKey, init_db, write_shard
from perfdb.types import Backend, Dtype, OpKind, Source


@pytest.fixture(scope="module")
def view(tiny_db):
    return PerfDB(tiny_db).view("h200_sxm", Backend.TRTLLM)


def _codes(lat):
    return [Source.from_code(c) for c in lat.source.ravel()]


def test_exact_hit_returns_the_stored_median(view):
    rows = family_table(OpKind.GEMM).to_pandas()
    row = rows[(rows["dtype"] == "bf16") & (rows.m == 128) & (rows.n == 6144)].iloc[0]
    lat = view.latency(GemmCase(Dtype.BF16, 128, 6144, 4096))
    assert lat.ms.item() == row.latency_ms
    assert _codes(lat) == [Source.MEASURED]


def test_every_rung_on_purpose(view):
    inside = view.latency(GemmCase(Dtype.BF16, 300, 6144, 4096))          # between m=128 and m=1024
    outside = view.latency(GemmCase(Dtype.BF16, 65536, 6144, 4096))       # beyond the largest m
    no_rows = view.latency(GemmCase(Dtype.FP8_BLOCK, 300, 6144, 4096))    # no fp8_block rows at all
    assert _codes(inside) == [Source.INTERPOLATED]
    assert _codes(outside) == [Source.EXTRAPOLATED]
    assert _codes(no_rows) == [Source.ROOFLINE]
    lo = view.latency(GemmCase(Dtype.BF16, 128, 6144, 4096)).ms
    hi = view.latency(GemmCase(Dtype.BF16, 1024, 6144, 4096)).ms
    assert lo < inside.ms < hi


def test_extrapolation_holds_the_boundary_utilisation(view):
    case = GemmCase(Dtype.BF16, np.array([8192.0, 65536.0]), 6144, 4096)
    lat = view.latency(case)
    util = sol_ms(case, view.system) / lat.ms
    assert util[1] == pytest.approx(util[0], rel=1e-9)


def test_missing_kv_head_count_borrows_the_nearest_combination_as_extrapolated(view):
    lat = view.latency(AttentionDecodeCase(Dtype.BF16, Dtype.BF16, 32, 4, 128, 0, 8, 1024))   # kv heads 4: not stored
    assert _codes(lat) == [Source.EXTRAPOLATED]
    assert np.isfinite(lat.ms).all() and (lat.ms > 0).all()


def test_moe_tensor_split_beyond_the_table_is_priced_as_expert_parallel_over_the_same_gpus(view):
    """The table holds moe_tp 1 only (moe_ep 1 and 8): an 8-way expert TP slice reads the same expert
    bytes and does the same FLOPs per GPU as EP 8, so it takes EP 8's measured time, labelled
    extrapolated, not moe_tp 1's utilisation held over a much smaller roofline."""
    def moe(tp, ep):
        return MoeCase(Dtype.BF16, 2048, 768, 8, 128, tp, ep, "balanced", np.array([512.0]))

    tp8, ep8 = view.latency(moe(8, 1)), view.latency(moe(1, 8))
    assert _codes(ep8) == [Source.MEASURED] and _codes(tp8) == [Source.EXTRAPOLATED]
    assert tp8.ms.item() == pytest.approx(ep8.ms.item())
    inside = view.latency(MoeCase(Dtype.BF16, 2048, 768, 8, 128, 1, 4, "balanced", np.array([512.0])))
    assert _codes(inside) == [Source.INTERPOLATED]   # within the table's moe_tp: not moved


def test_query_head_count_is_an_interpolation_axis(view):
    # 16 and 32 query heads are stored (with 4 and 8 KV heads); 24 heads with 8 KV heads is between.
    lat = view.latency(AttentionPrefillCase(Dtype.BF16, Dtype.BF16, 24, 8, 128, 0, 4, 512, 0))
    assert _codes(lat) == [Source.EXTRAPOLATED] or _codes(lat) == [Source.INTERPOLATED]
    exact = view.latency(AttentionPrefillCase(Dtype.BF16, Dtype.BF16, 32, 8, 128, 0, 4, 512, 0))
    assert _codes(exact) == [Source.MEASURED]


def test_vectorised_shapes_and_no_zero(view):
    m = np.array([[1.0, 7.0, 128.0], [4000.0, 8192.0, 1e6]])
    lat = view.latency(GemmCase(Dtype.FP8, m, 4096, 4096))
    assert lat.ms.shape == (2, 3) and lat.source.shape == (2, 3)
    assert (lat.ms > 0).all() and np.isfinite(lat.ms).all()
    assert lat.worst_source() == Source.EXTRAPOLATED
    moe = view.latency(MoeCase(Dtype.BF16, 2048, 768, 8, 128, 1, 1, "balanced", np.arange(1, 5000, 7)))
    assert (np.diff(moe.ms) >= -1e-12).all()   # more tokens never faster in this smooth fixture


def test_versions_newest_first_and_unknown_version(tmp_path):
    root = build(tmp_path / "db", version="1.3.0rc20")
    build(root, version="1.3.0rc9")
    build(root, version="1.3.0")
    db = PerfDB(root)
    assert db.versions("h200_sxm", Backend.TRTLLM) == ["1.3.0", "1.3.0rc20", "1.3.0rc9"]
    assert db.view("h200_sxm", Backend.TRTLLM).version == "1.3.0"
    with pytest.raises(NotFoundError, match="available: 1.3.0, 1.3.0rc20, 1.3.0rc9"):
        db.view("h200_sxm", Backend.TRTLLM, "2.0")
    assert version_sort_key("1.10.0") > version_sort_key("1.9.0")


def test_a_family_missing_from_the_chosen_version_comes_from_the_newest_older_one(tmp_path):
    root = build(tmp_path / "db", version="1.0.0")
    write_shard(root, TableKey("h200_sxm", Backend.TRTLLM, "2.0.0", OpKind.MOE), family_table(OpKind.MOE, version="2.0.0"), 0)
    view = PerfDB(root).view("h200_sxm", Backend.TRTLLM)
    assert view.version == "2.0.0"
    assert view.table_version(OpKind.MOE) == "2.0.0" and view.table_version(OpKind.GEMM) == "1.0.0"
    older = PerfDB(root).view("h200_sxm", Backend.TRTLLM, "1.0.0")
    assert older.table_version(OpKind.MOE) == "1.0.0"   # never a newer version than asked


def test_bad_inputs(tmp_path, tiny_db):
    with pytest.raises(NotFoundError, match="unknown system 'nope'.*h200_sxm"):
        PerfDB(tiny_db).view("nope", Backend.TRTLLM)
    with pytest.raises(InputError, match="unknown backend 'tensorrt'; accepted: trtllm"):
        PerfDB(tiny_db).view("h200_sxm", "tensorrt")
    with pytest.raises(DataError, match="not a servecast database"):
        PerfDB(tmp_path)
    empty = PerfDB(init_db(tmp_path / "empty")).view("h100_sxm", Backend.VLLM)
    lat = empty.latency(GemmCase(Dtype.BF16, np.array([1.0, 1024.0]), 4096, 4096))
    assert _codes(lat) == [Source.ROOFLINE] * 2 and (lat.ms > 0).all()


def test_bundled_database_answers_every_family(tiny_db):
    view = PerfDB().view("h200_sxm", Backend.TRTLLM)
    lat = view.latency(GemmCase(Dtype.BF16, np.array([1.0, 4096.0]), 4096, 4096))
    assert (lat.ms > 0).all() and np.isfinite(lat.ms).all()


def test_many_shapes_are_fast(view):
    import time

    m = np.geomspace(1, 16384, 5000)
    view.latency(GemmCase(Dtype.BF16, m, 4096, 4096))   # builds the interpolator once
    start = time.perf_counter()
    for n in (4096, 6144, 12288, 24576):
        view.latency(GemmCase(Dtype.BF16, m, n, 4096))
    assert time.perf_counter() - start < 0.5
