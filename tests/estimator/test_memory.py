"""Memory: weights per GPU, KV per token, engine admission rules, infeasibility messages."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.engine import EngineConfig, resolve
from estimator.memory import COMM_BUFFER_BYTES, RUNTIME_RESERVE_BYTES, kv_bytes, memory_report, weights_per_gpu
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from perfdb.specs import load_system
from perfdb.types import Backend, Dtype


def test_tp2_halves_weights():
    m = load_model("Qwen/Qwen3-32B")
    one, two = weights_per_gpu(m, ParallelConfig(tp=1)), weights_per_gpu(m, ParallelConfig(tp=2))
    assert two == pytest.approx(one / 2, rel=1e-9)
    assert one == pytest.approx(m.total_params() * 2, rel=1e-9)  # bf16


def test_405b_bf16_on_one_h100_is_infeasible_with_reason():
    sys = load_system("h100_sxm")
    m = load_model("meta-llama/Llama-3.1-405B")
    rep = memory_report(m, sys, ParallelConfig(), resolve(EngineConfig(Backend.VLLM), sys, ParallelConfig()), m.kv_dtype)
    assert not rep.feasible
    assert "weights need 812 GB/GPU" in rep.reason and "h100_sxm has 80 GiB" in rep.reason


def test_kv_bytes_per_token():
    llama = load_model("meta-llama/Llama-3.1-70B")
    full, slide = kv_bytes(llama, ParallelConfig(tp=1), Dtype.BF16)
    assert full == 80 * 2 * 8 * 128 * 2 and slide == 0
    assert kv_bytes(llama, ParallelConfig(tp=2), Dtype.FP8)[0] == full / 4
    r1 = load_model("deepseek-ai/DeepSeek-R1")  # MLA: 576-element latent, replicated over TP
    assert kv_bytes(r1, ParallelConfig(tp=8, moe_ep=8), Dtype.BF16)[0] == 61 * 576 * 2
    oss = load_model("openai/gpt-oss-120b")
    full, slide = kv_bytes(oss, ParallelConfig(), Dtype.BF16)
    assert full == slide == 18 * 2 * 8 * 64 * 2


def test_engine_rules_order():
    """vLLM and TRT-LLM leave 10% aside; SGLang's static fraction at tp8 on H200 is 0.897 (0.5's rule:
    512 + 1.5 * 8192 + 2 * 512 + 1024 MiB reserved of 144,384) of the memory free once the CUDA context and
    the communicators are up (model_runner.py measures it before loading the weights)."""
    sys = load_system("h200_sxm")
    m = load_model("meta-llama/Llama-3.1-70B")
    par = ParallelConfig(tp=8)
    pools = {b: memory_report(m, sys, par, resolve(EngineConfig(b), sys, par), m.kv_dtype).kv_pool_bytes
             for b in (Backend.VLLM, Backend.SGLANG, Backend.TRTLLM)}
    w = weights_per_gpu(m, par)
    free_at_init = sys.gpu.mem_bytes - RUNTIME_RESERVE_BYTES - COMM_BUFFER_BYTES
    assert pools[Backend.SGLANG] == pytest.approx(0.897 * free_at_init - w)
    assert all(0 < p < sys.gpu.mem_bytes - w for p in pools.values())
    explicit = memory_report(m, sys, par, resolve(EngineConfig(Backend.VLLM, mem_fraction=0.5), sys, par), m.kv_dtype)
    assert explicit.kv_pool_bytes < pools[Backend.VLLM]


def test_a_launch_cap_bounds_each_attention_ranks_kv_pool():
    """SGLang's --max-total-tokens: each scheduler (attention-DP rank) takes min(profiled pool, cap)."""
    sys, m = load_system("gb200"), load_model("deepseek-ai/DeepSeek-R1")
    dep4 = ParallelConfig(tp=1, attn_dp=4, moe_ep=4)

    def capacity(**kw):
        eng = resolve(EngineConfig(Backend.SGLANG, mem_fraction=0.95, **kw), sys, dep4)
        return memory_report(m, sys, dep4, eng, Dtype.FP8).kv_capacity_tokens

    free = capacity()
    assert free > 4 * 32768
    assert capacity(kv_tokens=32768) == 4 * 32768
    assert capacity(kv_tokens=10**9) == free
    with pytest.raises(Exception, match="kv_tokens=0"):
        EngineConfig(Backend.SGLANG, kv_tokens=0)


@pytest.mark.parametrize("system, tp, dp, fraction, chunk", [
    ("h100_sxm", 1, 1, 0.836, 8192),    # 512 + 12288 + 512 + 128 = 13,440 MiB of 81,920
    ("h100_sxm", 8, 1, 0.819, 8192),    # graph batch 512 from tp 4: 14,848 MiB
    ("b200_sxm", 1, 1, 0.858, 16384),   # 180 GiB: chunk 16384 and graph batch 512: 26,240 MiB
    ("h100_sxm", 1, 8, 0.761, 8192),    # DP attention: + 3 * 256 * 8 MiB
])
def test_sglang_default_memory_fraction_follows_its_reserved_memory_rule(system, tp, dp, fraction, chunk):
    from estimator.engine import sglang_defaults

    assert sglang_defaults(load_system(system), tp, 1, dp) == (pytest.approx(fraction, abs=1e-3), chunk)


def test_sglang_reserves_at_least_10_gib_on_large_gpus():
    """The 10 GiB floor: a 2048-token chunk on an H100 (512 + 3072 + 512 + 128 MiB) still leaves 10 GiB
    outside the static pool; the same chunk on a 40 GiB GPU would not."""
    from estimator.engine import sglang_defaults

    sys = load_system("h100_sxm")
    frac, chunk = sglang_defaults(sys, 1, chunk=2048)
    assert chunk == 2048 and frac == pytest.approx(1 - 10 / 80, abs=1e-3)
    assert sglang_defaults(sys, 1)[0] < frac   # the default 8192 chunk reserves more


def test_sliding_window_requests_hold_at_most_the_window():
    from estimator.serving import max_batch
    from estimator.steps import StepModel
    from perfdb.lookup import PerfDB

    sys = load_system("h100_sxm")
    view = PerfDB().view("h100_sxm", Backend.VLLM)
    mistral = StepModel.build(load_model("mistralai/Mistral-7B-v0.1"), sys, ParallelConfig(), EngineConfig(Backend.VLLM), view)
    # vLLM allocates as tokens arrive: a request holds isl + osl/2 tokens on average
    short, long = max_batch(mistral, np.float64(1024), np.float64(2048)), max_batch(mistral, np.float64(32000), np.float64(768))
    assert abs(long - short / 2) <= 1  # 4096-token window: 32384 tokens cost what 4096 do, twice 2048
    oss = StepModel.build(load_model("openai/gpt-oss-120b"), sys, ParallelConfig(tp=2, moe_tp=2), EngineConfig(Backend.VLLM), view)
    mem = oss.memory
    per_req = (8192 + 512) * mem.full_bytes_per_token + 128 * mem.sliding_bytes_per_token
    assert float(max_batch(oss, np.float64(8192), np.float64(1024))) == min(np.floor(mem.kv_pool_bytes / per_req), mem.max_batch)


def test_sglang_sizes_a_separate_window_pool_at_its_ratio_of_the_full_pool():
    """SGLang (pool_configurator.py HybridSWAPoolConfigurator / DSV4PoolConfigurator): each full-pool token
    costs full + swa_full_tokens_ratio x window bytes (0.1 for DeepSeek-V4, 0.8 otherwise) and the window
    pool, ratio x the full pool's tokens, caps the requests (each holds window + 128 + 2 pages of it).
    vLLM charges a request's window from the one shared pool instead."""
    from estimator.memory import kv_requests

    v4, sys = load_model("deepseek-ai/DeepSeek-V4-Flash"), load_system("b200_sxm")
    p = ParallelConfig(tp=8, moe_ep=8)
    for backend, ratio, hold in ((Backend.SGLANG, 0.1, 128 + 128 + 2 * 256), (Backend.VLLM, 0.0, 0.0)):
        eng = resolve(EngineConfig(backend), sys, p)
        mem = memory_report(v4, sys, p, eng, Dtype.FP8)
        cell = mem.full_bytes_per_token + ratio * mem.sliding_bytes_per_token
        assert mem.kv_capacity_tokens == pytest.approx(mem.kv_pool_bytes / cell)
        assert mem.window_pool_tokens == pytest.approx(ratio * mem.kv_capacity_tokens)
        assert mem.window_hold_tokens == hold
        tokens = np.array([4250.0, 100.0])
        got = kv_requests(mem, tokens, 1)
        if backend == Backend.SGLANG:
            want = np.minimum(np.floor(mem.kv_capacity_tokens / tokens),
                              np.floor(mem.window_pool_tokens / np.minimum(tokens, hold)))
        else:
            want = np.floor(mem.kv_pool_bytes / (tokens * mem.full_bytes_per_token
                                                 + np.minimum(tokens, 128) * mem.sliding_bytes_per_token))
        np.testing.assert_array_equal(got, want)
    # gpt-oss on SGLang: the default ratio 0.8, page 1; an all-sliding model (Mistral-7B) keeps one pool
    oss = load_model("openai/gpt-oss-120b")
    mem = memory_report(oss, sys, p, resolve(EngineConfig(Backend.SGLANG), sys, p), Dtype.BF16)
    assert mem.window_pool_tokens == pytest.approx(0.8 * mem.kv_capacity_tokens) and mem.window_hold_tokens == 128 + 128 + 2
    mistral = load_model("mistralai/Mistral-7B-v0.1")
    one = ParallelConfig()
    assert memory_report(mistral, sys, one, resolve(EngineConfig(Backend.SGLANG), sys, one), Dtype.BF16).window_pool_tokens == 0


def test_the_simulator_admits_no_more_sglang_requests_than_the_window_pool_holds():
    """The simulator reads the same rule (estimator.memory.window_requests) as the analytic max_batch."""
    from estimator.deployment import Deployment, Pool
    from estimator.serving import max_batch
    from estimator.sim.engine import _Sim
    from estimator.steps import StepModel
    from perfdb.lookup import PerfDB

    v4, sys, p = load_model("deepseek-ai/DeepSeek-V4-Pro"), load_system("b200_sxm"), ParallelConfig(tp=8, moe_ep=8)
    sm = StepModel.build(v4, sys, p, EngineConfig(Backend.SGLANG), PerfDB().view("b200_sxm", Backend.SGLANG))
    cap = int(max_batch(sm, np.float64(4000), np.float64(1000)))
    assert cap == int(np.floor(sm.memory.window_pool_tokens / 768)) and cap < sm.resolved.max_batch_size
    sim = _Sim(sm, Deployment(Backend.SGLANG, agg=Pool(p)), np.full(4, 4000), np.full(4, 1000), None, 0.0)
    assert {w.max_batch for w in sim.entry.workers} == {cap}
