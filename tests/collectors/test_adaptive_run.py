"""Adaptive collection through the real runner on CPU: fewer cases than the grid, and a re-run adds none."""
import pytest

from collectors.adaptive import AdaptiveConfig
from collectors.adaptive_run import run_adaptive
from collectors.cases import pow2, product
from perfdb.ops import GemmCase
from perfdb.storage import TableKey, read_table
from perfdb.types import Backend, Dtype, OpKind


def test_adaptive_run_measures_a_fraction_and_resumes(tmp_path, cpu_session):
    cases = product(GemmCase, {"dtype": Dtype.FP32}, {"m": pow2(1, 64), "n": [16, 32, 64, 128], "k": [32]})
    cfg = AdaptiveConfig(initial_stride=3, max_fraction=0.6)
    first = run_adaptive(cases, tmp_path, cpu_session, cfg)
    key = TableKey("cpu_host", Backend.TORCH, cpu_session.prov.backend_version, OpKind.GEMM)
    rows = read_table(tmp_path, key).num_rows
    assert first.measured == rows and 6 <= rows <= 0.6 * len(cases) + 4 and rows < len(cases)
    # cases the sampler never asked for are reported as unneeded, not as already in the database
    assert first.skipped == 0 and first.unneeded == len(cases) - rows - first.failed
    again = run_adaptive(cases, tmp_path, cpu_session, cfg)
    assert again.measured == 0 and read_table(tmp_path, key).num_rows == rows


def test_adaptive_run_with_the_point_sampler_stays_under_its_fraction_and_resumes(tmp_path, cpu_session):
    from collectors.adaptive_points import PointConfig
    from perfdb.errors import InputError

    cases = product(GemmCase, {"dtype": Dtype.FP32}, {"m": pow2(1, 256), "n": [16, 32, 64, 128, 256], "k": [32, 64]})
    with pytest.raises(InputError, match="point sampler"):
        run_adaptive(cases, tmp_path, cpu_session, PointConfig(max_fraction=0.3))   # the lookup would serve it badly
    cfg = PointConfig(max_fraction=0.2)
    first = run_adaptive(cases, tmp_path, cpu_session, cfg)
    key = TableKey("cpu_host", Backend.TORCH, cpu_session.prov.backend_version, OpKind.GEMM)
    rows = read_table(tmp_path, key).num_rows
    assert first.measured == rows and 10 <= rows <= int(0.2 * len(cases))
    assert first.unneeded == len(cases) - rows - first.failed
    again = run_adaptive(cases, tmp_path, cpu_session, cfg)
    assert again.measured == 0 and read_table(tmp_path, key).num_rows == rows


def test_auto_picks_the_sampler_that_measured_better_per_family():
    from collectors.adaptive import AdaptiveConfig
    from collectors.adaptive_points import PointConfig
    from collectors.adaptive_run import AutoConfig

    assert isinstance(AutoConfig(0.1).for_kind(OpKind.ATTENTION_DECODE), PointConfig)
    assert isinstance(AutoConfig(0.1).for_kind(OpKind.GEMM), PointConfig)
    assert isinstance(AutoConfig(0.1).for_kind(OpKind.MOE), AdaptiveConfig)   # never replayed: the old sampler
    assert isinstance(AutoConfig(0.05).for_kind(OpKind.ATTENTION_PREFILL), AdaptiveConfig)   # too sparse for points
    assert isinstance(AutoConfig(0.5).for_kind(OpKind.ATTENTION_PREFILL), AdaptiveConfig)    # beyond SPARSE_FILL
