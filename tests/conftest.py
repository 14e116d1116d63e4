"""Markers that depend on the machine: gpu tests run only where CUDA is present, engine and client
tests only where those packages are installed. Nothing is deselected silently: pytest reports skips."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config, items):
    have_cuda = _cuda_available()
    have_engine = any(importlib.util.find_spec(m) for m in ("vllm", "sglang", "tensorrt_llm"))
    have_aiperf = importlib.util.find_spec("aiperf") is not None
    for item in items:
        if "gpu" in item.keywords and not have_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "engines" in item.keywords and not have_engine:
            item.add_marker(pytest.mark.skip(reason="needs vLLM, SGLang or TensorRT-LLM installed"))
        if "clients" in item.keywords and not have_aiperf:
            item.add_marker(pytest.mark.skip(reason="needs aiperf installed (pip install aiperf)"))


@pytest.fixture(scope="session")
def tiny_db(tmp_path_factory):
    """A tiny real Parquet database (tests/fixtures/tinydb.py): h200_sxm / trtllm / 1.0.0, every op
    family. Shared by the session: treat it as read-only (build your own with tinydb.build(tmp_path))."""
    from fixtures.tinydb import build

    return build(tmp_path_factory.mktemp("tinydb"))


# pytest puts tests/ first on sys.path (rootdir conftest, prepend mode); test folders named like the
# packages (tests/perfdb, tests/estimator) would then shadow them as namespace packages, because the
# editable install's finder runs after the path scan. The repository root first makes the real
# packages win.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[0] != _REPO_ROOT:
    sys.path.insert(0, _REPO_ROOT)
