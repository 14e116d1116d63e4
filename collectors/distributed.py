"""torch.distributed plumbing for communication collectors: process-group setup and rank agreement.

Configuration arrives as typed arguments (the CLI reads torchrun's RANK / WORLD_SIZE / MASTER_ADDR /
MASTER_PORT and passes them). NCCL on GPUs, gloo on CPU hosts (tests).
"""
from __future__ import annotations

from dataclasses import dataclass

from perfdb.errors import InputError


@dataclass(frozen=True)
class DistSpec:
    rank: int
    world_size: int
    local_world_size: int     # ranks on this node: all ranks local -> NVLink, else network
    master_addr: str
    master_port: int


def init(spec: DistSpec, device: str) -> None:
    """Join the process group (NCCL on cuda, gloo on cpu); a no-op when already initialised."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if spec.world_size < 2:
        raise InputError(f"communication cases need at least 2 ranks, got world size {spec.world_size}; "
                         "launch with torchrun --nproc-per-node N")
    if device == "cuda":
        torch.cuda.set_device(spec.rank % spec.local_world_size)
    dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method=f"tcp://{spec.master_addr}:{spec.master_port}",
                            rank=spec.rank, world_size=spec.world_size)


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def broadcast(obj: object) -> object:
    """Rank 0's value of obj on every rank (so all ranks run the same case list in the same order)."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
