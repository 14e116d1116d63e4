"""The discrete-event loop: clients, routers and pools of workers, advanced one engine iteration at a time.

Events are step ends (one per worker iteration or decode run), open-loop arrivals, a request's entry
into the engine after the frontend delay and, in disaggregated deployments, KV-transfer completions.
The frontend delay is the step model's `resolved.ttft_overhead_ms` (HTTP, tokenisation, detokenised
streaming: per-request time no kernel contains; 0 for models without it): it adds to TTFT and latency,
not to TPOT, and a closed-loop client waits for it like any other part of its request. Closed-loop clients send their next request at
the instant the previous one finishes (aiperf --concurrency); a new request is routed at once and
may truncate the target worker's decode run at its next step boundary.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from estimator.deployment import Deployment, Mode, Pool, RoutePolicy
from estimator.memory import window_requests
from estimator.run_facts import RoleFlags
from estimator.sim.load import build_requests
from estimator.sim.metrics import RequestRecords, SimResult, summarise, ttft_parts
from estimator.sim.policy import SchedulerPolicy, policy_for
from estimator.sim.prealloc import DecodePrealloc
from estimator.sim.ranks import draw_rooms
from estimator.sim.requests import Requests, Role
from estimator.sim.steptable import StepTable, StepTimes
from estimator.sim.types import LoadSpec
from estimator.sim.worker import Worker
from perfdb.errors import InfeasibleError, InputError

STEP_END, ARRIVAL, KV_READY, ENTER, HANDOFF, REGISTER = 0, 1, 2, 3, 4, 5
MAX_HINTS = 16   # distinct prompt lengths made exact grid nodes (fixed-length and few-length loads)
ROUTER_STREAM = 7   # the routers' seed sequences (Deployment.routers > 1), apart from the load's and the rooms'


@dataclass(frozen=True)
class RoleSteps:
    """Step models of a disaggregated deployment, one per pool (they differ in parallelism)."""

    prefill: StepTimes
    decode: StepTimes


def simulate(steps: StepTimes | RoleSteps, deployment: Deployment, load: LoadSpec, seed: int = 0,
             records: bool = False, frontend_ms: float | None = None,
             engine_flags: RoleFlags | None = None) -> SimResult:
    """Simulate `load` offered to `deployment`; step times from `steps` (a RoleSteps for disagg).

    `frontend_ms`: per-request time outside the engine, between a client's send and the engine's
    queue (None: the step model's `resolved.ttft_overhead_ms`, 0 where it has none).
    `engine_flags`: the launch flags the engines ran with, per role (estimator.run_facts.RoleFlags: an
    agg replica's, or a disaggregated run's prefill and decode engines', configured differently), under
    the engine's own names (e.g. SGLang `scheduler-recv-interval`); each pool's scheduler follows its
    role's flags (estimator.sim.policy). None: every engine's defaults.
    Deterministic for a given seed. Raises InfeasibleError when a request can never fit a worker's KV.
    """
    isl, osl, send = build_requests(load, seed)
    sim = _Sim(steps, deployment, isl, osl, load.concurrency, frontend_ms, engine_flags, seed)
    sim.run(send, load.concurrency)
    return sim.result(deployment.num_gpus, records, load.warmup)


class _PoolRouter:
    """`routers` independent routers in front of one pool (Deployment.routers): a request reaches one of
    them uniformly at random, and that one's round-robin counter (started at a random worker: the state
    the warm-up left) picks the worker. One router: the plain policy."""

    def __init__(self, workers: list[Worker], policy: RoutePolicy, routers: int = 1, seed: tuple[int, ...] = (0,)):
        self.workers, self.policy = workers, policy
        self.rng = np.random.default_rng(seed) if routers > 1 else None
        self.next = [0] if self.rng is None else self.rng.integers(len(workers), size=routers).tolist()

    def pick(self) -> Worker:
        if self.policy is RoutePolicy.ROUND_ROBIN:
            r = 0 if self.rng is None else int(self.rng.integers(len(self.next)))
            w = self.workers[self.next[r] % len(self.workers)]
            self.next[r] += 1
            return w
        return min(self.workers, key=_load)


def _limits(steps: StepTimes, pool: Pool, policy: SchedulerPolicy) -> tuple[int, int, int]:
    """(max requests in flight, max tokens per step, max prompt tokens of one request per step) of one
    worker: the pool's override, else the step model's resolved engine defaults (estimator.engine),
    else the policy's. With attention DP a request runs on one rank: the worker's step holds every
    rank's budget (engines with limits per rank) or the configured one split over the ranks (SGLang
    divides chunked_prefill_size and max_running_requests by dp_size)."""
    resolved = getattr(steps, "resolved", None)
    engine_batch = getattr(resolved, "max_batch_size", None)
    dp = pool.parallel.attn_dp
    ranks = dp if policy.budget_per_dp_rank else 1
    batch = pool.max_batch or (engine_batch * ranks if engine_batch else policy.default_max_batch)
    tokens = int(pool.max_num_tokens or getattr(resolved, "max_num_tokens", None) or policy.default_max_tokens)
    if dp == 1:
        return int(batch), tokens, tokens
    if policy.budget_per_dp_rank:
        return int(batch), tokens * dp, tokens
    return int(batch), tokens, max(1, tokens // dp)


def _load(w: Worker) -> int:
    return w.load


class _Sim:
    def __init__(self, steps, dep: Deployment, isl: np.ndarray, osl: np.ndarray, concurrency: int | None,
                 frontend_ms: float | None, engine_flags: RoleFlags | None = None, seed: int = 0):
        self.dep = dep
        self.seed = seed
        self.reqs = Requests(isl.tolist(), osl.tolist())
        self.n = len(isl)
        self.rooms = draw_rooms(self.n, seed + 1)
        self.max_kv = int((isl + osl).max()) + 2

        def policy(role: Role) -> SchedulerPolicy:   # each role's engine as it was launched
            return policy_for(dep.backend, engine_flags.of(role.value) if engine_flags else None)

        if dep.mode is Mode.AGG:
            if isinstance(steps, RoleSteps):
                raise InputError("an aggregated deployment takes one step model, not prefill/decode ones")
            self.entry = self._pool(steps, dep.agg, Role.AGG, policy(Role.AGG), dep.router, concurrency)
            self.decode = None
            self.prealloc = None
        else:
            if not isinstance(steps, RoleSteps):
                raise InputError("a disaggregated deployment needs RoleSteps(prefill=..., decode=...)")
            pre, dec = policy(Role.PREFILL), policy(Role.DECODE)
            self.entry = self._pool(steps.prefill, dep.prefill, Role.PREFILL, pre, dep.router, None)
            self.decode = self._pool(steps.decode, dep.decode, Role.DECODE, dec, dep.router, concurrency)
            self.transfer = self.entry.workers[0].table
            # the reservation is the decode engine's (its admission rule); decode-first is the engine's hand-off
            self.prealloc = DecodePrealloc(self.reqs, dec.reserved_decode_tokens) if dec.decode_first else None
        if frontend_ms is None:
            entry_steps = steps if dep.mode is Mode.AGG else steps.prefill
            frontend_ms = getattr(getattr(entry_steps, "resolved", None), "ttft_overhead_ms", 0.0) or 0.0
        if frontend_ms < 0:
            raise InputError(f"frontend_ms must be >= 0, got {frontend_ms}")
        self.frontend_s = float(frontend_ms) / 1e3
        self.heap: list = []
        self.seq = 0
        self.prefill_done = [0.0] * self.n
        self.kv_ready = [0.0] * self.n
        self.target: dict[int, Worker] = {}   # request id -> the decode worker it was routed to
        self.reached = [0.0] * self.n         # when the request reached its decode worker
        self.decode_wait = [0.0] * self.n     # ... and waited there for the iteration that starts its pull
        self.handoff_s = 0.0
        if dep.mode is Mode.DISAGG:   # the hand-off's extra frontend pass, inside transfer_ms (estimator.engines)
            self.handoff_s = float(getattr(getattr(steps.prefill, "resolved", None), "kv_handoff_ms", 0.0) or 0.0) / 1e3

    def _pool(self, steps: StepTimes, pool: Pool, role: Role, policy: SchedulerPolicy, route: RoutePolicy,
              concurrency: int | None) -> _PoolRouter:
        mem = steps.memory
        if hasattr(mem, "feasible") and not mem.feasible:
            raise InfeasibleError(f"{role.value} worker {pool.parallel.label()} does not fit: {mem.reason}")
        cap = int(mem.kv_capacity_tokens)
        need = int((np.asarray(self.reqs.isl) + np.asarray(self.reqs.osl)).max()) if role is not Role.PREFILL \
            else max(self.reqs.isl)
        if cap < need:
            raise InfeasibleError(f"{role.value} worker {pool.parallel.label()} holds {cap} KV tokens; "
                                  f"a request needs {need}")
        max_batch, max_tokens, rank_tokens = _limits(steps, pool, policy)
        if getattr(mem, "window_pool_tokens", 0.0) > 0:   # SGLang's window pool caps the running requests
            held = int(window_requests(mem, need, pool.parallel.attn_dp))
            if held < 1:
                raise InfeasibleError(f"{role.value} worker {pool.parallel.label()}: its window pool of "
                                      f"{mem.window_pool_tokens:.0f} tokens cannot hold one request's window")
            max_batch = min(max_batch, held)
        bound = self.n if concurrency is None else concurrency
        lengths = np.unique(np.asarray(self.reqs.isl))
        hints = tuple(lengths.tolist()) if lengths.size <= MAX_HINTS else ()
        table = StepTable(steps, self.max_kv, max_tokens, max(1, min(max_batch, bound)), hints)
        resolved = getattr(steps, "resolved", None)
        gain = float(getattr(resolved, "tokens_per_step", 1.0) or 1.0)
        draft = int(getattr(resolved, "spec_tokens", 0) or 0)
        by_room = role is Role.PREFILL and policy.dp_rank_by_room and pool.parallel.attn_dp > 1
        workers = [Worker(i, role, policy, table, cap, max_batch, max_tokens, self.reqs, gain, rank_tokens,
                          draft=draft, ranks=pool.parallel.attn_dp, rooms=self.rooms if by_room else None)
                   for i in range(pool.workers)]
        return _PoolRouter(workers, route, self.dep.routers, (self.seed, ROUTER_STREAM, list(Role).index(role)))

    def _push(self, t: float, kind: int, ref, version: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, ref, version))

    def _send(self, rid: int, t: float) -> None:
        self.reqs.send[rid] = t
        if self.frontend_s:
            self._push(t + self.frontend_s, ENTER, rid)
        else:
            self._enter(rid, t)

    def _enter(self, rid: int, t: float) -> None:
        if self.prealloc is None:
            self._prefill(rid, t)
        else:   # decode-first: the decode worker pre-allocates before the prefill may start
            self._route_decode(rid, t)

    def _route_decode(self, rid: int, t: float) -> None:
        """The request reaches the decode worker the router picks (SGLang: on arrival, beside the prefill
        request; TRT-LLM, vLLM: the generation request after the prefill's answer). Its scheduler takes it
        at its next iteration boundary (sim/worker.py Worker.next_boundary): SGLang pre-allocates its KV
        there, TRT-LLM / vLLM start the pull there."""
        w = self.decode.pick()
        w.load += 1   # routed: the least-loaded router counts it from now on (Worker.enqueue does not again)
        self.target[rid] = w
        self.reached[rid] = t
        b = w.next_boundary(t)
        if b > t:
            self._push(b, REGISTER, rid)
        else:
            self._register(rid, t)

    def _register(self, rid: int, t: float) -> None:
        w = self.target[rid]
        if self.prealloc is not None:
            if self.prealloc.admit(w, rid):
                self._prefill(rid, t)
            return   # else it waits for room on its decode worker (_step_end drains it)
        self.decode_wait[rid] = t - self.reached[rid]
        ms = self.transfer.transfer_ms(self.reqs.ctx_total[rid], self.dep.decode.parallel, self.dep.same_node)
        self._push(t + ms / 1e3 - self.handoff_s, KV_READY, rid)   # the hop was paid before reaching it

    def _prefill(self, rid: int, t: float) -> None:
        w = self.entry.pick()
        if w.enqueue(rid, t):
            self._push(w.end, STEP_END, w, w.version)

    def run(self, send: np.ndarray | None, concurrency: int | None) -> None:
        closed = send is None
        self.issued = min(concurrency, self.n) if closed else self.n
        if closed:
            for rid in range(self.issued):
                self._send(rid, 0.0)
        else:
            for rid, t in enumerate(send.tolist()):
                self._push(t, ARRIVAL, rid)
        heap = self.heap
        finished: list[int] = []
        # events of one request that finish nothing (a request entering a queue or reaching a worker)
        moves = {ARRIVAL: self._send, ENTER: self._enter, HANDOFF: self._route_decode, REGISTER: self._register}
        while heap:
            t, _, kind, ref, version = heapq.heappop(heap)
            move = moves.get(kind)
            if move is not None:
                move(ref, t)
                continue
            if kind == KV_READY:
                self._kv_ready(ref, t, finished)
            elif version != ref.version:
                continue   # superseded by a truncation
            else:
                self._step_end(ref, t, finished)
            for _ in finished:   # closed loop: each finished client sends its next request at once
                if self.issued < self.n:
                    self._send(self.issued, t)
                    self.issued += 1
            finished.clear()
            if kind == STEP_END and ref.plan(t):
                self._push(ref.end, STEP_END, ref, ref.version)

    def _step_end(self, w: Worker, t: float, finished: list[int]) -> None:
        handed: list[int] = []
        w.finish_step(t, finished, handed)
        if self.prealloc is not None and w.role is Role.DECODE:
            for rid in self.prealloc.drain(w):
                self._prefill(rid, t)
        for rid in handed:
            self.prefill_done[rid] = t
            if self.prealloc is not None:   # pre-allocated: the prefill sends the KV as soon as it is done
                ms = self.transfer.transfer_ms(self.reqs.ctx_total[rid], self.dep.decode.parallel, self.dep.same_node)
                self._push(t + ms / 1e3, KV_READY, rid)
            elif self.handoff_s:   # the prefill's answer goes back through the frontend, which sends it on
                self._push(t + self.handoff_s, HANDOFF, rid)
            else:
                self._route_decode(rid, t)

    def _kv_ready(self, rid: int, t: float, finished: list[int]) -> None:
        r = self.reqs
        self.kv_ready[rid] = t
        w = self.target.pop(rid)
        if self.prealloc is not None:
            self.prealloc.arrive(rid)
        if r.gen[rid] >= r.osl[rid]:   # one-token request: the prefill's token was its only one
            r.first[rid] = r.finish[rid] = t
            w.load -= 1
            finished.append(rid)
            for nxt in self.prealloc.drain(w) if self.prealloc is not None else ():
                self._prefill(nxt, t)
            return
        r.state[rid] = 0
        r.ctx_done[rid] = r.ctx_total[rid]
        if w.enqueue(rid, t, transferred=True):
            self._push(w.end, STEP_END, w, w.version)

    def workers(self) -> list[Worker]:
        return self.entry.workers + (self.decode.workers if self.decode else [])

    def result(self, num_gpus: int, keep: bool, warmup: int) -> SimResult:
        r = self.reqs
        if min(r.finish) < 0:
            raise InputError("simulation ended with unfinished requests (a scheduler limit admits nothing)")
        rec = RequestRecords(
            send_s=np.array(r.send), first_token_s=np.array(r.first), finish_s=np.array(r.finish),
            isl=np.array(r.isl, dtype=np.int64), osl=np.array(r.osl, dtype=np.int64),
            worker=np.array(r.worker, dtype=np.int64), preemptions=np.array(r.preempted, dtype=np.int64),
            measured=np.arange(self.n) >= warmup, prefill_start_s=np.array(r.start),
            prefill_end_s=np.array(self.prefill_done) if self.decode else None,
            kv_ready_s=np.array(self.kv_ready) if self.decode else None)
        ws = self.workers()
        itl = tuple(np.array([x for w in ws for x in getattr(w, name)], dtype=np.float64)
                    for name in ("itl_ms", "itl_w", "itl_t"))
        counts = (sum(w.steps for w in ws), sum(w.prefill_tokens for w in ws), sum(w.decode_tokens for w in ws))
        wait = np.array(self.decode_wait) if self.decode else None
        return summarise(rec, itl, num_gpus, counts, keep, ttft_parts(rec, self.frontend_s, self.handoff_s, wait))
