"""Lookup of linear-attention tables (perfdb.coords): iso-work lines and tied head axes.

The tables are real Parquet databases timed from the op's own roofline (flops()/bytes()) and a
noise-free occupancy law: a recurrent kernel runs one program per (request, value head) state, so
its utilisation follows batch x value heads; latency = launch floor + sol / utilisation. Head pairs
are the tensor-parallel slices of real models (Qwen3.5 GDN: value heads 2-4x key heads; Kimi KDA:
equal), batches powers of two, as in the reference tool's tables.
"""
import numpy as np
import pytest
from fixtures.tinydb import BACKEND, SYSTEM, write_family

from perfdb.checkinterp import check_interp
from perfdb.interp import GridInterp
from perfdb.lookup import PerfDB
from perfdb.ops import LinearDecodeCase
from perfdb.roofline import sol_ms
from perfdb.types import Dtype, LinearKind, OpKind, Source

GDN_HEADS = [(2, 1), (4, 2), (8, 4), (16, 8), (32, 16), (6, 2), (12, 4), (24, 8), (48, 16), (4, 4), (16, 16)]
KDA_HEADS = [(12, 12), (24, 24), (48, 48), (96, 96)]
FLOOR_MS = 0.006


def _occupancy(head_batch: np.ndarray, cap: float, half: float) -> np.ndarray:
    return cap * head_batch / (head_batch + half)


def _decode_latency(case, sol):
    return FLOOR_MS + sol / _occupancy(case.batch * case.num_v_heads, 0.8, 96.0)


def _prefill_latency(case, sol):
    tokens = case.batch * case.seq_len
    return 0.02 + sol / (_occupancy(case.batch * case.num_v_heads, 0.3, 24.0) * tokens / (tokens + 256.0))


def _decode_groups(kind: str, heads):
    b = np.array([2 ** i for i in range(10)], dtype=np.int64)
    return [((kind, "bf16", "fp32", k, v, 128, 128, 4), {"batch": b}) for v, k in heads]


def _prefill_groups(heads):
    b, s = np.meshgrid([1, 2, 4, 8, 16], [64, 256, 1024, 4096, 16384], indexing="ij")
    return [(("gdn", "bf16", "fp32", k, v, 128, 128, 4, 64), {"batch": b.ravel(), "seq_len": s.ravel()})
            for v, k in heads]


@pytest.fixture(scope="module")
def linear_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("lineardb")
    write_family(root, OpKind.LINEAR_DECODE, _decode_groups("gdn", GDN_HEADS) + _decode_groups("kda", KDA_HEADS),
                 _decode_latency)
    write_family(root, OpKind.LINEAR_PREFILL, _prefill_groups(GDN_HEADS), _prefill_latency)
    return PerfDB(root).view(SYSTEM, BACKEND)


@pytest.mark.parametrize("op, median, p90", [(OpKind.LINEAR_DECODE, 0.002, 0.02), (OpKind.LINEAR_PREFILL, 0.017, 0.06)])
def test_held_out_rows_interpolate_within_bounds(linear_db, op, median, p90):
    rep = check_interp(linear_db, op, sample=10_000)
    assert rep.sampled == rep.table_rows
    whole = rep.results[0]
    assert whole.median_rel_err <= median and whole.p90_rel_err <= p90, whole


def _decode(kind, v, k, batch):
    return LinearDecodeCase(kind, Dtype.BF16, Dtype.FP32, k, v, 128, 128, 4, np.asarray(batch, dtype=np.float64))


def test_unstored_shapes_follow_the_occupancy_law(linear_db):
    """Batches between the powers of two, and a head split no table stores (20 value heads over 10 key
    heads), land within 3% of the law the table was timed with."""
    for v, k in ((8, 4), (24, 8), (20, 10)):
        case = _decode(LinearKind.GDN, v, k, [3, 12, 40, 100, 300])
        want = _decode_latency(case, sol_ms(case, linear_db.system))
        got = linear_db.latency(case)
        assert np.max(np.abs(got.ms / want - 1)) < 0.03, (v, k, got.ms / want)


def test_a_missing_node_is_read_off_its_iso_work_line():
    """Utilisation that follows batch x value heads alone: a removed node is its iso-work partners' value
    (the same head-states in flight, split into other requests and heads), not a grid-line guess."""
    heads = np.array([[2, 1], [4, 2], [8, 4], [16, 8]], dtype=np.float64)
    batch = np.array([1, 2, 4, 8, 16, 32], dtype=np.float64)
    raw = np.array([[b, v, k] for v, k in heads for b in batch])
    util = _occupancy(raw[:, 0] * raw[:, 1], 0.8, 40.0)
    gi = GridInterp(OpKind.LINEAR_DECODE, ("batch", "num_v_heads", "num_k_heads"), raw, util, 1.0 / util)
    work = raw[:, 0] * raw[:, 1]
    with_partner = [r for r in range(len(raw)) if np.sum(work == work[r]) > 1]
    assert len(with_partner) > len(raw) / 2
    for r in with_partner:
        got, measured, code = gi.without_node_of(r).query(raw[r:r + 1], exact_allowed=False)
        assert got[0] == pytest.approx(util[r], rel=1e-9), raw[r]
        assert np.isnan(measured[0])


def test_tied_head_axes_are_not_a_diagonal_grid():
    """KDA stores equal key and value head counts: the pair is gridded on one axis, so a left-out batch-1
    row is predicted from the other head counts; a shape off the diagonal is never an exact hit."""
    raw = np.array([[b, v, v] for v in (12.0, 24.0, 48.0, 96.0) for b in (1.0, 2.0, 4.0, 8.0)])
    util = _occupancy(raw[:, 0] * raw[:, 1], 0.8, 200.0)
    gi = GridInterp(OpKind.LINEAR_DECODE, ("batch", "num_v_heads", "num_k_heads"), raw, util, 1.0 / util)
    assert list(gi.ties) == [2]
    got, _, code = gi.query(np.array([[4.0, 24.0, 24.0], [4.0, 24.0, 12.0]]))
    assert code[0] == Source.MEASURED.code and code[1] != Source.MEASURED.code
    errs = [abs(gi.without_node_of(r).query(raw[r:r + 1], exact_allowed=False)[0][0] / util[r] - 1)
            for r in range(len(raw))]
    assert np.median(errs) < 0.02 and max(errs) < 0.25



def test_decode_lines_ignore_the_key_split_when_no_strict_partner_exists():
    """TRT-LLM's GDN tables keep 16 key heads for 16-64 value heads, so no two rows share v/k at equal
    batch x heads; decode, whose bytes are the state's, reads the line across v/k instead."""
    raw = np.array([[b, v, 16.0] for v in (16.0, 32.0, 64.0) for b in (1.0, 2.0, 4.0, 8.0, 16.0)])
    util = _occupancy(raw[:, 0] * raw[:, 1], 0.9, 128.0)
    gi = GridInterp(OpKind.LINEAR_DECODE, ("batch", "num_v_heads", "num_k_heads"), raw, util, 1.0 / util)
    r = int(np.flatnonzero((raw[:, 0] == 4.0) & (raw[:, 1] == 32.0))[0])   # 128 head-states: 8 x 16, 2 x 64
    got, _, code = gi.without_node_of(r).query(raw[r:r + 1], exact_allowed=False)
    assert got[0] == pytest.approx(util[r], rel=1e-9) and code[0] == Source.INTERPOLATED.code


def test_a_tied_axis_beyond_its_range_is_extrapolated():
    raw = np.array([[b, v, v] for v in (12.0, 24.0, 48.0) for b in (1.0, 2.0, 4.0)])
    util = _occupancy(raw[:, 0] * raw[:, 1], 0.8, 200.0)
    gi = GridInterp(OpKind.LINEAR_DECODE, ("batch", "num_v_heads", "num_k_heads"), raw, util, 1.0 / util)
    _, _, code = gi.query(np.array([[2.0, 24.0, 96.0], [2.0, 24.0, 16.0]]))
    assert code[0] == Source.EXTRAPOLATED.code and code[1] == Source.INTERPOLATED.code
