import importlib.util

import pytest

from collectors.backends import Adapter, delegate, get_adapter, torch_builders
from collectors.registry import DeviceCtx, Unsupported
from perfdb.errors import NotFoundError
from perfdb.ops import AttentionDecodeCase, GemmCase
from perfdb.types import Backend, Dtype, OpKind

CPU = DeviceCtx("cpu")


def test_torch_adapter_covers_every_family_and_names_its_version():
    import torch

    a = get_adapter(Backend.TORCH)
    assert a.version == torch.__version__ and set(a.builders) == set(OpKind)


@pytest.mark.parametrize("backend,module", [(Backend.VLLM, "vllm"), (Backend.SGLANG, "sglang"), (Backend.TRTLLM, "tensorrt_llm")])
def test_missing_engine_is_a_clear_error(backend, module):
    if importlib.util.find_spec(module):
        pytest.skip(f"{module} is installed")
    with pytest.raises(NotFoundError, match="torch backend is always available"):
        get_adapter(backend)


def test_adapter_without_a_kernel_records_unsupported_instead_of_borrowing_torch():
    a = Adapter(Backend.VLLM, "0.0", {OpKind.GEMM: delegate("vllm_unquantized_linear", torch_builders()[OpKind.GEMM])})
    p = a.build(GemmCase(Dtype.BF16, m=4, n=8, k=8), CPU)
    assert p.kernel_source == "torch_cpu:vllm_unquantized_linear"
    with pytest.raises(Unsupported, match="covers: gemm"):
        a.build(AttentionDecodeCase(Dtype.BF16, Dtype.BF16, 4, 2, 16, 0, batch=1, kv_len=16), CPU)


@pytest.mark.engines
@pytest.mark.gpu
@pytest.mark.parametrize("backend,module", [(Backend.VLLM, "vllm"), (Backend.SGLANG, "sglang"), (Backend.TRTLLM, "tensorrt_llm")])
def test_installed_engine_times_its_gemm(backend, module):
    if not importlib.util.find_spec(module):
        pytest.skip(f"{module} not installed")
    a = get_adapter(backend)
    p = a.build(GemmCase(Dtype.BF16, m=128, n=1024, k=1024), DeviceCtx("cuda", 90))
    p.fn()
    assert backend.value in p.kernel_source
