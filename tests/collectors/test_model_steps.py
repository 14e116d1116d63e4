"""Whole-model steps (the chain check's measuring half) on CPU, with real transformers architectures:
the servecast wiring computes exactly what transformers' own attention computes, and the steps time."""
import json
from importlib import resources

import pytest
import torch

pytest.importorskip("transformers", reason="the chain check builds models with transformers (pip install transformers)")

from collectors.model_steps import (  # noqa: E402
    StepPoint,
    build_model,
    decode_inputs,
    time_step,
    tiny_config,
    truncated_config,
)
from collectors.timer import TimerConfig  # noqa: E402

MODELS = ["meta-llama--Meta-Llama-3.1-8B", "Qwen--Qwen3-30B-A3B", "deepseek-ai--DeepSeek-V3"]


def catalog_tiny(name: str, layers: int = 2) -> dict:
    entry = json.loads((resources.files("estimator") / "catalog" / f"{name}.json").read_text())
    return tiny_config(truncated_config(entry["config"], layers))


def _use_transformers_attention(model) -> None:
    """Back to transformers' own sdpa path (and its expanded MLA): the reference."""
    for module in model.modules():
        if hasattr(module, "_servecast_expanded_forward"):
            module.forward = module._servecast_expanded_forward
        if hasattr(module, "config"):
            module.config._attn_implementation = "sdpa"


@pytest.mark.parametrize("name", MODELS)
def test_decode_through_our_kernels_equals_transformers_attention(name):
    torch.manual_seed(0)
    model = build_model(catalog_tiny(name), "cpu")
    kwargs = decode_inputs(model, StepPoint("decode", 3, 40), "cpu")
    with torch.no_grad():
        ours = model(**kwargs).logits
        _use_transformers_attention(model)
        ref = model(**{k: v for k, v in kwargs.items() if not k.startswith("servecast_")}).logits
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_prefill_and_decode_steps_time_and_repeat():
    model = build_model(catalog_tiny(MODELS[1]), "cpu")
    timer = TimerConfig(budget_s=0.01, warmup_s=0.0, min_reps=3, max_reps=5, flush_bytes=0, use_graph=False)
    for point in (StepPoint("prefill", 2, 24), StepPoint("decode", 2, 30)):
        timing = time_step(model, point, "cpu", timer)
        assert timing.n >= 3 and timing.median_ms > 0
    # every repetition writes the new token at the same cache slot: the cache never runs past its end
    kwargs = decode_inputs(model, StepPoint("decode", 1, 15), "cpu")
    with torch.no_grad():
        first = model(**kwargs).logits
        for _ in range(5):
            again = model(**kwargs).logits
    torch.testing.assert_close(first, again)


def test_truncated_deepseek_keeps_a_dense_and_moe_layers():
    entry = json.loads((resources.files("estimator") / "catalog" / "deepseek-ai--DeepSeek-V3.json").read_text())
    cfg = truncated_config(entry["config"], 3)
    assert cfg["num_hidden_layers"] == 3 and cfg["first_k_dense_replace"] == 1
    assert "quantization_config" not in cfg
