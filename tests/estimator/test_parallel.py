"""Parallel layout validation: each failed constraint is named in the message."""
from __future__ import annotations

import pytest

from estimator.models import load_model
from estimator.parallel import ParallelConfig, moe_split, validate_parallel
from perfdb.errors import InfeasibleError, InputError


def test_positive_integers():
    with pytest.raises(InputError, match="tp=0"):
        ParallelConfig(tp=0)


@pytest.mark.parametrize("model,par,msg", [
    ("Qwen/Qwen3-32B", ParallelConfig(tp=3), "64 attention heads are not divisible by tp=3"),
    ("deepseek-ai/DeepSeek-R1", ParallelConfig(tp=8, moe_tp=2, moe_ep=2), "moe_tp\\*moe_ep = 2\\*2 must equal"),
    ("deepseek-ai/DeepSeek-R1", ParallelConfig(tp=1, attn_dp=6, moe_ep=6), "256 experts are not divisible by moe_ep=6"),
    ("meta-llama/Llama-3.1-8B", ParallelConfig(tp=1, pp=64), "pp=64 exceeds the 32 layers"),
    ("meta-llama/Llama-3.1-8B", ParallelConfig(tp=2, moe_tp=1, moe_ep=2), "dense model"),
    ("mistralai/Mixtral-8x7B-v0.1", ParallelConfig(tp=16, moe_tp=1, moe_ep=16), "8 experts are not divisible by moe_ep=16"),
    ("meta-llama/Llama-3.1-8B", ParallelConfig(tp=3), "32 attention heads are not divisible by tp=3"),
])
def test_constraint_named(model, par, msg):
    with pytest.raises(InfeasibleError, match=msg):
        validate_parallel(load_model(model), par)


def test_valid_layouts_and_default_moe_split():
    validate_parallel(load_model("deepseek-ai/DeepSeek-R1"), ParallelConfig(tp=8, moe_ep=8))
    validate_parallel(load_model("deepseek-ai/DeepSeek-R1"), ParallelConfig(tp=1, attn_dp=8, moe_ep=8))
    validate_parallel(load_model("meta-llama/Llama-3.1-70B"), ParallelConfig(tp=16))  # KV heads replicated
    assert moe_split(ParallelConfig(tp=4)) == (4, 1)
