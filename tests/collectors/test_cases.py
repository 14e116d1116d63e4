import numpy as np

from collectors.cases import coarse_first, dedupe, key, points, pow2, product
from perfdb.ops import GemmCase
from perfdb.schema import key_columns
from perfdb.types import Dtype, OpKind


def test_points_expand_arrays_and_drop_duplicates():
    case = GemmCase(Dtype.BF16, m=np.array([1, 2, 2]), n=64, k=32)
    pts = points(case)
    assert [int(p.m) for p in pts] == [1, 2]
    assert all(p.shape == () for p in pts)


def test_key_follows_schema_key_columns():
    case = GemmCase(Dtype.FP8, m=16, n=64, k=32)
    assert key_columns(OpKind.GEMM) == ("dtype", "m", "n", "k")
    assert key(case) == ("fp8", 16, 64, 32)


def test_dedupe_across_sources():
    a = product(GemmCase, {"dtype": Dtype.BF16}, {"m": [1, 2], "n": [8], "k": [8]})
    assert len(dedupe(a + a + [GemmCase(Dtype.BF16, m=np.array([1, 3]), n=8, k=8)])) == 3


def test_coarse_first_prefix_covers_the_ends_of_every_axis():
    cases = product(GemmCase, {"dtype": Dtype.BF16}, {"m": pow2(1, 256), "n": pow2(64, 1024), "k": [128]})
    ordered = coarse_first(cases)
    assert sorted(map(key, ordered)) == sorted(map(key, cases))
    head = ordered[:4]
    assert {int(c.m) for c in head} == {1, 256} and {int(c.n) for c in head} == {64, 1024}
