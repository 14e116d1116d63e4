"""The residual model's features (estimator.calibration): one definition shared by fitting
(calibrate.fit) and by every place a calibration is applied (CalibrationContext.features)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdb.ops.base import weight_bytes
from perfdb.types import Dtype

# Load features of the residual model, in this order. Each is a log so that effects are multiplicative.
FEATURES = ("log_concurrency", "log_isl", "log_osl", "log_pred_ttft", "log_pred_tpot", "log_gpus", "is_agg",
            "log_weight_bits")
# Bits of the weights the run served (`weight_bits`): every checkpoint of a family shares its scopes
# (model_key), while the kernel tables' bias differs with the numerics (SGLang's DeepSeek-R1 FP8 prefill on
# Blackwell priced ~1.6x fast where FP4 is right: BENCHMARKS.md, the twenty-third session); the residual
# sees them. Nested CV by deployment with it (held out, 2,014 training rows): simulate base imported 15.5 /
# 7.6 -> 15.2 / 7.4, bundled 17.1 / 8.7 -> 16.7 / 8.4; static imported 19.4 / 7.8 -> 19.5 / 7.3, bundled
# 21.5 / 9.2 -> 19.8 / 8.7 (one model / system out unchanged: the residual reaches neither).
UNSTATED_WEIGHT_BITS = 16.0   # a context that names no model: 16-bit weights


@dataclass(frozen=True)
class FeatureInputs:
    """What the residual model sees; arrays broadcast. concurrency: requests in flight per agg replica or
    per xPyD group (never the whole fleet: the same replica gets the same correction at any GPU count)."""

    isl: np.ndarray | float
    osl: np.ndarray | float
    concurrency: np.ndarray | float
    pred_ttft_ms: np.ndarray | float
    pred_tpot_ms: np.ndarray | float
    gpus: np.ndarray | float          # GPUs of one engine instance (agg replica / decode worker)
    is_agg: np.ndarray | float
    weight_bits: np.ndarray | float   # weight_bits(): bits per weight of the served model's narrowest weights


def feature_matrix(x: FeatureInputs) -> np.ndarray:
    """(n, len(FEATURES)) float64; the single definition shared by fitting and applying."""
    cols = [np.log(np.maximum(np.asarray(x.concurrency, dtype=np.float64), 1.0)),
            np.log(np.maximum(np.asarray(x.isl, dtype=np.float64), 1.0)),
            np.log(np.maximum(np.asarray(x.osl, dtype=np.float64), 1.0)),
            np.log(np.maximum(np.asarray(x.pred_ttft_ms, dtype=np.float64), 1e-3)),
            np.log(np.maximum(np.asarray(x.pred_tpot_ms, dtype=np.float64), 1e-3)),
            np.log(np.maximum(np.asarray(x.gpus, dtype=np.float64), 1.0)),
            np.asarray(x.is_agg, dtype=np.float64),
            np.log2(np.maximum(np.asarray(x.weight_bits, dtype=np.float64), 1.0))]
    cols = np.broadcast_arrays(*cols)
    return np.stack([np.atleast_1d(c).ravel() for c in cols], axis=1)


def weight_bits(gemm_quant, moe_quant=None) -> float:
    """Bits per weight (scales included: perfdb.ops.base.weight_bytes) of the narrower of a model's GEMM
    and routed-expert weights as served (Dtype values or names; None or "" where a model has none):
    DeepSeek-R1 FP4 4.5, FP8 8.0, gpt-oss 4.25, a bf16 dense model 16. The `log_weight_bits` feature."""
    stated = [Dtype(q) for q in (gemm_quant, moe_quant) if q]
    return min((8.0 * weight_bytes(q) for q in stated), default=UNSTATED_WEIGHT_BITS)


def weights_label(bits: float) -> str:
    """The scope field naming a model's served numerics (Scope.weights): its weight_bits, e.g. "4.5", "8",
    "16"; one definition for fitting (calibrate.fit) and applying (CalibrationContext.key)."""
    return f"{float(bits):g}"


def model_weight_bits(spec) -> float:
    """weight_bits of a loaded model (estimator.models.ModelSpec) as the estimator prices it."""
    return weight_bits(spec.gemm_quant, spec.moe_quant if spec.is_moe else None)
