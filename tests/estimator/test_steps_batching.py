"""The batched lookups of StepModel give exactly (bit for bit) what one lookup per op and one step per
request give: the concatenation across ops and requests is a speed-up, never a change of numbers."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.engine import EngineConfig
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend, Phase

CASES = [
    ("Qwen/Qwen3-32B", ParallelConfig(tp=2)),
    ("meta-llama/Llama-3.1-70B", ParallelConfig(tp=4, pp=2)),
    ("deepseek-ai/DeepSeek-R1", ParallelConfig(tp=1, attn_dp=8, moe_ep=8)),
    ("openai/gpt-oss-120b", ParallelConfig(tp=2, moe_ep=2, moe_tp=1)),
]
IDS = [f"{n.split('/')[1]}-{p.label()}" for n, p in CASES]


@pytest.fixture(params=["roofline", "tiny"])
def view(request, tiny_db):
    db = PerfDB(tiny_db) if request.param == "tiny" else PerfDB()
    return db.view("h200_sxm", Backend.TRTLLM, "1.0.0" if request.param == "tiny" else None)


def _sm(name, par, view):
    return StepModel.build(load_model(name), load_system("h200_sxm"), par, EngineConfig(Backend.TRTLLM), view)


@pytest.mark.parametrize("name,par", CASES, ids=IDS)
def test_grouped_lookups_equal_one_lookup_per_op(name, par, view):
    sm = _sm(name, par, view)
    pb = np.array([0.0, 1.0, 2.0, 0.0, 1.0])
    uses = sm.composer.ops(pb, np.array([0.0, 512, 3000, 0, 100]), np.array([0.0, 0, 1024, 0, 0]),
                           np.array([8.0, 0, 0, 64, 31]), np.array([1024.0, 0, 0, 20000, 4096]))
    grouped = sm._lookup_all(uses)
    assert len({type(u.case) for u in uses}) < len(uses)  # some ops do share a lookup
    for use, (ms, src) in zip(uses, grouped, strict=True):
        alone = view.latency(use.case)
        np.testing.assert_array_equal(ms, np.ravel(alone.ms), err_msg=use.name)
        np.testing.assert_array_equal(src, np.ravel(alone.source), err_msg=use.name)


@pytest.mark.parametrize("name,par", CASES, ids=IDS)
def test_many_requests_in_one_pass_equal_one_pass_each(name, par, view):
    sm = _sm(name, par, view)
    requests = [
        (Phase.PREFILL, np.array([1.0, 2.0, 4.0]), 2048, 0, 0, 0),
        (Phase.DECODE, 0, 0, 0, np.array([[1.0], [16.0]]), np.array([512.0, 8192.0])),
        (Phase.MIXED, 1.0, 256, 128, 32, 4096),       # 0-d: one point
        (Phase.DECODE, 0, 0, 0, 7, 3000),
    ]
    together = sm.steps(requests)
    for request, got in zip(requests, together, strict=True):
        alone = sm.steps([request])[0]
        np.testing.assert_array_equal(got.ms, alone.ms)
        assert [(o.name, o.phase, o.source) for o in got.ops] == [(o.name, o.phase, o.source) for o in alone.ops]
        for a, b in zip(got.ops, alone.ops, strict=True):
            np.testing.assert_array_equal(a.ms, b.ms, err_msg=a.name)
