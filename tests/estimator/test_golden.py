"""Golden estimates on the tiny fixture database: any change in these numbers is a deliberate decision.

Regenerate (after checking why they moved) by printing the same calls. Last moved: TRT-LLM's
TTFT_OVERHEAD_MS 61 -> 52 ms and KV_HANDOFF_MS 157 -> 166 ms, refitted after the group wait
(engine.GROUP_WAIT_WEIGHT); these workloads set no num_requests, so the group wait itself is not in them. Ops the fixture lacks (e.g.
embedding, LM head shapes) fall to the roofline rung, so the bundled efficiency curves feed them too.
"""
from __future__ import annotations

import pytest

from estimator.engine import EngineConfig
from estimator.estimate import WorkerSpec, estimate, estimate_disagg
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from estimator.workload import Workload
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend

REL = 1e-6
ENG = EngineConfig(Backend.TRTLLM)
CASES = {
    # name: (model, parallel, workload, (ttft, tpot, tok/s/gpu), (prefill 2048, decode 32@2048, mixed 1024+32@2048))
    "qwen3_8b_tp1": ("Qwen/Qwen3-8B", ParallelConfig(tp=1), Workload(isl=2048, osl=256, concurrency=16),
                     (115.95001835854214, 10.610358275427764, 1451.6630689604099),
                     (49.7827923345831, 9.502795624395025, 29.66117542237525)),
    "qwen3_30b_a3b_tp1": ("Qwen/Qwen3-30B-A3B", ParallelConfig(tp=1), Workload(isl=1024, osl=512, concurrency=32),
                          (89.04246047362022, 19.20129208852839, 1654.7986044434942),
                          (34.5769980140096, 19.53956645468298, 28.532743790953294)),
    "deepseek_v3_tp8_ep8": ("deepseek-ai/DeepSeek-V3", ParallelConfig(tp=8, moe_ep=8),
                            Workload(isl=4096, osl=1024, concurrency=64),
                            (197.57793568768227, 46.23349448021941, 172.48333739596103),
                            (69.60443428393805, 27.814076884046052, 54.283151590399996)),
}


@pytest.fixture(scope="module")
def view(tiny_db):
    return PerfDB(tiny_db).view("h200_sxm", Backend.TRTLLM, "1.0.0")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_agg(name, view):
    model, par, load, metrics, steps = CASES[name]
    m, sysm = load_model(model), load_system("h200_sxm")
    est = estimate(m, sysm, par, ENG, load, view)
    assert (est.ttft_ms, est.tpot_ms, est.tokens_per_s_per_gpu) == pytest.approx(metrics, rel=REL)
    sm = StepModel.build(m, sysm, par, ENG, view)
    got = (float(sm.prefill_ms(1, 2048)), float(sm.decode_ms(32, 2048)), float(sm.mixed_ms(1024, 32, 2048)))
    assert got == pytest.approx(steps, rel=REL)


def test_golden_disagg(view):
    par = ParallelConfig(tp=8, moe_ep=8)
    est = estimate_disagg(load_model("deepseek-ai/DeepSeek-V3"), load_system("h200_sxm"), WorkerSpec(par, ENG, 2),
                          WorkerSpec(par, ENG, 1), Workload(isl=4096, osl=1024, concurrency=64), view)
    assert (est.ttft_ms, est.tpot_ms, est.tokens_per_s_per_gpu) == pytest.approx(
        (373.7723435333319, 41.30136903874391, 64.06245157595392), rel=REL)
    assert est.num_gpus == 24
