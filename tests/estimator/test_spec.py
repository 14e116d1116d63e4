"""Speculative decoding: the accepted-length chain, the default acceptance's scope, what a verify step and
its draft passes price, and the acceptance fit (scripts/fit_spec_acceptance.py) on a small real table."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from estimator.engine import EngineConfig, resolve
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.spec import (
    LITERATURE_ACCEPTANCE,
    MTP_ACCEPTANCE,
    MTP_ACCEPTANCE_PROVENANCE,
    accepted_length,
    default_acceptance,
)
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend, Phase

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fit_spec_acceptance.py"


def test_accepted_length_is_a_chain():
    for k in range(5):
        assert accepted_length(1.0, k) == k + 1          # every draft accepted: k drafts + the target's token
        assert accepted_length(0.0, k) == 1.0            # none: the target's token alone
    assert accepted_length(0.6, 3) == pytest.approx(1 + 0.6 + 0.36 + 0.216)
    # per depth: a later draft counts only when every earlier one was accepted
    assert accepted_length((0.9, 0.5), 3) == pytest.approx(1 + 0.9 + 0.45 + 0.225)
    assert accepted_length((0.9, 0.0), 3) == pytest.approx(1.9)
    lengths = [accepted_length(a, 3) for a in np.linspace(0, 1, 11)]
    assert lengths == sorted(lengths)


def test_the_fitted_acceptance_reaches_only_the_models_it_was_fitted_on():
    assert default_acceptance("DeepseekV3ForCausalLM") == MTP_ACCEPTANCE
    for arch in ("Qwen3ForCausalLM", "LlamaForCausalLM", None):
        assert default_acceptance(arch) == LITERATURE_ACCEPTANCE
    assert "fit_spec_acceptance.py" in MTP_ACCEPTANCE_PROVENANCE and "CV" in MTP_ACCEPTANCE_PROVENANCE
    sys_, par = load_system("h200_sxm"), ParallelConfig(tp=8)
    dsr1 = resolve(EngineConfig(Backend.TRTLLM, spec_tokens=3), sys_, par, "DeepseekV3ForCausalLM")
    assert dsr1.tokens_per_step == accepted_length(MTP_ACCEPTANCE, 3)
    other = resolve(EngineConfig(Backend.TRTLLM, spec_tokens=3), sys_, par, "Qwen3ForCausalLM")
    assert other.tokens_per_step == accepted_length(LITERATURE_ACCEPTANCE, 3)
    given = resolve(EngineConfig(Backend.TRTLLM, spec_tokens=3, spec_acceptance=0.5), sys_, par, "DeepseekV3ForCausalLM")
    assert given.tokens_per_step == accepted_length(0.5, 3)   # an explicit acceptance wins


@pytest.fixture(scope="module")
def dsr1():
    return load_model("deepseek-ai/DeepSeek-R1"), load_system("b200_sxm"), PerfDB(None).view("b200_sxm", Backend.TRTLLM)


def _model(dsr1, par, k):
    model, system, view = dsr1
    return StepModel.build(model, system, par, EngineConfig(Backend.TRTLLM, spec_tokens=k), view)


def test_verify_prices_the_draft_queries_in_decode_attention(dsr1):
    """Each request's 1 + k verified queries read its KV once and fold into its query heads (FlashMLA:
    s_q x h_q rows; trtllm-gen MLA generation likewise): the attention case carries (1 + k) x the heads.
    With all 128 heads on a rank (attention DP) that costs more than one query and at most (1 + k) x it
    (16 heads per rank under TP8 fold into the kernel's 64-row tile: about free, as the tables measure)."""
    dep8, tp8 = ParallelConfig(tp=1, attn_dp=8, moe_tp=1, moe_ep=8), ParallelConfig(tp=8, moe_tp=1, moe_ep=8)
    for par in (dep8, tp8):
        for k in (1, 3):
            attn = [u for u in _model(dsr1, par, k).composer.ops(0, 0, 0, 64, 8192) if u.name == "attn_decode"]
            assert [u.case.num_heads for u in attn] == [dsr1[0].num_heads // par.tp * (1 + k)]

    def attn_ms(sm, batch):
        step = sm.step(Phase.DECODE, 0, 0, 0, batch, 8192)
        return next(float(o.ms) for o in step.ops if o.name == "attn_decode")

    for batch in (64, 2048):
        base = attn_ms(_model(dsr1, dep8, 0), batch)
        for k in (1, 3):
            assert base < attn_ms(_model(dsr1, dep8, k), batch) <= (1 + k) * base


def test_draft_passes_cost_grows_with_the_draft_tokens(dsr1):
    """k draft passes per decode step, each with its decoder layer, eh_proj and logits."""
    tp8 = ParallelConfig(tp=8, moe_tp=1, moe_ep=8)
    costs = []
    for k in (1, 2, 3):
        step = _model(dsr1, tp8, k).step(Phase.DECODE, 0, 0, 0, 16, 2048)
        parts = {o.name: float(o.ms) for o in step.ops}
        assert {"spec_draft", "spec_draft_eh_proj", "spec_draft_head"} <= set(parts)
        costs.append(sum(parts[n] for n in ("spec_draft", "spec_draft_eh_proj", "spec_draft_head")))
    assert costs[0] < costs[1] < costs[2]
    assert costs[2] > 2.5 * costs[0]           # about k times one pass (the verify's layer share grows a little)


def _fit_script():
    spec = importlib.util.spec_from_file_location("fit_spec_acceptance", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


HEADER = ("id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,gemm_quant_mode,"
          "moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,moe_ep_size,prefill_batch_size,"
          "prefill_num_workers,prefill_tp_size,prefill_pp_size,prefill_attention_dp_size,prefill_moe_tp_size,"
          "prefill_moe_ep_size,decode_batch_size,decode_num_workers,decode_tp_size,decode_pp_size,"
          "decode_attention_dp_size,decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,silicon_tpot_ms,"
          "spec_decoding,spec_method,spec_tokens")


def _table(path: Path, tpot: dict[str, float] | None = None) -> Path:
    """Four DeepSeek-R1 TRT-LLM agg deployments on h200 (two layouts x 1 / 3 draft tokens), two loads each,
    and one spec-off row the fit must ignore."""
    lines = [HEADER]
    for layout, (tp, dp, ep) in {"tp8": (8, 1, 8), "dep8": (1, 8, 8)}.items():
        for k in (1, 3):
            for conc in (8, 64):
                rid = f"{layout}_k{k}_c{conc}"
                lines.append(f"{rid},silicon_concurrency={conc},trtllm,1.0.0,deepseek-ai/DeepSeek-R1,h200_sxm,fp8,agg,"
                             f"1024,1024,fp8,fp8_block,{conc},{tp},1,{dp},1,{ep}," + "," * 14
                             + f"300,{(tpot or {}).get(rid, 10.0)},on,mtp,{k}")
    lines.append("off,silicon_concurrency=8,trtllm,1.0.0,deepseek-ai/DeepSeek-R1,h200_sxm,fp8,agg,1024,1024,fp8,"
                 "fp8_block,8,8,1,1,1,8," + "," * 14 + "300,10,off,,")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_fit_recovers_the_acceptance_that_made_the_table(tmp_path, tiny_db, capsys):
    """Measured TPOT made by the estimator at acceptance 0.5: the fit, every held-out fold and the
    printed figures must find 0.5 again (and the literature value must be worse)."""
    from estimator.runs import predict_runs, read_runs

    mod = _fit_script()
    db = PerfDB(tiny_db)
    rows = mod.spec_rows(read_runs(_table(tmp_path / "seed.csv")))
    assert len(rows) == 8                      # the spec-off row is not evidence
    truth = {p.id: p.tpot_ms for p in predict_runs(rows, db, spec_acceptance=0.5)}
    assert all(np.isfinite(list(truth.values())))
    rows = mod.spec_rows(read_runs(_table(tmp_path / "runs.csv", truth)))
    grid = (0.4, 0.5, 0.6, LITERATURE_ACCEPTANCE)
    res = mod.report(rows, mod.predictions(rows, db, grid), grid, folds=2, seed=0)
    assert res["fitted"] == 0.5 and res["cv_picks"] == [0.5, 0.5]
    assert res["in_sample"] == pytest.approx(0.0, abs=1e-6) and res["cv"] == pytest.approx(0.0, abs=1e-6)
    assert res["literature"] > 10.0
    assert res["loso_picks"] == []             # one system: nothing to hold out


def test_the_fit_refuses_a_table_without_speculative_rows(tmp_path, capsys):
    lines = _table(tmp_path / "all.csv").read_text().splitlines()
    path = tmp_path / "plain.csv"
    path.write_text("\n".join([lines[0], lines[-1]]) + "\n")     # the spec-off row alone
    with pytest.raises(SystemExit) as exc:
        _fit_script().main(["--runs", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "speculative" in err and "Traceback" not in err
