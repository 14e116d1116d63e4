"""Decode-first admission of a disaggregated request (SGLang's pre-allocation handshake).

SGLang's prefill worker computes a prompt only after the decode worker has reserved its KV: the request
enters the prefill waiting queue once its KV sender polls WaitingForInput, i.e. once the decode side
has sent the indices it pre-allocated (sglang/srt/disaggregation/prefill.py PrefillBootstrapQueue),
and the decode side pre-allocates only while its KV pool holds the prompt plus reserved decode tokens
and a request slot is free (disaggregation/decode.py DecodePreallocQueue.pop_preallocated, 0.5.x). So a
full decode pool holds new requests before their prefill, not after it: when a slot frees the request
still pays its prefill and transfer. The router picks the decode worker when the request arrives.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from estimator.sim.requests import Requests
    from estimator.sim.worker import Worker


class DecodePrealloc:
    """Reservations held on decode workers for requests between admission and their KV's arrival.

    SGLang's rule (disaggregation/decode.py DecodePreallocQueue, 0.5.x): the decode scheduler takes
    queued requests in arrival order while a request slot is free and the request's prompt plus
    `reserved` tokens fit in what it may allocate: the free KV tokens (running requests at their current
    length, pre-allocated prompts and received ones waiting to join all hold theirs) less `reserved` for
    every request it holds (running, waiting to join, KV in flight). Left out: the engine's guard that
    the longest running request could still finish alone with the others retracted (its
    need_space_for_single_req), which binds only with one or two short requests running."""

    def __init__(self, reqs: "Requests", reserved: int):
        self.reqs, self.reserved = reqs, reserved
        self.pending: dict[int, deque[int]] = {}   # decode worker index -> requests waiting for room
        self.slots: dict[int, int] = {}            # ... requests reserved on it
        self.tokens: dict[int, float] = {}         # ... prompt tokens pre-allocated on it
        self.target: dict[int, "Worker"] = {}      # request id -> its decode worker

    def _fits(self, w: "Worker", rid: int) -> bool:
        k, isl = w.index, self.reqs.isl
        held = w.n_dec + len(w.pref) + len(w.waiting) + len(w.inbox) + self.slots.get(k, 0)
        if held >= w.max_batch:
            return False
        used = w.sum_kv + w.pref_kv + self.tokens.get(k, 0.0) + sum(isl[r] for r in w.waiting)
        return w.cap - used - self.reserved * held >= isl[rid] + self.reserved

    def _reserve(self, w: "Worker", rid: int) -> None:
        k = w.index
        self.slots[k] = self.slots.get(k, 0) + 1
        self.tokens[k] = self.tokens.get(k, 0.0) + self.reqs.isl[rid]

    def admit(self, w: "Worker", rid: int) -> bool:
        """Request `rid` routed to decode worker `w`: True if its prefill may start now (room reserved),
        else it waits on `w` (in arrival order) until `drain` finds room."""
        self.target[rid] = w
        queue = self.pending.setdefault(w.index, deque())
        if queue or not self._fits(w, rid):
            queue.append(rid)
            return False
        self._reserve(w, rid)
        return True

    def drain(self, w: "Worker") -> list[int]:
        """Requests waiting on `w` that now fit, in arrival order (their prefill may start)."""
        queue, out = self.pending.get(w.index), []
        while queue and self._fits(w, queue[0]):
            rid = queue.popleft()
            self._reserve(w, rid)
            out.append(rid)
        return out

    def arrive(self, rid: int) -> None:
        """The request's KV reached its decode worker: it waits there to join (counted from its queue)."""
        k = self.target.pop(rid).index
        self.slots[k] -= 1
        self.tokens[k] -= self.reqs.isl[rid]
