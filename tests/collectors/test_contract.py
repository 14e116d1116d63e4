"""The contract between collectors and estimator, for every catalog model at TP 1, 2, 4 and 8: every op
case the estimator builds for the model is one the collectors will measure (`collect run --model M --tp
1,2,4,8` plans it, and the op's collector builds it rather than refusing it), and a database holding what
that run measures answers the estimator's lookups as measured or interpolated, never roofline.

The builds run on this CPU with the numeric axes shrunk (the same categoricals: dtype, KV format, heads,
window, routing, expert split); a refusal is accepted only where the CPU lacks a GPU kernel the target has
(block-scaled fp8 or fp4 tensor-core GEMMs). The database rows are the planned cases with plausible
latencies (tests/fixtures/tinydb.py): what is under test is which cases exist, not their timing.
"""
import dataclasses
import re

import numpy as np
import pytest
from fixtures.tinydb import from_cases

from collectors.cases import dedupe
from collectors.registry import DeviceCtx, Unsupported, load_all
from estimator.collect_cases import DECODE_STEPS, PREFILL_STEPS, layouts, model_cases
from estimator.engine import EngineConfig
from estimator.models.catalog import catalog_ids, load_model
from estimator.steps import StepModel
from perfdb.errors import InfeasibleError
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend, Dtype, OpKind, Phase, Source

CPU = DeviceCtx("cpu")
TPS = [1, 2, 4, 8]
# what a CPU host may lack that the target GPU has: a refusal naming one of these is not a contract breach
HARDWARE_ONLY = re.compile(r"no (block-scaled|per-tensor) fp8 kernel here|needs Blackwell|no nvfp4 kernel here")
# the steps between the collected ones: answered by interpolation
PREFILL_BETWEEN = ((2, 2048), (1, 600), (8, 1024))
DECODE_BETWEEN = ((4, 1500), (64, 3000), (200, 6000))


def _system(model) -> str:
    fp4 = Dtype.NVFP4 in (model.gemm_quant, model.moe_quant, model.attn_quant)
    return "b200_sxm" if fp4 else "h200_sxm"


def _shrunk(case):
    """The same categoricals on CPU-sized numeric axes (MoE: narrow experts of the same count and split)."""
    small = {n: min(int(getattr(case, n)), cap) for n, cap in
             {"m": 4, "n": 256, "k": 256, "batch": 1, "seq_len": 16, "prefix_len": 16, "kv_len": 48,
              "num_tokens": 8, "msg_bytes": 1024}.items() if n in case.NUMERIC}
    if case.KIND == OpKind.MOE:
        small.update(hidden=128, inter=32 * case.moe_tp)
    if case.KIND == OpKind.ELEMENTWISE:
        small.update(hidden=min(case.hidden, 512))  # an embedding table of vocab x hidden is not the point
    return dataclasses.replace(case, **small)


_BUILT: set = set()  # (family, categoricals) already built by an earlier model: models share most of them


def _new_combos(cases):
    """One case per distinct (op family, categoricals) not yet built in this session."""
    out = {}
    for case in cases:
        combo = (case.KIND, tuple(sorted(case.categoricals().items())))
        if combo not in _BUILT:
            out.setdefault(combo, case)
    _BUILT.update(out)
    return list(out.values())


@pytest.mark.parametrize("model_id", catalog_ids())
def test_collectors_measure_what_the_estimator_asks_for(model_id, tmp_path):
    model = load_model(model_id)
    system = load_system(_system(model))
    planned = model_cases(model, system, TPS)
    assert planned.cases, planned.skipped

    registry = load_all()
    for case in _new_combos(c for c in planned.cases if c.KIND != OpKind.COMM):  # comm: torchrun, test_comm_gloo.py
        try:
            registry[case.KIND].build(_shrunk(case), CPU).fn()
        except Unsupported as exc:
            assert HARDWARE_ONLY.search(str(exc)), f"{model_id}: collectors refuse {case.KIND.value} {case.categoricals()}: {exc}"

    root = from_cases(tmp_path / "db", dedupe(planned.cases), system.name, Backend.TORCH, "contract")
    view = PerfDB(root).view(system.name, Backend.TORCH)
    for tp in TPS:
        for parallel in layouts(model, tp):
            try:
                step = StepModel.build(model, system, parallel, EngineConfig(Backend.TORCH), view)
            except InfeasibleError:
                continue
            steps = [(Phase.PREFILL, b, s, 0, 0, 0) for b, s in PREFILL_STEPS + PREFILL_BETWEEN] + \
                    [(Phase.DECODE, 0, 0, 0, b, kv) for b, kv in DECODE_STEPS + DECODE_BETWEEN]
            for request, result in zip(steps, step.steps([(p, *map(np.asarray, rest)) for p, *rest in steps]),
                                       strict=True):
                bad = [(o.name, o.source.value) for o in result.ops
                       if o.name != "step_overhead" and o.source not in (Source.MEASURED, Source.INTERPOLATED)]
                assert not bad, f"{model_id} {parallel} {request}: {bad}"
