"""Attention-DP ranks of a prefill worker that places each request on a rank it cannot choose.

SGLang's disaggregated prefill worker hands a request to the DP rank `bootstrap_room % dp_size`
(sglang/srt/managers/data_parallel_controller.py: the dispatcher of a PD worker, 0.5.x), and the room
is a random 63-bit number the router draws per request (Dynamo's SGLang handlers, sglang-router), so
the rank is uniform and independent of the ranks' queues. Each rank runs its own scheduler with its
share of the limits (chunked_prefill_size // dp_size tokens, max_running_requests // dp_size requests:
server_args.py / scheduler.py under --enable-dp-attention) and its own FIFO queue: a prompt waits for
its rank even when another rank is idle, and two prompts on one rank take turns.

`select_by_rank` is Worker._select for such a worker (the step is then priced as one chunk per busy
rank, which is what the per-rank budget admits for prompts at least that long).
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from estimator.sim.worker import Worker

def draw_rooms(n: int, seed: int) -> list[int]:
    """One router-drawn bootstrap room per request (seeded: the replay is deterministic)."""
    return np.random.default_rng(seed).integers(0, 2**62, size=n).tolist()


def select_by_rank(w: "Worker", t: float) -> tuple[list[tuple[int, int]], float]:
    """Prompt chunks of one iteration when every request is bound to its rank: per rank, continuing
    prompts first, then that rank's queue in arrival order, within the rank's token budget and request cap."""
    r, ranks, rooms = w.reqs, w.ranks, w.rooms
    left = [w.rank_tokens] * ranks
    count = [0] * ranks
    for rid in w.pref:
        count[rooms[rid] % ranks] += 1
    cap = max(1, w.max_batch // ranks)
    free = w.cap - w._charge() - w.n_dec
    chunks: list[tuple[int, int]] = []
    prefix = 0
    for rid in w.pref:
        k = rooms[rid] % ranks
        take = min(r.ctx_total[rid] - r.ctx_done[rid], left[k], int(free))
        if take > 0:
            chunks.append((rid, take))
            prefix += r.ctx_done[rid]
            left[k] -= take
            free -= take
    kept: deque[int] = deque()
    for rid in w.waiting:
        k = rooms[rid] % ranks
        todo = r.ctx_total[rid] - r.ctx_done[rid]
        reserve = w.rho * (r.osl[rid] - r.gen[rid])
        take = min(todo, left[k])
        if take <= 0 or count[k] >= cap or free < take + reserve:
            kept.append(rid)
            continue
        w._admit(rid, reserve, t)
        chunks.append((rid, take))
        prefix += r.ctx_done[rid]
        left[k] -= take
        count[k] += 1
        free -= take + reserve
    w.waiting = kept
    return w._commit(chunks, prefix)
