"""Model catalog: every reference config parses; quantization and aliases resolve; errors list options."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from estimator.models import AttentionKind, catalog_ids, load_model, parse_config
from perfdb.errors import DataError, NotFoundError
from perfdb.types import Dtype

REF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "model_configs"
REF_CONFIGS = sorted(p for p in REF.glob("*_config.json") if not p.name.endswith("hf_quant_config.json")) if REF.is_dir() else []


@pytest.mark.skipif(not REF_CONFIGS, reason="../shared/data/model_configs not present")
@pytest.mark.parametrize("path", REF_CONFIGS, ids=lambda p: p.name)
def test_every_reference_config_loads(path):
    m = load_model(str(path))
    assert m.num_layers > 0 and m.hidden > 0 and m.total_params() > 1e8


def test_param_counts_match_published_sizes():
    # published totals: 671B (DeepSeek-V3), 70.6B (Llama-3.1-70B), 117B (gpt-oss-120b), 32.8B (Qwen3-32B)
    for name, billions in [("deepseek-ai/DeepSeek-R1", 671), ("meta-llama/Llama-3.1-70B", 70.6),
                           ("openai/gpt-oss-120b", 116.8), ("Qwen/Qwen3-32B", 32.8)]:
        assert load_model(name).total_params() / 1e9 == pytest.approx(billions, rel=0.01)


def test_architectures_and_quant():
    r1 = load_model("deepseek-ai/DeepSeek-R1")
    assert r1.attention == AttentionKind.MLA and r1.num_dense_layers == 3 and r1.num_experts == 256
    assert r1.shared_inter == 2048 and r1.gemm_quant == Dtype.FP8_BLOCK
    oss = load_model("openai/gpt-oss-120b")
    assert oss.num_sliding_layers == 18 and oss.sliding_window == 128 and oss.attention_sinks
    assert oss.moe_quant == Dtype.MXFP4 and oss.attn_quant == Dtype.BF16
    nv = load_model("nvidia/DeepSeek-V3.1-NVFP4")
    assert nv.moe_quant == Dtype.NVFP4 and nv.attn_quant == Dtype.BF16 and nv.kv_dtype == Dtype.FP8
    assert load_model("nvidia/Llama-3.1-70B-Instruct-FP8").gemm_quant == Dtype.FP8
    assert load_model("moonshotai/Kimi-K2.5").num_experts == 384
    assert load_model("mistralai/Mixtral-8x7B-v0.1").topk == 2
    mistral = load_model("mistralai/Mistral-7B-v0.1")  # every layer slides over 4096 tokens
    assert mistral.num_sliding_layers == 32 and mistral.sliding_window == 4096
    assert mistral.total_params() / 1e9 == pytest.approx(7.24, rel=0.01)


def test_aliases_and_overrides():
    assert load_model("meta-llama/Llama-3.1-70B") == load_model("meta-llama/Meta-Llama-3.1-70B")
    m = load_model("openai/gpt-oss-120b", gemm_quant=Dtype.FP8, moe_quant=Dtype.NVFP4, kv_dtype=Dtype.FP8)
    assert (m.gemm_quant, m.attn_quant, m.moe_quant, m.kv_dtype) == (Dtype.FP8, Dtype.FP8, Dtype.NVFP4, Dtype.FP8)
    assert "Qwen/Qwen3-32B" in catalog_ids()


def test_other_publishers_checkpoints_resolve_to_the_catalog_architecture():
    from estimator.models.catalog import base_name, family_name

    assert base_name("nvidia/DeepSeek-R1-FP4") == "deepseek-r1" and base_name("x/Qwen3-8B-Instruct-FP8") == "qwen3-8b"
    r1 = load_model("nvidia/DeepSeek-R1-FP4", moe_quant=Dtype.NVFP4)
    assert r1.name == "deepseek-ai/DeepSeek-R1" and r1.moe_quant == Dtype.NVFP4
    assert load_model("nvidia/Qwen3-235B-A22B-FP8").num_layers == load_model("Qwen/Qwen3-235B-A22B").num_layers
    # one key per architecture: checkpoints and identical configs share it, different ones do not
    assert family_name("Qwen/Qwen3-32B-FP8") == family_name("Qwen/Qwen3-32B") == "qwen3-32b"
    assert family_name("nvidia/Llama-3.1-70B-Instruct-FP8") == family_name("meta-llama/Llama-3.1-70B")
    assert family_name("deepseek-ai/DeepSeek-V3") == family_name("nvidia/DeepSeek-R1-FP4") == "deepseek-r1"
    assert family_name("moonshotai/Kimi-K2.5") != family_name("deepseek-ai/DeepSeek-R1")
    assert family_name("nobody/Thing-9B-AWQ") == "thing-9b"
    with pytest.raises(NotFoundError):
        load_model("nvidia/Nothing-R1-FP4")


def test_directory_and_hf_cache(tmp_path):
    src = Path(__file__).resolve().parents[2] / "estimator" / "catalog" / "Qwen--Qwen3-8B.json"
    cfg = json.loads(src.read_text())["config"]
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    assert load_model(str(d)).num_layers == 36
    snap = tmp_path / "hf" / "hub" / "models--acme--tiny" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    shutil.copy(d / "config.json", snap / "config.json")
    assert load_model("acme/tiny", hf_hub=tmp_path / "hf" / "hub").hidden == 4096


def test_unknown_architecture_lists_supported():
    with pytest.raises(NotFoundError, match="supported: .*LlamaForCausalLM"):
        parse_config({"architectures": ["MambaForCausalLM"]}, "x")
    with pytest.raises(NotFoundError, match="catalog: "):
        load_model("nobody/nothing")


def test_more_architectures_and_release_suffixes():
    """GLM-4.5/4.6 (DeepSeek-style dense-first layers and shared expert on a GQA MoE), DeepSeek-V3.2
    (priced as V3's dense MLA), Kimi-K2 (fp8 blocks; Thinking: int4 experts), and checkpoint names with
    release dates or thinking/instruct variants resolving to their architecture."""
    from estimator.models.catalog import base_name

    glm = load_model("zai-org/GLM-4.6")
    assert glm.architecture == "Glm4MoeForCausalLM" and glm.num_dense_layers == 3 and glm.shared_inter == 1536
    assert glm.num_experts == 160 and glm.topk == 8 and glm.num_kv_heads == 8
    assert glm.total_params() / 1e9 == pytest.approx(355, rel=0.03)           # published: 355B
    assert load_model("zai-org/GLM-4.5-Air").total_params() / 1e9 == pytest.approx(106, rel=0.03)
    v32 = load_model("deepseek-ai/DeepSeek-V3.2-Exp")
    assert v32.attention == AttentionKind.MLA and v32.num_sparse_layers == 61 and v32.sparse.topk == 2048
    # DSA indexer on every layer (DeepSeek-V3.2 inference model.py): wq_b from the 1,536 q_lora
    # bottleneck to 64 heads x 128, wk and weights_proj from the 7,168 hidden state
    indexer = 61 * (1536 * 64 * 128 + 7168 * (128 + 64))
    assert v32.total_params() == load_model("deepseek-ai/DeepSeek-V3").total_params() + indexer
    assert load_model("moonshotai/Kimi-K2-Instruct").gemm_quant == Dtype.FP8_BLOCK
    assert load_model("moonshotai/Kimi-K2-Thinking").moe_quant == Dtype.INT4              # int4 weight-only experts
    assert load_model("moonshotai/Kimi-K2-Instruct").total_params() / 1e9 == pytest.approx(1030, rel=0.03)
    assert load_model("Qwen/Qwen3-Coder-480B-A35B-Instruct").total_params() / 1e9 == pytest.approx(480, rel=0.02)
    assert load_model("mistralai/Mixtral-8x22B-Instruct-v0.1").total_params() / 1e9 == pytest.approx(141, rel=0.02)
    for name, dense_b in [("Qwen/Qwen3-14B", 14.8), ("Qwen/Qwen3-4B", 4.0), ("Qwen/Qwen2.5-72B-Instruct", 72.7)]:
        assert load_model(name).total_params() / 1e9 == pytest.approx(dense_b, rel=0.03)
    assert base_name("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8") == "qwen3-235b-a22b"
    assert base_name("deepseek-ai/DeepSeek-R1-0528") == "deepseek-r1" and base_name("Qwen/Qwen3-8B") == "qwen3-8b"
    assert load_model("Qwen/Qwen3-235B-A22B-Thinking-2507").name == "Qwen/Qwen3-235B-A22B"
    assert load_model("MiniMaxAI/MiniMax-M2.1").num_experts == 256


def _qwen35_text() -> dict:
    cfg = json.loads((REF / "Qwen--Qwen3.5-35B-A3B_config.json").read_text())
    return cfg


@pytest.mark.skipif(not REF_CONFIGS, reason="../shared/data/model_configs not present")
@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.update(layer_types=t["layer_types"][:-1]), "'layer_types' lists 39 layers; num_hidden_layers is 40"),
    (lambda t: t.update(layer_types=["mamba"] * 40), "'layer_types' has unknown layer type(s) mamba; accepted: linear_attention, full_attention"),
    (lambda t: t.pop("linear_num_value_heads"), "lacks required field 'linear_num_value_heads'"),
    (lambda t: t.update(num_experts_per_tok="eight"), "malformed field"),
])
def test_hybrid_config_errors_name_the_field(edit, needle):
    cfg = _qwen35_text()
    edit(cfg["text_config"])
    with pytest.raises(DataError, match=re.escape(needle)):
        parse_config(cfg, "bad-qwen3.5")


@pytest.mark.skipif(not REF_CONFIGS, reason="../shared/data/model_configs not present")
def test_nemotron_pattern_errors_name_the_field():
    cfg = json.loads((REF / "nvidia--NVIDIA-Nemotron-3-Nano-30B-A3B-BF16_config.json").read_text())
    cfg["hybrid_override_pattern"] = cfg["hybrid_override_pattern"].replace("E", "X", 1)
    with pytest.raises(DataError, match=r"'hybrid_override_pattern' has unknown layer type\(s\) X; accepted: M, \*, E, -"):
        parse_config(cfg, "bad-nemotron")
