from __future__ import annotations

import pytest

from calibrate.deployment import DeploymentFlags, load_spec, parse_role, resolve
from calibrate.runs import Mode
from perfdb.errors import DataError, InputError
from perfdb.types import Backend

SPEC = """
deployment:
  model: deepseek-ai/DeepSeek-R1
  system: gb200
  backend: trtllm
  version: 1.2.0rc6
  mode: disagg
  prefill: {tp: 4, ep: 4, workers: 2}
  decode: {tp: 8, moe_tp: 2, moe_ep: 4, workers: 1}
  engine: {max_batch_size: 256}
"""


def test_spec_file_and_flag_override(tmp_path):
    path = tmp_path / "deployment.yaml"
    path.write_text(SPEC)
    dep = load_spec(path)
    assert dep.mode is Mode.DISAGG and dep.backend is Backend.TRTLLM and dep.num_gpus == 4 * 2 + 8
    assert dep.engine.max_batch_size == 256 and dep.decode.parallel.moe_tp == 2
    over = resolve(path, DeploymentFlags(decode="tp=8,ep=8,workers=2", version="1.3.0"))
    assert over.decode.workers == 2 and over.version == "1.3.0" and over.prefill == dep.prefill
    agg = resolve(path, DeploymentFlags(mode="agg", agg="tp=8,ep=8"))
    assert agg.mode is Mode.AGG and agg.prefill is None and agg.num_gpus == 8
    assert resolve(None, DeploymentFlags()) is None


def test_bad_specs(tmp_path):
    with pytest.raises(InputError, match="unknown key 'tq'"):
        parse_role("tq=2", "agg")
    with pytest.raises(InputError, match="not an integer"):
        parse_role({"tp": "two"}, "agg")
    with pytest.raises(InputError, match="lacks system"):
        resolve(None, DeploymentFlags(model="m", backend="vllm", mode="agg", agg="tp=1"))
    with pytest.raises(InputError, match="needs prefill and decode"):
        resolve(None, DeploymentFlags(model="m", system="h200_sxm", backend="vllm", mode="disagg", prefill="tp=1"))
    (tmp_path / "x.yaml").write_text("model: [unclosed")
    with pytest.raises(DataError, match="x.yaml"):
        load_spec(tmp_path / "x.yaml")
