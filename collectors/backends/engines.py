"""Shared pieces of the engine adapters: version lookup and the ops every engine runs on torch's kernel."""
from __future__ import annotations

import importlib
import importlib.metadata

from collectors.backends import delegate, torch_builders
from collectors.registry import Builder, DeviceCtx, Unsupported
from perfdb.errors import NotFoundError
from perfdb.ops import GemmCase
from perfdb.types import Backend, Dtype, OpKind


def require(module: str, dist: str, backend: Backend):
    """Import the engine or raise NotFoundError saying how to install it; returns (module, version)."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise NotFoundError(f"the {backend.value} backend needs `{dist}` installed ({exc}); "
                            "the torch backend is always available") from None
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(mod, "__version__", "unknown")
    return mod, version


def bf16_linear(engine: str) -> Builder:
    """Unquantized linear layers of vLLM, SGLang and TensorRT-LLM's PyTorch flow call F.linear (cuBLAS):
    the same kernel as the torch backend, labelled as such."""
    torch_gemm = torch_builders()[OpKind.GEMM]
    annotated = delegate(f"{engine}_unquantized_linear", torch_gemm)

    def build(case: GemmCase, ctx: DeviceCtx):
        if case.dtype not in (Dtype.BF16, Dtype.FP16):
            raise Unsupported(f"the {engine} adapter times only bf16/fp16 linear layers through F.linear; "
                              f"{case.dtype.value} needs the engine's quantized kernels (not wired yet)")
        return annotated(case, ctx)

    return build
