"""Per-request state of one simulation (lists indexed by request id) and the roles an engine instance plays.

Python lists beat numpy for scalar access in the step loop (estimator.sim.worker).
"""
from __future__ import annotations

from enum import Enum

WAITING, PREFILLING, DECODING, DONE = 0, 1, 2, 3


class Role(str, Enum):
    AGG = "agg"
    PREFILL = "prefill"   # computes prompts and hands the KV to a decode worker
    DECODE = "decode"     # receives KV; computes a prompt only to recompute a preempted request


class Requests:
    """Per-request state (lists indexed by request id). Times in seconds."""

    def __init__(self, isl: list[int], osl: list[int]):
        n = len(isl)
        self.isl, self.osl = isl, osl
        self.send = [0.0] * n
        self.first = [-1.0] * n
        self.start = [-1.0] * n       # first prompt chunk scheduled (the end of its queue wait)
        self.finish = [-1.0] * n
        self.gen = [0] * n            # output tokens produced so far
        self.ctx_total = list(isl)    # tokens to hold in KV before decoding (prompt, + output after recompute)
        self.ctx_done = [0] * n       # of those, computed (or received) so far
        self.join_s = [0] * n         # worker step counter when the request joined the decode batch
        self.done_step = [0] * n      # worker step counter at which its last token is produced
        self.state = [WAITING] * n
        self.worker = [-1] * n
        self.preempted = [0] * n
        self.seen = [0.0] * n         # when the scheduler of its current worker first saw it
