"""The linear-attention collector (collectors/ops/linear_attention.py) through the harness the runner uses:
the torch reference on CPU, flash-linear-attention's kernels on a GPU where `fla` is installed (the
GPU test checks fla's final state against the reference on the same inputs, so the rows it times
compute the recurrence the roofline counts)."""
import pytest
import torch

from collectors.ops.linear_attention import build_decode, build_prefill, decode_grid, prefill_grid
from collectors.registry import DeviceCtx
from collectors.timer import TimerConfig, time_op
from perfdb.ops import LinearDecodeCase, LinearPrefillCase
from perfdb.types import Dtype, LinearKind

CPU = DeviceCtx("cpu")


def _small(kind: LinearKind, cls, **numeric):
    return cls(kind, Dtype.BF16, Dtype.FP32, 2, 4, 16, 8, 4, **({"chunk": 64} if cls is LinearPrefillCase else {}),
               **numeric)


@pytest.mark.parametrize("kind", [LinearKind.GDN, LinearKind.KDA, LinearKind.MAMBA2])
def test_cpu_path_runs_the_torch_reference_through_the_timer(kind):
    prefill = build_prefill(_small(kind, LinearPrefillCase, batch=2, seq_len=5), CPU)
    decode = build_decode(_small(kind, LinearDecodeCase, batch=3), CPU)
    assert prefill.kernel_source == decode.kernel_source == "torch_recurrent_reference"
    out, state = decode.fn()
    assert out.shape == (3, 4, 8) and state.shape == (3, 4, 16, 8) and state.dtype == torch.float32
    out, state = prefill.fn()
    assert out.shape == (2, 4, 8) and torch.isfinite(state).all()
    timing = time_op(decode.fn, "cpu", TimerConfig(budget_s=0.01))
    assert timing.median_ms > 0


def test_the_grids_hold_cases_of_every_kind():
    from collectors.registry import GridSize

    kinds = {c.kind for c in decode_grid(GridSize.FULL)} | {c.kind for c in prefill_grid(GridSize.FULL)}
    assert kinds == set(LinearKind)


@pytest.mark.gpu
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_fla_kernels_match_the_torch_reference(phase):
    pytest.importorskip("fla")
    from collectors.ops import linear_attention as la

    major, minor = torch.cuda.get_device_capability()
    ctx = DeviceCtx("cuda", major * 10 + minor)
    if phase == "prefill":
        case = LinearPrefillCase(LinearKind.GDN, Dtype.BF16, Dtype.FP32, 4, 8, 128, 128, 4, 64, 2, 256)
        prepared, tokens = la.build_prefill(case, ctx), 256
    else:
        case = LinearDecodeCase(LinearKind.GDN, Dtype.BF16, Dtype.FP32, 4, 8, 128, 128, 4, 16)
        prepared, tokens = la.build_decode(case, ctx), 1
    assert prepared.kernel_source.startswith("fla_")
    _, fla_state = prepared.fn()
    q, k, v, decay, beta, state = la._inputs(case, tokens, ctx)   # same seed: the inputs fla ran on
    _, ref_state = la.reference_prefill(case.kind, q, k, v, decay, beta, state)
    torch.testing.assert_close(fla_state.float(), ref_state, atol=5e-2, rtol=5e-2)
