"""Speculative decoding: how many tokens a verify step emits. One place, read by the static estimate and
the simulator alike (both through `ResolvedEngine.tokens_per_step`).

The engines (SGLang EAGLE with topk 1, TensorRT-LLM MTP) verify a chain of k draft tokens per request and
keep the longest accepted prefix plus the target's own next token (greedy: a draft token is accepted when
it equals the target's argmax; SGLang speculative/eagle_info.py verify, TRT-LLM _torch/speculative/mtp.py
sample_and_accept_draft_tokens). With a_i the probability that draft i is accepted given drafts 1..i-1
were, a step emits 1 + a_1 + a_1 a_2 + ... + a_1...a_k tokens per request (`accepted_length`).

What a draft's acceptance is depends on the model, the draft module and the text. The constants here:

- `LITERATURE_ACCEPTANCE` 0.85: DeepSeek-V3 technical report sec. 5.4.3 (85-90% acceptance of the second
  token of its MTP module, natural text); kept for every model without training evidence.
- `MTP_ACCEPTANCE`: fitted on the TPOT of the training table's speculative rows (DeepSeek-R1 MTP, 1-3
  draft tokens, SGLang and TRT-LLM, InferenceX's random-token client; docs/estimator.md "Speculative
  decoding"). `python scripts/fit_spec_acceptance.py` refits it and prints its cross-validated error.
  It applies to `FITTED_ARCHITECTURES` only: no other model is in that evidence.
"""
from __future__ import annotations

LITERATURE_ACCEPTANCE = 0.85

# `python scripts/fit_spec_acceptance.py --runs <enriched e2e_train_silicon.csv>` (406 DeepSeek-R1 MTP rows,
# 238 deployments, 1-3 draft tokens, SGLang + TRT-LLM; uncalibrated static estimate, mean |log| TPOT loss).
# Refitted 2026-12-06 when the enrichment stopped giving nine H100 SGLang runs listed twice (once with EAGLE,
# once without: calibrate/twins.py) speculative decoding: 0.625 -> 0.650.
MTP_ACCEPTANCE = 0.65
MTP_ACCEPTANCE_PROVENANCE = (
    "fit on the training table's speculative rows' TPOT (scripts/fit_spec_acceptance.py): TPOT median |error| "
    "14.1% grouped 5-fold CV by deployment (every fold picks 0.625-0.650), 14.3% one system out, against 25.1% "
    "with the literature 0.85; 1 and 3 draft tokens each pick 0.675 alone (one value for every depth); on the "
    "bundled database, the default: on the imported AIConfigurator tables the same fit picks 0.575 (CV 13.7%), "
    "so the value also absorbs the kernel tables' own bias")

# HF architectures whose MTP draft the fit saw (DeepSeek-V3 and R1 share this architecture and MTP module)
FITTED_ARCHITECTURES = frozenset({"DeepseekV3ForCausalLM"})


def default_acceptance(architecture: str | None) -> float:
    """Per-draft acceptance when none is given: the fit where the model's architecture is in its
    evidence, the literature value elsewhere."""
    return MTP_ACCEPTANCE if architecture in FITTED_ARCHITECTURES else LITERATURE_ACCEPTANCE


def accepted_length(acceptance: float | tuple[float, ...], draft_tokens: int) -> float:
    """Expected tokens a request emits per verify step: 1 + a_1 + a_1 a_2 + ... over k draft tokens.
    `acceptance` is one probability for every depth, or one per depth (the last one repeats)."""
    if draft_tokens <= 0:
        return 1.0
    per_depth = (acceptance,) if isinstance(acceptance, (int, float)) else tuple(acceptance)
    total, chain = 1.0, 1.0
    for i in range(draft_tokens):
        chain *= float(per_depth[min(i, len(per_depth) - 1)])
        total += chain
    return total
