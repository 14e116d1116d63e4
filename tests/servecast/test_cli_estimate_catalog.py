"""Every model config the reference tool bundles (../shared/data/model_configs): `servecast estimate` on
8x B200 at TP 8 answers, or says in one message why the deployment cannot hold the model."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servecast.cli import app

REF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "model_configs"
CONFIGS = sorted(p for p in REF.glob("*_config.json") if not p.name.endswith("_hf_quant_config.json")) if REF.is_dir() else []
# the deployments too small for these checkpoints: bf16 GLM-5.x (745B) and fp8 DeepSeek-V4-Pro / Kimi-K3
# (1.6T / 2.8T parameters) do not fit 8 x 180 GiB
CANNOT_HOLD = {"zai-org--GLM-5", "zai-org--GLM-5.1", "zai-org--GLM-5.2", "zai-org--GLM-5.3",
               "sgl-project--DeepSeek-V4-Pro-FP8", "moonshotai--Kimi-K3"}


def _model_dir(cfg: Path, root: Path) -> Path:
    stem = cfg.name[: -len("_config.json")]
    d = root / stem
    d.mkdir()
    shutil.copy(cfg, d / "config.json")
    quant = cfg.with_name(stem + "_hf_quant_config.json")
    if quant.is_file():
        shutil.copy(quant, d / "hf_quant_config.json")
    return d


@pytest.mark.skipif(not CONFIGS, reason="../shared/data/model_configs not present")
def test_estimate_answers_for_every_bundled_config(tmp_path):
    runner = CliRunner()
    answered, cannot, other = [], [], []
    for cfg in CONFIGS:
        d = _model_dir(cfg, tmp_path)
        res = runner.invoke(app, ["estimate", "--model", str(d), "--system", "b200_sxm", "--backend", "trtllm",
                                  "--tp", "8", "--concurrency", "8", "--isl", "2000", "--osl", "200"],
                            env={"COLUMNS": "400"})
        text = res.output.strip()
        if res.exit_code == 0 and "ttft_ms" in text:
            answered.append(d.name)
        elif res.exception is None or isinstance(res.exception, SystemExit):
            assert len(text.splitlines()) == 1 and "Traceback" not in text, text
            (cannot if text.startswith("infeasible:") else other).append((d.name, text))
        else:
            other.append((d.name, repr(res.exception)))
    assert len(CONFIGS) >= 89 and not other, other
    assert {name for name, _ in cannot} == CANNOT_HOLD
    assert all("weights need" in t or "no KV-cache memory" in t for _, t in cannot)
    assert len(answered) + len(cannot) >= 0.95 * len(CONFIGS)
