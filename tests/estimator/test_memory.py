"""Memory: weights per GPU, KV per token, engine admission rules, infeasibility messages."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.engine import EngineConfig, resolve
from estimator.memory import kv_bytes, memory_report, weights_per_gpu
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
    """vLLM and TRT-LLM leave 10% aside; SGLang's static fraction at tp8 on H200 is 0.897 of total
    (0.5's rule: 512 + 1.5 * 8192 + 2 * 512 + 1024 MiB reserved of 144,384)."""
    sys = load_system("h200_sxm")
    m = load_model("meta-llama/Llama-3.1-70B")
    par = ParallelConfig(tp=8)
    pools = {b: memory_report(m, sys, par, resolve(EngineConfig(b), sys, par), m.kv_dtype).kv_pool_bytes
             for b in (Backend.VLLM, Backend.SGLANG, Backend.TRTLLM)}
    w = weights_per_gpu(m, par)
    assert pools[Backend.SGLANG] == pytest.approx(0.897 * sys.gpu.mem_bytes - w)
    assert all(0 < p < sys.gpu.mem_bytes - w for p in pools.values())
    explicit = memory_report(m, sys, par, resolve(EngineConfig(Backend.VLLM, mem_fraction=0.5), sys, par), m.kv_dtype)
    assert explicit.kv_pool_bytes < pools[Backend.VLLM]


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
