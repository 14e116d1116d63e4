"""Models from the local Hugging Face cache in every command: $HF_HUB_CACHE / $HF_HOME, the snapshot refs/main names."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from estimator.models import load_model
from servecast.cli import run
from servecast.hfcache import hub_cache

CATALOG = Path(__file__).resolve().parents[2] / "estimator" / "catalog" / "Qwen--Qwen3-8B.json"


def _cache(hub: Path, name: str, layers_by_snapshot: dict[str, int], main: str | None) -> None:
    """A hub cache holding `name` with one snapshot per commit (their num_hidden_layers differ)."""
    cfg = json.loads(CATALOG.read_text())["config"]
    repo = hub / ("models--" + name.replace("/", "--"))
    for commit, layers in layers_by_snapshot.items():
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": layers}))
    if main:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(main)


def test_hub_cache_follows_huggingface_hub_rules(tmp_path):
    assert hub_cache({"HF_HUB_CACHE": str(tmp_path / "x"), "HF_HOME": "/nope"}) == tmp_path / "x"
    assert hub_cache({"HF_HOME": str(tmp_path)}) == tmp_path / "hub"
    assert hub_cache({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "huggingface" / "hub"


def test_the_snapshot_refs_main_names_wins(tmp_path):
    # "zzz" sorts last but is not the default revision
    _cache(tmp_path, "acme/refs-model", {"aaa111": 12, "zzz999": 40}, main="aaa111")
    assert load_model("acme/refs-model", hf_hub=tmp_path).num_layers == 12


@pytest.mark.parametrize("env", ["HF_HOME", "HF_HUB_CACHE"])
@pytest.mark.parametrize("command", [
    ["estimate", "--system", "h200_sxm", "--backend", "vllm", "--json"],
    ["simulate", "--system", "h200_sxm", "--backend", "vllm", "--isl", "32", "--osl", "8", "--concurrency", "2",
     "--num-requests", "8", "--plot", ""],
    ["plan", "--system", "h200_sxm", "--backend", "vllm", "--total-gpus", "1", "--isl", "64", "--osl", "16",
     "--ttft", "5000", "--tpot", "100", "--mode", "agg", "--top-n", "1", "--no-simulate"],
])
def test_every_command_finds_a_cached_model(tmp_path, monkeypatch, env, command):
    hub = tmp_path / "hub" if env == "HF_HOME" else tmp_path / "elsewhere"
    _cache(hub, "acme/cached-8b", {"c0ffee": 36}, main="c0ffee")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv(env, str(tmp_path if env == "HF_HOME" else hub))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([command[0], "--model", "acme/cached-8b", *command[1:]])
    assert code == 0, err.getvalue()
