"""Rows that time more than the engine runs when it serves, and what that extra work costs.

A kernel table times a flow: whatever the collector called, start to end. Where that flow holds work the
serving engine does not do on the same call, the table over-prices the op however well it was measured.
One rule table (`RULES`); perfdb.lookup.DbView.flow_excess_ms measures the extra from the database, and
the estimator (estimator.steps) takes it off where the model it prices skips that work (`adjust`: never
below the roofline) and names it in each op's provenance.

TensorRT-LLM per-tensor FP8 GEMMs. The reference tool's collector (aiconfigurator
collector/trtllm/collect_gemm.py) builds FP8 weights with a weight scale and no input scale, so
TensorRT-LLM's FP8QDQLinearMethod.apply (_torch/modules/linear.py) quantizes the activation dynamically
on every timed call (torch.ops.tensorrt_llm.quantize_e4m3_per_tensor: an amax reduction, then the
quantization) before cublas_scaled_mm. A served per-tensor FP8 checkpoint with static input scales
(ModelOpt) runs static_quantize_e4m3_per_tensor instead, or takes an input its producer already quantized
(an FP8 attention output; the all-reduce + RMSNorm + FP8 quant fusion, AllReduceFusionOp
RESIDUAL_RMS_NORM_QUANT_FP8). Models whose FP8 activations are quantized on every call keep the rows as
they are (ModelSpec.fp8_dynamic_activations: a checkpoint's activation_scheme "dynamic", and a run
labelled fp8 that serves its family's block-scaled checkpoint, which quantizes per 1x128 group). What the extra work costs is read off the database itself: the median, over
`probe`'s small-M shapes, of the TensorRT-LLM rows' price less a reference engine's (vLLM's CUTLASS
scaled_mm, else SGLang's sgl-kernel fp8_scaled_mm; their flows hold at most a static quantization) on the
same GPU. In the imported tables (servecast db import-aic, aiconfigurator-core 0.12.0) that is 7.6 us on
B200 and 6.5 on H200 at M <= 64, while bf16 and fp8_block rows agree across the three engines within
0.5 us (the same GEMM kernels). The TensorRT-LLM rows keep their own shape dependence (cuBLASLt's, which
the engine runs); only the per-call excess goes. BENCHMARKS.md has the effect on the training runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdb.ops import GemmCase, OpCase
from perfdb.roofline import sol_ms
from perfdb.types import Backend, Dtype, OpKind


@dataclass(frozen=True)
class FlowRule:
    """`backend`'s rows of (`kind`, `dtype`) whose kernel_source is in `kernel_sources` time work the
    served engine skips; the first of `references` that prices the op on the same GPU measures it. A view
    with no rows of its own prices from the efficiency curves, which the bundled database fitted to the
    same collector's rows (perfdb/bundled/meta.yaml), so the rule holds there too."""

    backend: Backend
    kind: OpKind
    dtype: Dtype
    kernel_sources: frozenset[str]
    references: tuple[Backend, ...]
    why: str


RULES = (
    FlowRule(Backend.TRTLLM, OpKind.GEMM, Dtype.FP8, frozenset({"torch_flow"}), (Backend.VLLM, Backend.SGLANG),
             "TensorRT-LLM fp8 GEMM rows include dynamic activation quantization, which a served FP8 "
             "checkpoint does not run"),
)

# the shapes the excess is measured on: decode-sized M, the hidden sizes of common dense models
_PROBE_M = (1, 2, 4, 8, 16, 32, 64)
_PROBE_NK = (1024, 2048, 4096, 8192)


def probe(dtype: Dtype) -> GemmCase:
    """One vectorised GEMM case over the probe grid."""
    m, n, k = (np.array(a, dtype=np.float64).ravel() for a in np.meshgrid(_PROBE_M, _PROBE_NK, _PROBE_NK, indexing="ij"))
    return GemmCase(dtype=dtype, m=m, n=n, k=k)


def adjust(ms: np.ndarray, case: OpCase, excess_ms: float, system) -> np.ndarray:
    """`ms` less the per-call excess, never below the case's roofline time."""
    return np.maximum(ms - excess_ms, np.ravel(sol_ms(case, system)))


def rule_for(backend: Backend, case: OpCase) -> FlowRule | None:
    """The rule that applies to `case` priced for `backend`, if any."""
    if not isinstance(case, GemmCase):
        return None
    for r in RULES:
        if r.backend == backend and r.kind == case.KIND and r.dtype == case.dtype:
            return r
    return None


def served_flow_lines(db, system: str, backend: str, version: str, kinds) -> list[str]:
    """One line per rule whose rows this (system, backend, version) directory holds (`kinds`: its op
    families), with the excess its database measures (`servecast db info`)."""
    out = []
    for r in RULES:
        if r.backend.value != backend or r.kind not in kinds:
            continue
        excess = db.view(system, r.backend, version).flow_excess_ms(probe(r.dtype))
        if excess:
            out.append(f"{r.kind.value} {r.dtype.value}: rows hold {excess * 1e3:.1f} us/call the served engine may "
                       f"skip ({r.why}; taken off for static-scale checkpoints, perfdb.served)")
    return out
