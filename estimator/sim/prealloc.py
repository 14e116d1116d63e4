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
    """Reservations held on decode workers for requests between admission and their KV's arrival."""

    def __init__(self, reqs: "Requests", reserve_output: float):
        self.reqs, self.rho = reqs, reserve_output
        self.pending: dict[int, deque[int]] = {}   # decode worker index -> requests waiting for room
        self.slots: dict[int, int] = {}            # ... requests reserved on it
        self.tokens: dict[int, float] = {}         # ... KV tokens reserved on it
        self.target: dict[int, "Worker"] = {}      # request id -> its decode worker

    def _need(self, rid: int) -> float:
        return self.reqs.isl[rid] + self.rho * self.reqs.osl[rid]

    def _fits(self, w: "Worker", rid: int) -> bool:
        k = w.index
        if w.n_dec + len(w.pref) + len(w.waiting) + len(w.inbox) + self.slots.get(k, 0) >= w.max_batch:
            return False
        return w.cap - w._charge() - w.n_dec - self.tokens.get(k, 0.0) >= self._need(rid)

    def _reserve(self, w: "Worker", rid: int) -> None:
        k = w.index
        self.slots[k] = self.slots.get(k, 0) + 1
        self.tokens[k] = self.tokens.get(k, 0.0) + self._need(rid)

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
        """The request's KV reached its decode worker: the reservation becomes the worker's own."""
        k = self.target.pop(rid).index
        self.slots[k] -= 1
        self.tokens[k] -= self._need(rid)
