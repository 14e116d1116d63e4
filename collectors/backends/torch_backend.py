"""The torch backend: every op family with the collectors' own torch (and Triton) kernels."""
from __future__ import annotations

from collectors.backends import Adapter, torch_builders
from perfdb.types import Backend


def adapter() -> Adapter:
    import torch

    return Adapter(Backend.TORCH, torch.__version__, torch_builders())
