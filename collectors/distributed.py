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
    agent_store: bool = False  # torchrun's agent already serves the store at master_addr:master_port


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
    from datetime import timedelta

    store = dist.TCPStore(spec.master_addr, spec.master_port, spec.world_size,
                          is_master=spec.rank == 0 and not spec.agent_store, timeout=timedelta(minutes=5))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", store=dist.PrefixStore("servecast", store),
                            rank=spec.rank, world_size=spec.world_size)
    # Connections are set up lazily by the first collectives: do that here, untimed.
    warm = torch.ones(1 << 16, device="cuda" if device == "cuda" else "cpu")
    for _ in range(3):
        dist.all_reduce(warm)
    dist.barrier()


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
