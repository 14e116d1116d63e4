import numpy as np
import pyarrow.parquet as pq
import pytest
from fixtures.aic_layout import build_aic

from perfdb.efficiency import ANY_BACKEND, DEFAULT_UTIL, FILENAME, UTIL_CEIL, UTIL_FLOOR, EfficiencyCurves
from perfdb.efficiency_fit import CurveFit, fill_from_closest, fit_db, fit_knots, to_table
from perfdb.errors import DataError
from perfdb.importers import import_aic
from perfdb.lookup import BUNDLED_ROOT
from perfdb.ops import CommCase, GemmCase
from perfdb.roofline import sol_ms
from perfdb.specs import list_systems, load_system
from perfdb.types import Backend, CommOp, Dtype, OpKind, Transport

SYSTEMS = [s for s in list_systems() if load_system(s).gpu.sm_version > 0]


def _curve(system="h200_sxm", kind="gemm", dtype="bf16", backend=ANY_BACKEND, group="", xs=(-3.0, -1.0, 1.0),
           us=(0.05, 0.4, 0.7), source=None):
    return CurveFit(system, kind, dtype, backend, group, xs, us, 100, source or system, ("t",))


def _curves(tmp_path, fits):
    pq.write_table(to_table(fits), tmp_path / FILENAME)
    return EfficiencyCurves.load(tmp_path)


def test_fit_is_monotone_and_tracks_the_data():
    rng = np.random.default_rng(0)
    sol = 10 ** rng.uniform(-5, 1, 4000)
    true_util = 0.8 / (1 + (1e-2 / sol) ** 0.7)                    # rises with size, saturates at 0.8
    latency = sol / (true_util * rng.lognormal(0, 0.15, sol.size))
    xs, us = fit_knots(sol, latency)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(us) >= 0)
    mid = np.interp(np.log10(1e-2), xs, us)
    assert mid == pytest.approx(0.4, rel=0.15)
    assert fit_knots(sol[:3], latency[:3]) is None


def test_util_is_clamped_interpolated_and_latency_held_below_first_knot(tmp_path):
    curves = _curves(tmp_path, [_curve(us=(0.05, 0.4, 2.0))])
    sol = np.array([1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1e3])
    u = curves.util("h200_sxm", OpKind.GEMM, Dtype.BF16, sol)
    assert u.shape == sol.shape and np.all((u >= UTIL_FLOOR) & (u <= UTIL_CEIL))
    assert np.all(np.diff(u) >= 0)
    assert u[3] == pytest.approx((0.05 + 0.4) / 2)                # linear in log10 sol between knots
    assert u[-1] == UTIL_CEIL                                      # 2.0 knot clamped to 0.95
    lat = sol[:3] / u[:3]
    assert lat[1] == pytest.approx(lat[2])                         # below the first knot: constant latency


def test_fallbacks_backend_dtype_group_and_default(tmp_path):
    fits = [_curve(us=(0.1, 0.2, 0.3)), _curve(backend="vllm", us=(0.5, 0.6, 0.7)),
            _curve(kind="comm", dtype="bf16", group="all_reduce/8/nvlink", us=(0.01, 0.1, 0.9)),
            _curve(kind="comm", dtype="bf16", group="", us=(0.02, 0.2, 0.8))]
    curves = _curves(tmp_path, fits)
    sol = np.array([1e-1])
    gemm = GemmCase(Dtype.FP8_BLOCK, 64, 64, 64)
    assert curves.curve("h200_sxm", OpKind.GEMM, Dtype.FP8_BLOCK)[0] == ("h200_sxm", "gemm", "bf16", "*", "")
    assert curves.util_for("h200_sxm", gemm, sol, Backend.VLLM)[0] == pytest.approx(0.6)
    assert curves.util_for("h200_sxm", gemm, sol, Backend.TRTLLM)[0] == pytest.approx(0.2)
    ar8 = CommCase(CommOp.ALL_REDUCE, 8, Transport.NVLINK, Dtype.BF16, [1e6])
    ag4 = CommCase(CommOp.ALL_GATHER, 4, Transport.NVLINK, Dtype.FP16, [1e6])
    assert curves.util_for("h200_sxm", ar8, sol)[0] == pytest.approx(0.1)
    assert curves.util_for("h200_sxm", ag4, sol)[0] == pytest.approx(0.2)   # group "" and fp16 -> bf16
    assert curves.util("b200_sxm", OpKind.GEMM, Dtype.BF16, sol)[0] == DEFAULT_UTIL
    assert EfficiencyCurves.load(None).util("h200_sxm", OpKind.GEMM, Dtype.BF16, sol)[0] == DEFAULT_UTIL


def test_a_collective_at_an_unmeasured_size_takes_its_nearest_measured_size_before_the_pooled_curve(tmp_path):
    """An all-to-all over 48 GPUs (SGLang's wide-EP DeepEP decode) has no curve of its own; the same
    collective over the same transport at the nearest GPU count measured (4, then 8: log-nearest first)
    answers before the pooled curve of every collective, whose microsecond all-reduce latencies would price
    DeepEP's ~60 us kernels at a few microseconds. Another collective or transport never stands in."""
    fits = [_curve(kind="comm", group="all_to_all/4/nvlink", us=(0.001, 0.1, 0.5)),
            _curve(kind="comm", group="all_to_all/16/nvlink", us=(0.002, 0.2, 0.6)),
            _curve(kind="comm", group="all_to_all/8/network", us=(0.003, 0.3, 0.7)),
            _curve(kind="comm", group="all_reduce/64/nvlink", us=(0.004, 0.4, 0.8)),
            _curve(kind="comm", group="", us=(0.02, 0.2, 0.8))]
    curves = _curves(tmp_path, fits)
    sol = np.array([1e-1])

    def util(op, n, transport):
        return curves.util_for("h200_sxm", CommCase(op, n, transport, Dtype.BF16, [1e6]), sol)[0]

    assert util(CommOp.ALL_TO_ALL, 48, Transport.NVLINK) == pytest.approx(0.2)    # 16 is nearer 48 than 4
    assert util(CommOp.ALL_TO_ALL, 6, Transport.NVLINK) == pytest.approx(0.1)     # 4 nearer than 16
    assert util(CommOp.ALL_TO_ALL, 8, Transport.NVLINK) == pytest.approx(0.2)     # a tie: the larger count
    assert util(CommOp.ALL_TO_ALL, 16, Transport.NETWORK) == pytest.approx(0.3)
    assert util(CommOp.ALL_GATHER, 48, Transport.NVLINK) == pytest.approx(0.2)    # none of its own: pooled
    assert util(CommOp.ALL_REDUCE, 2, Transport.NETWORK) == pytest.approx(0.2)


def test_corrupt_curves_file_is_a_data_error(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"not parquet")
    with pytest.raises(DataError, match="efficiency"):
        EfficiencyCurves.load(tmp_path)


def test_fill_from_closest_records_provenance():
    specs = {s: load_system(s) for s in ("h100_sxm", "h200_sxm", "b200_sxm", "a100_sxm")}
    fits = [_curve("h200_sxm", dtype="fp8"), _curve("b200_sxm", dtype="fp8"), _curve("b200_sxm", dtype="nvfp4")]
    out = fill_from_closest(fits, specs, lambda spec, kind, dtype: dtype != "fp8" or spec.gpu.fp8_dense_flops > 0)
    copied = {(f.system, f.dtype): f.source_system for f in out if f.source_system != f.system}
    assert copied[("h100_sxm", "fp8")] == "h200_sxm"               # same generation beats a newer one
    assert ("a100_sxm", "fp8") not in copied                       # no fp8 tensor cores: not copied
    assert copied[("h200_sxm", "nvfp4")] == "b200_sxm"


def test_fit_db_on_imported_fixture(tmp_path):
    db = tmp_path / "db"
    import_aic(build_aic(tmp_path / "src"), db)
    fits = fit_db(db, ("h200_sxm",), min_rows=1)
    keys = {f.key for f in fits}
    assert ("h200_sxm", "gemm", "bf16", "*", "") in keys and ("h200_sxm", "gemm", "bf16", "trtllm", "") in keys
    assert ("h200_sxm", "comm", "fp16", "*", "all_reduce/8/nvlink") in keys
    for f in fits:
        assert np.all(np.diff(f.us) >= 0) and f.rows > 0


@pytest.fixture(scope="module")
def bundled():
    return EfficiencyCurves.load(BUNDLED_ROOT)


@pytest.mark.parametrize("system", SYSTEMS)
def test_bundled_curves_cover_every_system(bundled, system):
    for kind in (OpKind.GEMM, OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE, OpKind.MLA_DECODE, OpKind.MOE,
                 OpKind.COMM, OpKind.ELEMENTWISE):
        key, (xs, us) = bundled.curve(system, kind, Dtype.BF16)
        assert key[0] == system and key[2] == "bf16"
        assert np.all(np.diff(us) >= 0) and np.all(us > 0)
    sizes = np.logspace(-5, 2, 50)
    u = bundled.util(system, OpKind.GEMM, Dtype.BF16, sizes)
    assert np.all(np.diff(u) >= 0) and u.max() <= UTIL_CEIL and u.min() >= UTIL_FLOOR


def test_bundled_curves_are_realistic_on_h200(bundled):
    h200 = load_system("h200_sxm")
    big = GemmCase(Dtype.BF16, 8192, 8192, 8192)
    tflops = big.flops()[()] / (sol_ms(big, h200)[()] / bundled.util("h200_sxm", OpKind.GEMM, Dtype.BF16, sol_ms(big, h200))[()]) / 1e9
    assert 500 < tflops < 940                                      # REFERENCE: ~790 TFLOP/s through PyTorch
    sizes = np.array([1024.0, 16 * 2**20])
    ar = CommCase(CommOp.ALL_REDUCE, 8, Transport.NVLINK, Dtype.BF16, sizes)
    lat_us = sol_ms(ar, h200) / bundled.util_for("h200_sxm", ar, sol_ms(ar, h200)) * 1e3
    assert 2 < lat_us[0] < 30                                      # 1 KiB all-reduce is latency-bound
    busbw = sizes[1] * 2 * 7 / 8 / (lat_us[1] * 1e-6) / 1e9
    assert 150 < busbw < 480                                       # REFERENCE: 234 GB/s at 16 MB (NCCL)


def test_curves_are_looked_up_per_roofline_regime_and_blend_at_the_ridge(tmp_path):
    from perfdb.efficiency import COMPUTE_GROUP, MEMORY_GROUP
    from perfdb.roofline import intensity_ratio

    curves = _curves(tmp_path, [_curve(group=MEMORY_GROUP, us=(0.4, 0.8, 0.8)),
                                _curve(group=COMPUTE_GROUP, us=(0.1, 0.4, 0.6))])
    h200 = load_system("h200_sxm")
    m = np.array([1.0, 64.0, 512.0, 4096.0])
    gemm = GemmCase(Dtype.BF16, m, np.full(4, 8192.0), np.full(4, 8192.0))
    ratio = intensity_ratio(gemm, h200)
    assert ratio[0] < -0.5 and ratio[-1] > 0.5                # decode-like vs prefill-like shapes
    sol = np.full(4, 0.1)                                     # same sol: only the regime differs
    u = curves.util_for("h200_sxm", gemm, sol, None, ratio)
    mem = curves.util_for("h200_sxm", GemmCase(Dtype.BF16, 1.0, 8192.0, 8192.0), sol[:1], None, np.array([-9.0]))
    comp = curves.util_for("h200_sxm", GemmCase(Dtype.BF16, 1.0, 8192.0, 8192.0), sol[:1], None, np.array([9.0]))
    assert u[0] == pytest.approx(mem[0]) and u[-1] == pytest.approx(comp[0]) and mem[0] > comp[0]
    near = curves.util_for("h200_sxm", gemm, np.full(3, 0.1), None, np.array([-0.01, 0.0, 0.01]))
    assert np.all(np.diff(near) < 0) and np.ptp(near) < 0.02 * near.mean()   # continuous across the ridge
    (tmp_path / "p").mkdir()
    pooled_only = _curves(tmp_path / "p", [_curve()])
    assert pooled_only.util_for("h200_sxm", gemm, sol, None, ratio) == pytest.approx(
        pooled_only.util_for("h200_sxm", gemm, sol))             # databases fitted before the split


def test_fit_adds_regime_curves_beside_the_pooled_one(tmp_path):
    from perfdb.efficiency import COMPUTE_GROUP, MEMORY_GROUP

    db = tmp_path / "db"
    import_aic(build_aic(tmp_path / "aic"), db)
    groups = {(f.kind, f.group) for f in fit_db(db, ("h200_sxm",), min_rows=1)}
    # the fixture's prefill attention spans both regimes; its decode attention is all memory-bound
    assert {("attention_prefill", ""), ("attention_prefill", MEMORY_GROUP), ("attention_prefill", COMPUTE_GROUP),
            ("attention_decode", MEMORY_GROUP)} <= groups
    assert ("attention_decode", COMPUTE_GROUP) not in groups and not any(
        g in (MEMORY_GROUP, COMPUTE_GROUP) for k, g in groups if k == "comm")
