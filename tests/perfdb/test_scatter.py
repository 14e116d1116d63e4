"""CompletionInterp: a sparse scattered sample of a grid predicts the rest far better than GridInterp,
keeps the lookup's query contract (exact hits, labels), and serves sparse tables through the lookup."""
import numpy as np
import pyarrow as pa
import pytest
from fixtures.tinydb import family_table

from perfdb.family import SPARSE_FILL, sparse_grid
from perfdb.interp import GridInterp
from perfdb.lookup import PerfDB
from perfdb.ops import GemmCase
from perfdb.roofline import sol_ms
from perfdb.scatter import CompletionConfig, CompletionInterp, Variant
from perfdb.schema import SCHEMAS
from perfdb.specs import load_system
from perfdb.storage import TableKey, init_db, write_shard
from perfdb.types import Backend, Dtype, OpKind, Source

SPEC = load_system("h200_sxm")
AXES = ("m", "n", "k")


def _sol(raw):
    return sol_ms(GemmCase(Dtype.BF16, m=raw[:, 0], n=raw[:, 1], k=raw[:, 2]), SPEC)


def _table():
    """A 20 x 12 x 12 GEMM-like grid: smooth utilisation ramps, and a 30% slower "m = x + 1" level after
    each multiple of 256 (one more tile row), which only the measured points of that level reveal."""
    base = [1, 4, 16, 64, 128, 256, 512, 768, 1024, 1536, 2048, 4096, 8192]
    m = np.array(sorted(set(base) | {b + 1 for b in base if b >= 256}), float)
    n = k = np.geomspace(256, 32768, 12).round()
    raw = np.stack([g.ravel() for g in np.meshgrid(m, n, k, indexing="ij")], axis=1)
    step = np.where((raw[:, 0] % 256 == 1) & (raw[:, 0] > 256), 0.7, 1.0)
    util = 0.85 * raw[:, 0] / (raw[:, 0] + 96) * raw[:, 1] / (raw[:, 1] + 700) * raw[:, 2] / (raw[:, 2] + 300) * step
    return raw, _sol(raw) / util


def _split(n, frac, seed=0):
    rng = np.random.default_rng(seed)
    take = rng.random(n) < frac
    return take, ~take


def _mape(pred, true):
    err = np.abs(pred / true - 1)
    return float(np.mean(np.where(np.isfinite(err), err, 1.0)))   # an unanswered point counts as 100% off


def test_a_sparse_sample_beats_gridinterp_by_far():
    raw, lat = _table()
    take, rest = _split(len(raw), 0.12)
    util = _sol(raw[take]) / lat[take]
    ci = CompletionInterp(OpKind.GEMM, AXES, raw[take], util, lat[take], sol_fn=_sol)
    gi = GridInterp(OpKind.GEMM, AXES, raw[take], util, lat[take])
    err_ci = _mape(_sol(raw[rest]) / ci.query(raw[rest], exact_allowed=False)[0], lat[rest])
    err_gi = _mape(_sol(raw[rest]) / gi.query(raw[rest], exact_allowed=False)[0], lat[rest])
    assert err_ci < 0.03 and err_ci < 0.2 * err_gi


def test_the_tile_step_level_is_learned_from_its_own_points():
    raw, lat = _table()
    take, rest = _split(len(raw), 0.12, seed=1)
    ci = CompletionInterp(OpKind.GEMM, AXES, raw[take], _sol(raw[take]) / lat[take], lat[take], sol_fn=_sol)
    step = rest & (raw[:, 0] == 1025)
    pred = _sol(raw[step]) / ci.query(raw[step], exact_allowed=False)[0]
    assert _mape(pred, lat[step]) < 0.08   # a smooth fit between m=1024 and m=1536 would be ~30% off


def test_query_contract_exact_hits_labels_and_leave_one_out():
    raw, lat = _table()
    take, _ = _split(len(raw), 0.15, seed=2)
    r, la = raw[take], lat[take]
    ci = CompletionInterp(OpKind.GEMM, AXES, r, _sol(r) / la, la, CompletionConfig(ranks=(4,), variants=(Variant(),)))
    util, measured, code = ci.query(np.vstack([r[:1], [[300.0, 1000.0, 1000.0]], [[1e6, 1000.0, 1000.0]]]))
    assert measured[0] == la[0] and code[0] == Source.MEASURED.code
    assert np.isnan(measured[1]) and code[1] == Source.INTERPOLATED.code
    assert code[2] == Source.EXTRAPOLATED.code and np.all(util > 0)
    ci.table_rows = np.arange(len(r)) + 100
    loo = ci.without_node_of(0)
    u0, m0, c0 = loo.query(r[:1])
    assert np.isnan(m0[0]) and c0[0] != Source.MEASURED.code and abs(_sol(r[:1])[0] / u0[0] / la[0] - 1) < 0.3
    assert len(loo.table_rows) == len(r) - 1 and 100 not in loo.table_rows


def test_completion_never_strays_far_from_the_measured_neighbourhood():
    raw, lat = _table()
    take, rest = _split(len(raw), 0.04, seed=3)   # very sparse: the model is poorly determined
    ci = CompletionInterp(OpKind.GEMM, AXES, raw[take], _sol(raw[take]) / lat[take], lat[take], sol_fn=_sol)
    pred = _sol(raw[rest]) / ci.query(raw[rest], exact_allowed=False)[0]
    ratio = pred / lat[rest]
    assert np.all(np.isfinite(ratio)) and ratio.max() < 20 and ratio.min() > 0.05


def _gemm_table(raw, lat):
    template = family_table(OpKind.GEMM).slice(0, 1).to_pylist()[0]
    sol = _sol(raw)
    rows = [dict(template, dtype="bf16", m=int(r[0]), n=int(r[1]), k=int(r[2]), latency_ms=float(x),
                 p10_ms=float(x) * 0.98, p90_ms=float(x) * 1.03, sol_ms=float(s)) for r, x, s in zip(raw, lat, sol, strict=True)]
    return pa.Table.from_pylist(rows, schema=SCHEMAS[OpKind.GEMM])


@pytest.mark.parametrize("frac, sparse", [(0.1, True), (1.0, False)])
def test_lookup_serves_sparse_combinations_with_completion_and_full_grids_as_before(tmp_path, frac, sparse):
    raw, lat = _table()
    take, rest = _split(len(raw), frac, seed=4)
    if frac == 1.0:
        rest = take
    root = init_db(tmp_path)
    key = TableKey("h200_sxm", Backend.TRTLLM, "1.0", OpKind.GEMM)
    write_shard(root, key, _gemm_table(raw[take], lat[take]), counter=0, host="test")
    view = PerfDB(root).view("h200_sxm", Backend.TRTLLM)
    fam = view.family(OpKind.GEMM)
    interp = fam.interp(("bf16",))
    assert sparse_grid(raw[take]) is sparse and bool(take.mean() < SPARSE_FILL) is sparse
    assert isinstance(interp, CompletionInterp if sparse else GridInterp)
    q = raw[rest][:200]
    out = view.latency(GemmCase(Dtype.BF16, m=q[:, 0], n=q[:, 1], k=q[:, 2]))
    assert _mape(out.ms, lat[rest][:200]) < (0.1 if sparse else 1e-9)   # the full grid: exact hits
