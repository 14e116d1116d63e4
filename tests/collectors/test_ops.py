"""Every op family builds and runs its tiny grid on CPU with real torch; reference checks of the math."""
import numpy as np
import pytest
import torch

from collectors.ops import attention_decode, moe
from collectors.registry import DeviceCtx, GridSize, Unsupported, load_all
from perfdb.ops import GemmCase, MoeCase
from perfdb.types import Dtype, OpKind

CPU = DeviceCtx("cpu")


@pytest.mark.parametrize("kind", [k for k in OpKind if k != OpKind.COMM])
def test_tiny_grid_builds_and_runs(kind):
    collector = load_all()[kind]
    cases = collector.grid(GridSize.TINY, CPU)
    assert cases and all(c.KIND == kind and c.shape == () for c in cases)
    ran = 0
    for case in cases[:3]:
        try:
            prepared = collector.build(case, CPU)
        except Unsupported:
            continue
        prepared.fn()
        assert prepared.kernel_source
        ran += 1
    assert ran


def test_full_grids_are_large_and_distinct():
    for kind, collector in load_all().items():
        full = collector.grid(GridSize.FULL, DeviceCtx("cuda", 90, world_size=8))
        assert len(full) > len(collector.grid(GridSize.TINY, CPU)), kind


def test_nvfp4_is_recorded_unsupported_off_blackwell():
    with pytest.raises(Unsupported, match="sm100"):
        load_all()[OpKind.GEMM].build(GemmCase(Dtype.NVFP4, m=16, n=64, k=64), DeviceCtx("cuda", 90))


def test_paged_reference_matches_dense_attention():
    torch.manual_seed(0)
    q, kc, vc, table, lens = attention_decode.make_inputs(2, 40, 4, 2, 16, Dtype.FP32, CPU)
    out = attention_decode.reference(q, kc, vc, table, lens)
    # Dense recomputation: pages in table order are the request's tokens in order.
    for b in range(2):
        k = kc[table[b].long()].flatten(0, 1)[:40]  # [tokens, kv_heads, dim]
        v = vc[table[b].long()].flatten(0, 1)[:40]
        for h in range(4):
            kh, vh = k[:, h // 2], v[:, h // 2]
            w = torch.softmax(q[b, h] @ kh.T / 4.0, dim=-1)
            assert torch.allclose(out[b, h], w @ vh, atol=1e-5)


def test_power_law_routing_loads_the_hottest_rank_more():
    kw = dict(dtype=Dtype.BF16, hidden=64, inter=64, topk=2, num_experts=16, moe_tp=1, moe_ep=4, num_tokens=4096)
    balanced = moe.local_counts(MoeCase(distribution="balanced", **kw))
    skewed = moe.local_counts(MoeCase(distribution="power_law_1.2", **kw))
    assert len(balanced) == 4 and balanced.sum() < 1.2 * 4096 * 2 / 4
    assert skewed.sum() > 1.5 * balanced.sum()
    with pytest.raises(Unsupported, match="accepted"):
        moe.popularity("zipf", 8)


def test_moe_grouped_and_loop_paths_agree():
    case = MoeCase(Dtype.FP32, 32, 16, 2, 4, 1, 1, "balanced", num_tokens=24)
    counts = moe.local_counts(case)
    assert counts.sum() == 48 and np.all(counts >= 0)
    prepared = load_all()[OpKind.MOE].build(case, CPU)
    out = prepared.fn()
    assert out.shape[0] == 48 if isinstance(out, torch.Tensor) else sum(o.shape[0] for o in out) == 48


def test_cpu_prefix_mask_is_bottom_right_causal():
    from collectors.ops.common import prefix_causal_mask

    mask = prefix_causal_mask(3, 2, CPU)
    assert mask.tolist() == [[True, True, True, False, False], [True, True, True, True, False], [True] * 5]
    assert prefix_causal_mask(4, 0, CPU) is None


def test_fp8_kv_cache_cases_build_and_run_on_every_attention_family():
    """The estimator asks for fp8-KV attention when an engine runs --kv-cache-dtype fp8: every attention
    collector must measure it (cache stored as fp8, up-converted in the timed call), not refuse it."""
    from perfdb.ops import AttentionDecodeCase, AttentionPrefillCase, MlaDecodeCase, MlaPrefillCase

    gqa = dict(dtype=Dtype.BF16, kv_dtype=Dtype.FP8, num_heads=4, num_kv_heads=2, head_dim=16, window=0)
    mla = dict(dtype=Dtype.BF16, kv_dtype=Dtype.FP8, num_heads=2, kv_lora_rank=16, qk_rope_head_dim=8,
               qk_nope_head_dim=8, v_head_dim=8)
    cases = [AttentionDecodeCase(batch=2, kv_len=40, **gqa), AttentionPrefillCase(batch=1, seq_len=8, prefix_len=8, **gqa),
             MlaDecodeCase(batch=2, kv_len=24, **mla), MlaPrefillCase(batch=1, seq_len=8, prefix_len=0, **mla)]
    for case in cases:
        prepared = load_all()[case.KIND].build(case, CPU)
        out = prepared.fn()
        assert "fp8kv" in prepared.kernel_source, prepared.kernel_source
        assert torch.isfinite(out.float()).all()


def test_fp8_kv_decode_matches_a_dequantized_reference():
    """Reading an fp8 cache is the same attention as reading its dequantized bf16 copy."""
    q, kc, vc, table, lens = attention_decode.make_inputs(2, 40, 4, 2, 16, Dtype.BF16, CPU, kv_dtype=Dtype.FP8)
    assert kc.dtype == torch.float8_e4m3fn
    fp8 = attention_decode.reference(q, kc, vc, table, lens)
    bf16 = attention_decode.reference(q, kc.to(torch.bfloat16), vc.to(torch.bfloat16), table, lens)
    torch.testing.assert_close(fp8, bf16)


def test_other_kv_formats_are_recorded_unsupported():
    from perfdb.ops import AttentionDecodeCase

    case = AttentionDecodeCase(dtype=Dtype.FP32, kv_dtype=Dtype.FP8, num_heads=4, num_kv_heads=2, head_dim=16,
                               window=0, batch=1, kv_len=16)
    with pytest.raises(Unsupported, match="fp8 KV with bf16/fp16 math"):
        load_all()[OpKind.ATTENTION_DECODE].build(case, CPU)


def test_moe_collectors_measure_the_routing_the_estimator_asks_for():
    from estimator.layers import MOE_DISTRIBUTION

    cases = load_all()[OpKind.MOE].grid(GridSize.SMALL, DeviceCtx("cuda", 90))
    assert MOE_DISTRIBUTION in {c.distribution for c in cases}


def test_sliding_window_attention_builds_and_attends_only_the_window():
    from perfdb.ops import AttentionDecodeCase, AttentionPrefillCase

    common = dict(dtype=Dtype.FP32, kv_dtype=Dtype.FP32, num_heads=4, num_kv_heads=2, head_dim=16, window=8)
    for case in (AttentionDecodeCase(batch=2, kv_len=40, **common),
                 AttentionPrefillCase(batch=1, seq_len=16, prefix_len=8, **common)):
        prepared = load_all()[case.KIND].build(case, CPU)
        assert prepared.kernel_source.endswith("_window") and torch.isfinite(prepared.fn()).all()
    # decode over a window == decode over only the last `window` tokens of each request
    q, kc, vc, table, lens = attention_decode.make_inputs(2, 48, 4, 2, 16, Dtype.FP32, CPU)
    windowed = attention_decode.reference(q, kc, vc, table, lens, window=16)
    tail_table = table[:, 2:]  # pages 2..3 hold tokens 32..47: the last 16
    tail = attention_decode.reference(q, kc, vc, tail_table, torch.full_like(lens, 16))
    torch.testing.assert_close(windowed, tail)


@pytest.mark.parametrize("dtype", [Dtype.FP8, Dtype.FP8_BLOCK, Dtype.MXFP4, Dtype.NVFP4, Dtype.INT8, Dtype.INT4,
                                   Dtype.W4A8_MXFP4])
def test_quantized_moe_is_collected_in_its_stored_format(dtype):
    case = MoeCase(dtype=dtype, hidden=160, inter=96, topk=2, num_experts=8, moe_tp=2, moe_ep=2,
                   distribution="balanced", num_tokens=16)
    prepared = load_all()[OpKind.MOE].build(case, CPU)
    assert f"dequant_{dtype.value}" in prepared.kernel_source
    out = prepared.fn()
    assert all(torch.isfinite(o.float()).all() for o in (out if isinstance(out, list) else [out]))


def test_fp4_dequantization_decodes_e2m1_codes_and_block_scales():
    from collectors.ops.quant import FP4_VALUES, dequantize, store

    w = store((2, 64), Dtype.MXFP4, CPU)
    dense = dequantize(w, torch.float32)
    code = int(w.data[1, 3])  # byte 3 of row 1 holds columns 6 (low nibble) and 7 (high nibble)
    scale = float(w.scale[1, 0])
    assert dense[1, 6].item() == pytest.approx(FP4_VALUES[code & 0xF] * scale)
    assert dense[1, 7].item() == pytest.approx(FP4_VALUES[code >> 4] * scale)


def test_gated_delta_rule_reference_writes_the_value_for_its_key():
    """Delta rule with beta 1, no decay and a unit key: the updated state maps that key to its value."""
    from collectors.ops.linear_attention import recurrent_step
    from perfdb.types import LinearKind

    torch.manual_seed(0)
    k = torch.nn.functional.normalize(torch.randn(2, 3, 16), dim=-1)
    v, state = torch.randn(2, 3, 8), torch.randn(2, 3, 16, 8)
    zero, one = torch.zeros(2, 3), torch.ones(2, 3)
    out, new = recurrent_step(LinearKind.GDN, k, k, v, zero, one, state)
    assert torch.allclose(out, v, atol=1e-5) and torch.allclose((k[..., None] * new).sum(-2), v, atol=1e-5)
    _, mamba = recurrent_step(LinearKind.MAMBA2, k, k, v, zero, one, state)
    assert torch.allclose(mamba, state + k[..., None] * v[..., None, :])


def test_sparse_reference_with_topk_over_everything_is_dense_attention():
    from collectors.ops.sparse_attention import sparse_attend

    torch.manual_seed(0)
    b, s, t, h, d = 2, 3, 10, 2, 8
    q, cache = torch.randn(b, s, h, d), torch.randn(b, t, d)
    visible = torch.arange(t)[None, :] <= torch.arange(t - s, t)[:, None]
    out = sparse_attend(q, torch.randn(b, s, 2, 4), torch.rand(b, s, 2), cache, torch.randn(b, t, 4), t, visible)
    logits = torch.einsum("bshd,btd->bsht", q, cache) * d ** -0.5
    dense = torch.einsum("bsht,btd->bshd", logits.masked_fill(~visible[None, :, None, :], float("-inf")).softmax(-1), cache)
    assert torch.allclose(out, dense, atol=1e-5)


def test_mhc_mix_keeps_streams_under_identity_mixing():
    from collectors.ops.elementwise import mhc_mix

    torch.manual_seed(0)
    t, c, h = 3, 4, 8
    streams, out = torch.randn(t, c, h), torch.randn(t, h)
    pre = torch.full((t, c), 1.0 / c)
    layer_in, mixed = mhc_mix(streams, pre, torch.ones(t, c), torch.eye(c).expand(t, c, c), out)
    assert torch.allclose(layer_in, streams.mean(1), atol=1e-6)
    assert torch.allclose(mixed, streams + out[:, None, :], atol=1e-6)


def test_int4_dequantization_decodes_signed_nibbles_and_group_scales():
    from collectors.ops.quant import dequantize, store

    w = store((2, 64), Dtype.INT4, CPU)
    assert w.data.dtype == torch.uint8 and w.data.shape == (2, 32) and w.scale.shape == (2, 2)
    dense = dequantize(w, torch.float32)
    code, scale = int(w.data[1, 20]), float(w.scale[1, 1])   # byte 20 holds columns 40 and 41 (group 1)
    assert dense[1, 40].item() == pytest.approx(((code & 0xF) - 8) * scale, rel=1e-6)
    assert dense[1, 41].item() == pytest.approx(((code >> 4) - 8) * scale, rel=1e-6)


def test_msa_module_reference_with_topk_over_everything_is_dense_gqa():
    from collectors.ops.sparse_module import msa_module_forward
    from perfdb.ops import MsaModuleDecodeCase

    torch.manual_seed(0)
    case = MsaModuleDecodeCase(dtype=Dtype.FP32, kv_dtype=Dtype.FP32, num_heads=4, num_kv_heads=2, head_dim=8,
                               hidden=16, topk=64, index_heads=2, index_head_dim=4, batch=2, kv_len=10)
    b, s, t, hd = 2, 3, 10, 8
    w = {"qkv": torch.randn(16, 8 * hd), "index": torch.randn(16, 2 * 4 + 4 + 2), "o": torch.randn(4 * hd, 16)}
    x, cache = torch.randn(b, s, 16), torch.randn(b, t, 2 * 2 * hd)
    visible = torch.arange(t)[None, :] <= torch.arange(t - s, t)[:, None]
    out = msa_module_forward(case, x, w, cache, torch.randn(b, t, 4), visible)
    q = (x @ w["qkv"])[..., :4 * hd].view(b, s, 4, hd)
    k, v = cache.view(b, t, 2, 2, hd).unbind(2)                                  # [b, t, kv heads, hd]
    k, v = k.repeat_interleave(2, dim=2), v.repeat_interleave(2, dim=2)          # query head i reads kv head i // 2
    logits = torch.einsum("bshd,bthd->bsht", q, k) * hd ** -0.5
    attn = torch.einsum("bsht,bthd->bshd", logits.masked_fill(~visible[None, :, None, :], float("-inf")).softmax(-1), v)
    assert torch.allclose(out, attn.reshape(b, s, 4 * hd) @ w["o"], atol=1e-4)


def test_mhc_module_reference_mixes_as_model_py_does():
    from collectors.ops.mhc_module import mhc_post, mhc_pre, sinkhorn

    torch.manual_seed(0)
    comb = sinkhorn(torch.randn(5, 4, 4), iters=20)   # the last pass normalises columns; rows converge to 1
    assert torch.allclose(comb.sum(-2), torch.ones(5, 4), atol=1e-5) and torch.allclose(comb.sum(-1), torch.ones(5, 4), atol=2e-2)
    streams, out = torch.randn(5, 4, 32), torch.randn(5, 32)
    layer_in, post, mix = mhc_pre(streams, torch.zeros(24, 4 * 32), torch.zeros(24), iters=20)
    # zero logits: pre weights sigmoid(0) (+ eps) each, post weights 2 sigmoid(0) = 1, a uniform residual mix
    assert torch.allclose(layer_in, 0.5 * streams.sum(1), atol=1e-4) and torch.allclose(post, torch.ones(5, 4))
    assert torch.allclose(mix, torch.full((5, 4, 4), 0.25), atol=1e-4)
    kept = mhc_post(out, streams, torch.zeros(5, 4), torch.eye(4).expand(5, 4, 4))
    assert torch.allclose(kept, streams)                    # identity mix, no output: the streams unchanged


def test_dsv4_hca_reference_is_dense_causal_attention_within_the_window():
    """No complete compressed entry and a window as long as the sequence: the block is causal attention
    over the window tokens' entries (K = V), between the projections."""
    from collectors.ops.dsv4_module import _weights, hca_module_forward, visibility
    from perfdb.ops import Dsv4ModulePrefillCase

    torch.manual_seed(0)
    case = Dsv4ModulePrefillCase(dtype=Dtype.FP32, kv_dtype=Dtype.FP32, compress=64, num_heads=4, o_groups=2,
                                 hidden=32, head_dim=8, q_lora_rank=16, o_lora_rank=8, window=16, topk=0,
                                 index_heads=0, index_head_dim=0, batch=2, seq_len=6, prefix_len=0)
    w = _weights(case, torch.float32, CPU)
    x, kv = torch.randn(2, 6, 32), torch.randn(2, 6, 8)
    out = hca_module_forward(case, x, w, torch.zeros(2, 0, 8), kv, visibility(case, 6, 0, 0, 0, 6, CPU))
    q = ((x @ w["down"])[..., :16] @ w["q_up"]).view(2, 6, 4, 8).transpose(1, 2)
    k = kv[:, None].expand(2, 4, 6, 8)
    attn = torch.nn.functional.scaled_dot_product_attention(q, k, k, is_causal=True).transpose(1, 2)   # [b, s, h, d]
    groups = attn.reshape(12, 2, 16).transpose(0, 1)
    want = (torch.bmm(groups, w["o_a"]).transpose(0, 1).reshape(12, 16) @ w["o_b"]).view(2, 6, 32)
    assert torch.allclose(out, want, atol=1e-5)
    # position 200: entries ending at 63, 127, 191 seen, the one ending at 255 not; window (184, 200]
    assert visibility(case, 1, 200, 4, 184, 17, CPU).tolist() == [[True] * 3 + [False] * 2 + [True] * 16]
