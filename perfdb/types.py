"""Enums shared by every layer. Values are the strings stored in Parquet and typed on the CLI."""
from __future__ import annotations

from enum import Enum


class Backend(str, Enum):
    TRTLLM = "trtllm"
    SGLANG = "sglang"
    VLLM = "vllm"
    TORCH = "torch"


class OpKind(str, Enum):
    """Op families: one perfdb table (schema) and one case dataclass each."""

    GEMM = "gemm"
    ATTENTION_PREFILL = "attention_prefill"
    ATTENTION_DECODE = "attention_decode"
    MLA_PREFILL = "mla_prefill"
    MLA_DECODE = "mla_decode"
    MOE = "moe"
    COMM = "comm"
    ELEMENTWISE = "elementwise"


class Dtype(str, Enum):
    """Numeric format of an op (for GEMM/MoE: the weight x activation recipe)."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"              # per-tensor scaled fp8 (e4m3) weights and activations
    FP8_BLOCK = "fp8_block"  # 128x128 block-scaled fp8 weights, 1x128 activations (DeepSeek recipe)
    NVFP4 = "nvfp4"          # fp4 e2m1 with fp8 scales per 16 elements (Blackwell tensor cores)
    MXFP4 = "mxfp4"          # fp4 e2m1 with e8m0 scales per 32 (gpt-oss); w4a16 on Hopper
    INT8 = "int8"


class Phase(str, Enum):
    PREFILL = "prefill"
    DECODE = "decode"
    MIXED = "mixed"


class Source(str, Enum):
    """Where a number came from, best first. Order matters: a composite takes its worst part's source."""

    MEASURED = "measured"
    INTERPOLATED = "interpolated"
    EXTRAPOLATED = "extrapolated"
    ROOFLINE = "roofline"
    CALIBRATED = "calibrated"

    @property
    def code(self) -> int:
        return _SOURCE_CODES[self]

    @staticmethod
    def from_code(code: int) -> "Source":
        return _SOURCES[int(code)]


_SOURCES = list(Source)
_SOURCE_CODES = {s: i for i, s in enumerate(_SOURCES)}


class CommOp(str, Enum):
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    P2P = "p2p"


class Transport(str, Enum):
    NVLINK = "nvlink"      # inside one NVLink domain
    NETWORK = "network"    # InfiniBand / RoCE between nodes
    PCIE = "pcie"
    LOOPBACK = "loopback"  # gloo on one CPU host (tests)


class ElementwiseOp(str, Enum):
    RMSNORM = "rmsnorm"
    SILU_MUL = "silu_mul"
    ROPE = "rope"
    EMBEDDING = "embedding"
    ADD = "add"


class TimingMethod(str, Enum):
    CUDA_GRAPH = "cuda_graph"
    CUDA_EVENTS = "cuda_events"   # eager launches timed with events (graph capture failed)
    CPU_PERF_COUNTER = "cpu_perf_counter"
    IMPORTED = "imported"         # copied from another tool's database; method unknown


def parse_enum(enum_type: type[Enum], value: str, what: str) -> Enum:
    """Parse a user-supplied string into an enum, or raise InputError naming what is accepted."""
    from perfdb.errors import InputError

    try:
        return enum_type(value)
    except ValueError:
        accepted = ", ".join(e.value for e in enum_type)
        raise InputError(f"unknown {what} {value!r}; accepted: {accepted}") from None
