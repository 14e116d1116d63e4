"""Backend adapters: which kernels a row times and which engine version it names.

`torch` (always available) builds every op with the collectors' torch code. The engine adapters
(vllm, sglang, trtllm) are import-guarded: they exist only when the engine is installed, time the
engine's own kernels for the ops they cover, and record every other op as unsupported rather than
label a torch kernel with an engine's name. Where an engine runs exactly torch's kernel (bf16 linear
layers are F.linear -> cuBLAS in all three), the adapter says so in kernel_source.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from collectors.registry import Builder, DeviceCtx, Prepared, Unsupported, load_all
from perfdb.ops import OpCase
from perfdb.types import Backend, OpKind

_MODULES = {Backend.TORCH: "collectors.backends.torch_backend", Backend.VLLM: "collectors.backends.vllm",
            Backend.SGLANG: "collectors.backends.sglang", Backend.TRTLLM: "collectors.backends.trtllm"}


@dataclass(frozen=True)
class Adapter:
    backend: Backend
    version: str
    builders: dict[OpKind, Builder] = field(default_factory=dict)

    def build(self, case: OpCase, ctx: DeviceCtx) -> Prepared:
        builder = self.builders.get(case.KIND)
        if builder is None:
            covered = ", ".join(k.value for k in self.builders) or "none"
            raise Unsupported(f"the {self.backend.value} adapter has no kernel for {case.KIND.value}; it covers: {covered}")
        return builder(case, ctx)


def torch_builders() -> dict[OpKind, Builder]:
    return {kind: c.build for kind, c in load_all().items()}


def delegate(kernel_note: str, builder: Builder) -> Builder:
    """An engine op that runs the same kernel as torch's: same build, kernel_source annotated."""
    def build(case: OpCase, ctx: DeviceCtx) -> Prepared:
        prepared = builder(case, ctx)
        return Prepared(prepared.fn, f"{prepared.kernel_source}:{kernel_note}", prepared.graph_safe, prepared.hooks)
    return build


def get_adapter(backend: Backend) -> Adapter:
    """The adapter for `backend`; an engine that is not installed raises NotFoundError saying so."""
    module = importlib.import_module(_MODULES[backend])
    return module.adapter()
