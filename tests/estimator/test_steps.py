"""Physics of the step model: no step beats the hardware, and time grows with batch and length."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimator.engine import EngineConfig
from estimator.memory import weights_per_gpu
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.ops.base import weight_bytes
from perfdb.specs import load_system
from perfdb.types import Backend, Phase

CASES = [
    ("Qwen/Qwen3-32B", ParallelConfig(tp=2)),
    ("meta-llama/Llama-3.1-70B", ParallelConfig(tp=4, pp=2)),
    ("deepseek-ai/DeepSeek-R1", ParallelConfig(tp=8, moe_ep=8)),
    ("deepseek-ai/DeepSeek-R1", ParallelConfig(tp=1, attn_dp=8, moe_ep=8)),
    ("openai/gpt-oss-120b", ParallelConfig(tp=2, moe_ep=2, moe_tp=1)),
    ("Qwen/Qwen3-30B-A3B", ParallelConfig(tp=1)),
]


@pytest.fixture(params=["roofline", "tiny"])
def view(request, tiny_db):
    db = PerfDB(tiny_db) if request.param == "tiny" else PerfDB()
    return db.view("h200_sxm", Backend.TRTLLM, "1.0.0" if request.param == "tiny" else None)


def _sm(name, par, view):
    return StepModel.build(load_model(name), load_system("h200_sxm"), par, EngineConfig(Backend.TRTLLM), view)


@pytest.mark.parametrize("name,par", CASES, ids=lambda x: x if isinstance(x, str) else x.label())
def test_decode_not_faster_than_reading_weights(name, par, view):
    sm = _sm(name, par, view)
    floor_ms = weights_per_gpu(sm.model, par) / sm.system.gpu.mem_bw_bytes_per_s * 1e3
    if sm.model.is_moe:  # batch 1 reads only the routed experts: bound with the always-read part
        m = sm.model
        experts = 3 * m.hidden * m.moe_inter * m.num_experts * m.num_moe_layers / (par.moe_tp * par.moe_ep) / par.pp
        floor_ms = (weights_per_gpu(m, par) - experts * weight_bytes(m.moe_quant)) / sm.system.gpu.mem_bw_bytes_per_s * 1e3
    big = sm.decode_ms(np.array([1, 64, 512]), 2048)
    assert np.all(big >= floor_ms)
    if not sm.model.is_moe:
        assert np.all(big >= weights_per_gpu(sm.model, par) / sm.system.gpu.mem_bw_bytes_per_s * 1e3)


@pytest.mark.parametrize("name,par", CASES, ids=lambda x: x if isinstance(x, str) else x.label())
def test_prefill_not_faster_than_peak_flops(name, par, view):
    sm = _sm(name, par, view)
    m = sm.model
    active = m.total_params() - m.param_counts()["embedding"] - (
        3 * m.hidden * m.moe_inter * (m.num_experts - m.topk) * m.num_moe_layers)
    tokens = 4096
    flops_per_gpu = 2.0 * active * tokens / par.num_gpus * par.pp  # pp stages run one after the other
    peak = max(sm.system.gpu.peak_flops(d) for d in (m.attn_quant, m.gemm_quant, m.moe_quant))
    assert float(sm.prefill_ms(1, tokens)) >= flops_per_gpu / par.pp / peak * 1e3


@pytest.mark.parametrize("name,par", CASES, ids=lambda x: x if isinstance(x, str) else x.label())
def test_monotone_in_batch_and_length(name, par, view):
    sm = _sm(name, par, view)
    b = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    assert np.all(np.diff(sm.decode_ms(b, 1024)) >= -1e-9)
    lengths = np.array([128, 512, 1024, 4096, 8192, 32768])
    assert np.all(np.diff(sm.decode_ms(32, lengths)) >= -1e-9)
    assert np.all(np.diff(sm.prefill_ms(1, lengths)) >= -1e-9)
    assert np.all(np.diff(sm.prefill_ms(b[:6], 1024)) >= -1e-9)
    assert np.all(np.diff(sm.mixed_ms(np.array([0, 256, 1024, 4096]), 32, 2048)) >= -1e-9)


def test_broadcast_and_breakdown(view):
    sm = _sm("Qwen/Qwen3-32B", ParallelConfig(tp=2), view)
    out = sm.decode_ms(np.array([[1], [8]]), np.array([512, 1024, 2048]))
    assert out.shape == (2, 3) and out.dtype == np.float64
    step = sm.step(Phase.DECODE, 0, 0, 0, 8, 1024)
    names = {o.name for o in step.ops}
    assert {"qkv_proj", "attn_decode", "mlp_gate_up", "tp_allreduce", "lm_head"} <= names
    assert "attn_prefill" not in names
    assert float(step.ms) == pytest.approx(sum(float(o.ms) for o in step.ops))
    assert sm.op_cases(Phase.DECODE, 8, 1, 1024)


def test_kv_transfer_grows_with_tokens_and_is_faster_on_nvlink(view):
    sm = _sm("meta-llama/Llama-3.1-70B", ParallelConfig(tp=4), view)
    dec = ParallelConfig(tp=4)
    t = sm.kv_transfer_ms(np.array([1024, 8192]), dec, same_node=False)
    assert t[1] > t[0] > 0
    assert float(sm.kv_transfer_ms(8192, dec, True)) < t[1]


def test_an_architectures_context_step_cost_lands_on_steps_with_prompt_tokens_only():
    """EngineProfile.context_step_ms_by_arch: TRT-LLM's DeepseekV3 entry is paid by every iteration that
    carries prompt tokens (prefill, mixed), not by decode-only ones, and by no other architecture."""
    from estimator.engines import profile_for

    view = PerfDB().view("h200_sxm", Backend.TRTLLM)
    extra = profile_for(Backend.TRTLLM).context_step_ms_by_arch["DeepseekV3ForCausalLM"]
    assert extra > 0
    ds = _sm("deepseek-ai/DeepSeek-R1", ParallelConfig(tp=8, moe_ep=8), view)
    bare = dataclasses.replace(ds.resolved, context_step_ms=0.0)
    plain = StepModel(ds.model, ds.system, ds.parallel, ds.engine, ds.view)
    plain.resolved = bare
    for phase, args in ((Phase.PREFILL, (1, 1024, 0, 0, 0)), (Phase.MIXED, (1, 512, 0, 16, 2048))):
        assert float(ds.step(phase, *args).ms - plain.step(phase, *args).ms) == pytest.approx(extra)
    assert float(ds.decode_ms(16, 2048)) == pytest.approx(float(plain.decode_ms(16, 2048)))
    mixed_no_prompt = ds.step(Phase.MIXED, 0, 0, 0, 16, 2048).ms
    assert float(mixed_no_prompt) == pytest.approx(float(plain.step(Phase.MIXED, 0, 0, 0, 16, 2048).ms))
    assert _sm("meta-llama/Llama-3.1-70B", ParallelConfig(tp=8), view).resolved.context_step_ms == 0.0


def test_a_disaggregated_prefill_server_pays_its_own_iteration_cost_where_its_engine_names_one():
    """EngineProfile.prefill_server_step_ms_by_arch: SGLang's DeepseekV3 prefill servers pay their own
    fitted cost in place of the engine's; an engine or architecture without an entry pays the one an agg
    server pays; the simulator's and the static estimate's prefill pools are built as prefill servers."""
    from estimator.deployment import Deployment, Pool
    from estimator.engines import profile_for
    from estimator.sim.build import build_steps

    sgl, trt = profile_for(Backend.SGLANG), profile_for(Backend.TRTLLM)
    arch = "DeepseekV3ForCausalLM"
    assert sgl.context_step_ms(arch, True) == sgl.prefill_server_step_ms_by_arch[arch] != sgl.context_step_ms(arch, False)
    assert trt.context_step_ms(arch, True) == trt.context_step_ms(arch, False) == trt.context_step_ms_by_arch[arch]
    assert sgl.context_step_ms("LlamaForCausalLM", True) == 0.0

    model, system = load_model("deepseek-ai/DeepSeek-R1"), load_system("h200_sxm")
    view = PerfDB().view("h200_sxm", Backend.SGLANG)
    par = ParallelConfig(tp=8, moe_ep=8)
    dep = Deployment.disaggregated(Backend.SGLANG, Pool(par), Pool(par), system.nvlink_domain_gpus)
    steps = build_steps(model, system, dep, EngineConfig(Backend.SGLANG), view)
    assert steps.prefill.resolved.context_step_ms == sgl.prefill_server_step_ms_by_arch[arch]
    assert steps.decode.resolved.context_step_ms == sgl.context_step_ms_by_arch[arch]
    agg = build_steps(model, system, Deployment(Backend.SGLANG, agg=Pool(par)), EngineConfig(Backend.SGLANG), view)
    assert agg.resolved.context_step_ms == sgl.context_step_ms_by_arch[arch]
