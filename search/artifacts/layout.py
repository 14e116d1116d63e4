"""Where each worker of a deployment runs: its nodes, its GPUs on them and its ports.

Placement rules (the launch script follows them, so no two processes share a GPU or a port):
- a worker as wide as a node or wider takes whole nodes of its own (ceil(GPUs / GPUs per node),
  the same node-local GPUs on each), opened after every node in use;
- a narrower worker goes to the first node with that many GPUs still free (first fit, in the
  order given: launch.py places one xPyD group after another, its prefill workers then its decode
  workers, so a group that fits in one node shares it, as the estimator's KV-transfer time assumes),
  else to a new node, on the node's next free GPUs (so a worker on node 1 gets node 1's GPUs 0..,
  never another node's numbering);
- every worker listens on its own HTTP port: the front-door port (EngineSettings.port) when it is
  the deployment's only worker, else ports from front door + 1 counted per node (the router
  takes the front door on node 0);
- `slot` numbers the workers that start on one node and `side` sums their attention-DP ranks
  before this one: engines derive per-instance side ports from them (vLLM's NIXL side channel
  port + DP index, SGLang's bootstrap port), so co-located instances never bind the same port.
"""
from __future__ import annotations

from dataclasses import dataclass

from search.artifacts.engines import Role
from search.types import WorkerSetup


@dataclass(frozen=True)
class Placement:
    role: Role
    index: int                   # 1-based among the workers of its role
    count: int                   # workers of its role
    order: int                   # 0-based among all workers of the deployment
    worker: WorkerSetup
    nodes: tuple[int, ...]       # the nodes it spans, first = its head node
    gpus: tuple[int, ...]        # node-local GPU ids it uses on each of its nodes
    port: int                    # HTTP port on its head node
    slot: int                    # 0-based among the workers whose head is the same node
    side: int                    # attention-DP ranks of the earlier workers on its head node

    @property
    def multinode(self) -> bool:
        return len(self.nodes) > 1

    @property
    def head(self) -> int:
        return self.nodes[0]

    @property
    def name(self) -> str:
        return f"{self.role.value} worker {self.index}/{self.count}"


@dataclass
class _Node:
    free_from: int = 0           # next free node-local GPU
    whole: bool = False          # taken by a worker of one or more whole nodes
    slots: int = 0
    side: int = 0
    next_port: int = 0


def place(workers: list[tuple[Role, WorkerSetup]], gpus_per_node: int, first_port: int) -> tuple[Placement, ...]:
    """Place one worker per (role, setup), in this order. first_port: the deployment's front door."""
    if gpus_per_node < 1:
        raise ValueError(f"gpus_per_node={gpus_per_node}: must be >= 1")
    counts = {role: sum(r == role for r, _ in workers) for role, _ in workers}
    seen = dict.fromkeys(counts, 0)
    nodes: list[_Node] = []
    out: list[Placement] = []
    for role, w in workers:
        span, gpus = _claim(nodes, w.parallel.num_gpus, gpus_per_node, first_port + (len(workers) > 1))
        head = nodes[span[0]]
        seen[role] += 1
        out.append(Placement(role=role, index=seen[role], count=counts[role], order=len(out), worker=w, nodes=span,
                             gpus=gpus, port=first_port if len(workers) == 1 else head.next_port, slot=head.slots,
                             side=head.side))
        head.slots += 1
        head.side += w.parallel.attn_dp
        head.next_port += 1
    return tuple(out)


def _claim(nodes: list[_Node], n: int, per_node: int, port0: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if n >= per_node:
        k = -(-n // per_node)
        if n % k:
            raise ValueError(f"a {n}-GPU worker cannot be split evenly over {k} nodes of {per_node} GPUs")
        first = len(nodes)
        nodes.extend(_Node(free_from=n // k, whole=True, next_port=port0) for _ in range(k))
        return tuple(range(first, first + k)), tuple(range(n // k))
    for idx, node in enumerate(nodes):
        if not node.whole and per_node - node.free_from >= n:
            start = node.free_from
            node.free_from += n
            return (idx,), tuple(range(start, start + n))
    nodes.append(_Node(free_from=n, next_port=port0))
    return (len(nodes) - 1,), tuple(range(n))


def node_count(placements: tuple[Placement, ...]) -> int:
    return 1 + max((n for p in placements for n in p.nodes), default=0)
