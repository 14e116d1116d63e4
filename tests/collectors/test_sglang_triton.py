"""SGLang's Triton decode kernel (collectors/backends/sglang_triton.py) against our torch paged-decode
reference. Needs the sglang package on sys.path (e.g. the 0.5.23 wheel unzipped); skips otherwise. On a
CPU host the kernel runs under the Triton interpreter in fp16 (the interpreter mishandles bf16 on CPU)."""
from __future__ import annotations

import numpy as np
import pytest

from collectors.registry import DeviceCtx, Unsupported
from perfdb.ops import AttentionDecodeCase
from perfdb.types import Dtype

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def setup():
    import torch

    mp = pytest.MonkeyPatch()
    cuda = torch.cuda.is_available()
    if not cuda:
        mp.setenv("TRITON_INTERPRET", "1")  # read when the kernel module's @triton.jit runs
    from collectors.backends import sglang_triton as sgl

    try:
        sgl.load("decode_attention")
    except Unsupported as e:
        mp.undo()
        pytest.skip(str(e))
    if not cuda:
        sgl.patch_triton_interpreter()
    yield sgl, DeviceCtx("cuda" if cuda else "cpu"), Dtype.BF16 if cuda else Dtype.FP16
    mp.undo()


@pytest.mark.parametrize("fp8_kv", [False, True])
def test_sglang_decode_matches_the_torch_reference(setup, fp8_kv):
    from collectors.ops.attention_decode import reference

    sgl, ctx, dt = setup
    if fp8_kv and ctx.device == "cpu":
        pytest.skip("fp8 KV is checked on CUDA only: under the Triton interpreter the fp8 dots miss an fp8-rounding "
                    "emulation of the reference by ~10% mean (1.8% expected); whether kernel or interpreter, the GPU decides")
    batch, kv_len = 3, 37  # a length that is not a multiple of any block size
    case = AttentionDecodeCase(dtype=dt, kv_dtype=Dtype.FP8 if fp8_kv else dt, num_heads=8, num_kv_heads=2,
                               head_dim=64, window=0, batch=np.array(batch), kv_len=np.array(kv_len))
    import torch

    # the kernel's inputs, drawn again from the same seed, in the reference's paged layout (page = token slot)
    torch.manual_seed(0)
    q, k, v, _, indices = sgl.decode_inputs(case, ctx)
    torch.manual_seed(0)
    prepared = sgl.build_decode(case, ctx)
    assert prepared.kernel_source == "sglang_triton_decode_attention" + ("_fp8kv" if fp8_kv else "")
    out = prepared.fn().float()
    if fp8_kv:  # SGLang's kernel rounds q and the softmax weights to the cache's fp8 for its two dots
        q = q.to(k.dtype).to(q.dtype)
    want = reference(q, k[:, None], v[:, None], indices.view(batch, kv_len).int(),
                     torch.full((batch,), kv_len, dtype=torch.int32, device=q.device)).float()
    assert out.shape == want.shape
    err = (out - want).abs()
    if fp8_kv:  # the softmax weights are rounded to e4m3 too (3 mantissa bits, ~2% mean): judge the mean error
        assert err.mean() < 0.05 * want.abs().mean(), err.mean()
    else:
        assert torch.allclose(out, want, atol=2e-2, rtol=2e-2), err.max()
    assert want.abs().mean() > 1e-3  # not trivially zero on both sides


def test_sglang_fused_moe_matches_per_row_expert_math(setup):
    """Our stand-in for moe_align_block_size and the routing from local_counts feed SGLang's fused_moe_kernel
    the rows each expert should get: every (token, expert) row equals its expert's SwiGLU MLP."""
    import torch

    from collectors.ops.common import randn, torch_dtype
    from collectors.ops.moe import local_counts
    from perfdb.ops import MoeCase

    sgl, ctx, dt = setup
    try:
        sgl.load("fused_moe")
    except Unsupported as e:
        pytest.skip(str(e))
    case = MoeCase(dtype=dt, hidden=64, inter=64, topk=2, num_experts=8, moe_tp=1, moe_ep=1,
                   distribution="power_law_1.01", num_tokens=np.array(40))
    torch.manual_seed(0)
    out = sgl.build_moe(case, ctx).fn().float()[:, 0]
    counts = local_counts(case)
    rows, experts = int(counts.sum()), np.repeat(np.arange(len(counts)), counts)
    torch.manual_seed(0)  # the builder's draws again: x, w13, w2
    x = randn((rows, 64), torch_dtype(dt), ctx)
    w13 = randn((len(counts), 128, 64), x.dtype, ctx, scale=0.02)
    w2 = randn((len(counts), 64, 64), x.dtype, ctx, scale=0.02)
    h = torch.einsum("rk,rnk->rn", x.float(), w13[experts].float())
    want = torch.einsum("rk,rnk->rn", torch.nn.functional.silu(h[:, :64]) * h[:, 64:], w2[experts].float())
    assert (np.bincount(experts) > 0).sum() > 1  # several experts, unevenly loaded
    assert torch.allclose(out, want, atol=2e-4, rtol=2e-2), (out - want).abs().max()
