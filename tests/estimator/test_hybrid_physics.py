"""Physics of the 2026 layouts: linear attention, sparse attention, 4-bit weights, hybrid KV."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.engine import EngineConfig, resolve
from estimator.memory import kv_bytes, memory_report, weights_per_gpu
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.ops import LinearDecodeCase, LinearPrefillCase, MlaDecodeCase, SparseDecodeCase
from perfdb.roofline import sol_ms
from perfdb.specs import load_system
from perfdb.types import Backend, Dtype, LinearKind, Phase, SparseKind

QWEN35 = "Qwen/Qwen3.5-397B-A17B"
NEMOTRON = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8"
GLM5 = "zai-org/GLM-5-FP8"
KIMI = "moonshotai/Kimi-K2.5"
B200 = load_system("b200_sxm")


def _sm(name, par, backend=Backend.TRTLLM):
    view = PerfDB().view("b200_sxm", backend)
    return StepModel.build(load_model(name), B200, par, EngineConfig(backend), view)


def _ms(result):
    return float(np.ravel(result.ms)[0])


def _op_ms(result, prefix):
    return sum(float(np.ravel(o.ms)[0]) for o in result.ops if o.name.startswith(prefix))


@pytest.mark.parametrize("name", [QWEN35, NEMOTRON])
def test_linear_attention_decode_cost_does_not_grow_with_context(name):
    sm = _sm(name, ParallelConfig(tp=8, moe_tp=8))
    short, long = (sm.step(Phase.DECODE, 0, 0, 0, 32, kv) for kv in (1_000, 100_000))
    assert _op_ms(short, "linear_") == pytest.approx(_op_ms(long, "linear_"), rel=1e-12)
    assert _op_ms(short, "linear_decode") > 0
    # what does grow is the few full-attention layers' decode only
    growth = float(np.ravel(long.ms)[0] - np.ravel(short.ms)[0])
    attn = _op_ms(long, "attn_decode") - _op_ms(short, "attn_decode")
    assert growth == pytest.approx(attn, rel=1e-9) and attn > 0


def test_linear_case_flops_and_bytes_are_context_free():
    geo = dict(kind=LinearKind.GDN, dtype=Dtype.BF16, state_dtype=Dtype.FP32, num_k_heads=2, num_v_heads=8,
               head_k_dim=128, head_v_dim=128, conv_kernel=4)
    dec = LinearDecodeCase(batch=np.array([1.0, 64.0]), **geo)
    state = 8 * 128 * 128 * 4.0
    assert dec.bytes()[0] > 2 * state and dec.bytes()[1] == pytest.approx(64 * dec.bytes()[0])
    pre = LinearPrefillCase(chunk=64, batch=1, seq_len=np.array([1000.0, 2000.0]), **geo)
    f = pre.flops()
    assert f[1] == pytest.approx(2 * f[0])   # linear in new tokens: no quadratic term


@pytest.mark.parametrize("name,isl", [(QWEN35, 1_000), (QWEN35, 100_000), (NEMOTRON, 1_000), (NEMOTRON, 100_000)])
def test_recurrent_state_bytes_do_not_grow_with_isl(name, isl):
    m = load_model(name)
    par = ParallelConfig(tp=8, moe_tp=8)
    rep = memory_report(m, B200, par, resolve(EngineConfig(Backend.TRTLLM), B200, par), m.kv_dtype)
    lin = m.linear
    per_layer = (lin.num_v_heads * lin.head_k_dim * lin.head_v_dim * 4.0
                 + (2 * lin.num_k_heads * lin.head_k_dim + lin.num_v_heads * lin.head_v_dim) * (lin.conv_kernel - 1) * 2.0)
    assert rep.state_bytes_per_request == pytest.approx(per_layer * m.num_linear_layers / 8)
    # a request of isl tokens costs isl x the full layers' KV plus the one fixed state
    per_request = isl * rep.full_bytes_per_token + rep.state_bytes_per_request
    assert per_request - isl * rep.full_bytes_per_token == rep.state_bytes_per_request


def test_hybrid_kv_bytes_count_only_full_attention_layers():
    q = load_model(QWEN35)   # 60 layers: 45 Gated DeltaNet, 15 full attention, 2 KV heads of 256
    full, slide = kv_bytes(q, ParallelConfig(tp=1), Dtype.BF16)
    assert q.num_full_layers == 15 and full == 15 * 2 * 2 * 256 * 2 and slide == 0
    n = load_model(NEMOTRON)  # 88 blocks: 40 Mamba-2, 40 MoE, 8 attention
    assert kv_bytes(n, ParallelConfig(tp=1), Dtype.FP8)[0] == 8 * 2 * 2 * 128 * 1


def test_sparse_decode_grows_with_topk_and_indexer_not_full_context():
    geo = dict(kind=SparseKind.DSA, dtype=Dtype.BF16, kv_dtype=Dtype.FP8, num_heads=8, qk_dim=576, v_dim=512,
               kv_elems=576, index_heads=32, index_head_dim=128)
    kv = np.array([4_096.0, 65_536.0])
    case = SparseDecodeCase(topk=2048, batch=1, kv_len=kv, **geo)
    no_index = SparseDecodeCase(topk=2048, batch=1, kv_len=kv, **dict(geo, index_heads=0))
    assert no_index.flops()[0] == no_index.flops()[1]          # attention stops at top-k
    index_growth = case.flops()[1] - case.flops()[0]
    assert index_growth == pytest.approx(2 * 32 * 128 * (kv[1] - kv[0]))
    bigger_k = SparseDecodeCase(topk=4096, batch=1, kv_len=kv, **geo)
    assert bigger_k.flops()[1] > case.flops()[1]
    # against dense MLA at 64k keys, DSA decode reads top-k latents + small index keys
    dense = MlaDecodeCase(dtype=Dtype.BF16, kv_dtype=Dtype.FP8, num_heads=8, kv_lora_rank=512, qk_rope_head_dim=64,
                          qk_nope_head_dim=128, v_head_dim=128, batch=1, kv_len=kv)
    assert sol_ms(case, B200)[1] < 0.3 * sol_ms(dense, B200)[1]


def test_sparse_model_decode_step_beyond_topk_grows_only_by_the_indexer():
    sm = _sm(GLM5, ParallelConfig(tp=8, moe_tp=8))
    a, b, c = (sm.step(Phase.DECODE, 0, 0, 0, 16, kv) for kv in (8_000, 16_000, 32_000))
    growth_ab, growth_bc = _ms(b) - _ms(a), _ms(c) - _ms(b)
    assert growth_ab > 0 and growth_bc > 0
    dense = _sm("deepseek-ai/DeepSeek-V3", ParallelConfig(tp=8, moe_tp=8))
    d1, d2 = (dense.step(Phase.DECODE, 0, 0, 0, 16, kv) for kv in (16_000, 32_000))
    assert growth_bc < 0.5 * (_ms(d2) - _ms(d1))   # dense MLA grows with every key


def test_int4_weight_bytes_are_half_the_parameters_plus_scales():
    k = load_model(KIMI)     # Kimi-K2.5: routed experts int4 weight-only, group 32, bf16 scales
    assert k.moe_quant == Dtype.INT4
    par = ParallelConfig(tp=8, moe_ep=8)
    bf16 = weights_per_gpu(k.with_quant(moe_quant=Dtype.BF16), par)
    int4 = weights_per_gpu(k, par)
    experts = 3 * k.hidden * k.moe_inter * k.num_experts * k.num_moe_layers / 8
    assert bf16 - int4 == pytest.approx(experts * (2.0 - (0.5 + 2.0 / 32)))


def test_trtllm_state_pool_caps_batch_for_hybrids():
    m = load_model(QWEN35)
    par = ParallelConfig(tp=8, moe_tp=8)
    reps = {b: memory_report(m, B200, par, resolve(EngineConfig(b), B200, par), m.kv_dtype)
            for b in (Backend.TRTLLM, Backend.SGLANG, Backend.VLLM)}
    assert all(r.feasible for r in reps.values())
    assert reps[Backend.TRTLLM].max_batch * reps[Backend.TRTLLM].state_bytes_per_request <= \
        0.5 * (B200.gpu.mem_bytes - reps[Backend.TRTLLM].weights_bytes)
    assert reps[Backend.VLLM].state_in_kv_pool and not reps[Backend.SGLANG].state_in_kv_pool
