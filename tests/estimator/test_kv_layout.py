"""The KV-cache bytes each engine stores per token and layer (estimator.kv_layout), and the KV dtype it
picks at auto per GPU generation (estimator.engine.kv_cache_dtype); the figures are the engines' own
(SGLang 0.5.14, vLLM 0.34.0 wheels, cited in estimator/kv_layout.py and estimator/engines/*.py)."""
from __future__ import annotations

import pytest

from estimator.engine import EngineConfig, kv_cache_dtype
from estimator.kv_layout import kv_row
from estimator.memory import kv_bytes
from estimator.models.catalog import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend, Dtype

B200, H200 = load_system("b200_sxm"), load_system("h200_sxm")
V4, GLM5, V32, R1 = (load_model(n) for n in ("deepseek-ai/DeepSeek-V4-Pro", "zai-org/GLM-5-FP8",
                                             "deepseek-ai/DeepSeek-V3.2", "deepseek-ai/DeepSeek-R1"))
TP8 = ParallelConfig(tp=8, moe_ep=8)


def test_deepseek_v4_fp8_is_584_bytes_on_sglang_and_vllm():
    """448 fp8 NoPE dims + 64 bf16 RoPE dims + 7 UE8M0 scales + 1 pad (SGLang deepseek_v4_memory_pool.py,
    vLLM fp8_ds_mla); engines without that layout and bf16 caches: elements x bytes."""
    for b in (Backend.SGLANG, Backend.VLLM):
        for sm in (90, 100):
            row = kv_row(V4, Dtype.FP8, b, sm)
            assert (row.pool_bytes, row.wire_bytes) == (584, 584) and "deepseek_v4" in row.source
    assert kv_row(V4, Dtype.FP8, Backend.TRTLLM, 100).pool_bytes == 512
    assert kv_row(V4, Dtype.BF16, Backend.SGLANG, 100).pool_bytes == 1024


def test_an_sglang_v4_worker_sizes_its_pool_at_584_bytes_an_entry():
    growing, window = kv_bytes(V4, TP8, Dtype.FP8, Backend.SGLANG, 100)
    entries = V4.num_sparse_layers / 4 + V4.num_compressed_layers / 128
    assert growing == pytest.approx(584 * entries + V4.index_bytes_per_token())
    assert window == pytest.approx(584 * V4.num_window_layers)
    sm = StepModel.build(V4, B200, TP8, EngineConfig(Backend.SGLANG), PerfDB().view("b200_sxm", Backend.SGLANG))
    assert sm.kv_dtype == Dtype.FP8 and sm.memory.kv_bytes_per_token == pytest.approx(growing)


@pytest.mark.parametrize("model", [GLM5, V32], ids=["glm5", "v3.2"])
def test_dsa_fp8_rows_follow_each_engines_kernels(model):
    """SGLang sizes every MLA pool at 576 fp8 bytes, but its Hopper flashmla_kv buffers (and what it sends)
    are 656 B rows (512 fp8 + 4 fp32 scales + 64 bf16 rope dims); Blackwell's trtllm DSA kernels keep 576.
    vLLM: fp8_ds_mla (656) on Hopper's FlashMLA sparse, plain fp8 on Blackwell's FlashInfer sparse."""
    sg_h, sg_b = kv_row(model, Dtype.FP8, Backend.SGLANG, 90), kv_row(model, Dtype.FP8, Backend.SGLANG, 100)
    assert (sg_h.pool_bytes, sg_h.wire_bytes) == (576, 656) and (sg_b.pool_bytes, sg_b.wire_bytes) == (576, 576)
    assert kv_row(model, Dtype.FP8, Backend.VLLM, 90).pool_bytes == 656
    assert kv_row(model, Dtype.FP8, Backend.VLLM, 100).pool_bytes == 576
    assert kv_row(model, Dtype.BF16, Backend.SGLANG, 90).wire_bytes == 1152


def test_plain_mla_fp8_is_one_byte_an_element_everywhere():
    for b in (Backend.SGLANG, Backend.VLLM, Backend.TRTLLM):
        for sm in (90, 100):
            row = kv_row(R1, Dtype.FP8, b, sm)
            assert (row.pool_bytes, row.wire_bytes) == (576, 576)


def test_dsa_kv_default_depends_on_the_gpu_generation():
    """SGLang _set_default_dsa_kv_cache_dtype: fp8_e4m3 on SM100+, bfloat16 on Hopper; vLLM: GLM-5 fp8 on SM10x,
    V3.2 keeps auto; TRT-LLM follows the checkpoint (bf16 KV for these)."""
    def dtype(b, m, system):
        return kv_cache_dtype(EngineConfig(b), m, system)

    for m in (GLM5, V32):
        assert (dtype(Backend.SGLANG, m, B200), dtype(Backend.SGLANG, m, H200)) == (Dtype.FP8, Dtype.BF16)
        assert dtype(Backend.TRTLLM, m, B200) == Dtype.BF16
    assert (dtype(Backend.VLLM, GLM5, B200), dtype(Backend.VLLM, GLM5, H200)) == (Dtype.FP8, Dtype.BF16)
    assert dtype(Backend.VLLM, V32, B200) == Dtype.BF16
    assert kv_cache_dtype(EngineConfig(Backend.SGLANG, kv_dtype=Dtype.BF16), GLM5, B200) == Dtype.BF16


def test_sglang_glm5_capacity_and_transfer_bytes_per_gpu_generation():
    """At auto an SGLang GLM-5 worker on B200 holds the fp8 pool (as if fp8 were asked); on H200 the bf16 one.
    With fp8 asked on H200 the pool is sized at 576 B rows but a hand-off moves the 656 B rows it stores."""
    def sm(system, kv=None):
        return StepModel.build(GLM5, system, TP8, EngineConfig(Backend.SGLANG, kv_dtype=kv),
                               PerfDB().view(system.name, Backend.SGLANG))

    auto_b, fp8_b, auto_h, fp8_h = sm(B200), sm(B200, Dtype.FP8), sm(H200), sm(H200, Dtype.FP8)
    assert auto_b.memory.kv_capacity_tokens == fp8_b.memory.kv_capacity_tokens
    assert auto_h.kv_dtype == Dtype.BF16 and auto_h.memory.kv_bytes_per_token > 1.8 * fp8_h.memory.kv_bytes_per_token
    layers, index = GLM5.num_sparse_layers, GLM5.index_bytes_per_token()
    assert fp8_h.memory.kv_bytes_per_token == pytest.approx(576 * layers + index)
    assert fp8_h._kv_bytes_per_token_replica() == pytest.approx(656 * layers + index)
    assert fp8_b._kv_bytes_per_token_replica() == pytest.approx(576 * layers + index)


def test_decode_attention_reads_the_engines_stored_row():
    """The sparse decode op of an SGLang / vLLM V4 worker reads 584 B entries (the row kv_row gives), not
    512 x 1 B; TRT-LLM and plain rows stay elements x bytes (0: the op prices them itself). A table lookup
    reads its rows at elements x bytes (perfdb.lookup._table_sol), so a table keeps its kernel's time."""
    from dataclasses import replace

    import numpy as np

    from estimator.kv_layout import decode_read_bytes
    from perfdb.lookup import _table_sol
    from perfdb.ops.sparse import SparseDecodeCase
    from perfdb.roofline import roofline_s

    assert decode_read_bytes(V4, Dtype.FP8, Backend.SGLANG, 100) == 584
    assert decode_read_bytes(GLM5, Dtype.FP8, Backend.VLLM, 90) == 656
    assert decode_read_bytes(V4, Dtype.FP8, Backend.TRTLLM, 100) == 0 and decode_read_bytes(R1, Dtype.FP8, Backend.SGLANG, 90) == 0
    sm = StepModel.build(V4, B200, TP8, EngineConfig(Backend.SGLANG), PerfDB().view("b200_sxm", Backend.SGLANG))
    one = np.array([1.0])
    uses = sm.composer.ops(0 * one, 0 * one, 0 * one, 64 * one, 4000 * one, 0 * one)
    case = next(u.case for u in uses if isinstance(u.case, SparseDecodeCase))
    plain = replace(case, kv_row_bytes=0.0)
    selected = np.minimum(case.kv_len, case.topk) * case.batch
    np.testing.assert_allclose(case.bytes() - plain.bytes(), selected * (584 - 512))
    sol = np.maximum(*(np.ravel(x) for x in roofline_s(case, B200))) * 1e3
    plain_sol = np.maximum(*(np.ravel(x) for x in roofline_s(plain, B200))) * 1e3
    assert sol[0] > plain_sol[0]
    np.testing.assert_allclose(_table_sol(case, sol, B200), plain_sol)
