"""PriorInterp: a sparse table plus a related table the user already has (another GPU) recovers the
kernel steps that the sparse points cannot find on their own; a prior that does not fit costs little."""
import numpy as np
import pyarrow as pa
import pytest

from perfdb.ops import GemmCase
from perfdb.prior import Correction, PriorInterp, PriorSource, prior_isolation, prior_latency
from perfdb.roofline import sol_ms
from perfdb.scatter import CompletionInterp
from perfdb.schema import SCHEMAS
from perfdb.specs import load_system
from perfdb.storage import TableKey, init_db, write_shard
from perfdb.types import Backend, Dtype, OpKind, Source

NEW, OLD = load_system("h200_sxm"), load_system("h100_sxm")
AXES = ("m", "n", "k")


def _sol(raw, spec=NEW):
    return sol_ms(GemmCase(Dtype.BF16, m=raw[:, 0], n=raw[:, 1], k=raw[:, 2]), spec)


def _grid():
    m = np.array([1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 257, 384, 512, 513, 768, 1024, 2048, 4096, 8192], float)
    n = k = np.geomspace(256, 32768, 12).round()
    return np.stack([g.ravel() for g in np.meshgrid(m, n, k, indexing="ij")], axis=1)


def _kernel_steps(raw):
    """Shape-specific kernel choices shared by both GPUs: a 35% slower tactic on a scattered third of the
    (m, n, k) shapes (a hash of the shape, so no level or low-rank pattern carries it)."""
    h = (raw[:, 0] * 7919 + raw[:, 1] * 104729 + raw[:, 2] * 1299709) % 3
    return np.where(h == 0, 1.35, 1.0)


def _tables():
    raw = _grid()
    util = 0.8 * raw[:, 0] / (raw[:, 0] + 64) * raw[:, 1] / (raw[:, 1] + 600) * raw[:, 2] / (raw[:, 2] + 400)
    prior = _sol(raw, OLD) / util * _kernel_steps(raw)
    # the new GPU: the same kernels, 10-20% faster, smoothly more so for larger m
    new = prior * (0.9 - 0.02 * np.log(raw[:, 0]) / np.log(8192) * 5)
    return raw, prior, new


def _prior_fn(raw_all, prior_all):
    table = {tuple(r): v for r, v in zip(raw_all, prior_all, strict=True)}

    def prior(raw):
        ms = np.array([table.get(tuple(r), np.nan) for r in raw])
        return ms, np.where(np.isfinite(ms), Source.MEASURED.code, Source.ROOFLINE.code).astype(np.int8)

    return prior


def _mape(pred, true):
    err = np.abs(pred / true - 1)
    return float(np.mean(np.where(np.isfinite(err), err, 1.0)))


def _split(n, frac, seed=0):
    take = np.random.default_rng(seed).random(n) < frac
    return take, ~take


def test_the_prior_recovers_steps_that_ten_percent_of_points_cannot():
    raw, prior, new = _tables()
    take, rest = _split(len(raw), 0.10)
    pi = PriorInterp(OpKind.GEMM, AXES, raw[take], new[take], _prior_fn(raw, prior), _sol)
    ci = CompletionInterp(OpKind.GEMM, AXES, raw[take], _sol(raw[take]) / new[take], new[take], sol_fn=_sol)
    err_prior = _mape(_sol(raw[rest]) / pi.query(raw[rest], exact_allowed=False)[0], new[rest])
    err_points = _mape(_sol(raw[rest]) / ci.query(raw[rest], exact_allowed=False)[0], new[rest])
    assert err_prior < 0.02 and err_prior < 0.2 * err_points, (err_prior, err_points)
    assert pi.weight == 1.0   # the held-out fifth says: trust the prior


def test_the_prior_alone_and_a_constant_factor_are_the_baselines():
    raw, prior, new = _tables()
    take, rest = _split(len(raw), 0.10)
    fn = _prior_fn(raw, prior)
    alone = PriorInterp(OpKind.GEMM, AXES, raw[:0], new[:0], fn, _sol, Correction.NONE)
    const = PriorInterp(OpKind.GEMM, AXES, raw[take], new[take], fn, _sol, Correction.CONSTANT, blend=False)
    auto = PriorInterp(OpKind.GEMM, AXES, raw[take], new[take], fn, _sol)
    errs = [_mape(_sol(raw[rest]) / p.query(raw[rest], exact_allowed=False)[0], new[rest]) for p in (alone, const, auto)]
    assert errs[0] > 0.1 and errs[2] < errs[1] < errs[0], errs   # 10-20% faster: the constant takes most of it


def test_a_prior_that_does_not_fit_hands_over_to_the_points():
    raw, prior, new = _tables()
    take, rest = _split(len(raw), 0.10)
    noise = prior * np.exp(np.random.default_rng(1).normal(scale=0.5, size=len(raw)))   # a far prior
    pi = PriorInterp(OpKind.GEMM, AXES, raw[take], new[take], _prior_fn(raw, noise), _sol)
    ci = CompletionInterp(OpKind.GEMM, AXES, raw[take], _sol(raw[take]) / new[take], new[take], sol_fn=_sol)
    err_prior = _mape(_sol(raw[rest]) / pi.query(raw[rest], exact_allowed=False)[0], new[rest])
    err_points = _mape(_sol(raw[rest]) / ci.query(raw[rest], exact_allowed=False)[0], new[rest])
    assert pi.weight <= 0.25 and err_prior < 1.2 * err_points, (pi.weight, err_prior, err_points)


def test_shapes_the_prior_lacks_are_answered_by_the_points_and_hits_are_measured():
    raw, prior, new = _tables()
    take, rest = _split(len(raw), 0.10)
    holey = np.where(raw[:, 0] >= 4096, np.nan, prior)    # the prior never measured the largest m
    pi = PriorInterp(OpKind.GEMM, AXES, raw[take], new[take], _prior_fn(raw, holey), _sol)
    util, measured, code = pi.query(raw)
    assert np.all(np.isfinite(util) & (util > 0))
    assert np.all(code[take] == Source.MEASURED.code) and np.allclose(measured[take], new[take])
    assert np.all(np.isnan(measured[rest])) and np.all(code[rest] != Source.MEASURED.code)


def test_isolation_flags_a_lone_shape_and_not_a_level_wide_step():
    raw = _grid()
    util = 0.8 * raw[:, 0] / (raw[:, 0] + 64) * raw[:, 1] / (raw[:, 1] + 600) * raw[:, 2] / (raw[:, 2] + 400)
    prior = _sol(raw, OLD) / util * np.where(raw[:, 0] == 257, 1.3, 1.0)   # a tile row: the whole m=257 level
    lone = np.flatnonzero((raw[:, 0] == 96) & (raw[:, 1] == raw[5, 1]) & (raw[:, 2] == raw[5, 2]))
    prior[lone] *= 1.4
    iso = prior_isolation(_prior_fn(raw, prior), OpKind.GEMM, AXES, raw)
    inner_257 = (raw[:, 0] == 257) & (raw[:, 1] > raw[:, 1].min()) & (raw[:, 1] < raw[:, 1].max())
    assert iso[lone][0] > 0.25 and np.median(iso[inner_257]) < 0.05


def _write_gemm(root, system, raw, lat):
    n = len(raw)
    cols = {f.name: pa.nulls(n, f.type) for f in SCHEMAS[OpKind.GEMM]}
    cols.update(dtype=pa.array(["bf16"] * n), m=pa.array(raw[:, 0].astype(np.int64)),
                n=pa.array(raw[:, 1].astype(np.int64)), k=pa.array(raw[:, 2].astype(np.int64)),
                latency_ms=pa.array(lat), sol_ms=pa.array(_sol(raw, load_system(system))),
                system=pa.array([system] * n), backend=pa.array(["trtllm"] * n), backend_version=pa.array(["1.0"] * n),
                kernel_source=pa.array(["test"] * n))
    table = pa.table({f.name: cols[f.name] for f in SCHEMAS[OpKind.GEMM]})
    write_shard(root, TableKey(system, Backend.TRTLLM, "1.0", OpKind.GEMM), table, 0)


def test_prior_latency_reads_the_prior_database(tmp_path):
    raw, prior, _ = _tables()
    init_db(tmp_path)
    _write_gemm(tmp_path, "h100_sxm", raw, prior)
    fn = prior_latency(PriorSource(tmp_path, "h100_sxm", Backend.TRTLLM), OpKind.GEMM, ("bf16",))
    ms, code = fn(raw[:50])
    assert np.allclose(ms, prior[:50]) and np.all(code == Source.MEASURED.code)
    between = raw[:5].copy()
    between[:, 1] += 7                                       # between grid levels: the prior interpolates
    assert np.all(np.isfinite(fn(between)[0]))
    beyond = raw[:5].copy()
    beyond[:, 2] = 10 ** 6                                   # outside its grid: no answer
    assert np.all(np.isnan(fn(beyond)[0]))
    missing = prior_latency(PriorSource(tmp_path, "h100_sxm", Backend.TRTLLM), OpKind.GEMM, ("fp8",))
    assert np.all(np.isnan(missing(raw[:5])[0]))             # a combination the prior lacks: never borrowed


@pytest.mark.parametrize("correction", [Correction.CONSTANT, Correction.ADDITIVE, Correction.COMPLETION])
def test_every_correction_answers_and_leave_one_out_refits(correction):
    raw, prior, new = _tables()
    take, _ = _split(len(raw), 0.10)
    pi = PriorInterp(OpKind.GEMM, AXES, raw[take], new[take], _prior_fn(raw, prior), _sol, correction)
    assert pi.correction == correction
    loo = pi.without_node_of(0)
    util, measured, code = loo.query(raw[take][:1])
    assert np.isfinite(util[0]) and np.isnan(measured[0]) and code[0] != Source.MEASURED.code


def test_several_priors_weight_the_one_that_fits():
    from perfdb.prior_blend import PriorBlend

    raw, prior, new = _tables()
    take, rest = _split(len(raw), 0.10)
    far = prior * np.exp(np.random.default_rng(2).normal(scale=0.4, size=len(raw)))   # another engine, say
    fns = [_prior_fn(raw, far), _prior_fn(raw, prior)]
    blend = PriorBlend(OpKind.GEMM, AXES, raw[take], new[take], fns, _sol)
    first_only = PriorInterp(OpKind.GEMM, AXES, raw[take], new[take], fns[0], _sol)
    err_blend = _mape(_sol(raw[rest]) / blend.query(raw[rest], exact_allowed=False)[0], new[rest])
    err_first = _mape(_sol(raw[rest]) / first_only.query(raw[rest], exact_allowed=False)[0], new[rest])
    assert blend.weights[1] >= 0.75 and err_blend < 0.02 and err_blend < 0.2 * err_first, (blend.weights, err_blend)
    util, measured, code = blend.query(raw[take][:3])
    assert np.allclose(measured, new[take][:3]) and np.all(code == Source.MEASURED.code)


def test_recorded_priors_read_one_entry_or_a_list_and_drop_a_missing_database(tmp_path):
    from perfdb.prior import recorded_priors

    one = PriorSource(tmp_path, "h100_sxm", Backend.TRTLLM)
    gone = PriorSource(tmp_path / "moved", "h200_sxm", Backend.VLLM)
    assert recorded_priors({"prior": one.to_meta()}) == (PriorSource(tmp_path.resolve(), "h100_sxm", Backend.TRTLLM),)
    assert recorded_priors({"prior": [gone.to_meta(), one.to_meta()]})[0].system == "h100_sxm"
    assert recorded_priors({}) == () and recorded_priors({"prior": [gone.to_meta()]}) == ()


def test_a_malformed_prior_entry_is_a_data_error_not_a_traceback():
    from perfdb.errors import DataError
    from perfdb.prior import recorded_priors

    with pytest.raises(DataError, match="unknown backend 'tgi'"):
        recorded_priors({"prior": [{"system": "h100_sxm", "backend": "tgi"}]})


def test_a_prior_moved_together_with_the_database_is_found_and_a_lost_one_is_reported(tmp_path):
    import shutil

    from perfdb.prior import PriorSource, missing_priors, recorded_priors

    (tmp_path / "site" / "prior").mkdir(parents=True)
    (tmp_path / "site" / "db").mkdir()
    meta = {"prior": [PriorSource(tmp_path / "site" / "prior", "h100_sxm", Backend.TRTLLM).to_meta(tmp_path / "site" / "db")]}
    shutil.move(tmp_path / "site", tmp_path / "elsewhere")           # copied side by side to another machine
    found = recorded_priors(meta, tmp_path / "elsewhere" / "db")
    assert found and found[0].root == (tmp_path / "elsewhere" / "prior").resolve()
    assert missing_priors(meta, tmp_path / "elsewhere" / "db") == []
    shutil.rmtree(tmp_path / "elsewhere" / "prior")
    assert recorded_priors(meta, tmp_path / "elsewhere" / "db") == ()
    assert missing_priors(meta, tmp_path / "elsewhere" / "db") == [str(tmp_path / "site" / "prior")]
