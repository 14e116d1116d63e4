"""GPU and system specifications: one YAML per system in perfdb/systems/, loaded into frozen dataclasses.

Figures are dense datasheet peaks (sparse figures are never the roofline). Units are in field names.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

import yaml

from perfdb.errors import DataError, NotFoundError
from perfdb.types import Dtype


@dataclass(frozen=True)
class GpuSpec:
    name: str                      # marketing name, e.g. "NVIDIA H100 80GB HBM3"
    sm_version: int                # 90 = Hopper, 100 = Blackwell, 80 = Ampere; 0 = CPU host
    mem_bytes: int
    mem_bw_bytes_per_s: float
    fp32_dense_flops: float
    bf16_dense_flops: float
    fp8_dense_flops: float         # 0 where the tensor cores have no fp8
    fp4_dense_flops: float         # 0 where the tensor cores have no fp4
    int8_dense_flops: float

    def peak_flops(self, dtype: Dtype) -> float:
        """Dense tensor-core peak for the math an op of this dtype runs.

        Weight-only formats run their math at the activation precision where the GPU lacks native
        support: mxfp4 on Hopper is w4a16 (bf16 math); fp8 on Ampere is emulated as bf16.
        """
        table = {
            Dtype.FP32: self.fp32_dense_flops,
            Dtype.BF16: self.bf16_dense_flops,
            Dtype.FP16: self.bf16_dense_flops,
            Dtype.FP8: self.fp8_dense_flops or self.bf16_dense_flops,
            Dtype.FP8_BLOCK: self.fp8_dense_flops or self.bf16_dense_flops,
            Dtype.NVFP4: self.fp4_dense_flops or self.fp8_dense_flops or self.bf16_dense_flops,
            Dtype.MXFP4: self.fp4_dense_flops or self.bf16_dense_flops,
            Dtype.INT8: self.int8_dense_flops or self.bf16_dense_flops,
            Dtype.INT4: self.bf16_dense_flops,   # weight-only: dequantised to bf16 before the MMA
            # mxfp4 x mxfp8 runs at the fp8 rate on Blackwell (the slower operand sets the MMA rate)
            Dtype.W4A8_MXFP4: self.fp8_dense_flops or self.bf16_dense_flops,
        }
        return table[dtype]


@dataclass(frozen=True)
class SystemSpec:
    name: str                          # system id, e.g. "h200_sxm"
    gpu: GpuSpec
    gpus_per_node: int
    nvlink_domain_gpus: int            # GPUs reachable over NVLink (8 on HGX, 72 on NVL72 racks)
    nvlink_bw_bytes_per_s: float       # per GPU, one direction (half the bidirectional datasheet figure)
    network_bw_bytes_per_s: float      # per GPU, one direction, between nodes (e.g. 400 Gb/s NIC = 50e9)
    pcie_bw_bytes_per_s: float         # per GPU, one direction
    sources: tuple[str, ...]           # datasheet citations


def _systems_dir():
    return resources.files("perfdb") / "systems"


@cache
def list_systems() -> tuple[str, ...]:
    return tuple(sorted(p.name[:-5] for p in _systems_dir().iterdir() if p.name.endswith(".yaml")))


@cache
def load_system(name: str) -> SystemSpec:
    """Load a bundled system spec by id; unknown ids raise NotFoundError listing the known ones."""
    path = _systems_dir() / f"{name}.yaml"
    if not path.is_file():
        raise NotFoundError(f"unknown system {name!r}; known systems: {', '.join(list_systems())}")
    raw = yaml.safe_load(path.read_text())
    try:
        gpu = GpuSpec(**{f.name: raw["gpu"][f.name] for f in fields(GpuSpec)})
        rest = {f.name: raw[f.name] for f in fields(SystemSpec) if f.name not in ("name", "gpu", "sources")}
        return SystemSpec(name=name, gpu=gpu, sources=tuple(raw.get("sources", ())), **rest)
    except (KeyError, TypeError) as exc:
        raise DataError(f"system spec {path} is missing field {exc}") from None
