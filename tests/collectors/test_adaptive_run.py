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


def _prior_db(root, cases, spec_name="cpu_host"):
    """A prior table (backend trtllm, so not the torch table being collected) over the same fp32 shapes:
    a roofline-shaped latency with a 40% step at every n = 128 level (the kind of step a prior carries)."""
    import numpy as np
    import pyarrow as pa

    from perfdb.roofline import sol_ms
    from perfdb.schema import SCHEMAS
    from perfdb.specs import load_system
    from perfdb.storage import init_db, write_shard

    m = np.array([c.m for c in cases], np.int64)
    n = np.array([c.n for c in cases], np.int64)
    k = np.array([c.k for c in cases], np.int64)
    sol = sol_ms(GemmCase(Dtype.FP32, m=m.astype(float), n=n.astype(float), k=k.astype(float)), load_system(spec_name))
    lat = 0.01 + sol / 0.3 * np.where(n == 128, 1.4, 1.0)
    rows = len(cases)
    cols = {f.name: pa.nulls(rows, f.type) for f in SCHEMAS[OpKind.GEMM]}
    cols.update(dtype=pa.array([cases[0].dtype.value] * rows), m=pa.array(m), n=pa.array(n), k=pa.array(k), latency_ms=pa.array(lat),
                sol_ms=pa.array(sol), system=pa.array([spec_name] * rows), backend=pa.array(["trtllm"] * rows),
                backend_version=pa.array(["1.0"] * rows), kernel_source=pa.array(["test"] * rows))
    init_db(root)
    write_shard(root, TableKey(spec_name, Backend.TRTLLM, "1.0", OpKind.GEMM),
                pa.table({f.name: cols[f.name] for f in SCHEMAS[OpKind.GEMM]}), 0)
    return root


def test_adaptive_run_with_a_prior_samples_points_records_the_prior_and_the_lookup_uses_it(tmp_path, cpu_session):
    from collectors.adaptive_points import PointSampler
    from collectors.adaptive_run import AutoConfig, _prior_sampler
    from perfdb.lookup import PerfDB
    from perfdb.prior import PriorInterp, PriorSource
    from perfdb.storage import read_meta

    cases = product(GemmCase, {"dtype": Dtype.FP32}, {"m": pow2(1, 1024), "n": [16, 32, 64, 128, 256], "k": [32, 64, 128]})
    prior = PriorSource(_prior_db(tmp_path / "prior", cases), "cpu_host", Backend.TRTLLM)
    db = tmp_path / "db"
    first = run_adaptive(cases, db, cpu_session, AutoConfig(max_fraction=0.15), prior=prior)
    key = TableKey("cpu_host", Backend.TORCH, cpu_session.prov.backend_version, OpKind.GEMM)
    rows = read_table(db, key).num_rows
    assert first.measured == rows and 20 <= rows <= int(0.15 * len(cases))
    meta = read_meta(db, "cpu_host", Backend.TORCH, cpu_session.prov.backend_version)
    assert meta["prior"] == [prior.to_meta(db)] and meta["prior"][0]["db_relative"] == "../prior"
    import numpy as np

    cands = np.array([[c.m, c.n, c.k] for c in cases], float)
    assert isinstance(_prior_sampler(cands, OpKind.GEMM, cases[0], prior, AdaptiveConfig(max_fraction=0.1)),
                      PointSampler)
    assert _prior_sampler(cands, OpKind.GEMM, cases[0], prior, AdaptiveConfig(max_fraction=0.3)) is None  # > SPARSE_FILL
    # the measured table is sparse (<= SPARSE_FILL of its grid): the lookup serves it through the prior
    fam = PerfDB(db).view("cpu_host", Backend.TORCH).family(OpKind.GEMM)
    assert isinstance(fam.interp(("fp32",)), PriorInterp)
    assert np.all(np.isfinite(PerfDB(db).view("cpu_host", Backend.TORCH).latency(GemmCase(
        Dtype.FP32, m=cands[:, 0], n=cands[:, 1], k=cands[:, 2])).ms))


def test_a_prior_that_is_the_table_itself_or_lacks_the_combination(tmp_path, cpu_session):
    import numpy as np

    from collectors.adaptive_run import _prior_sampler
    from perfdb.errors import InputError
    from perfdb.prior import PriorSource

    cases = product(GemmCase, {"dtype": Dtype.FP32}, {"m": pow2(1, 64), "n": [16, 32], "k": [32]})
    with pytest.raises(InputError, match="is the table being collected"):
        run_adaptive(cases, tmp_path, cpu_session, prior=PriorSource(tmp_path, "cpu_host", Backend.TORCH))
    other = product(GemmCase, {"dtype": Dtype.BF16}, {"m": pow2(1, 64), "n": [16, 32], "k": [32]})
    prior = PriorSource(_prior_db(tmp_path / "prior", other), "cpu_host", Backend.TRTLLM)
    cands = np.array([[c.m, c.n, c.k] for c in cases], float)
    assert _prior_sampler(cands, OpKind.GEMM, cases[0], prior, AdaptiveConfig(max_fraction=0.1)) is None


def test_the_run_completes_its_sparse_tables_once_so_the_first_lookup_reads_the_fit(tmp_path, cpu_session):
    from collectors.adaptive_points import PointConfig
    from perfdb.lookup import COMPLETIONS_DIR, PerfDB
    from perfdb.scatter import CompletionInterp

    cases = product(GemmCase, {"dtype": Dtype.FP32}, {"m": pow2(1, 512), "n": [16, 32, 64, 128, 256], "k": [16, 32, 64, 128]})
    run_adaptive(cases, tmp_path, cpu_session, PointConfig(max_fraction=0.1))
    assert any((tmp_path / COMPLETIONS_DIR).glob("*.npz"))
    gi = PerfDB(tmp_path).view("cpu_host", Backend.TORCH).family(OpKind.GEMM).interp(("fp32",))
    assert isinstance(gi, CompletionInterp) and gi.from_store     # no refit in the next process
