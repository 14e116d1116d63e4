"""servecast.plan(): search, decide on load, write the artifacts (what `servecast plan` does, without the printing).

For speed on two cores, with several backends every other backend's static screen runs in a forked child,
the disagg replays run in another while this process replays agg, and the Pareto PNG is drawn in a forked
child and the points files written on a thread while the artifacts are (servecast.sidework).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfdb.lookup import PerfDB
    from perfdb.types import Backend, Dtype
    from search.plan import PlanResult
    from search.types import Mode, PlanRequest, SlaAt

BACKEND_CHOICES = ("trtllm", "sglang", "vllm")


def plan(*, model: str, system: str, isl: int, osl: int, ttft_ms: float, tpot_ms: float,
         backend: str | Backend | Sequence[str | Backend] = "trtllm", total_gpus: int = 8, prefix: int = 0,
         request_latency_ms: float | None = None, sla_at: str | SlaAt = "median", mode: str | Mode = "both",
         top_n: int = 5, version: str | None = None, gemm_quant: str | Dtype | None = None,
         moe_quant: str | Dtype | None = None, kv_dtype: str | Dtype | None = None, db: Path | str | None = None,
         calibration: Path | str | None = None, hf_hub: Path | None = None, simulate: bool = True,
         save_dir: Path | str | None = None, dynamo_version: str | None = None, fork: bool = True,
         range_ratio: float | None = None) -> PlanResult:
    """The best aggregated and disaggregated deployments meeting the targets (search.plan.PlanResult).

    backend: "trtllm", "sglang", "vllm", "all" or a sequence of them. calibration: a calibration directory,
    None (the newest stored in the database; the bundled one ships one) or "none" (uncalibrated).
    simulate: the simulator replays each mode's best candidates and decides (search.decide).
    range_ratio: request lengths of the replays and of aiperf.sh uniform in [x(1 - r), x(1 + r)] around
    isl / osl; None: the InferenceX client's spread (search.types.INFERENCEX_RANGE_RATIO), 0: fixed.
    save_dir: also write points.parquet/.csv, pareto.png, plan.json and top/<n>/ artifacts there
    (`PlanResult.artifacts` names them). fork: use the second core through forked children (Linux): with
    several backends every other backend's static screen runs in one, and the disagg candidates' replays
    in another while this process replays agg; the result is the same either way.
    """
    from perfdb.lookup import PerfDB
    from search.plan import plan as search_plan
    from search.plan import shown

    req = plan_request(model=model, system=system, backend=backend, total_gpus=total_gpus, isl=isl, osl=osl,
                       prefix=prefix, ttft_ms=ttft_ms, tpot_ms=tpot_ms, request_latency_ms=request_latency_ms,
                       sla_at=sla_at, mode=mode, top_n=top_n, version=version, gemm_quant=gemm_quant,
                       moe_quant=moe_quant, kv_dtype=kv_dtype, db=db, calibration=calibration, hf_hub=hf_hub,
                       range_ratio=range_ratio)
    out = _save_dir(save_dir)   # before the search: a bad save_dir fails at once
    if dynamo_version is not None:
        from search.artifacts.dynamo import check_tag

        check_tag(dynamo_version)
    from servecast.sidework import alongside, in_turn

    database = PerfDB(db)
    apart = alongside if fork else in_turn
    result = search_plan(req, database, apart=apart)
    if simulate and result.winner is not None:   # the simulator decides (search.decide)
        result = _decide_on_load(result, database, apart)
    result = shown(result)
    if out is not None:
        result = _write(result, out, dynamo_version, fork)
    return result


def plan_request(*, model: str, system: str, backend, total_gpus: int, isl: int, osl: int, prefix: int,
                 ttft_ms: float, tpot_ms: float, request_latency_ms, sla_at, mode, top_n: int, version,
                 gemm_quant, moe_quant, kv_dtype, db, calibration, hf_hub,
                 range_ratio: float | None = None) -> PlanRequest:
    """The search's PlanRequest from plan()'s arguments, every value checked (one-line InputError)."""
    from estimator.calibration_files import calibration_flag
    from perfdb.types import Dtype, parse_enum
    from search.types import Mode, PlanRequest, Sla, SlaAt

    backends = _backends(backend)
    quant = {k: parse_enum(Dtype, v, k.replace("_", "-")) if v else None
             for k, v in (("gemm_quant", gemm_quant), ("moe_quant", moe_quant), ("kv_dtype", kv_dtype))}
    explicit, stored = calibration_flag(calibration or None)
    return PlanRequest(
        model=model, system=system, backends=backends, total_gpus=total_gpus, isl=isl, osl=osl,
        prefix=prefix, sla=Sla(ttft_ms, tpot_ms, request_latency_ms, parse_enum(SlaAt, sla_at, "sla-at")),
        mode=parse_enum(Mode, mode, "mode"), top_n=top_n, version=version, db_root=Path(db) if db else None,
        calibration=explicit, stored_calibration=stored, hf_hub=hf_hub, **quant,
        **({} if range_ratio is None else {"range_ratio": float(range_ratio)}))


def _backends(backend) -> tuple[Backend, ...]:
    from perfdb.errors import InputError
    from perfdb.types import Backend

    names = [backend] if isinstance(backend, str) else list(backend)
    if names == ["all"]:
        return tuple(Backend(b) for b in BACKEND_CHOICES)
    out = []
    for b in names:
        value = b.value if isinstance(b, Backend) else b
        if value not in BACKEND_CHOICES:
            raise InputError(f"unknown backend {value!r}; accepted: trtllm, sglang, vllm, all")
        out.append(Backend(value))
    return tuple(out)


def _save_dir(path: Path | str | None) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from perfdb.errors import InputError

        raise InputError(f"--save-dir {path}: cannot create the directory ({exc.strerror or exc})") from None
    return out


def _decide_on_load(result: PlanResult, db: PerfDB, apart) -> PlanResult:
    """search.decide on two cores (`apart`: servecast.sidework.alongside or in_turn): the replays every mode
    needs whatever they give (`first_replays`) split between this process and a forked child, then the
    rest of each mode's (walking down its ranking, backing off) with the disagg mode's in a child while this
    process does agg's; where one mode alone has work left and none of its first met, its walk in a child
    while this process backs its top miss off, both kept for `replay` (`search.decide.ahead`). Each replay
    is deterministic, so the ranking on the simulated numbers is the one a single process makes."""
    from search.decide import ahead, first_replays, make_ahead, rank_on_load, replay, static_replays
    from search.types import Mode

    first = first_replays(result)
    theirs, mine = apart(lambda: static_replays(result, db, first[1::2]),
                         lambda: static_replays(result, db, first[0::2]))
    done = mine | theirs
    modes = [m for m, cands in result.top.items() if cands]
    walk, back = ahead(result, done)
    if walk and back:   # one mode's work left: its walk in a child while this process backs its top miss off
        theirs, mine = apart(lambda: make_ahead(result, db, walk, done), lambda: make_ahead(result, db, back, done))
        return rank_on_load(result, replay(result, db, tuple(modes), done=done, memo=mine | theirs))
    if Mode.DISAGG in modes and len(modes) > 1:
        theirs, mine = apart(lambda: replay(result, db, (Mode.DISAGG,), done=done),
                             lambda: replay(result, db, tuple(m for m in modes if m != Mode.DISAGG), done=done))
        return rank_on_load(result, mine | theirs)
    return rank_on_load(result, replay(result, db, tuple(modes), done=done))


def _write(result: PlanResult, out: Path, dynamo_version: str | None, fork: bool = True) -> PlanResult:
    """pareto.png in a forked child (fork: drawing and encoding it, ~0.13 s, hold the GIL) and
    points.parquet/.csv on a thread (0.1-0.2 s for 56k rows, GIL released) while the artifacts and
    plan.json are written here; the child is forked before the thread starts. The first failure is the
    one raised."""
    from servecast.sidework import Background, Forked

    png = Forked(lambda: _pareto_png(result, out)) if fork else None
    points_files = Background(result.points.write, out)   # it overlaps the imports below too
    try:
        from search.artifacts.dynamo import DEFAULT_TAG
        from search.outputs import write_artifacts

        written = write_artifacts(result, out, dynamo_version or DEFAULT_TAG)
        if png is None:
            _pareto_png(result, out)
    except BaseException:   # the helpers are only waited for
        points_files.thread.join()
        if png is not None:
            png.discard()
        raise
    points_files.result()
    if png is not None:
        png.result()
    return replace(result, artifacts=written)


def _pareto_png(result: PlanResult, out: Path) -> None:
    from perfdb.errors import DataError
    from search.outputs import pareto_data
    from search.plot import write_pareto_png

    try:
        write_pareto_png(pareto_data(result), out / "pareto.png")
    except OSError as exc:
        raise DataError(f"writing {out / 'pareto.png'} failed: {exc}") from None
