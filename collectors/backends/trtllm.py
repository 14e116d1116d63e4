"""TensorRT-LLM adapter (PyTorch flow): bf16 linear layers through F.linear as TensorRT-LLM's Linear runs
them unquantized. TensorRT-LLM's own attention and MoE kernels are not wired yet: those ops are recorded
as unsupported rather than timed with torch kernels under the trtllm name. Untested here (TensorRT-LLM
is not installable on this CPU host); tests are marked `engines`."""
from __future__ import annotations

from collectors.backends import Adapter
from collectors.backends.engines import bf16_linear, require
from perfdb.types import Backend, OpKind


def adapter() -> Adapter:
    _, version = require("tensorrt_llm", "tensorrt_llm", Backend.TRTLLM)
    return Adapter(Backend.TRTLLM, version, {OpKind.GEMM: bf16_linear("trtllm")})
