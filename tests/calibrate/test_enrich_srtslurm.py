"""`calibrate enrich --srt-slurm`: the multi-node runs' srt-slurm recipes and sa-bench client, on the
hand-written InferenceX and srt-slurm repositories (tests/calibrate/inferencex_fixture.py,
srtslurm_fixture.py): the two snapshots that bracket a branch missing from the clone, an exact branch,
narrowing by the recipes' own concurrencies, the client protocol, one-line errors."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import pytest

from calibrate.enrich import enrich
from calibrate.inferencex.srtslurm import parse_recipe
from perfdb.errors import DataError, InputError
from servecast.cli import main
from tests.calibrate.inferencex_fixture import _git, make_repo, runs_csv
from tests.calibrate.srtslurm_fixture import disagg_8k_row, make_srt

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    base = tmp_path_factory.mktemp("srt")
    return make_repo(base / "InferenceX")[0], make_srt(base / "srt-slurm")


def _runs(tmp_path):
    path = runs_csv(tmp_path / "runs.csv")
    d80 = [ln for ln in path.read_text().splitlines() if ln.startswith("d1,")][0]
    d80 = d80.replace("d1,", "d80,", 1).replace("silicon_concurrency=64", "silicon_concurrency=80")
    path.write_text(path.read_text() + disagg_8k_row() + "\n" + d80 + "\n")
    return path


def _rows(text: str) -> dict[str, dict]:
    return {r["id"]: r for r in csv.DictReader(text.splitlines())}


def test_recipes_add_per_role_engines_and_the_client(repos, tmp_path):
    ix, (srt, (a, b)) = repos
    rows = _rows(enrich(_runs(tmp_path), ix, srt_slurm=srt)[0])
    d1, d2 = rows["d1"], rows["d2"]
    # d1 ran between main's A and the branch's merge B: facts where both agree, the rest stays unknown
    assert d1["enrich_recipe"].endswith(f"@{a[:12]}+{b[:12]}:recipes/h200/ctx1_genN_dep8_batch32_eplb0_mtp0.yaml")
    assert "merging sa-submission-q1-2026 after measured=" in d1["enrich_reason"]
    assert d1["decode_num_workers"] == "2"              # A says 2, B 3: the config of the commit in effect stands
    assert (d1["decode_max_batch"], d1["prefill_max_batch"], d1["decode_max_num_tokens"]) == ("32", "4", "96")
    assert d1["prefill_max_num_tokens"] == "8448" and d1["decode_cuda_graph_max_bs"] == "32"
    assert d1["decode_mem_fraction"] == ""              # 0.85 in A, 0.9 in B
    assert "decode.max_batch_size=32" in d1["engine_flags"] and "prefill.max_num_tokens=8448" in d1["engine_flags"]
    assert d1["engine_env"] == "decode.TRTLLM_ENABLE_PDL=1"   # the decode workers' environment, engine variables only
    # the sa-bench client: 12 x concurrency measured after 3 x concurrency warm-up, bench.sh's ratio
    assert (d1["client_num_prompts"], d1["client_num_warmups"], d1["client_range_ratio"]) == ("768", "192", "0.8")
    assert "sa-bench/bench.sh" in d1["enrich_client"]
    # d2 ran after B with no later merge: B alone, and said so
    assert (d2["decode_num_workers"], d2["decode_mem_fraction"]) == ("3", "0.9")
    assert d2["enrich_recipe"].endswith(f"@{b[:12]}:recipes/h200/ctx1_genN_dep8_batch32_eplb0_mtp0.yaml")
    assert f"main {b[:10]}" in d2["enrich_reason"]


def test_a_recipe_that_does_not_run_the_concurrency_narrows_the_points(repos, tmp_path):
    ix, (srt, _) = repos
    runs = _runs(tmp_path)
    before = _rows(enrich(runs, ix)[0])["d8k"]
    assert before["spec_decoding"] == "ambiguous" and before["decode_num_workers"] == ""
    row = _rows(enrich(runs, ix, srt_slurm=srt)[0])["d8k"]
    # the MTP recipe sweeps 8x16 only: it did not measure concurrency 32
    assert row["spec_decoding"] == "off" and row["enrich_status"] == "matched"
    assert (row["prefill_num_workers"], row["decode_num_workers"]) == ("2", "1")
    assert "1 of 2 matching config points dropped" in row["enrich_reason"]
    assert row["client_range_ratio"] == "0.9"           # the recipe's own, passed on by this sa_bench.py
    assert row["client_num_prompts"] == "384"


def test_a_concurrency_only_the_recipe_lists_is_matched_through_it(repos, tmp_path):
    ix, (srt, _) = repos
    runs = _runs(tmp_path)
    assert _rows(enrich(runs, ix)[0])["d80"]["enrich_status"] == "unmatched"  # no config lists it (nor 80 / workers)
    row = _rows(enrich(runs, ix, srt_slurm=srt)[0])["d80"]
    assert row["enrich_status"] == "matched" and "recipe's concurrencies" in row["enrich_reason"]
    assert (row["decode_max_batch"], row["client_num_prompts"]) == ("32", str(12 * 80))


def test_a_branch_the_clone_holds_is_read_exactly(repos, tmp_path):
    ix, (srt, (a, _)) = repos
    clone = tmp_path / "with-branch"
    shutil.copytree(srt, clone)
    subprocess.run(["git", "-C", str(clone), "branch", "sa-submission-q1-2026", a], check=True)
    d1 = _rows(enrich(_runs(tmp_path), ix, srt_slurm=clone)[0])["d1"]
    assert d1["enrich_recipe"].endswith(f"@{a[:12]}:recipes/h200/ctx1_genN_dep8_batch32_eplb0_mtp0.yaml")
    assert d1["decode_mem_fraction"] == "0.85" and "srt-slurm" not in d1["enrich_reason"]


def test_sglang_recipe_limits_are_per_attention_rank():
    text = ("resources: {prefill_workers: 1, decode_workers: 2}\nbackend:\n  sglang_config:\n"
            "    prefill: {tp-size: 4, dp-size: 4, ep-size: 4, enable-dp-attention: true, chunked-prefill-size: 16384,"
            " max-running-requests: 1000, mem-fraction-static: 0.8}\n"
            "    decode: {tensor-parallel-size: 8, enable-dp-attention: false, max-running-requests: 256,"
            " cuda-graph-bs: [1, 8, 128], speculative-algorithm: EAGLE, speculative-num-steps: 3}\n"
            "benchmark: {type: sa-bench, concurrencies: 4x8}\n")
    r = parse_recipe(text, "r.yaml", "c" * 40)
    assert (r.prefill.attn_ranks, r.prefill.max_batch, r.prefill.max_num_tokens) == (4, 250, 16384)
    assert (r.decode.max_batch, r.decode.cuda_graph_max_bs, r.decode.spec_tokens) == (256, 128, 3)
    assert r.concs == (4, 8) and r.prefill.spec is False and r.prefill.spec_tokens is None


def test_each_roles_environment_is_kept_to_the_engines_variables():
    """srtctl exports `backend.<role>_environment` into that role's workers: engine_env keeps the engine's
    own variables (ENGINE_ENV_PREFIXES) per role, and RunFacts.role_env gives each engine its own."""
    from calibrate.enrich_recipes import _flags
    from estimator.run_facts import RunFacts

    text = ("resources: {prefill_workers: 1, decode_workers: 1}\nbackend:\n"
            "  prefill_environment: {SGLANG_ENABLE_JIT_DEEPGEMM: 'false', NCCL_MNNVL_ENABLE: '1'}\n"
            "  decode_environment: {SGLANG_DECODE_BOOTSTRAP_TIMEOUT: '1000', VLLM_MXFP4_USE_MARLIN: 1}\n"
            "  sglang_config:\n    prefill: {tp-size: 4}\n    decode: {tp-size: 8}\n"
            "benchmark: {type: sa-bench, concurrencies: '4'}\n")
    r = parse_recipe(text, "r.yaml", "c" * 40)
    assert r.prefill.env == {"SGLANG_ENABLE_JIT_DEEPGEMM": "false"}        # NCCL_* is not the engine's
    assert r.decode.env == {"SGLANG_DECODE_BOOTSTRAP_TIMEOUT": "1000", "VLLM_MXFP4_USE_MARLIN": "1"}
    env = ";".join(f"{k}={v}" for k, v in sorted(_flags(r, "env").items()))
    facts = RunFacts.from_row({"engine_env": env})
    assert facts.role_env("prefill") == {"SGLANG_ENABLE_JIT_DEEPGEMM": "false"}
    assert facts.role_env("decode")["VLLM_MXFP4_USE_MARLIN"] == "1"
    # two versions of a recipe keep what both state alike
    other = parse_recipe(text.replace("'1000'", "'2000'"), "r.yaml", "d" * 40)
    assert r.decode.common(other.decode).env == {"VLLM_MXFP4_USE_MARLIN": "1"}


_TRT = ("backend:\n  trtllm_config:\n    prefill: {tensor_parallel_size: 4}\n    decode: {tensor_parallel_size: 8}\n"
        "benchmark: {type: sa-bench, concurrencies: '6'}\n")


@pytest.mark.parametrize("resources, frontend, defaults, expected", [
    ("{prefill_nodes: 1, decode_nodes: 5, prefill_workers: 1, decode_workers: 5}", "", (True, 9), 5),
    ("{prefill_nodes: 1, decode_nodes: 14}", "", (True, 9), 10),         # capped at num_additional + 1
    ("{prefill_nodes: 2, decode_nodes: 6}", "{enable_multiple_frontends: false}", (True, 9), 1),
    ("{prefill_nodes: 2, decode_nodes: 6}", "{num_additional_frontends: 2}", (True, 9), 3),
    # no node counts: workers x GPUs per worker over GPUs per node (4 + 24 GPUs on 4-GPU nodes)
    ("{prefill_workers: 1, gpus_per_prefill: 4, decode_workers: 3, gpus_per_decode: 8, gpus_per_node: 4}", "",
     (True, 9), 6),
    ("{prefill_nodes: 1, decode_nodes: 0}", "", (True, 9), 1),            # one node: one frontend, no nginx
    ("{prefill_nodes: 1, decode_nodes: 5}", "", (None, None), None),      # srtctl's defaults not read: unknown
])
def test_recipe_frontends_follow_srtctl_topology(resources, frontend, defaults, expected):
    text = f"resources: {resources}\n" + (f"frontend: {frontend}\n" if frontend else "") + _TRT
    assert parse_recipe(text, "r.yaml", "c" * 40, "", defaults).frontends == expected


def test_frontend_defaults_are_read_from_srtctls_schema_at_the_commit(tmp_path):
    from calibrate.inferencex.repo import Repo
    from calibrate.inferencex.srtslurm import SCHEMA, SRT_SLURM, frontend_defaults

    (tmp_path / "src/srtctl/core").mkdir(parents=True)
    (tmp_path / "src/srtctl/__init__.py").write_text("")
    srt = Repo(tmp_path, SRT_SLURM)
    assert frontend_defaults(srt, srt.commit_at("2026-02-01T00:00:00")) == (None, None)
    (tmp_path / SCHEMA).write_text("class FrontendConfig:\n    type: str = 'dynamo'\n"
                                   "    enable_multiple_frontends: bool = True\n    num_additional_frontends: int = 9\n")
    srt = Repo(tmp_path, SRT_SLURM)
    assert frontend_defaults(srt, srt.commit_at("2026-02-01T00:00:00")) == (True, 9)


@pytest.mark.parametrize("case", ["not-srt-slurm", "unknown-recipe", "no-inferencex"])
def test_bad_input_is_one_line_and_writes_nothing(repos, tmp_path, case, monkeypatch, capsys):
    ix, (srt, _) = repos
    runs = _runs(tmp_path)
    if case == "not-srt-slurm":
        srt = ix                                        # an InferenceX clone given as srt-slurm
    elif case == "unknown-recipe":
        srt = tmp_path / "odd"
        shutil.copytree(repos[1][0], srt)
        (srt / "recipes/h200/8k1k/stp.yaml").write_text("name: x\nprefill:\n  tp: 8\n")
        _git(srt, "add", "-A")
        _git(srt, "commit", "-q", "-m", "a recipe in another layout", date="2026-01-10T00:00:00Z")
    out = tmp_path / "out.csv"
    args = ["--srt-slurm", str(srt)] if case == "no-inferencex" else ["--inferencex", str(ix), "--srt-slurm", str(srt)]
    if case == "no-inferencex":
        args += ["--facts", str(tmp_path / "facts.csv")]
    monkeypatch.setattr(sys, "argv", ["servecast", "calibrate", "enrich", str(runs), *args, "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and not out.exists()
    line = capsys.readouterr().err.strip()
    assert line.startswith("error:") and "\n" not in line
    expected = {"not-srt-slurm": "not an srt-slurm repository", "unknown-recipe": "unknown srt-slurm recipe layout",
                "no-inferencex": "--srt-slurm DIR needs --inferencex DIR"}[case]
    assert expected in line
    if case != "no-inferencex":
        with pytest.raises((DataError, InputError)):
            enrich(runs, ix, srt_slurm=srt)
