"""The Python API (servecast.api, docs/api.md): every documented example runs as written, against the bundled
database, and the API gives what the commands print (they call it)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import servecast
from perfdb.errors import InputError, ServecastError

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "api.md"
SHARED = REPO.parent / "shared"
FUNCTIONS = ("plan", "estimate", "estimate_runs", "simulate", "fit", "predicted_runs", "collect", "collect_plan")


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory):
    """Every ```python block of docs/api.md executed in order in one namespace, in a scratch directory laid
    out like the repository's (../shared/data beside it); (namespace, printed text, directory)."""
    pytest.importorskip("torch")   # the collect example measures with torch on the CPU
    if not (SHARED / "data" / "e2e_train_silicon.csv").is_file():
        pytest.skip("../shared/data/e2e_train_silicon.csv is not beside the checkout")
    root = tmp_path_factory.mktemp("docs")
    (root / "shared").symlink_to(SHARED)
    work = root / "repo"
    work.mkdir()
    namespace: dict = {"__name__": "docs_api"}
    printed = io.StringIO()
    cwd = Path.cwd()
    os.chdir(work)
    try:
        for i, code in enumerate(_blocks()):
            with contextlib.redirect_stdout(printed):
                exec(compile(code, f"docs/api.md block {i + 1}", "exec"), namespace)   # noqa: S102 - the docs' own code
    finally:
        os.chdir(cwd)
    return namespace, printed.getvalue(), work


def test_every_api_function_is_documented_with_an_example():
    code = "\n".join(_blocks())
    for name in FUNCTIONS:
        assert f"servecast.{name}(" in code, f"docs/api.md has no example calling servecast.{name}"
        assert f"`{name}(" in DOC.read_text(), f"docs/api.md's table does not list {name}"
    assert set(FUNCTIONS) <= set(servecast.__all__) and all(callable(getattr(servecast, n)) for n in FUNCTIONS)
    from servecast import api

    assert sorted(api._WHERE) == sorted(api.__all__) == sorted(servecast.__all__)
    assert all(getattr(api, n) is getattr(servecast, n) for n in api.__all__)


def test_the_documented_examples_run_and_give_real_results(docs_run):
    ns, printed, work = docs_run
    assert ns["result"].winner is not None and (work / "plan-out" / "pareto.png").is_file()
    assert all((work / "plan-out" / d / "deployment.yaml").is_file() for d in ns["result"].artifacts.values())
    assert ns["preds"].predicted > 100 and (work / "pred.csv").is_file()
    assert (work / "records.parquet").is_file() and (work / ns["fitted"].path / "calibration.json").is_file()
    summary, again = ns["summary"], ns["again"]
    assert summary.measured > 0 and again.measured == 0 and again.skipped >= summary.measured
    assert "unknown backend 'tensorrt'; accepted: trtllm, sglang, vllm, all" in printed
    assert "True\n" in printed   # the fitted calibration applied to an estimate


def test_plan_is_what_the_command_writes_and_forking_changes_nothing(docs_run, tmp_path):
    ns, _, work = docs_run
    documented = ns["result"]   # the save_dir example's result, written to plan-out/
    one = servecast.plan(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", backend="trtllm", total_gpus=8, isl=4000,
                         osl=500, ttft_ms=600, tpot_ms=16.67, fork=False)
    assert one.winner.row == documented.winner.row and one.sims == documented.sims and one.why == documented.why
    assert one.artifacts == {} and len(documented.artifacts) == sum(len(c) for c in documented.top.values())
    proc = subprocess.run([sys.executable, "-m", "servecast.cli", "plan", "--model", "Qwen/Qwen3-32B-FP8", "--system",
                           "h200_sxm", "--backend", "trtllm", "--total-gpus", "8", "--isl", "4000", "--osl", "500",
                           "--ttft", "600", "--tpot", "16.67", "--save-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sim = one.sims[one.winner.row]
    assert f"winner: {one.winner.mode.value} trtllm {one.winner.label()} - simulated {sim.tokens_per_s_per_gpu:.1f} tok/s/GPU" \
        in proc.stdout
    assert json.loads((tmp_path / "plan.json").read_text()) == json.loads((work / "plan-out" / "plan.json").read_text())


def test_estimate_and_simulate_are_what_the_commands_print(docs_run):
    from estimator.deployment import Deployment
    from estimator.parallel import ParallelConfig
    from perfdb.types import Backend
    from servecast.cli import run

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run(["estimate", "--model", "Qwen/Qwen3-32B", "--system", "h200_sxm", "--backend", "trtllm", "--tp",
                    "2", "--concurrency", "32", "--isl", "4000", "--osl", "500", "--json"]) == 0
    shown = json.loads(out.getvalue())
    r = servecast.estimate(model="Qwen/Qwen3-32B", system="h200_sxm", parallel=ParallelConfig(tp=2), concurrency=32,
                           isl=4000, osl=500)
    assert shown["ttft_ms"] == pytest.approx(r.estimate.ttft_ms)
    assert shown["calibrated"]["ttft_ms"] == pytest.approx(r.calibrated.estimate.ttft_ms)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run(["simulate", "--model", "Qwen/Qwen3-32B-FP8", "--system", "h200_sxm", "--backend", "vllm", "--tp",
                    "2", "--replicas", "4", "--isl", "4000", "--osl", "500", "--concurrency", "16,64",
                    "--num-requests", "200", "--json", "--plot", ""]) == 0
    rows = json.loads(out.getvalue())
    sim = servecast.simulate(deployment=Deployment.aggregated(Backend.VLLM, ParallelConfig(tp=2), replicas=4),
                             model="Qwen/Qwen3-32B-FP8", system="h200_sxm", isl=4000, osl=500, concurrency=[16, 64],
                             num_requests=200)
    assert [row["load"] for row in rows] == [16, 64] and sim.points == (16, 64)
    assert [row["ttft"]["p50"] for row in rows] == pytest.approx([res.ttft.p50 for res in sim.results])
    assert [row["calibrated"]["ttft_ms"] for row in rows] == pytest.approx([c.ttft_ms for c in sim.calibrated])


def test_library_errors_are_one_line_servecast_errors_and_nothing_is_printed(capfd):
    cases = [
        lambda: servecast.plan(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", isl=4000, osl=500, ttft_ms=-1, tpot_ms=16),
        lambda: servecast.plan(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", isl=4000, osl=500, ttft_ms=600,
                               tpot_ms=16, mode="sideways"),
        lambda: servecast.estimate(model="no/such-model", system="h200_sxm"),
        lambda: servecast.simulate(model="Qwen/Qwen3-32B", system="h200_sxm"),
        lambda: servecast.fit("runs.csv", out="x", plot="p.txt"),
        lambda: servecast.collect_plan(ops=["gemm", "fft"], device="cpu"),
    ]
    for case in cases:
        with pytest.raises(ServecastError) as info:
            case()
        assert str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="accepted: agg, disagg"):
        servecast.estimate(model="Qwen/Qwen3-32B", system="h200_sxm", mode="both")
    from estimator.deployment import Deployment
    from estimator.parallel import ParallelConfig
    from perfdb.types import Backend

    with pytest.raises(InputError, match="not both"):
        servecast.simulate(deployment=Deployment.aggregated(Backend.VLLM, ParallelConfig()), plan="plan-out")
    assert capfd.readouterr() == ("", "")


def test_the_api_imports_no_cli_and_reads_no_environment(tmp_path):
    """typer, click and rich stay out of a library run, and the Hugging Face cache is the hf_hub argument:
    $HF_HUB_CACHE naming a cache with the model does not make the library find it."""
    snap = tmp_path / "hub" / "models--acme--cached-only" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    catalog = json.loads((REPO / "estimator" / "catalog" / "Qwen--Qwen3-0.6B.json").read_text())
    (snap / "config.json").write_text(json.dumps(catalog["config"]))
    refs = tmp_path / "hub" / "models--acme--cached-only" / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc")
    code = ("import sys\nfrom pathlib import Path\nimport servecast\nfrom perfdb.errors import NotFoundError\n"
            "servecast.plan(model='Qwen/Qwen3-32B-FP8', system='h200_sxm', isl=4000, osl=500, ttft_ms=600, "
            "tpot_ms=16.67, top_n=1)\n"
            "print(sorted(m for m in ('typer', 'click', 'rich') if m in sys.modules))\n"
            "try:\n    servecast.estimate(model='acme/cached-only', system='h200_sxm')\n"
            "except NotFoundError:\n    print('not found without hf_hub')\n"
            "r = servecast.estimate(model='acme/cached-only', system='h200_sxm', hf_hub=Path(sys.argv[1]))\n"
            "print('found with hf_hub', bool(r.estimate.feasible))\n")
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "hub")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "not found without hf_hub", "found with hf_hub True"]
