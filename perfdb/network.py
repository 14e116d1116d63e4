"""Collectives whose group spans several NVLink domains (multi-node tensor / expert parallelism on HGX).

No table here times a collective across nodes, and lending an NVLink table's utilisation to the
network's bandwidth got both ends wrong: a prefill all-reduce of 8,192 DeepSeek tokens over 16 H100s
(two nodes) came to 4.6 ms (the whole buffer at one NIC's 50 GB/s), and a decode one of 8 tokens to
11 us (an NVLink kernel's latency). Engines run these collectives with NCCL, which on a rail-optimised
HGX fabric (one NIC per GPU) moves most bytes over NVLink and only each GPU's share over its own NIC,
and whose small messages pay one network latency per inter-node step. So a collective over G GPUs in N
domains of g GPUs each is priced as its parts:

- inside each domain, the measured collective over g GPUs (the tables' rows, through the ladder):
  all-reduce = reduce-scatter + all-gather of the buffer, all-gather / reduce-scatter one of them,
  all-to-all the share that stays in the domain;
- between domains, the same collective among the N GPUs of one rail over the network: NCCL's own cost
  model (`NCCL_*` below) for its latency, the rail's bytes over one NIC for its bandwidth.

Where a database does time the group across nodes (a row for its op, GPU count and `network`), the
ladder prices it instead. Point-to-point sends (pipeline stages, disaggregated KV hand-off) keep the
ladder's price: they are one hop, not a collective. The result's source is the worse of the domain
part's and `roofline` (the network part is a model, not a measurement).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from perfdb.ops import CommCase
from perfdb.ops.comm import link_factor
from perfdb.types import CommOp, Source, Transport

if TYPE_CHECKING:
    from perfdb.lookup import DbView, Latency

# NCCL's cost model (src/graph/tuning.cc, NVIDIA/nccl at 01afd20a, the 2.9 series; the model NCCL
# itself uses to pick an algorithm and protocol per call): ring latency = baseLat + inter-node steps x
# hwLat[NET], in microseconds, per protocol (LL, LL128, Simple); the ring's bus bandwidth is cut to 1/4
# for LL and to 0.92 for LL128 (ncclTopoTuneModel); NCCL takes the protocol of least modelled time
# (ncclTopoGetAlgoTime). Only the inter-node steps are modelled here: the intra-domain steps are the
# measured rows.
NCCL_RING_BASE_US = {"LL": 3.6, "LL128": 10.0, "Simple": 8.4}
NCCL_RING_NET_STEP_US = {"LL": 2.7, "LL128": 4.0, "Simple": 9.6}
NCCL_RING_BW_SHARE = {"LL": 0.25, "LL128": 0.92, "Simple": 1.0}
# the whole group's small-message latency, NCCL's same model (LL protocol, the one it picks for small
# messages): ring = base + intra-node steps x hwLat[NVLINK] x 1.8 (multi-node LL) + inter-node steps x
# hwLat[NET]; tree (all-reduce) = base + 2 x ((g - 1) x hwLat[NVLINK] x 1.8 + log2(N) x hwLat[NET]).
# The measured domain parts carry the engines' own small-message kernels (custom all-reduce), which
# do not run across nodes: the group's latency is NCCL's, and it floors the composed time.
NCCL_TREE_BASE_LL_US, NCCL_TREE_NVLINK_LL_US, NCCL_TREE_NET_LL_US = 4.4, 0.52, 5.0
NCCL_RING_NVLINK_LL_US, NCCL_LL_MULTINODE_INTRA = 0.47, 1.8
NCCL_PROVENANCE = ("NCCL src/graph/tuning.cc (NVIDIA/nccl 01afd20a, 2.9 series): ring baseLat and hwLat[NET] "
                   "per protocol, LL / LL128 bandwidth shares; protocol of least modelled time")

# ring steps between domains, per collective, among N domains (tuning.cc nInterSteps)
_INTER_STEPS = {
    CommOp.ALL_REDUCE: lambda n: 2 * (n - 1),
    CommOp.ALL_GATHER: lambda n: n - 1,
    CommOp.REDUCE_SCATTER: lambda n: n - 1,
    CommOp.ALL_TO_ALL: lambda n: n - 1,
}


def spans_domains(case: CommCase, domain_gpus: int) -> bool:
    """Whether this is a collective the composition prices: over the network, more GPUs than one domain."""
    return (case.transport is Transport.NETWORK and case.op in _INTER_STEPS
            and case.num_gpus > max(domain_gpus, 1))


def split(num_gpus: int, domain_gpus: int) -> tuple[int, int]:
    """(domains N, GPUs per domain g) of a group laid out over whole domains, the last one partly
    filled where the group does not divide (g then is the fuller domains' count)."""
    n = math.ceil(num_gpus / domain_gpus)
    return n, math.ceil(num_gpus / n)


def inter_node_ms(op: CommOp, rail_bytes: np.ndarray, domains: int, nic_bytes_per_s: float) -> np.ndarray:
    """The rail's share of a collective among `domains` GPUs (one per domain) over their NICs: NCCL's
    ring latency for its inter-node steps plus `rail_bytes` (what each GPU's NIC sends) at the NIC's
    bandwidth, under the protocol NCCL would pick (least time)."""
    steps = _INTER_STEPS[op](domains)
    best = np.full(np.shape(rail_bytes), np.inf)
    for proto, base in NCCL_RING_BASE_US.items():
        t = (base + steps * NCCL_RING_NET_STEP_US[proto]) * 1e-3 \
            + rail_bytes / (nic_bytes_per_s * NCCL_RING_BW_SHARE[proto]) * 1e3
        best = np.minimum(best, t)
    return best


def group_latency_ms(op: CommOp, num_gpus: int, domains: int) -> float:
    """NCCL's modelled latency of the whole group's collective (LL protocol; ring, or the faster of ring
    and tree for all-reduce): the floor no size goes below."""
    g = num_gpus / domains
    inter = _INTER_STEPS[op](domains)
    steps = 2 * (num_gpus - 1) if op is CommOp.ALL_REDUCE else num_gpus - 1
    intra_us = NCCL_RING_NVLINK_LL_US * NCCL_LL_MULTINODE_INTRA
    ring = NCCL_RING_BASE_US["LL"] + (steps - inter) * intra_us + inter * NCCL_RING_NET_STEP_US["LL"]
    if op is CommOp.ALL_REDUCE:
        tree = NCCL_TREE_BASE_LL_US + 2 * ((g - 1) * NCCL_TREE_NVLINK_LL_US * NCCL_LL_MULTINODE_INTRA
                                           + math.log2(domains) * NCCL_TREE_NET_LL_US)
        ring = min(ring, tree)
    return ring * 1e-3


def price(view: DbView, case: CommCase) -> Latency:
    """The composed price of a collective spanning NVLink domains (module docstring)."""
    from perfdb.lookup import Latency

    system = view.system
    n, g = split(case.num_gpus, system.nvlink_domain_gpus)
    s = np.asarray(case.msg_bytes, dtype=np.float64)
    inner = []   # the measured parts inside one domain

    def local(op: CommOp, msg: np.ndarray) -> Latency:
        return view.latency(replace(case, op=op, num_gpus=g, transport=Transport.NVLINK, msg_bytes=msg))

    if g > 1:
        if case.op is CommOp.ALL_REDUCE:
            inner = [local(CommOp.REDUCE_SCATTER, s), local(CommOp.ALL_GATHER, s)]
        elif case.op in (CommOp.ALL_GATHER, CommOp.REDUCE_SCATTER):
            inner = [local(case.op, s)]
        else:   # all-to-all: the share that stays in the domain
            inner = [local(CommOp.ALL_TO_ALL, s * g / case.num_gpus)]
    # what one GPU's NIC carries: the rail's slice of the buffer (all-reduce, all-gather, reduce-scatter:
    # a ring over N ranks of s / g each), or what it sends to the other domains (all-to-all)
    if case.op is CommOp.ALL_TO_ALL:
        rail = s * (case.num_gpus - g) / case.num_gpus
        net = inter_node_ms(case.op, rail, n, system.network_bw_bytes_per_s)
    else:
        net = inter_node_ms(case.op, link_factor(case.op, n) * s / g, n, system.network_bw_bytes_per_s)
    if case.op is CommOp.ALL_TO_ALL and inner:   # the copies that stay and those that leave go at once
        ms = np.maximum(inner[0].ms, net)
    else:
        ms = net + sum((p.ms for p in inner), np.zeros_like(net))
    ms = np.maximum(ms, group_latency_ms(case.op, case.num_gpus, n))
    code = max([Source.ROOFLINE.code] + [int(p.source.max()) for p in inner if p.source.size])
    return Latency(ms=np.reshape(ms, case.shape), source=np.full(case.shape, code, dtype=np.int8))
