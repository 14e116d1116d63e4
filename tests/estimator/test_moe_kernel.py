"""An engine whose launch settings name a MoE kernel (EngineProfile.moe_kernel_switches): which runs say so
(vLLM's VLLM_MXFP4_USE_MARLIN on Hopper, TensorRT-LLM's moe_config.backend CUTLASS for nvfp4 on Blackwell,
per engine role), the kernel's own rows in the lookup (DbView.moe_kernel), and the experts priced by them
where compute-bound and slower than the ladder's price (estimator.steps.StepModel._latency), on a real
Parquet database."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from fixtures.tinydb import write_family

from estimator.deployment import role_moe_kernel
from estimator.engine import EngineConfig
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.runs import read_runs
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.ops import MoeCase
from perfdb.ops.moe import DEFAULT_DISTRIBUTION
from perfdb.specs import load_system
from perfdb.types import Backend, Dtype, MoeKernel, OpKind, Source

QWEN_MOE = ("bf16", 2048, 768, 8, 128, 1, 1, DEFAULT_DISTRIBUTION)       # Qwen3-30B-A3B's experts
OTHER_SHAPE = ("bf16", 4096, 1536, 8, 256, 1, 1, DEFAULT_DISTRIBUTION)   # the swapped kernel's only rows
TOKENS = {"num_tokens": np.array([1, 8, 64, 512, 2048, 8192, 16384], dtype=np.int64)}
SLOW_FROM = 2048   # the swapped kernel: 8x the default's time per roofline from here on, 2x faster below


def _db(root, with_kernel: bool):
    write_family(root, OpKind.MOE, [(QWEN_MOE, TOKENS)], latency=lambda case, sol: 0.01 + sol / 0.4)
    if with_kernel:
        slow = lambda case, sol: 0.01 + np.where(case.num_tokens >= SLOW_FROM, sol / 0.05, sol / 0.8)   # noqa: E731
        write_family(root, OpKind.MOE, [(OTHER_SHAPE, TOKENS)], latency=slow, kernel_source="vllm_marlin_moe_fixture",
                     counter=1)
    return PerfDB(root)


def _view(db, kernel=None):
    return db.view("h200_sxm", Backend.TRTLLM, "1.0.0", moe_kernel=kernel)


def test_where_two_kernels_time_one_shape_the_named_one_prices_the_compute_bound_steps(tmp_path):
    """The ladder takes the fastest kernel at a shape both time (perfdb.interp); an engine launched with the
    slower one (CUTLASS beside trtllm-gen) is priced by that one's own rows, measured, where the experts are
    compute-bound (a prompt), and by the ladder where they read their weights (decode)."""
    root = tmp_path / "db"
    write_family(root, OpKind.MOE, [(QWEN_MOE, TOKENS)], latency=lambda case, sol: 0.01 + sol / 0.4,
                 kernel_source="moe_torch_flow_min_latency")
    write_family(root, OpKind.MOE, [(QWEN_MOE, TOKENS)], latency=lambda case, sol: 0.02 + sol / 0.25,
                 kernel_source="moe_torch_flow_cutlass", counter=1)
    db = PerfDB(root)
    fast, cutlass = _steps(db, None), _steps(db, MoeKernel.CUTLASS)
    # `servecast db info` says the table times those shapes with two kernels; a one-kernel table says nothing
    from typer.testing import CliRunner

    from perfdb.kernels import shared_shapes
    from servecast.cli import app

    assert shared_shapes(root, "h200_sxm", Backend.TRTLLM, "1.0.0").shapes == len(TOKENS["num_tokens"])
    info = " ".join(CliRunner().invoke(app, ["db", "info", "--db", str(root)]).output.split())
    assert "moe: 7 shapes timed by 2 kernels (moe_torch_flow_cutlass, moe_torch_flow_min_latency)" in info
    assert shared_shapes(_db(tmp_path / "one", with_kernel=False).root, "h200_sxm", Backend.TRTLLM, "1.0.0") is None
    experts = lambda steps, phase, *args: next(o for o in steps.step(phase, *args).ops if o.name == "moe_experts")  # noqa: E731
    a, b = experts(fast, "prefill", 1, 8192, 0, 0, 0), experts(cutlass, "prefill", 1, 8192, 0, 0, 0)
    assert float(b.ms) > 1.2 * float(a.ms) and b.source is Source.MEASURED and "cutlass" in b.note
    a, b = experts(fast, "decode", 0, 0, 0, 8, 1024), experts(cutlass, "decode", 0, 0, 0, 8, 1024)
    assert float(b.ms) == pytest.approx(float(a.ms))


def test_a_kernel_view_holds_only_that_kernels_rows(tmp_path):
    db = _db(tmp_path / "db", with_kernel=True)
    case = MoeCase(Dtype.BF16, 2048, 768, 8, 128, 1, 1, DEFAULT_DISTRIBUTION, np.array([8.0, 8192.0]))
    default, marlin = _view(db).latency(case), _view(db, MoeKernel.MARLIN).latency(case)
    assert (default.source == Source.MEASURED.code).all()
    # no Marlin row at this shape: the nearest shape it times lends its utilisation, labelled so
    assert (marlin.source == Source.EXTRAPOLATED.code).all()
    assert marlin.ms[0] < default.ms[0] and marlin.ms[1] > 4 * default.ms[1]
    assert _view(db, MoeKernel.MARLIN).family(OpKind.MOE).num_rows == len(TOKENS["num_tokens"])
    # tables without the kernel's rows: the kernel view has no MoE family at all (nothing to price it from)
    assert _view(_db(tmp_path / "plain", with_kernel=False), MoeKernel.MARLIN).family(OpKind.MOE) is None


def _steps(db, kernel):
    return StepModel.build(load_model("Qwen/Qwen3-30B-A3B"), load_system("h200_sxm"), ParallelConfig(),
                           EngineConfig(Backend.TRTLLM, "1.0.0", moe_kernel=kernel), _view(db))


def test_the_experts_cost_the_slower_of_the_two_kernels(tmp_path):
    db = _db(tmp_path / "db", with_kernel=True)
    plain, marlin = _steps(db, None), _steps(db, MoeKernel.MARLIN)
    # prompt-sized steps: the swapped kernel's compute efficiency decides (slower), and the op says why
    assert float(marlin.prefill_ms(1, 8192)) > 1.5 * float(plain.prefill_ms(1, 8192))
    experts = next(o for o in marlin.step("prefill", 1, 8192, 0, 0, 0).ops if o.name == "moe_experts")
    assert "marlin" in experts.note and experts.source is Source.EXTRAPOLATED
    # decode-sized steps (bound by the weights): the table's kernel measured at this very shape stands
    assert float(marlin.decode_ms(8, 1024)) == pytest.approx(float(plain.decode_ms(8, 1024)))
    # no rows of the kernel in the tables: priced as the engine's default, nothing noted
    bare = tmp_path / "plain"
    alone, told = _steps(_db(bare, False), None), _steps(PerfDB(bare), MoeKernel.MARLIN)
    assert float(told.prefill_ms(1, 8192)) == float(alone.prefill_ms(1, 8192))


HEADER = ["id", "silicon_data_source", "backend", "backend_version", "model_path", "system", "precision", "mode",
          "isl", "osl", "batch_size", "tp_size", "silicon_ttft_ms", "silicon_tpot_ms", "engine_env", "engine_flags"]


def _row(tmp_path, backend, system, env="", flags=""):
    path = tmp_path / "runs.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, HEADER)
        w.writeheader()
        w.writerow(dict(id="r", silicon_data_source="source_file=x.csv; silicon_concurrency=4", backend=backend,
                        backend_version="0.11.0", model_path="openai/gpt-oss-120b", system=system, precision="fp4",
                        mode="agg", isl="1024", osl="1024", batch_size="4", tp_size="1", silicon_ttft_ms="100",
                        silicon_tpot_ms="5", engine_env=env, engine_flags=flags))
    return read_runs(path)[0]


@pytest.mark.parametrize(("backend", "system", "env", "expected"), [
    ("vllm", "h200_sxm", "VLLM_MXFP4_USE_MARLIN=1", MoeKernel.MARLIN),
    ("vllm", "h100_sxm", "VLLM_FLASHINFER_X=1;VLLM_MXFP4_USE_MARLIN=1", MoeKernel.MARLIN),
    ("vllm", "b200_sxm", "VLLM_MXFP4_USE_MARLIN=1", None),      # Blackwell: FlashInfer's mxfp4 paths come first
    ("vllm", "h200_sxm", "VLLM_MXFP4_USE_MARLIN=?", None),      # unresolved by the launch script: the default
    ("vllm", "h200_sxm", "", None),
    ("sglang", "h200_sxm", "VLLM_MXFP4_USE_MARLIN=1", None),    # another engine's variable
])
def test_which_runs_ran_marlin(tmp_path, backend, system, env, expected):
    row = _row(tmp_path, backend, system, env=env)
    assert role_moe_kernel(row, "agg", Dtype.MXFP4, load_system(system)) is expected


@pytest.mark.parametrize(("system", "flags", "dtype", "expected"), [
    ("b200_sxm", "moe_config.backend=CUTLASS", Dtype.NVFP4, {"agg": MoeKernel.CUTLASS}),
    ("gb200", "moe_config.backend=cutlass", Dtype.NVFP4, {"agg": MoeKernel.CUTLASS}),
    ("b200_sxm", "moe_config.backend=TRTLLM", Dtype.NVFP4, {"agg": None}),       # trtllm-gen: the tables' fastest
    ("b200_sxm", "", Dtype.NVFP4, {"agg": None}),
    ("h200_sxm", "moe_config.backend=CUTLASS", Dtype.NVFP4, {"agg": None}),      # one kernel on Hopper
    ("b200_sxm", "moe_config.backend=CUTLASS", Dtype.FP8_BLOCK, {"agg": None}),  # DeepGEMM's rows only
    # a disaggregated run's two engines, each its own
    ("b200_sxm", "decode.moe_config.backend=CUTLASS;prefill.moe_config.backend=TRTLLM", Dtype.NVFP4,
     {"prefill": None, "decode": MoeKernel.CUTLASS}),
])
def test_which_trtllm_engines_ran_cutlass(tmp_path, system, flags, dtype, expected):
    row = _row(tmp_path, "trtllm", system, flags=flags)
    for role, kernel in expected.items():
        assert role_moe_kernel(row, role, dtype, load_system(system)) is kernel


@pytest.mark.parametrize(("system", "flags", "dtype", "expected"), [
    # srt-slurm's wide-EP recipes: prefill normal-mode DeepEP, decode low-latency DeepEP
    ("gb200", "decode.deepep-mode=low_latency;decode.moe-a2a-backend=deepep;prefill.deepep-mode=normal;"
              "prefill.moe-a2a-backend=deepep", Dtype.FP8_BLOCK,
     {"prefill": MoeKernel.DEEPEP_NORMAL, "decode": MoeKernel.DEEPEP_LL}),
    ("h200_sxm", "deepep-mode=normal;moe-a2a-backend=deepep", Dtype.FP8_BLOCK, {"agg": MoeKernel.DEEPEP_NORMAL}),
    ("gb200", "deepep-mode=auto;moe-a2a-backend=deepep", Dtype.FP8_BLOCK, {"agg": None}),   # per batch: unresolved
    ("gb200", "deepep-mode=normal", Dtype.FP8_BLOCK, {"agg": None}),                       # no DeepEP in front
    ("gb200", "deepep-mode=low_latency;moe-a2a-backend=deepep", Dtype.NVFP4, {"agg": None}),  # no FP4 rows timed
    ("a100_sxm", "deepep-mode=normal;moe-a2a-backend=deepep", Dtype.FP8_BLOCK, {"agg": None}),
])
def test_which_sglang_engines_ran_deepeps_experts(tmp_path, system, flags, dtype, expected):
    row = _row(tmp_path, "sglang", system, flags=flags)
    for role, kernel in expected.items():
        assert role_moe_kernel(row, role, dtype, load_system(system)) is kernel


DSR1_MOE = ("fp8_block", 7168, 2048, 8, 256, 1, 8, DEFAULT_DISTRIBUTION)   # DeepSeek-R1's experts over EP 8
EP_TOKENS = {"num_tokens": np.array([8, 64, 512, 4096, 32768, 131072], dtype=np.int64)}


def _dep8_steps(db, kernel):
    from estimator.engines.profile import DpMoeExchange

    return StepModel.build(load_model("deepseek-ai/DeepSeek-R1"), load_system("gb200"),
                           ParallelConfig(tp=1, attn_dp=8, moe_ep=8),
                           EngineConfig(Backend.SGLANG, "1.0.0", dp_moe_exchange=DpMoeExchange.ALL_TO_ALL,
                                        moe_kernel=kernel), db.view("gb200", Backend.SGLANG, "1.0.0"))


def test_deepeps_experts_are_priced_by_their_own_rows_at_the_models_shape(tmp_path):
    """SGLang's experts behind DeepEP (MoeKernel.DEEPEP_*): the tables time them at the model's own shape over
    the EP group's tokens, so the experts of a DEP8 step are that case, priced by those rows wherever they
    answer (faster or slower than anything else); the default lookup never sees those rows (a run without
    DeepEP cannot run that kernel), and a run without the kernel named keeps the all-to-all's own case."""
    root = tmp_path / "db"
    write_family(root, OpKind.MOE, [(DSR1_MOE, EP_TOKENS)], latency=lambda case, sol: 0.05 + sol / 0.3,
                 system="gb200", backend=Backend.SGLANG, version="1.0.0", kernel_source="sglang_flashinfer_trtllm_moe")
    write_family(root, OpKind.MOE, [(DSR1_MOE, EP_TOKENS)], latency=lambda case, sol: 0.2 + sol / 0.8,
                 system="gb200", backend=Backend.SGLANG, version="1.0.0", kernel_source=MoeKernel.DEEPEP_NORMAL.value,
                 counter=1)
    db = PerfDB(root)
    default = db.view("gb200", Backend.SGLANG, "1.0.0")
    assert default.family(OpKind.MOE).num_rows == len(EP_TOKENS["num_tokens"])   # DeepEP's rows left out
    told, plain = _dep8_steps(db, MoeKernel.DEEPEP_NORMAL), _dep8_steps(db, None)
    experts = lambda steps: next(o for o in steps.step("prefill", 8, 4096, 0, 0, 0).ops if o.name == "moe_experts")  # noqa: E731
    ours = experts(told)
    # 8 prompts of 4,096 on 8 attention ranks: 32,768 tokens enter the EP group, a measured grid point
    case = MoeCase(Dtype.FP8_BLOCK, 7168, 2048, 8, 256, 1, 8, DEFAULT_DISTRIBUTION, np.array([32768.0]))
    row = db.view("gb200", Backend.SGLANG, "1.0.0", moe_kernel=MoeKernel.DEEPEP_NORMAL).latency(case)
    assert float(ours.ms) == pytest.approx(float(row.ms[0]) * 58) and ours.source is Source.MEASURED
    assert "deepepmoe_normal" in ours.note
    assert float(experts(plain).ms) != pytest.approx(float(ours.ms))   # the all-to-all's own case, as before
