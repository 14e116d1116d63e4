"""One engine instance (agg replica, prefill worker or decode worker) as a step-level state machine.

The loop advances whole engine iterations, never tokens: a decode step moves every running request
one token by bumping the worker's step counter `S`; a request finishes when `S` reaches its
`done_step`. Between events the batch is constant, so consecutive decode steps form one "run" priced
by StepTable in O(1); a run stops at the next completion, at the KV limit, or — truncated — at the
first step boundary after a new request arrives that the engine could admit.

Per-request state lives in plain lists (estimator.sim.requests.Requests) indexed by request id.
"""
from __future__ import annotations

import heapq
from collections import deque

from estimator.sim.holds import hold_prompts
from estimator.sim.policy import SchedulerPolicy
from estimator.sim.ranks import select_by_rank
from estimator.sim.requests import DECODING, DONE, PREFILLING, WAITING, Requests, Role
from estimator.sim.steptable import StepTable


class Worker:
    def __init__(self, index: int, role: Role, policy: SchedulerPolicy, table: StepTable, kv_capacity: int,
                 max_batch: int, max_tokens: int, reqs: Requests, gain: float = 1.0, rank_tokens: int | None = None,
                 draft: int = 0, ranks: int = 1, rooms: list[int] | None = None):
        self.index, self.role, self.table, self.reqs = index, role, table, reqs
        self.cap, self.max_batch, self.max_tokens = kv_capacity, max_batch, max_tokens
        # prompt tokens one request gets per step: one attention-DP rank's budget (max_tokens without DP)
        self.rank_tokens = min(rank_tokens or max_tokens, max_tokens)
        self.mixes = policy.mixes_decode
        self.rho = policy.reserve_output
        self.chunked = policy.chunked
        self.recv_every = policy.recv_interval      # SGLang: new arrivals seen every N decode steps
        self.since_recv = self.recv_every           # decode steps since the scheduler last polled
        self.inbox: list[int] = []                  # arrived, not yet seen by the scheduler
        self.wait_iters, self.wait_ratio = policy.wait_iters, policy.wait_tokens_ratio   # TRT-LLM batch waiting
        self.balance_iters, self.ranks = policy.balance_iters, ranks   # TRT-LLM attention-DP balancing
        self.rooms = rooms   # per request id: its bootstrap room, whose rank it runs on (sim/ranks.py); None: balanced
        self.waited = 0                             # steps the queued prompts have been held so far
        self.hold_left = 0                          # steps the current hold may still last
        self.holding = False                        # the current decode run holds the queued prompts
        self.gain = gain   # tokens each decoding request emits per step (expected; > 1 with speculation)
        # overlap scheduler (SGLang event_loop_overlap): the batch starting at a boundary was formed when
        # the previous one started, so what the scheduler saw after that start waits one more batch; off
        # when this engine drafts (its own flags where they say, else the step model) unless overlap_spec
        drafts = draft > 0 if policy.speculative is None else policy.speculative
        self.overlap = policy.overlap and (not drafts or policy.overlap_spec)
        self.last_start = 0.0   # start of the step (of a decode run: its last step) that ended last
        # tokens each decoding request takes of a step's budget: 1 + its draft tokens (TRT-LLM
        # MicroBatchScheduler counts 1 + num_draft_tokens; vLLM V1 schedules num_tokens_with_spec)
        self.q_dec = 1 + draft
        self.waiting: deque[int] = deque()
        self.pref: list[int] = []              # admitted, prompt not fully computed, admission order
        self.heap: list[tuple[int, int]] = []  # (done_step, rid) of decoding requests (lazy deletion)
        self.order: list[tuple[int, int]] = [] # (rid, join_s) in join order, for last-in preemption
        self.n_dec = self.sum_kv = self.pref_kv = self.sum_done = 0
        self.pref_reserve = 0.0
        self.S = 0
        self.busy = False
        self.end = 0.0
        self.version = 0
        self.run: tuple[float, float, int, int] | None = None   # (t0, mean kv at t0, steps, batch)
        self.step: tuple[list[tuple[int, int]], bool, float] | None = None  # (chunks, decodes ride along, ms)
        self.stall_ms = 0.0
        self.load = 0
        self.steps = 0
        self.prefill_tokens = 0   # prompt tokens computed (recomputed ones included)
        self.decode_tokens = 0    # tokens produced by decode iterations
        self.itl_ms: list[float] = []
        self.itl_w: list[int] = []
        self.itl_t: list[float] = []

    # ---- arrivals -------------------------------------------------------------------------------
    def enqueue(self, rid: int, t: float, transferred: bool = False) -> bool:
        """Queue a request; True when the caller must (re)schedule this worker's step-end event.
        `transferred`: its KV reached this decode worker, which the engines poll every iteration, not
        through the socket a recv interval skips (SGLang process_decode_queue; TRT-LLM
        _check_disagg_gen_transfer_status): it joins at the next step boundary, counted when routed."""
        self.load += 0 if transferred else 1
        self.reqs.worker[rid] = self.index
        self.reqs.seen[rid] = t
        if not self.busy:   # an idle scheduler polls at once
            self.waiting.append(rid)
            return self.plan(t)
        gated = self.recv_every > 1 and not transferred
        (self.inbox if gated else self.waiting).append(rid)
        run = self.run
        if run is None or not self._admissible(rid):
            return False
        t0, kv0, k, batch = run
        j = self._boundary(t, gated)
        if j >= k:
            return False
        self.run = (t0, kv0, j, batch)
        self.end = max(t0 + self.table.decode_run_ms(batch, kv0, j, self.gain) / 1e3, t)
        self.version += 1
        return True

    def next_boundary(self, t: float) -> float:
        """When this worker's scheduler takes a request that reached its socket at t: at once when idle,
        else at its next iteration boundary where its recv counter is due. A request waiting only for that
        look (SGLang pre-allocating, TRT-LLM / vLLM starting the pull) leaves the batch as it is, so the
        run is not cut; a boundary past the run's end is taken on the run's step times."""
        if not self.busy:
            return t
        if self.run is None:   # a prompt step: it makes the next boundary poll
            return self.end
        t0, kv0, _, batch = self.run
        return max(t0 + self.table.decode_run_ms(batch, kv0, self._boundary(t, True), self.gain) / 1e3, t)

    def _boundary(self, t: float, gated: bool) -> int:
        """Steps of the current decode run up to its first boundary at or after t (gated: where the
        scheduler next reads its socket)."""
        t0, kv0, _, batch = self.run
        j = max(self.table.steps_done_by(batch, kv0, (t - t0) * 1e3, self.gain), 1)
        return self._next_poll(j) if gated else j

    def _next_poll(self, j: int) -> int:
        """The first step boundary of the current run, at or after its j-th, where the scheduler looks at
        new arrivals: every one, or (SGLang recv interval N) where its decode-step counter reaches N."""
        n = self.recv_every
        return j if n == 1 else j + (-(self.since_recv + j)) % n

    def _poll(self, t: float) -> None:
        """Let the scheduler see the arrivals when its counter is due, or when it has nothing to run (its
        idle loop spins through the count at once)."""
        if self.since_recv >= self.recv_every or not (self.n_dec or self.pref or self.waiting):
            seen = self.reqs.seen
            for rid in self.inbox:
                seen[rid] = t
            self.waiting.extend(self.inbox)
            self.inbox.clear()
            self.since_recv = 0

    def _held_back(self) -> list[int]:
        """Overlap scheduler: the queued requests the scheduler first saw after the last step started
        (the batch starting now was formed then without them); taken off the queue's tail, oldest first.
        sglang/srt/managers/scheduler.py event_loop_overlap (0.5.9): each iteration polls, forms and
        launches batch n+1, then blocks on batch n's result, so it polls at batch n's start."""
        waiting, seen, since = self.waiting, self.reqs.seen, self.last_start
        held: list[int] = []
        while waiting and seen[waiting[-1]] > since:
            held.append(waiting.pop())
        held.reverse()
        return held

    def _hold(self) -> bool:
        return hold_prompts(self)

    def _charge(self) -> float:
        return (self.sum_kv + self.pref_kv + self.pref_reserve
                + self.rho * self.gain * (self.sum_done - self.n_dec * self.S))

    def _admissible(self, rid: int) -> bool:
        r = self.reqs
        if self.n_dec + len(self.pref) >= self.max_batch:
            return False
        need = min(r.ctx_total[rid] - r.ctx_done[rid], self.max_tokens) + self.rho * (r.osl[rid] - r.gen[rid])
        return self.cap - self._charge() - self.n_dec >= need

    # ---- planning -------------------------------------------------------------------------------
    def plan(self, t: float) -> bool:
        """Choose the next iteration at time t. True if one was started (its end is self.end)."""
        self.run = self.step = None
        self._poll(t)
        self._preempt_if_short()
        self.holding = self._hold()
        held = self._held_back() if self.overlap else None
        select = self._select if self.rooms is None else self._select_by_rank
        chunks, prefix = ([], 0.0) if self.holding else select(t)
        if held:
            self.waiting.extend(held)
            if not chunks and not self.n_dec:   # nothing else to run: the idle loop polls and takes them now
                chunks, prefix = select(t)
                held = None
        n_dec = self.n_dec
        if chunks:
            self.waited = 0
            tokens = sum(c[1] for c in chunks)
            if self.mixes and n_dec:
                ms = self.table.mixed_ms(len(chunks), tokens, n_dec, self.sum_kv / n_dec)
                self.step = (chunks, True, ms)
            else:
                ms = self.table.prefill_ms(len(chunks), tokens / len(chunks), prefix)
                self.step = (chunks, False, ms)
        elif n_dec:
            k = 1 if held else self._run_length()   # held requests join at the next boundary
            kv0 = self.sum_kv / n_dec
            ms = self.table.decode_run_ms(n_dec, kv0, k, self.gain)
            self.run = (t, kv0, k, n_dec)
        else:
            self.busy = False
            return False
        self.busy = True
        self.end = t + ms / 1e3
        self.version += 1
        self.steps += 1
        return True

    def _run_length(self) -> int:
        heap, r = self.heap, self.reqs
        while heap and (r.state[heap[0][1]] != DECODING or r.done_step[heap[0][1]] != heap[0][0]):
            heapq.heappop(heap)
        k = heap[0][0] - self.S
        if self.rho < 1.0:
            k = min(k, int((self.cap - self.sum_kv - self.pref_kv) / (self.n_dec * self.gain)))
        if self.inbox:   # stop where the scheduler next polls
            k = min(k, self.recv_every - self.since_recv)
        if self.holding:   # stop where the held prompts time out
            k = min(k, self.hold_left)
        return max(k, 1)

    def _preempt_if_short(self) -> None:
        """Recompute-preempt the latest-joined decodes until the next step's KV fits (vLLM, SGLang)."""
        r = self.reqs
        while self.n_dec and self.sum_kv + self.pref_kv + self.n_dec * self.gain > self.cap:
            rid, join_s = self.order.pop()
            if r.state[rid] != DECODING or r.join_s[rid] != join_s:
                continue
            self._leave(rid)
            r.state[rid] = WAITING
            r.ctx_total[rid] = r.isl[rid] + r.gen[rid]
            r.ctx_done[rid] = 0
            r.preempted[rid] += 1
            self.waiting.appendleft(rid)

    def _select(self, t: float) -> tuple[list[tuple[int, int]], float]:
        """Prompt chunks for this step (continuing prompts first, then the queue), and their mean prefix."""
        r = self.reqs
        budget = self.max_tokens - (self.n_dec * self.q_dec if self.mixes else 0)
        free = self.cap - self._charge() - self.n_dec
        chunks: list[tuple[int, int]] = []
        prefix = 0
        for rid in self.pref:
            if budget <= 0:
                break
            take = min(r.ctx_total[rid] - r.ctx_done[rid], budget, int(free), self.rank_tokens)
            if take <= 0:
                break
            chunks.append((rid, take))
            prefix += r.ctx_done[rid]
            budget -= take
            free -= take
        waiting = self.waiting
        while waiting and self.n_dec + len(self.pref) < self.max_batch:
            rid = waiting[0]
            left = r.ctx_total[rid] - r.ctx_done[rid]
            reserve = self.rho * (r.osl[rid] - r.gen[rid])
            if left == 0:   # KV already here (disagg decode worker): join the batch, no compute
                if free < r.ctx_total[rid] + reserve:
                    break
                waiting.popleft()
                free -= r.ctx_total[rid] + reserve
                if r.first[rid] < 0:
                    r.first[rid] = t
                self._join(rid)
                continue
            if self.chunked or left > self.rank_tokens:
                take = min(left, budget, self.rank_tokens)
            else:   # whole prompts only; the first one may overrun what the decodes leave of the budget
                # (TRT-LLM's MicroBatchScheduler would stop there until decodes finish: a launch whose
                # max_num_tokens cannot hold one prompt beside its batch, which launchers size away)
                take = left if left <= budget or not chunks else 0
            if take <= 0 or free < take + reserve:
                break
            waiting.popleft()
            self._admit(rid, reserve, t)
            chunks.append((rid, take))
            prefix += r.ctx_done[rid]
            budget -= take
            free -= take + reserve
        return self._commit(chunks, prefix)

    def _select_by_rank(self, t: float) -> tuple[list[tuple[int, int]], float]:
        return select_by_rank(self, t)

    def _admit(self, rid: int, reserve: float, t: float) -> None:
        """A queued prompt starts its prefill (its decode KV `reserve` held from now on)."""
        r = self.reqs
        r.state[rid] = PREFILLING
        if r.start[rid] < 0:
            r.start[rid] = t
        self.pref.append(rid)
        self.pref_reserve += reserve

    def _commit(self, chunks: list[tuple[int, int]], prefix: int) -> tuple[list[tuple[int, int]], float]:
        """Book this step's prompt chunks; (chunks, their mean prefix) as _select returns them."""
        r = self.reqs
        for rid, take in chunks:
            r.ctx_done[rid] += take
            self.pref_kv += take
            self.prefill_tokens += take
        return chunks, (prefix / len(chunks) if chunks else 0.0)

    # ---- membership -----------------------------------------------------------------------------
    def _join(self, rid: int) -> None:
        r = self.reqs
        r.state[rid] = DECODING
        r.join_s[rid] = self.S
        left = r.osl[rid] - r.gen[rid]
        done = self.S + (left if self.gain == 1.0 else -int(-left // self.gain))
        r.done_step[rid] = done
        heapq.heappush(self.heap, (done, rid))
        self.order.append((rid, self.S))
        self.n_dec += 1
        self.sum_kv += r.ctx_total[rid]
        self.sum_done += done

    def _leave(self, rid: int) -> None:
        r = self.reqs
        grown = (self.S - r.join_s[rid]) * self.gain
        r.gen[rid] = min(r.osl[rid], r.gen[rid] + round(grown))
        self.n_dec -= 1
        self.sum_kv -= r.ctx_total[rid] + grown
        self.sum_done -= r.done_step[rid]

    # ---- step end -------------------------------------------------------------------------------
    def finish_step(self, t: float, finished: list[int], handed: list[int]) -> None:
        """Apply the iteration that ends at t. Appends finished and handed-off request ids.
        The worker stays busy until the caller routes new arrivals and calls plan(t)."""
        if self.run is not None:
            t0, kv0, k, batch = self.run
            ms = self.table.decode_run_ms(batch, kv0, k, self.gain)
            self.last_start = t0 + (self.table.decode_run_ms(batch, kv0, k - 1, self.gain) / 1e3 if k > 1 else 0.0)
            self._record_gaps(ms / k, batch, k, t)
            self._advance(k, t, finished)
            self.waited += k if self.holding else 0
            since = (self.since_recv + k) % self.recv_every   # the counter restarts at each poll
            self.since_recv = since or self.recv_every
        else:
            self.since_recv = self.recv_every   # any non-decode iteration makes the next one poll
            chunks, rides, ms = self.step
            self.last_start = t - ms / 1e3
            if rides:
                self._record_gaps(ms, self.n_dec, 1, t)
                self._advance(1, t, finished)
            elif self.n_dec:
                self.stall_ms += ms   # decodes paused for a prefill-only step: their next gap grows
            self._complete_prompts(chunks, t, finished, handed)
        self.run = self.step = None

    def _record_gaps(self, ms: float, batch: int, k: int, t: float) -> None:
        if self.stall_ms:
            self.itl_ms.append(ms + self.stall_ms)
            self.itl_w.append(batch)
            self.itl_t.append(t)
            self.stall_ms = 0.0
            k -= 1
        if k:
            self.itl_ms.append(ms)
            self.itl_w.append(batch * k)
            self.itl_t.append(t)

    def _advance(self, k: int, t: float, finished: list[int]) -> None:
        r, heap = self.reqs, self.heap
        self.S += k
        self.sum_kv += self.n_dec * k * self.gain
        self.decode_tokens += self.n_dec * k
        while heap and heap[0][0] <= self.S:
            done, rid = heapq.heappop(heap)
            if r.state[rid] != DECODING or r.done_step[rid] != done:
                continue
            self._leave(rid)
            self._finish(rid, t, finished)

    def _finish(self, rid: int, t: float, finished: list[int]) -> None:
        self.reqs.state[rid] = DONE
        self.reqs.finish[rid] = t
        self.load -= 1
        finished.append(rid)

    def _complete_prompts(self, chunks, t: float, finished: list[int], handed: list[int]) -> None:
        r = self.reqs
        for rid, _ in chunks:
            if r.ctx_done[rid] < r.ctx_total[rid]:
                continue
            self.pref.remove(rid)
            self.pref_kv -= r.ctx_total[rid]
            self.pref_reserve -= self.rho * (r.osl[rid] - r.gen[rid])
            r.gen[rid] += 1
            if self.role is Role.PREFILL:
                r.state[rid] = DONE
                self.load -= 1
                handed.append(rid)
                continue
            if r.first[rid] < 0:
                r.first[rid] = t
            if r.gen[rid] >= r.osl[rid]:
                self._finish(rid, t, finished)
            else:
                self._join(rid)
