"""The plan decides on load: the static screen picks each mode's candidates near the frontier, the
simulator replays each at the concurrency it would serve, and the ranking, the SLA filter (at the
median or the interval's upper end, as the request says) and the winner use the simulated TTFT, TPOT
and tokens/s/GPU. A candidate that misses a target at its static concurrency is backed off: replayed
at fewer clients per replica / xPyD group (a bracketing search of BACKOFF_RUNS replays at most) until it
meets every target, and is then ranked, reported and written (search.outputs: aiperf.sh, deployment.yaml,
plan.json) at that concurrency (`SimCheck.concurrency`). The static numbers stay on every candidate
(`Candidate.metrics`, at the static concurrency) beside the simulated ones (`PlanResult.sims`).

Why the static screen first: it evaluates ten thousand deployments in a fraction of a second, the
simulator a few per tenth of a second. The static model's TTFT has no real queueing, so it ranks
within a mode well but misjudges the modes against each other under load; the SIM_PER_MODE best
static candidates of each mode are close enough in static throughput that the simulator's verdict
decides among them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from perfdb.lookup import PerfDB
from search.plan import PlanResult
from search.simcheck import sim_calibration, sim_checked, sim_clients, sim_units, simulate_candidate
from search.sla import target_ratios
from search.types import Candidate, Constraint, Mode, SimCheck

SIM_PER_MODE = 3    # static top candidates of each mode replayed (each ~0.01-0.06 s of CPU)
# Replays at most spent backing one candidate's concurrency off after it missed a target at its static
# one: a bracketing search on clients per replica / xPyD group (`back_off`) whose last run tries 1 client
# when nothing has met yet (so a candidate is dropped only when one client per unit misses); from up to 2**BACKOFF_RUNS
# clients per unit it ends next to a miss, or within BACKOFF_TOLERANCE of one.
BACKOFF_RUNS = 5
# ... and stops sooner once its bracket is narrow: when the clients per unit that met and the fewest that
# missed lie within BACKOFF_TOLERANCE of the missed count, the pick serves at least 95% of the boundary's
# clients. Resolving it further is finer than the replay is known to be (the shipped simulate
# calibration's cross-validated median TPOT error is 10.6%, BENCHMARKS.md; a closed loop's throughput
# near its boundary moves no faster than its clients) and cost the 2026 architectures' plans up to three
# replays per back-off ending 1 client apart in 420 (BENCHMARKS.md, "The twentieth session"). Below 40
# clients per unit the bracket still closes to neighbours (2 clients are more than 5% of them).
BACKOFF_TOLERANCE = 0.05


def first_replays(result: PlanResult, per_mode: int = SIM_PER_MODE) -> list[Candidate]:
    """The candidates `replay` always simulates at their static concurrency, whatever the others give: each
    mode's first `per_mode`. They can run anywhere beforehand (`static_replays`, `replay(done=...)`)."""
    return [c for cands in result.top.values() for c in cands[:per_mode]]


def static_replays(result: PlanResult, db: PerfDB, cands: list[Candidate]) -> dict[int, SimCheck]:
    """{points row: the candidate replayed at its static concurrency}, as `replay` replays it."""
    cal = _calibrations(result)
    return {c.row: simulate_candidate(result, c, db, cal=cal(c.backend)) for c in cands}


def _calibrations(result: PlanResult):
    """backend -> its simulate-base calibration (search.simcheck.sim_calibration), each resolved once."""
    return cache(lambda backend: sim_calibration(result, backend))


# Replays made ahead of `replay`: (points row, clients per unit; None: its static concurrency) -> SimCheck
Memo = dict[tuple[int, int | None], SimCheck]


@dataclass(frozen=True)
class Ahead:
    """One piece of work `ahead` hands out: `candidate` replayed once at `per_unit` clients per unit (None:
    its static concurrency), or, with a `floor`, backed off from that floor (`back_off`)."""

    candidate: Candidate
    per_unit: int | None = None
    floor: float | None = None


def replay(result: PlanResult, db: PerfDB, modes: tuple[Mode, ...] | None = None,
           per_mode: int = SIM_PER_MODE, backoff_runs: int = BACKOFF_RUNS,
           done: dict[int, SimCheck] | None = None, memo: Memo | None = None) -> dict[int, SimCheck]:
    """Simulate each mode's first `per_mode` static candidates at their static concurrency, and on down the
    static ranking until one meets every target under load; then back off (`back_off`) the `per_mode`
    misses that served the most, best first, each bounded by the best replay meeting the targets so far;
    {points row: SimCheck}. `modes` None: every mode of the result. Simulator runs per mode: at most
    len(top) + per_mode x backoff_runs. `done`: static-concurrency replays already made (`static_replays`:
    the same runs, so the same result); `memo`: other replays already made (`ahead`), likewise."""
    sims: dict[int, SimCheck] = {}
    cal = _calibrations(result)
    memo = {**(memo or {}), **{(row, None): s for row, s in (done or {}).items()}}
    for mode, cands in result.top.items():
        if modes is not None and mode not in modes:
            continue
        mine: dict[int, SimCheck] = {}
        for i, c in enumerate(cands):
            if i >= per_mode and any(s.meets_sla for s in mine.values()):
                break
            mine[c.row] = _replay(result, c, db, cal(c.backend), None, memo)
        best = max((s.tokens_per_s_per_gpu for s in mine.values() if s.meets_sla), default=0.0)
        missed = sorted((c for c in cands if c.row in mine and not mine[c.row].meets_sla),
                        key=lambda c: -mine[c.row].tokens_per_s_per_gpu)
        for c in missed[:per_mode] if backoff_runs > 0 else ():
            mine[c.row] = s = back_off(result, c, db, mine[c.row], cal(c.backend), best, backoff_runs, memo)
            if s.meets_sla:
                best = max(best, s.tokens_per_s_per_gpu)
        sims.update(mine)
    return sims


def _replay(result: PlanResult, c: Candidate, db: PerfDB, cal, per_unit: int | None, memo: Memo | None) -> SimCheck:
    """simulate_candidate, or the same replay from `memo` (each is deterministic), which keeps it."""
    s = None if memo is None else memo.get((c.row, per_unit))
    if s is None:
        s = simulate_candidate(result, c, db, cal=cal, per_unit=per_unit)
        if memo is not None:
            memo[(c.row, per_unit)] = s
    return s


def ahead(result: PlanResult, done: dict[int, SimCheck],
          per_mode: int = SIM_PER_MODE) -> tuple[list[Ahead], list[Ahead]]:
    """Two lists of replays `replay` will want after `first_replays` (`done`) of a mode none of whose first
    met, for two processes to make at once: the next two candidates of its ranking at their static
    concurrency (the walk `replay` starts with) and the first probe of its next miss's back-off (the same
    whatever floor it gets: `first_probe`), and the back-off of its first's miss that served the most,
    from a floor of 0 (`replay` backs it off from the best its walk meets, no lower, so its probes are
    these, in this order, and it stops no sooner). ([], []) where every mode has a first that met (their
    back-offs wait for that floor) or more than one mode has work left."""
    busy = []   # (ranking, whether a first met, its first's misses) of each mode with work left
    for cands in result.top.values():
        first = [c for c in cands[:per_mode] if c.row in done]
        met = any(done[c.row].meets_sla for c in first)
        missed = [c for c in first if not done[c.row].meets_sla and done[c.row].tokens_per_s_per_gpu > 0]
        if missed or (first and not met):
            busy.append((cands, met, missed))
    if len(busy) != 1 or busy[0][1]:
        return [], []
    cands, _, missed = busy[0]
    walk = [Ahead(c) for c in cands[per_mode:per_mode + 2]]
    top, *rest = sorted(missed, key=lambda c: -done[c.row].tokens_per_s_per_gpu) or [None]
    if rest:   # the next miss's back-off starts where its line from above crosses 1, whatever its floor
        walk.append(Ahead(rest[0], first_probe(result, rest[0], done[rest[0].row])))
    return walk, [] if top is None else [Ahead(top, floor=0.0)]


def make_ahead(result: PlanResult, db: PerfDB, tasks: list[Ahead], done: dict[int, SimCheck],
               runs: int = BACKOFF_RUNS) -> Memo:
    """The replays of `tasks` (`ahead`'s) as a memo for `replay`."""
    memo: Memo = {}
    cal = _calibrations(result)
    for t in tasks:
        c = t.candidate
        if t.floor is None:
            _replay(result, c, db, cal(c.backend), t.per_unit, memo)
        else:
            back_off(result, c, db, done[c.row], cal(c.backend), t.floor, runs, memo)
    return memo


def back_off(result: PlanResult, c: Candidate, db: PerfDB, first: SimCheck, cal, floor: float = 0.0,
             runs: int = BACKOFF_RUNS, memo: Memo | None = None) -> SimCheck:
    """`c` replayed at the most clients per replica / xPyD group, below its static concurrency, that meet
    every target (a bracketing search: from above until something meets, then regula falsi; `runs` replays
    at most, stopping once the bracket is within BACKOFF_TOLERANCE; monotone: fewer clients queue less and
    batch smaller),
    with `first` (its miss at the static concurrency) as `at_static`; `first` itself, its runs counted,
    when even one client per unit misses, or when backing off cannot beat `floor` tokens/s/GPU (fewer
    clients never serve more than a replay that already served no more than `floor`)."""
    lo, hi = 0, _static_per_unit(c)   # per unit: lo met (0: none yet), hi missed
    best, n, bound = None, 0, first.tokens_per_s_per_gpu
    f_lo, f_hi = None, _worst(result, first)   # worst target ratios at lo / hi
    above = (0, 0.0)    # the point the first secant from above runs through: no clients, no load
    w_lo = w_hi = 1.0   # each end's weight in the secant (Illinois: halved while the other end moves)
    last = None         # whether the last replay met
    while hi - lo > 1 and n < runs and bound > floor and not _resolved(lo, hi):
        if lo == 0 and n == runs - 1:
            k = 1
        elif lo == 0:   # the first probe is first_probe's
            k = _from_above(hi, f_hi, *above)
        else:
            k = _probe(lo, hi, f_lo, f_hi, w_lo, w_hi)
        s = _replay(result, c, db, cal, k, memo)
        n += 1
        if s.meets_sla:
            lo, best, f_lo, w_lo = k, s, _worst(result, s), 1.0
            w_hi = w_hi / 2 if last is True else w_hi
        else:
            above = (hi, f_hi)
            hi, bound, f_hi, w_hi = k, s.tokens_per_s_per_gpu, _worst(result, s), 1.0
            w_lo = w_lo / 2 if last is False else w_lo
        last = s.meets_sla
    if best is None:
        return replace(first, runs=1 + n)
    return replace(best, runs=1 + n, at_static=first)


def rank_on_load(result: PlanResult, sims: dict[int, SimCheck]) -> PlanResult:
    """`result` ranked on load: per mode, the simulated candidates that meet every target, best simulated
    tokens/s/GPU first, then the static candidates not simulated; the winner and its speedup from the
    simulated numbers; `sims` holds every replay and `rejected` the rows the simulator failed."""
    top, rejected = {}, []
    for mode, cands in result.top.items():
        done = next((i for i, c in enumerate(cands) if c.row not in sims), len(cands))
        replayed = sorted((c for c in cands[:done] if sims[c.row].meets_sla),
                          key=lambda c: -sims[c.row].tokens_per_s_per_gpu)
        rejected += [c.row for c in cands[:done] if not sims[c.row].meets_sla]
        top[mode] = tuple(replayed) + tuple(cands[done:])
    best = {m: cs[0] for m, cs in top.items() if cs and cs[0].row in sims}
    winner = max(best.values(), key=lambda c: (sims[c.row].tokens_per_s_per_gpu, c.mode == Mode.AGG)) if best else None
    speedup = None
    if winner is not None:
        others = [sims[c.row].tokens_per_s_per_gpu for m, c in best.items() if m != winner.mode]
        speedup = sims[winner.row].tokens_per_s_per_gpu / max(others) if others and max(others) > 0 else None
    out = replace(result, top=top, winner=winner, speedup=speedup, sims=sims, rejected=tuple(rejected),
                  static_winner=result.winner, per_backend=_per_backend_on_load(result, top, sims))
    return replace(out, why=why(out))


def _per_backend_on_load(result: PlanResult, top: dict, sims: dict[int, SimCheck]) -> dict:
    """`--backend all`'s best candidate per backend, decided like the winner: the best simulated
    tokens/s/GPU among its replays that meet every target (`top`, ranked on load, holds no missed replay);
    without one, its static best where that was never replayed (shown with its static figures), else none."""
    out = {}
    for b, static in result.per_backend.items():
        met = [c for cs in top.values() for c in cs if c.backend == b and c.row in sims]
        if met:
            out[b] = max(met, key=lambda c: sims[c.row].tokens_per_s_per_gpu)
        elif static.row not in sims:
            out[b] = static
    return out


def load_tokens(c: Candidate, sims: dict[int, SimCheck] | None) -> float:
    """What the plan ranks `c` on: its simulated tokens/s/GPU where it was replayed, else its static one."""
    return sims[c.row].tokens_per_s_per_gpu if sims and c.row in sims else c.metrics.tokens_per_s_per_gpu


def decide(result: PlanResult, db: PerfDB, per_mode: int = SIM_PER_MODE, backoff_runs: int = BACKOFF_RUNS) -> PlanResult:
    """replay + rank_on_load in one process."""
    return rank_on_load(result, replay(result, db, None, per_mode, backoff_runs))


def _binding(result: PlanResult, s: SimCheck) -> str:
    """The target a simulated candidate is closest to missing (or misses most), with the value checked."""
    req = result.request
    rs = target_ratios(*sim_checked(s, req.sla, req.osl), req.sla)
    k = max(rs, key=lambda x: rs[x])
    target = {Constraint.TTFT: req.sla.ttft_ms, Constraint.TPOT: req.sla.tpot_ms}.get(k, req.sla.request_latency_ms)
    name, fmt = {Constraint.TTFT: ("TTFT", ",.0f"), Constraint.TPOT: ("TPOT", ".2f")}.get(k, ("request latency", ",.0f"))
    return f"{name} {rs[k] * target:{fmt}} of {target:g} ms"


def _probe(lo: int, hi: int, f_lo: float | None, f_hi: float, w_lo: float = 1.0, w_hi: float = 1.0) -> int:
    """The next clients per unit between `lo` (met at worst target ratio f_lo; 0: nothing met yet) and `hi`
    (missed at f_hi > 1): where the line through the bracket's ratios crosses 1 (regula falsi: a closed
    loop's TTFT and TPOT rise near-linearly with its clients once it queues, so the crossing lands next
    to the boundary where halving needs several runs), each end's distance from 1 weighted by `w_lo` /
    `w_hi` (the Illinois rule: `back_off` halves an end's weight each time the other end moves again, so
    a secant that keeps landing on one side of a curved ratio moves towards the stagnant end instead of
    creeping; the middle, which the first cut took then, gave up the secant's information: Kimi-K2.5's
    disagg back-off went 56 met, 99 / 95 missed, then 75 and 94, ending at 75 of a boundary near 94);
    the middle before anything met and when the line falls outside the bracket. The bracket only
    shrinks, so the search ends at the same boundary as a bisection, in fewer runs."""
    mid = (lo + hi) // 2
    if f_lo is None or not f_hi > 1.0 > f_lo:
        return mid
    below, above = (1.0 - f_lo) * w_lo, (f_hi - 1.0) * w_hi
    k = int(lo + (hi - lo) * below / (below + above))
    return k if lo < k < hi else mid


def first_probe(result: PlanResult, c: Candidate, first: SimCheck) -> int:
    """The clients per unit `back_off` replays `c` at first, after `first` (its miss at the static
    concurrency) and before anything has met: the same whatever floor it backs off from."""
    return _from_above(_static_per_unit(c), _worst(result, first), 0, 0.0)


def _static_per_unit(c: Candidate) -> int:
    """The candidate's static concurrency in clients per replica / xPyD group (rounded up)."""
    units, _ = sim_units(c)
    return -(-sim_clients(c)[0] // units)


def _from_above(hi: int, f_hi: float, k0: int, f0: float) -> int:
    """A back-off's next clients per unit while nothing has met: where the line through its fewest-client
    miss (`hi`, worst target ratio `f_hi` > 1) and the miss before it (`k0`, `f0`; at first no clients, no
    load: (0, 0)) crosses 1. A closed loop's TTFT and TPOT rise near-linearly with its clients near the
    boundary, so the first probe lands at the most clients that may meet and each further miss moves the
    line's crossing onto the boundary from above (the README plan's agg pick missed TPOT by 9.5% at 40 a
    replica: 36, then 34 met, then 35, where halving from the middle took 20, 33, 35, 34); with a floor to
    beat, a first probe that misses serving no more than the floor ends the back-off after one replay.
    One client where the line crosses below it (far over the targets); the middle where it gives nothing
    below `hi`: a ratio that is no miss, unbounded, or one that did not fall with the clients."""
    if not 1.0 < f_hi < float("inf") or not (f_hi - f0) * (hi - k0) > 0:   # the ratio must rise with the clients
        return hi // 2
    k = max(1, int(hi - (f_hi - 1.0) * (hi - k0) / (f_hi - f0)))   # far over the targets: one client
    return k if k < hi else hi // 2


def _resolved(lo: int, hi: int) -> bool:
    """Whether a back-off's bracket (`lo` clients per unit met, 0: none yet; `hi` missed) is narrow enough
    to stop: something met, within BACKOFF_TOLERANCE of the missed count."""
    return lo > 0 and hi - lo <= BACKOFF_TOLERANCE * hi


def _worst(result: PlanResult, s: SimCheck) -> float:
    req = result.request
    return max(target_ratios(*sim_checked(s, req.sla, req.osl), req.sla).values())


def _parts(s: SimCheck) -> str:
    return f" (raw TTFT {s.parts.shares()} ms)" if s.parts is not None else ""


def load_label(result: PlanResult, s: SimCheck) -> str:
    """'at 48 clients, backed off from 96 (TTFT 1,453 of 1000 ms there)': the load a replay stands for."""
    text = f"at {s.concurrency:,.0f} clients"
    if s.backed_off:
        text += f", backed off from {s.at_static.concurrency:,.0f} ({_binding(result, s.at_static)} there)"
    return text


def why(result: PlanResult) -> str:
    """One line: why the winning mode wins under load (or why nothing does)."""
    w, sims = result.winner, result.sims
    if w is None:
        missed = [sims[r] for r in result.rejected if r in sims]
        if not missed:
            return ""
        s = min(missed, key=lambda x: _worst(result, x))
        return (f"under load no simulated candidate meets every target, at its static concurrency or backed off; "
                f"the closest misses on {_binding(result, s)} at {s.concurrency:,.0f} clients")
    sw = sims[w.row]
    other = [cs[0] for m, cs in result.top.items() if m != w.mode and cs and cs[0].row in sims]
    head = f"{w.mode.value} wins under load: {sw.tokens_per_s_per_gpu:,.1f} tok/s/GPU simulated {load_label(result, sw)}"
    if other:
        o = other[0]
        so = sims[o.row]
        return (f"{head}; vs {so.tokens_per_s_per_gpu:,.1f} for the best {o.mode.value} ({o.label()}, "
                f"{load_label(result, so)}), which is held by {_binding(result, so)}{_parts(so)}"
                f"{_near_tie(result, (w, sw), (o, so))}")
    lost = [m.value for m, cs in result.top.items() if m != w.mode and not any(c.row in sims for c in cs)]
    gone = [r for r in result.rejected if r in sims and result.points.candidate(r).mode != w.mode]
    if gone:
        s = sims[gone[0]]
        return (f"{head}; no {lost[0] if lost else 'other'} candidate meets the targets under load "
                f"({_binding(result, s)} {load_label(result, s)})")
    return f"{head}; the other mode has no candidate meeting the targets"


def _near_tie(result: PlanResult, *picks: tuple[Candidate, SimCheck]) -> str:
    """When the winner's lead over the other mode's best is smaller than the calibrated replays' own
    held-out error, say so: a closed loop's throughput at a fixed concurrency goes with 1 / TPOT, so a
    lead under the calibrations' cross-validated median |TPOT error| (the larger of the two picks'
    backends; training summary `tpot_after_cv`) is not resolved by the model. Uncalibrated replays carry
    no such figure and get no note."""
    (w, sw), (_, so) = picks
    if not (sw.calibrated and so.calibrated and so.tokens_per_s_per_gpu > 0):
        return ""
    errs = []
    for c, _ in picks:
        cal = sim_calibration(result, c.backend)
        err = (cal.training.get("tpot_after_cv") or {}).get("median_abs_pct") if cal is not None else None
        if err is not None:
            errs.append((float(err), cal.id))
    lead = sw.tokens_per_s_per_gpu / so.tokens_per_s_per_gpu - 1.0
    if not errs or lead * 100 >= max(errs)[0]:
        return ""
    err, cid = max(errs)
    return (f"; a near tie: a {lead:.1%} lead, under the calibrated replay's held-out median TPOT error of "
            f"{err:.1f}% (calibration {cid}), so both modes are worth measuring")


def static_label(c: Candidate) -> str:
    m = c.metrics
    return (f"static {m.ttft_ms:,.0f} / {m.tpot_ms:.2f} ms, {m.tokens_per_s_per_gpu:,.1f} tok/s/GPU at "
            f"{m.concurrency:,.0f} clients")
