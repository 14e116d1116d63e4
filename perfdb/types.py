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
    LINEAR_PREFILL = "linear_prefill"    # linear attention / SSM (Gated DeltaNet, KDA, Mamba-2): chunked scan
    LINEAR_DECODE = "linear_decode"      # one recurrent state update per request
    SPARSE_PREFILL = "sparse_prefill"    # indexer + top-k attention (DSA, MSA) over new tokens
    SPARSE_DECODE = "sparse_decode"
    DSA_MODULE_PREFILL = "dsa_module_prefill"   # a DSA layer's whole attention block (projections + indexer
    DSA_MODULE_DECODE = "dsa_module_decode"     # + top-k MLA), as the reference tool's dsa_*_module tables time it
    MSA_MODULE_PREFILL = "msa_module_prefill"   # the same for MiniMax-M3's block-sparse GQA layers (msa_*_module)
    MSA_MODULE_DECODE = "msa_module_decode"
    DSV4_MODULE_PREFILL = "dsv4_module_prefill"   # a DeepSeek-V4 CSA / HCA layer's whole attention block
    DSV4_MODULE_DECODE = "dsv4_module_decode"     # (dsv4_*_module tables)
    MHC_MODULE = "mhc_module"            # DeepSeek-V4 mHC pre / post of one layer, as the mhc_module tables time it


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
    INT4 = "int4"            # int4 weight-only, bf16 scale per 32 (Kimi-K2.x experts, AWQ/GPTQ); w4a16 math
    W4A8_MXFP4 = "w4a8_mxfp4"  # mxfp4 weights x mxfp8 activations (gpt-oss MoE on Blackwell); fp8-rate math


class LinearKind(str, Enum):
    """Linear-attention / state-space mixers: a fixed-size recurrent state per request, no per-token KV."""

    GDN = "gdn"          # Gated DeltaNet (Qwen3-Next, Qwen3.5 / 3.6)
    KDA = "kda"          # Kimi Delta Attention (Kimi Linear, Kimi-K3): per-channel decay
    MAMBA2 = "mamba2"    # Mamba-2 SSD (Nemotron-H, Nemotron-3)


class SparseKind(str, Enum):
    """Sparse attention: a light indexer scores every cached token, the attention reads the top-k."""

    DSA = "dsa"          # DeepSeek Sparse Attention (V3.2, GLM-5): fp8 MQA indexer, top-k tokens, MLA latent
    MSA = "msa"          # MiniMax-M3 block-sparse attention: top-k blocks of GQA KV


class MhcStage(str, Enum):
    """The two halves of a manifold-constrained hyper-connection around a sub-layer (DeepSeek-V4)."""

    PRE = "pre"          # mixing weights from the streams (projection + Sinkhorn), streams -> sub-layer input
    POST = "post"        # sub-layer output and the mixed streams -> new streams


class MoeKernel(str, Enum):
    """A MoE kernel an engine can be told to run for a weight format where the tables time more than one
    (estimator.engines.profile.MoeKernelSwitch). Its table rows are those whose kernel_source contains the
    value (AIC: vllm_compressedtensorsw4a4mxfp4moe_marlin_marlinexperts..., moe_torch_flow_cutlass)."""

    MARLIN = "marlin"       # vLLM's Marlin weight-only mxfp4 MoE (VLLM_MXFP4_USE_MARLIN)
    CUTLASS = "cutlass"     # TensorRT-LLM's CutlassFusedMoE (moe_config.backend CUTLASS)
    # SGLang's experts behind DeepEP (--moe-a2a-backend deepep): DeepGEMM's grouped GEMM over the rank's local
    # experts, contiguous layout after a normal-mode dispatch (prompts), masked after a low-latency one (AIC's
    # collector/sglang/collect_wideep_deepep_moe.py run_moe_core: num_tokens = the EP group's tokens)
    DEEPEP_NORMAL = "deepepmoe_normal"
    DEEPEP_LL = "deepepmoe_ll"

    @property
    def only_when_launched(self) -> bool:
        """A kernel only an engine launched for it runs: the default lookup never prices its rows (DeepEP's
        experts need DeepEP's dispatch in front of them; a Marlin or CUTLASS row is a kernel any run may get)."""
        return self in (MoeKernel.DEEPEP_NORMAL, MoeKernel.DEEPEP_LL)


# kernel_source pattern (regex) of the MoE rows only an engine launched for their kernel runs: the default
# lookup (perfdb.lookup.DbView) and the efficiency curves (perfdb.efficiency_fit) leave them out
LAUNCHED_ONLY_KERNELS = "|".join(k.value for k in MoeKernel if k.only_when_launched)


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
    MHC = "mhc"          # DeepSeek-V4 manifold-constrained hyper-connections: mix hc_mult residual streams


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
