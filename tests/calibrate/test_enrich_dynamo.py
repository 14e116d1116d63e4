"""`calibrate enrich --dynamo`: the multi-node runs before 2026-01-28, launched from ai-dynamo/dynamo, on
hand-written InferenceX and Dynamo repositories (tests/calibrate/dynamo_fixture.py): the dynamo-trt
engine limits the config's settings name, the dynamo-sglang workers' engines and client at the commit the
launch script pins (not the clone's newest), one-line errors."""
from __future__ import annotations

import csv
import shutil
import sys

import pytest

from calibrate.enrich import enrich
from calibrate.parsers import silicon_csv
from estimator.deployment import role_layout, row_layouts
from estimator.parallel import ParallelConfig
from estimator.runs import read_runs
from perfdb.errors import InputError
from perfdb.specs import load_system
from servecast.cli import main
from tests.calibrate.dynamo_fixture import make_dynamo, make_inferencex, runs_csv

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    base = tmp_path_factory.mktemp("dyn")
    dyn, commits = make_dynamo(base / "dynamo")
    return make_inferencex(base / "InferenceX", commits[0]), dyn, commits


def _rows(text: str) -> dict[str, dict]:
    return {r["id"]: r for r in csv.DictReader(text.splitlines())}


def test_trt_limits_come_from_the_config_settings_without_a_clone(repos, tmp_path):
    ix, _, _ = repos
    rows = _rows(enrich(runs_csv(tmp_path / "runs.csv"), ix)[0])
    trt, sgl = rows["trt"], rows["sgl"]
    assert (trt["prefill_num_workers"], trt["decode_num_workers"], trt["spec_decoding"]) == ("1", "2", "on")
    assert (trt["prefill_max_batch"], trt["prefill_max_num_tokens"]) == ("4", "4608")
    assert (trt["decode_max_batch"], trt["decode_max_num_tokens"], trt["decode_mem_fraction"]) == ("32", "128", "0.9")
    assert trt["spec_tokens"] == "3" and trt["prefill_mem_fraction"] == ""
    assert sgl["decode_max_batch"] == sgl["client_num_prompts"] == sgl["enrich_recipe"] == ""


def test_sglang_workers_and_client_at_the_pinned_commit(repos, tmp_path):
    ix, dyn, (pinned, later) = repos
    sgl = _rows(enrich(runs_csv(tmp_path / "runs.csv"), ix, dynamo=dyn)[0])["sgl"]
    assert sgl["enrich_recipe"].endswith(f"@{pinned[:12]}:examples/backends/sglang/slurm_jobs/scripts/gb200-fp8/"
                                         "disagg/low.sh")
    # prefill: 1 node x 4 GPUs with attention DP, max-running-requests divided over the 4 DP ranks
    assert (sgl["prefill_dp_attn"], sgl["prefill_max_batch"], sgl["prefill_max_num_tokens"]) == ("true", "1000",
                                                                                               "16384")
    assert sgl["prefill_mem_fraction"] == "0.85"
    # decode: the pinned commit's 0.8, not the later 0.7 the clone's HEAD has
    assert (sgl["decode_dp_attn"], sgl["decode_max_batch"], sgl["decode_cuda_graph_max_bs"]) == ("false", "256", "64")
    assert sgl["decode_mem_fraction"] == "0.8"
    assert "decode.tp-size=8" in sgl["engine_flags"] and "prefill.tp-size=4" in sgl["engine_flags"]
    # the config's tp 1 is a placeholder: the workers' GPUs as the scripts launch them, and the layouts
    # the predictors take from them (4 attention-DP ranks; 8-way TP)
    assert (sgl["prefill_gpus"], sgl["decode_gpus"]) == ("4", "8")
    one = ParallelConfig(tp=1)
    assert role_layout(one, True, None, 4) == ParallelConfig(tp=1, attn_dp=4, moe_tp=4)
    assert role_layout(one, False, None, 8) == ParallelConfig(tp=8, moe_tp=8)
    assert role_layout(one, False, None, None) == one
    # vllm profiler: 5 x 16 measured; warm-up sweep at 1, 8 and the sweep's 8, 16: 5 x (1 + 8 + 16)
    assert (sgl["client_num_prompts"], sgl["client_num_warmups"], sgl["client_warmup"]) == ("80", "125", "sweep")
    assert sgl["client_range_ratio"] == "0.8" and "scripts/vllm/bench.sh" in sgl["enrich_client"]
    trt = _rows(enrich(runs_csv(tmp_path / "runs.csv"), ix, dynamo=dyn)[0])["trt"]
    assert trt["decode_max_batch"] == "32" and trt["enrich_recipe"] == ""   # its release branch is not read


def test_a_row_writing_the_whole_deployment_gets_each_roles_gpus(repos, tmp_path):
    """tp20 in both tp columns is one tp4 prefill and two tp8 decode workers (4 + 2 x 8): the enrichment
    records each role's GPUs, and the estimator's and the calibration's readers build those workers,
    not 20-GPU ones."""
    ix, _, _ = repos
    text, _ = enrich(runs_csv(tmp_path / "runs.csv", whole_deployment=True), ix)
    rows = _rows(text)
    whole, trt = rows["trt-whole"], rows["trt"]
    assert (whole["prefill_gpus"], whole["decode_gpus"]) == ("4", "8")
    assert (whole["prefill_num_workers"], whole["decode_num_workers"]) == ("1", "2")
    assert (trt["prefill_gpus"], trt["decode_gpus"]) == ("", "")      # its tp columns are its workers'
    enriched = tmp_path / "enriched.csv"
    enriched.write_text(text)
    run = {r.run_id: r for r in silicon_csv.parse(enriched)}["trt-whole"]
    assert (run.deployment.prefill.parallel.num_gpus, run.deployment.decode.parallel.num_gpus) == (4, 8)
    row = {r.id: r for r in read_runs(enriched)}["trt-whole"]
    prefill, decode = row_layouts(row, load_system("gb200"))
    assert (prefill.num_gpus, decode.num_gpus) == (4, 8) and (prefill.moe_ep, decode.moe_ep) == (4, 8)


def test_a_pinned_commit_the_clone_lacks_is_said_and_not_read(repos, tmp_path):
    ix, _, _ = repos
    other, _ = make_dynamo(tmp_path / "other-dynamo", other_history=True)     # same files, other commit ids
    sgl = _rows(enrich(runs_csv(tmp_path / "runs.csv"), ix, dynamo=other)[0])["sgl"]
    assert sgl["enrich_recipe"] == "" and "not in the --dynamo clone" in sgl["enrich_reason"]


@pytest.mark.parametrize("case", ["not-dynamo", "no-inferencex"])
def test_bad_input_is_one_line_and_writes_nothing(repos, tmp_path, case, monkeypatch, capsys):
    ix, _, _ = repos
    runs, out = runs_csv(tmp_path / "runs.csv"), tmp_path / "out.csv"
    args = (["--inferencex", str(ix), "--dynamo", str(ix)] if case == "not-dynamo"
            else ["--facts", str(tmp_path / "f.csv"), "--dynamo", str(ix)])
    monkeypatch.setattr(sys, "argv", ["servecast", "calibrate", "enrich", str(runs), *args, "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    line = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and not out.exists() and line.startswith("error:") and "\n" not in line
    assert {"not-dynamo": "not an ai-dynamo/dynamo repository",
            "no-inferencex": "--dynamo DIR needs --inferencex DIR"}[case] in line
    if case == "not-dynamo":
        with pytest.raises(InputError):
            enrich(runs, ix, dynamo=ix)
