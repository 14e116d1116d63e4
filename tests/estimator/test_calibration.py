"""Applying a calibration artifact to an Estimate: corrected values, CALIBRATED source, intervals, arrays."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from estimator.calibration import (
    Calibration,
    CalibrationContext,
    Factor,
    IntervalQuantiles,
    Scope,
    apply,
    calibrate_estimate,
)
from estimator.calibration_files import find, load, save
from estimator.estimate import Estimate
from estimator.memory import MemoryReport
from perfdb.errors import DataError
from perfdb.types import Source


def _estimate(ttft=100.0, tpot=10.0, osl=101) -> Estimate:
    lat = ttft + (osl - 1) * np.asarray(tpot)
    return Estimate(ttft_ms=ttft, tpot_ms=tpot, request_latency_ms=lat, tokens_per_s_per_gpu=500.0,
                    tokens_per_s_per_user=1e3 / np.asarray(tpot), concurrency=8.0, num_gpus=2,
                    memory=MemoryReport(1.0, 1.0, 1.0, 1.0, 1e6, 64, True, ""), breakdown=(),
                    source=Source.INTERPOLATED, feasible=True, reason="")


CAL = Calibration(
    factors=(Factor(Scope(), "ttft", math.log(1.1), 100, 10),
             Factor(Scope("h200_sxm", "vllm", "*", "agg"), "ttft", math.log(2.0), 30, 4),
             Factor(Scope(), "tpot", math.log(0.5), 100, 10)),
    residuals=(),
    intervals=(IntervalQuantiles("ttft", "agg", math.log(0.9), math.log(1.2), 0.8, 50),
               IntervalQuantiles("tpot", "*", math.log(0.95), math.log(1.05), 0.8, 100)))
CTX = CalibrationContext(system="h200_sxm", backend="vllm", version="0.12.0", mode="agg", isl=1024, osl=101, gpus=2)


def test_apply_scalar():
    c = calibrate_estimate(_estimate(), CAL, CTX)
    est = c.estimate
    assert est.source is Source.CALIBRATED
    assert est.ttft_ms == pytest.approx(200.0) and est.tpot_ms == pytest.approx(5.0)
    assert est.request_latency_ms == pytest.approx(200.0 + 100 * 5.0)
    assert est.tokens_per_s_per_gpu == pytest.approx(500.0 * 1100.0 / 700.0)    # latency shrank: more throughput
    assert (c.ttft.lo, c.ttft.hi) == pytest.approx((180.0, 240.0)) and c.tpot.coverage == 0.8
    assert c.ttft.text(est.ttft_ms) == "200 ms, 80% interval 180-240"
    assert c.scope == "h200_sxm/vllm/*/agg"
    other = apply(_estimate(), CAL, replace(CTX, system="b200_sxm"))      # falls back to the global factor
    assert other.ttft_ms == pytest.approx(110.0)


def test_apply_arrays_broadcast():
    est = _estimate(ttft=np.array([100.0, 300.0]), tpot=np.array([10.0, 20.0]))
    c = calibrate_estimate(est, CAL, replace(CTX, isl=np.array([1024, 4096])))
    assert np.allclose(c.estimate.ttft_ms, [200.0, 600.0]) and np.allclose(c.ttft.hi, [240.0, 720.0])


def test_save_load_find_and_tamper(tmp_path):
    d = tmp_path / "db" / "calibrations" / CAL.id
    save(CAL, d)
    assert load(d) == CAL and find(tmp_path / "db", "h200_sxm", "vllm") == d
    text = (d / "calibration.json").read_text().replace("0.6931", "0.7931")
    (d / "calibration.json").write_text(text)
    with pytest.raises(DataError, match="does not match the recorded id"):
        load(d)


def test_context_for_unstated_version_skips_the_unknown_version_scope():
    from estimator.calibration import context_for

    cal = replace(CAL, factors=CAL.factors + (Factor(Scope("h200_sxm", "vllm", "", "agg"), "ttft", math.log(9.0), 30, 4),))
    unstated = context_for("h200_sxm", "vllm", None, "agg", 1024, 101, 2)
    assert calibrate_estimate(_estimate(), cal, unstated).estimate.ttft_ms == pytest.approx(200.0)
    stated = context_for("h200_sxm", "vllm", "0.12.0", "agg", 1024, 101, 2, concurrency=8)
    assert calibrate_estimate(_estimate(), cal, stated).scope == "h200_sxm/vllm/*/agg"


def test_resolve_explicit_then_database_then_none(tmp_path):
    from estimator.calibration_files import resolve

    save(CAL, tmp_path / "explicit")
    assert resolve(tmp_path / "explicit", None, "h200_sxm", "vllm") == CAL
    assert resolve(None, tmp_path, "h200_sxm", "vllm") is None          # no <db>/calibrations
    bundled = resolve(None, None, "h200_sxm", "vllm")                  # the bundled database ships one
    assert bundled is not None and bundled.base == "estimate" and bundled.id != CAL.id
    assert resolve(None, None, "h200_sxm", "vllm", stored=False) is None   # --calibration none
    sim = resolve(None, None, "h200_sxm", "vllm", base="simulate")        # ... and one for the simulator
    assert sim is not None and sim.base == "simulate" and sim.id != bundled.id
    save(CAL, tmp_path / "calibrations" / CAL.id)
    assert resolve(None, tmp_path, "h200_sxm", "vllm").id == CAL.id
    assert resolve(None, tmp_path, "h200_sxm", "vllm", stored=False) is None


def test_calibration_flag_none_disables_stored():
    from estimator.calibration_files import calibration_flag

    assert calibration_flag(None) == (None, True)
    assert calibration_flag("NONE") == (None, False)
    assert calibration_flag("cal/abc") == (Path("cal/abc"), True)


def test_a_model_counts_as_seen_per_serving_mode():
    """A model fitted only aggregated is new to a disaggregated query (its agg runs say nothing of prefill
    pools or the KV hand-off), so the disagg factor reaches it only as far as an unseen model's evidence
    allows; within its mode, a new system or a new backend is as before."""
    from estimator.calibration import Calibration
    from estimator.calibration_reach import Novelty

    cal = Calibration((), (), (), fitted=(("h200_sxm", "trtllm", "agg", "qwen3-32b"),
                                          ("b200_sxm", "trtllm", "disagg", "deepseek-r1")))
    assert cal.novelty("h200_sxm", "trtllm", "disagg", "qwen3-32b") is Novelty.MODEL
    assert cal.novelty("h100_sxm", "trtllm", "disagg", "qwen3-32b") is Novelty.BOTH
    assert cal.novelty("h200_sxm", "vllm", "agg", "qwen3-32b") is Novelty.PAIR
    assert cal.novelty("b200_sxm", "trtllm", "agg", "qwen3-32b") is Novelty.SYSTEM
    assert cal.novelty("h200_sxm", "trtllm", "disagg", "deepseek-r1") is Novelty.SYSTEM
    assert cal.novelty("h200_sxm", None, "agg", "qwen3-32b") is Novelty.SCOPE


def test_the_residual_sees_the_weights_bits_of_the_model_as_served():
    """log_weight_bits: the narrower of a model's GEMM and expert weights, scales included, from the loaded
    model (its quantization overrides applied); a context without a model reads 16-bit weights."""
    from estimator.calibration import context_for
    from estimator.calibration_features import (
        FEATURES,
        UNSTATED_WEIGHT_BITS,
        FeatureInputs,
        feature_matrix,
        model_weight_bits,
        weight_bits,
    )
    from estimator.models import load_model
    from perfdb.types import Dtype

    assert weight_bits(Dtype.NVFP4, Dtype.NVFP4) == pytest.approx(4.5)
    assert weight_bits("fp8_block", "fp8_block") == pytest.approx(8.0, abs=0.01)
    assert weight_bits(Dtype.BF16, None) == 16.0 and weight_bits(None, None) == UNSTATED_WEIGHT_BITS
    dsr1 = load_model("deepseek-ai/DeepSeek-R1")
    fp4 = load_model("deepseek-ai/DeepSeek-R1", moe_quant=Dtype.NVFP4)
    assert model_weight_bits(fp4) < model_weight_bits(dsr1) == pytest.approx(8.0, abs=0.01)
    assert model_weight_bits(load_model("openai/gpt-oss-120b")) == pytest.approx(4.25)   # mxfp4 experts
    stated = context_for("b200_sxm", "sglang", None, "disagg", 8192, 1024, 8, 4, model=fp4)
    assert (stated.model, stated.weight_bits) == ("deepseek-r1", model_weight_bits(fp4))
    assert context_for("b200_sxm", "sglang", None, "agg", 1024, 1024, 8).weight_bits == UNSTATED_WEIGHT_BITS
    x = feature_matrix(FeatureInputs(isl=1024, osl=1024, concurrency=4, pred_ttft_ms=100, pred_tpot_ms=10, gpus=8,
                                     is_agg=1.0, weight_bits=[4.5, 8.0, 16.0]))
    assert x.shape == (3, len(FEATURES)) and FEATURES[-1] == "log_weight_bits"
    assert list(x[:, -1]) == pytest.approx([np.log2(4.5), 3.0, 4.0])
