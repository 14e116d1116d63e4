"""The plan command's helpers that run work beside the main thread: values and errors come back."""
from __future__ import annotations

import pytest

from perfdb.errors import InputError
from servecast.sidework import Background as _Background
from servecast.sidework import Forked as _Forked
from servecast.sidework import alongside as _alongside


def test_forked_returns_the_childs_value():
    assert _Forked(lambda: {3: ("agg", 1.5)}).result() == {3: ("agg", 1.5)}


def test_forked_reraises_a_servecast_error():
    def fail():
        raise InputError("bad target")

    with pytest.raises(InputError, match="bad target"):
        _Forked(fail).result()


def test_forked_bug_fails_loudly(capfd):
    def bug():
        raise ValueError("a bug")

    with pytest.raises(RuntimeError, match="forked plan worker failed"):
        _Forked(bug).result()
    assert "ValueError: a bug" in capfd.readouterr().err


def test_background_reraises(tmp_path):
    def write(path):
        (path / "missing" / "x").write_text("x")

    with pytest.raises(FileNotFoundError):
        _Background(write, tmp_path).result()
    done = []
    _Background(done.append, 1).result()
    assert done == [1]


def test_forked_discard_waits_without_raising():
    def fail():
        raise InputError("ignored")

    job = _Forked(fail)
    job.discard()
    assert job.pid is None


def test_unusable_save_dir_is_a_one_line_error_before_the_search(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "servecast.cli", "plan", "--model", "Qwen/Qwen3-32B-FP8", "--system",
                           "h200_sxm", "--isl", "4000", "--osl", "500", "--ttft", "600", "--tpot", "16.67",
                           "--save-dir", str(blocker / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --save-dir") and "Traceback" not in proc.stderr


def test_a_full_plan_imports_none_of_the_slow_modules(tmp_path):
    """pandas (~0.4 s), matplotlib (~0.5 s), pyarrow.compute (~0.2 s), pydantic (~0.1 s) stay out."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['servecast'] + sys.argv[1:]\nfrom servecast.cli import main\ntry:\n main()\n"
            "except SystemExit:\n pass\nprint('LOADED', [m for m in ('pandas', 'matplotlib', 'pyarrow.compute', "
            "'pydantic', 'servecast.commands.estimate') if m in sys.modules], file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, "plan", "--model", "Qwen/Qwen3-32B-FP8", "--system", "h200_sxm",
                           "--isl", "4000", "--osl", "500", "--ttft", "600", "--tpot", "16.67", "--save-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert "LOADED []" in proc.stderr, proc.stderr[-2000:]
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_a_multi_backend_screen_split_over_a_forked_child_gives_the_same_points():
    """`--backend all`: every other backend's static screen runs in a forked child (search.plan._screen);
    the points, their order, the worker count and the winner are what one process computes."""
    import numpy as np

    from perfdb.lookup import PerfDB
    from search.plan import plan as search_plan
    from servecast.api._plan import plan_request

    req = plan_request(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", backend="all", total_gpus=8, isl=4000,
                       osl=500, prefix=0, ttft_ms=600, tpot_ms=16.67, request_latency_ms=None, sla_at="median",
                       mode="both", top_n=5, version=None, gemm_quant=None, moe_quant=None, kv_dtype=None, db=None,
                       calibration=None, hf_hub=None)
    db = PerfDB(None)
    children = []

    def apart(fn, here):
        children.append(fn)
        return _alongside(fn, here)

    split, alone = search_plan(req, db, apart=apart), search_plan(req, db)
    assert len(children) == 1 and len(req.backends) == 3
    assert split.worker_points == alone.worker_points and len(split.points) == len(alone.points)
    for col in ("backend", "tokens_per_s_per_gpu", "ttft_ms", "tpot_ms", "meets_sla"):
        assert np.array_equal(split.points[col], alone.points[col], equal_nan=True), col
    assert split.winner == alone.winner and split.per_backend == alone.per_backend


def test_a_screen_that_fails_on_either_side_fails_the_plan(monkeypatch):
    """A backend whose screen raises fails the plan, screened in the child (its error comes back) or
    here (the child is waited for, its result dropped)."""
    import search.plan as sp

    class Ctx:
        def __init__(self, name):
            self.name, self.memory_reasons = name, []

    def screen(ctx, modes, sla):
        if ctx.name == bad:
            raise InputError(f"{ctx.name} cannot be screened")
        return [], 1

    monkeypatch.setattr(sp, "_backend_points", screen)
    contexts = {n: Ctx(n) for n in ("a", "b", "c")}   # "b" is screened in the child
    for bad in ("b", "a"):
        with pytest.raises(InputError, match=f"{bad} cannot be screened"):
            sp._screen(contexts, (), None, _alongside)
    bad = None
    assert {k: v[1] for k, v in sp._screen(contexts, (), None, _alongside).items()} == {"a": 1, "b": 1, "c": 1}


def test_the_pareto_png_drawn_in_a_forked_child_is_the_one_drawn_here(tmp_path):
    """pareto.png is drawn in a forked child while the artifacts are written (servecast.api._plan._write):
    the same bytes as drawn in this process, and a failure to write it is the one-line DataError."""
    from perfdb.errors import DataError
    from servecast.api import plan

    kw = dict(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", isl=4000, osl=500, ttft_ms=600, tpot_ms=16.67,
              simulate=False)
    plan(**kw, save_dir=tmp_path / "forked", fork=True)
    plan(**kw, save_dir=tmp_path / "here", fork=False)
    png = (tmp_path / "forked" / "pareto.png").read_bytes()
    assert png[:4] == b"\x89PNG" and png == (tmp_path / "here" / "pareto.png").read_bytes()
    (tmp_path / "blocked" / "pareto.png").mkdir(parents=True)   # a directory where the PNG goes
    for fork in (True, False):
        with pytest.raises(DataError, match="pareto.png failed"):
            plan(**kw, save_dir=tmp_path / "blocked", fork=fork)


def test_a_plan_decided_on_two_cores_is_the_single_process_one():
    """GLM-5 FP8 on 8x b200: after the first replays only its agg mode has work and none of them met, so a
    forked child walks down the agg ranking while this process backs the top miss off from a floor of 0
    (search.decide.ahead), and `replay` takes both from that memo: every replay, the ranking and the winner
    are the ones one process makes (search.decide.decide)."""
    from perfdb.lookup import PerfDB
    from perfdb.types import Backend
    from search.decide import ahead, decide, first_replays, static_replays
    from search.plan import plan
    from search.types import PlanRequest, Sla
    from servecast.api._plan import _decide_on_load

    req = PlanRequest(model="zai-org/GLM-5-FP8", system="b200_sxm", backends=(Backend.TRTLLM,), total_gpus=8,
                      isl=4000, osl=500, sla=Sla(3000, 50))
    db = PerfDB(None)
    static = plan(req, db)
    walk, back = ahead(static, static_replays(static, db, first_replays(static)))
    assert walk and back                                   # the path under test
    two, one = _decide_on_load(static, db, _alongside), decide(static, db)
    assert two.sims == one.sims and two.top == one.top and two.winner == one.winner
