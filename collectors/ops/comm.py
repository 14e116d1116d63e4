"""Communication collector: all_reduce, all_gather, reduce_scatter, all_to_all and send/recv through
torch.distributed (NCCL under torchrun on GPUs, gloo on CPU in tests).

Every rank runs the same cases in the same order; ranks agree on the repetition count, align with a
barrier before each repetition, and each sample is the slowest rank's time (a collective is as slow
as its last rank). Rank 0 writes the rows.
"""
from __future__ import annotations

import numpy as np

from collectors.cases import pow2, product
from collectors.ops.common import device
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, Unsupported, register
from collectors.timer import Hooks
from perfdb.ops import CommCase
from perfdb.types import CommOp, Dtype, OpKind


def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[CommCase]:
    world = ctx.world_size if ctx else 2
    transport = ctx.transport if ctx else DeviceCtx("cpu").transport
    sizes = {GridSize.TINY: [1 << 10, 1 << 24], GridSize.SMALL: pow2(1 << 10, 1 << 28)[::2],
             GridSize.FULL: pow2(1 << 10, 1 << 32)}[size]
    out = []
    for op in CommOp:
        fixed = {"op": op, "num_gpus": 2 if op == CommOp.P2P else world, "transport": transport, "dtype": Dtype.BF16}
        out += product(CommCase, fixed, {"msg_bytes": sizes}, keep=lambda msg_bytes: msg_bytes % (2 * world * 64) == 0)
    return out


def _hooks(ctx: DeviceCtx) -> Hooks:
    import torch
    import torch.distributed as dist

    dev = device(ctx)

    def agree(reps: int) -> int:
        t = torch.tensor([reps], dtype=torch.int64, device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def slowest(samples: np.ndarray) -> np.ndarray:
        t = torch.tensor(samples, dtype=torch.float64, device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.cpu().numpy()

    return Hooks(agree_reps=agree, before_rep=dist.barrier, reduce_samples=slowest)


def _fn(case: CommCase, ctx: DeviceCtx):
    import torch
    import torch.distributed as dist

    dev, world, rank = device(ctx), ctx.world_size, ctx.rank
    elems = int(case.msg_bytes) // 2
    full = torch.ones(elems, dtype=torch.bfloat16, device=dev)
    part = torch.ones(elems // world, dtype=torch.bfloat16, device=dev)
    reduce_scatter = getattr(dist, "reduce_scatter_single", dist.reduce_scatter_tensor)
    all_gather = getattr(dist, "all_gather_single", dist.all_gather_into_tensor)
    if case.op == CommOp.ALL_REDUCE:
        return lambda: dist.all_reduce(full)
    if case.op == CommOp.ALL_GATHER:
        return lambda: all_gather(full, part)
    if case.op == CommOp.REDUCE_SCATTER:
        return lambda: reduce_scatter(part, full)
    if case.op == CommOp.ALL_TO_ALL:
        out = torch.empty_like(full)
        return lambda: dist.all_to_all_single(out, full)
    # send/recv between rank pairs (0->1, 2->3, ...); an odd last rank idles but still joins the barriers.
    peer = rank + 1 if rank % 2 == 0 else rank - 1
    if peer >= world:
        return lambda: None
    return (lambda: dist.send(full, peer)) if rank % 2 == 0 else (lambda: dist.recv(full, peer))


def build(case: CommCase, ctx: DeviceCtx) -> Prepared:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise Unsupported("communication cases need a torch.distributed process group (launch under torchrun)")
    want = 2 if case.op == CommOp.P2P else case.num_gpus
    if case.num_gpus != want or (case.op != CommOp.P2P and case.num_gpus != ctx.world_size):
        raise Unsupported(f"case needs {case.num_gpus} ranks, this process group has {ctx.world_size}")
    if case.transport != ctx.transport:
        raise Unsupported(f"case is over {case.transport.value}, this group runs over {ctx.transport.value}")
    if int(case.msg_bytes) % (2 * ctx.world_size):
        raise Unsupported(f"message of {int(case.msg_bytes)} bytes does not split into bf16 parts for {ctx.world_size} ranks")
    kernel = "nccl" if ctx.device == "cuda" else "gloo"
    return Prepared(_fn(case, ctx), kernel, graph_safe=False, hooks=_hooks(ctx))


register(OpCollector(OpKind.COMM, grid, build, distributed=True))
