import numpy as np
import pytest

from perfdb.interp import GridInterp, transform_axis
from perfdb.types import OpKind, Source


def _util(m, n, k):
    """A smooth GEMM-like utilisation surface: rises with every dimension, saturates at 0.7."""
    return 0.7 * (m / (m + 64.0)) * (n / (n + 256.0)) ** 0.5 * (k / (k + 128.0)) ** 0.5


def _grid():
    axes = [np.geomspace(1, 16384, 15), np.geomspace(128, 65536, 10), np.geomspace(128, 65536, 10)]
    m, n, k = (a.ravel() for a in np.meshgrid(*axes, indexing="ij"))
    raw = np.stack([m, n, k], axis=1)
    util = _util(m, n, k)
    return raw, util


def test_off_grid_queries_on_a_smooth_table_are_within_2_percent():
    raw, util = _grid()
    gi = GridInterp(OpKind.GEMM, ("m", "n", "k"), raw, util, np.ones(len(util)))
    rng = np.random.default_rng(0)
    q = np.stack([np.exp(rng.uniform(np.log(1), np.log(16384), 500)),
                  np.exp(rng.uniform(np.log(128), np.log(65536), 500)),
                  np.exp(rng.uniform(np.log(128), np.log(65536), 500))], axis=1)
    got, measured, code = gi.query(q)
    err = np.abs(got - _util(*q.T)) / _util(*q.T)
    assert np.median(err) < 0.01 and err.max() < 0.05
    assert (code == Source.INTERPOLATED.code).all() and np.isnan(measured).all()


def test_leave_one_out_on_a_smooth_table_is_within_2_percent():
    raw, util = _grid()
    gi = GridInterp(OpKind.GEMM, ("m", "n", "k"), raw, util, np.ones(len(util)))
    rng = np.random.default_rng(1)
    errs = []
    for r in rng.choice(len(util), 200, replace=False):
        got, _, code = gi.without_node_of(r).query(raw[r:r + 1], exact_allowed=False)
        errs.append(abs(got[0] - util[r]) / util[r])
    assert np.median(errs) < 0.02 and np.percentile(errs, 90) < 0.06


def test_exact_nodes_and_sparse_grid_fallback():
    raw = np.array([[1.0, 1.0], [1.0, 4.0], [4.0, 1.0]])   # the (4, 4) corner is missing
    util = np.array([0.1, 0.2, 0.4])
    gi = GridInterp(OpKind.ATTENTION_DECODE, ("batch", "kv_len"), raw, util, np.array([1.0, 2.0, 3.0]))
    got, measured, code = gi.query(np.array([[4.0, 1.0], [2.0, 2.0], [16.0, 1.0]]))
    assert measured[0] == 3.0 and code[0] == Source.MEASURED.code
    # The missing corner is only reachable through the plane of the other three: labelled extrapolated.
    assert np.isfinite(got[1]) and 0.1 < got[1] < 0.8 and code[1] == Source.EXTRAPOLATED.code
    assert got[2] == pytest.approx(0.4) and code[2] == Source.EXTRAPOLATED.code


def test_a_missing_inner_node_is_interpolated_from_its_neighbours():
    b, s = np.meshgrid([1.0, 2.0, 4.0], [1.0, 2.0, 4.0], indexing="ij")
    raw = np.stack([b.ravel(), s.ravel()], axis=1)
    util = 0.1 * raw[:, 0] * raw[:, 1]              # log util is planar in log axes
    keep = ~((raw[:, 0] == 2.0) & (raw[:, 1] == 2.0))
    gi = GridInterp(OpKind.ATTENTION_DECODE, ("batch", "kv_len"), raw[keep], util[keep], np.ones(keep.sum()))
    got, measured, code = gi.query(np.array([[2.0, 2.0], [1.5, 3.0]]))
    assert got == pytest.approx([0.4, 0.45], rel=1e-9)
    assert (code == Source.INTERPOLATED.code).all() and np.isnan(measured).all()


def test_axis_transforms():
    assert transform_axis(OpKind.ATTENTION_PREFILL, "seq_len", np.array([16.0]))[0] == 4.0
    assert transform_axis(OpKind.ATTENTION_PREFILL, "prefix_len", np.array([0.0]))[0] == 0.0
    assert transform_axis(OpKind.GEMM, "m", np.array([np.e]))[0] == pytest.approx(1.0)
