"""The plan decides on load: the static screen picks each mode's candidates near the frontier, the
simulator replays each at the concurrency it would serve, and the ranking, the SLA filter (at the
median or the interval's upper end, as the request says) and the winner use the simulated TTFT, TPOT
and tokens/s/GPU. The static numbers stay on every candidate (`Candidate.metrics`) beside the
simulated ones (`PlanResult.sims`).

Why the static screen first: it evaluates ten thousand deployments in a fraction of a second, the
simulator a few per tenth of a second. The static model's TTFT has no real queueing, so it ranks
within a mode well but misjudges the modes against each other under load; the SIM_PER_MODE best
static candidates of each mode are close enough in static throughput that the simulator's verdict
decides among them.
"""
from __future__ import annotations

from dataclasses import replace

from perfdb.lookup import PerfDB
from search.plan import PlanResult
from search.simcheck import sim_calibration, simulate_candidate
from search.types import Candidate, Mode, SimCheck

SIM_PER_MODE = 3    # static top candidates of each mode replayed (each ~0.02-0.06 s of CPU)


def replay(result: PlanResult, db: PerfDB, modes: tuple[Mode, ...] | None = None,
           per_mode: int = SIM_PER_MODE) -> dict[int, SimCheck]:
    """Simulate each mode's first `per_mode` static candidates, and on down the static ranking until one
    meets every target under load; {points row: SimCheck}. `modes` None: every mode of the result."""
    sims: dict[int, SimCheck] = {}
    cals: dict = {}
    for mode, cands in result.top.items():
        if modes is not None and mode not in modes:
            continue
        for done, c in enumerate(cands):
            if done >= per_mode and any(sims[x.row].meets_sla for x in cands[:done]):
                break
            if c.backend not in cals:
                cals[c.backend] = sim_calibration(result, c.backend)
            sims[c.row] = simulate_candidate(result, c, db, cal=cals[c.backend])
    return sims


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
                  static_winner=result.winner)
    return replace(out, why=why(out))


def decide(result: PlanResult, db: PerfDB, per_mode: int = SIM_PER_MODE) -> PlanResult:
    """replay + rank_on_load in one process."""
    return rank_on_load(result, replay(result, db, None, per_mode))


def _binding(result: PlanResult, s: SimCheck) -> str:
    """The target a simulated candidate is closest to missing, with its value."""
    sla = result.request.sla
    ttft, tpot = (s.ttft_hi_ms or s.ttft_ms, s.tpot_hi_ms or s.tpot_ms) if s.ttft_hi_ms is not None and \
        sla.at.value == "upper" else (s.ttft_ms, s.tpot_ms)
    if ttft / sla.ttft_ms >= tpot / sla.tpot_ms:
        return f"TTFT {ttft:,.0f} of {sla.ttft_ms:g} ms"
    return f"TPOT {tpot:.2f} of {sla.tpot_ms:g} ms"


def _parts(s: SimCheck) -> str:
    return f" (raw TTFT {s.parts.shares()} ms)" if s.parts is not None else ""


def why(result: PlanResult) -> str:
    """One line: why the winning mode wins under load (or why nothing does)."""
    w, sims = result.winner, result.sims
    if w is None:
        missed = [sims[r] for r in result.rejected if r in sims]
        if not missed:
            return ""
        s = min(missed, key=lambda x: x.ttft_ms / result.request.sla.ttft_ms)
        return f"under load no simulated candidate meets every target; the closest misses on {_binding(result, s)}"
    sw = sims[w.row]
    other = [cs[0] for m, cs in result.top.items() if m != w.mode and cs and cs[0].row in sims]
    head = f"{w.mode.value} wins under load: {sw.tokens_per_s_per_gpu:,.1f} tok/s/GPU simulated"
    if other:
        o = other[0]
        so = sims[o.row]
        return (f"{head} vs {so.tokens_per_s_per_gpu:,.1f} for the best {o.mode.value} ({o.label()}), which is held "
                f"by {_binding(result, so)}{_parts(so)}")
    lost = [m.value for m, cs in result.top.items() if m != w.mode and not any(c.row in sims for c in cs)]
    gone = [r for r in result.rejected if r in sims and result.points.candidate(r).mode != w.mode]
    if gone:
        s = sims[gone[0]]
        return f"{head}; no {lost[0] if lost else 'other'} candidate meets the targets under load ({_binding(result, s)})"
    return f"{head}; the other mode has no candidate meeting the targets"


def static_label(c: Candidate) -> str:
    m = c.metrics
    return f"static {m.ttft_ms:,.0f} / {m.tpot_ms:.2f} ms, {m.tokens_per_s_per_gpu:,.1f} tok/s/GPU"
