"""DeepSeek-V4 priced as its architecture: the layer pieces against DeepSeek's inference model.py
(Attention: wq_a / wq_b, one wkv entry that is key and value, grouped wo_a then wo_b; Compressor;
Indexer; Block's mHC), on a hand-written config with DeepSeek-V4-Flash's sizes."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from estimator.engine import EngineConfig, kv_cache_dtype
from estimator.layers import LayerComposer
from estimator.memory import kv_bytes, weights_per_gpu
from estimator.models.hf_config import parse_config
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.errors import DataError
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend, Dtype, Phase

H, HEADS, HD, QLR, OLR, GROUPS, IH, IHD = 4096, 64, 512, 1024, 1024, 8, 64, 128
# 2 window-only layers, then CSA / HCA alternating, a CSA last; one more ratio for the MTP layer
RATIOS = [0, 0] + [4, 128] * 20 + [4] + [0]
FLASH = {
    "architectures": ["DeepseekV4ForCausalLM"], "hidden_size": H, "num_hidden_layers": 43,
    "num_attention_heads": HEADS, "num_key_value_heads": 1, "head_dim": HD, "q_lora_rank": QLR,
    "o_lora_rank": OLR, "o_groups": GROUPS, "qk_rope_head_dim": 64, "index_n_heads": IH, "index_head_dim": IHD,
    "index_topk": 512, "sliding_window": 128, "compress_ratios": RATIOS, "hc_mult": 4, "vocab_size": 129280,
    "moe_intermediate_size": 2048, "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 6,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
CSA, HCA, SWA = 21, 20, 2
B200 = load_system("b200_sxm")


def _flash(**over):
    return parse_config(dict(FLASH, **over), "test/DeepSeek-V4-Flash-like")


def test_layer_pattern_and_geometry_from_the_config():
    m = _flash()
    assert (m.num_sparse_layers, m.num_compressed_layers, m.num_sliding_layers) == (CSA, HCA, SWA)
    assert m.sparse.compress == 4 and m.kv_compress == 128 and m.kv_shared and m.compressed_window == 128
    assert (m.q_lora_rank, m.o_groups, m.o_lora_rank, m.hc_mult) == (QLR, GROUPS, OLR, 4)
    assert m.num_window_layers == 43     # every layer keeps the 128-token window


def test_attention_weights_are_the_modelling_code_shapes():
    """Every attention layer: wq_a, wq_b, wkv, wo_a (8 groups of 4,096 -> 1,024), wo_b; CSA adds an
    overlapping compressor (2 x 1,024 wide wkv / wgate) and the indexer (wq_b from q_lora, weights_proj,
    its own overlapping compressor at 128); HCA a plain compressor (512 wide)."""
    m = _flash()
    base = H * QLR + QLR * HEADS * HD + H * HD + GROUPS * (HEADS * HD // GROUPS) * OLR + GROUPS * OLR * H
    csa = base + 2 * H * 2 * HD + QLR * IH * IHD + H * IH + 2 * H * 2 * IHD
    hca = base + 2 * H * HD
    assert m.param_counts()["attention"] == CSA * csa + HCA * hca + SWA * base
    assert m.param_counts()["mhc"] == (2 * 43 * 6 * 4 + 4) * 4 * H
    # the whole model lands on the published 284B (routed experts, shared expert, embeddings)
    assert m.total_params() / 1e9 == pytest.approx(284, rel=0.01)


def test_weight_bytes_split_as_the_engines_shard_them():
    m = _flash().with_quant(gemm_quant=Dtype.BF16, moe_quant=Dtype.BF16)
    c = m.param_counts()
    one = weights_per_gpu(m, ParallelConfig(tp=1))
    assert one == pytest.approx(2.0 * (m.total_params() - c["mhc"]) + 4.0 * c["mhc"], rel=1e-12)
    # at TP 8 only wq_b, wo_a and wo_b (and experts / embeddings) split; wq_a + wkv, compressors,
    # indexers and mHC stay whole on every rank
    eight = weights_per_gpu(m, ParallelConfig(tp=8, moe_tp=8))
    split = QLR * HEADS * HD + HEADS * HD * OLR + GROUPS * OLR * H
    replicated_attn = c["attention"] - 43 * split
    rest = c["experts"] + c["shared_experts"] + c["embedding"] + c["lm_head"]
    want = 2.0 * (replicated_attn + 43 * split / 8 + rest / 8 + c["router"]) + 4.0 * c["mhc"]
    assert eight == pytest.approx(want, rel=1e-12)


def test_kv_bytes_one_shared_entry_per_compressed_token_plus_the_window():
    m = _flash()
    growing, window = kv_bytes(m, ParallelConfig(tp=8, moe_tp=8), Dtype.FP8)
    index = CSA * IHD * (1 + 4 / 128) / 4     # indexer keys of the CSA entries
    assert growing == pytest.approx(HD * (CSA / 4 + HCA / 128) + index)
    assert window == pytest.approx(HD * 43)


def _sm(m, par):
    return StepModel.build(m, B200, par, EngineConfig(Backend.TRTLLM), PerfDB().view("b200_sxm", Backend.TRTLLM))


def _ms(result, prefix=""):
    return sum(float(np.ravel(o.ms)[0]) for o in result.ops if o.name.startswith(prefix)) if prefix \
        else float(np.ravel(result.ms)[0])


def test_step_pieces_are_the_low_rank_and_grouped_projections():
    uses = LayerComposer(_flash(), B200, ParallelConfig(tp=8, moe_tp=8), Dtype.FP8).ops(0, 0, 0, 16, 8_000)
    cases = {o.name: o.case for o in uses}
    assert "qkv_proj" not in cases and "o_proj" not in cases
    assert (cases["attn_q_kv_down"].n, cases["attn_q_kv_down"].k) == (QLR + HD, H)        # replicated
    assert (cases["attn_q_up"].n, cases["attn_q_up"].k) == (HEADS // 8 * HD, QLR)
    assert (cases["attn_o_group"].n, cases["attn_o_group"].k) == (1 * OLR, HEADS * HD // GROUPS)
    assert (cases["attn_o_up"].n, cases["attn_o_up"].k) == (H, OLR)
    assert cases["indexer_q_proj"].k == QLR and cases["compressor_proj_hca"].n == 2 * HD
    assert cases["compressor_proj_csa"].n == 2 * (2 * HD + 2 * IHD)
    assert cases["attn_decode_sparse"].kv_elems == HD      # one entry is key and value
    assert "attn_decode_sliding" in cases                  # the two window-only layers


def test_decode_grows_with_context_only_through_what_attention_reads():
    sm = _sm(_flash(), ParallelConfig(tp=8, moe_tp=8))
    a, b = (sm.step(Phase.DECODE, 0, 0, 0, 16, kv) for kv in (20_000, 40_000))
    attn = ("attn_decode_sparse", "attn_decode_compressed")
    growth = _ms(b) - _ms(a)
    assert growth > 0 and growth == pytest.approx(sum(_ms(b, n) - _ms(a, n) for n in attn), rel=1e-9)
    # beyond 4 x top-k the CSA attention reads a fixed top-k + window of entries: its bytes grow only
    # by the indexer keys of the new entries (one per 4 tokens)
    comp = LayerComposer(_flash(), B200, ParallelConfig(tp=8, moe_tp=8), Dtype.FP8)
    c1, c2 = ({o.name: o.case for o in comp.ops(0, 0, 0, 1, kv)}["attn_decode_sparse"] for kv in (40_000, 80_000))
    assert float(c1._attended()) == float(c2._attended()) == 512 + 128
    assert float(c2.bytes() - c1.bytes()) == pytest.approx(40_000 / 4 * IHD * (1 + 4 / 128))


def test_o_groups_must_divide_the_heads():
    with pytest.raises(DataError, match="o_groups"):
        _flash(o_groups=7)


def test_sglang_and_vllm_store_its_kv_in_fp8_unless_asked_trtllm_follows_the_checkpoint():
    """SGLang turns --kv-cache-dtype auto into fp8_e4m3 for DeepseekV4ForCausalLM, vLLM's default FlashMLA
    layout into fp8_ds_mla; TRT-LLM's auto is the checkpoint's, which names no KV quantization (the
    provenance in estimator/engines/*.py). A dtype asked for wins; other architectures keep the checkpoint's."""
    m = _flash()
    assert m.kv_dtype == Dtype.BF16
    got = {b: kv_cache_dtype(EngineConfig(b), m, B200) for b in Backend}
    assert got == {Backend.SGLANG: Dtype.FP8, Backend.VLLM: Dtype.FP8, Backend.TRTLLM: Dtype.BF16,
                   Backend.TORCH: Dtype.BF16}
    assert kv_cache_dtype(EngineConfig(Backend.SGLANG, kv_dtype=Dtype.BF16), m, B200) == Dtype.BF16
    assert kv_cache_dtype(EngineConfig(Backend.SGLANG), replace(m, architecture="Qwen3ForCausalLM"), B200) == Dtype.BF16


def test_an_sglang_worker_sizes_and_prices_an_fp8_cache_by_default():
    view, par = PerfDB().view("b200_sxm", Backend.SGLANG), ParallelConfig(tp=8, moe_tp=8)
    default, fp8, bf16 = (StepModel.build(_flash(), B200, par, EngineConfig(Backend.SGLANG, kv_dtype=kv), view)
                          for kv in (None, Dtype.FP8, Dtype.BF16))
    assert default.kv_dtype == Dtype.FP8
    assert default.memory.kv_capacity_tokens == fp8.memory.kv_capacity_tokens > 1.5 * bf16.memory.kv_capacity_tokens
