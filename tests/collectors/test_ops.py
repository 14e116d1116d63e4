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
    q, kc, vc, table, lens = attention_decode.make_inputs(2, 40, 4, 2, 16, torch.float32, CPU)
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
