"""`calibrate enrich` on a hand-written two-commit repository in the InferenceX layout (tests/calibrate/
inferencex_fixture.py): matching at the commit in effect, spec-decoding status, worker counts, launch-script
flags, client protocol, provenance; one-line errors and no output on bad input."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import pytest

from calibrate.enrich import enrich
from calibrate.inferencex import shell
from perfdb.errors import DataError, InputError
from servecast.cli import main
from tests.calibrate.inferencex_fixture import _git, make_repo, runs_csv, write_tree

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("ix") / "InferenceX")


def _rows(text: str) -> dict[str, dict]:
    return {r["id"]: r for r in csv.DictReader(text.splitlines())}


def test_rows_get_the_facts_of_the_commit_in_effect(repo, tmp_path):
    root, (c1, c2) = repo
    text, report = enrich(runs_csv(tmp_path / "runs.csv"), root)
    rows = _rows(text)
    off, amb, d1, d2 = rows["a16"], rows["a4"], rows["d1"], rows["d2"]
    assert off["spec_decoding"] == "off" and off["enrich_status"] == "matched" and off["enrich_commit"] == c1
    assert off["engine_max_batch_size"] == "16" and off["engine_mem_fraction"] == "0.85"
    assert off["engine_kv_dtype"] == "fp8" and off["engine_max_num_tokens"] == "8192"
    assert off["enrich_script"] == "benchmarks/single_node/dsr1_fp8_h200_trt.sh"
    assert off["engine_env"] == "TRTLLM_ENABLE_PDL=1"     # the engine's variables the script exports
    assert (off["client_range_ratio"], off["client_num_prompts"], off["client_num_warmups"]) == ("0.8", "160", "32")
    # conc 4 is swept with and without MTP: ambiguous, and the script's conc-dependent batch is 8 either way
    assert amb["spec_decoding"] == "ambiguous" and amb["enrich_status"] == "ambiguous"
    assert amb["engine_max_batch_size"] == "8" and amb["spec_tokens"] == ""
    # its flags are agreed flag by flag (calibrate.agree): the two scripts' shared ones kept, MTP's unresolved
    flags = dict(kv.split("=", 1) for kv in amb["engine_flags"].split(";"))
    assert flags["max_num_tokens"] == "8192" and flags["kv_cache_config.free_gpu_memory_fraction"] == "0.85"
    assert flags["speculative_config.decoding_type"] == "?"
    # disaggregated worker counts follow the config of the commit in effect at measured=
    assert (d1["prefill_num_workers"], d1["decode_num_workers"], d1["enrich_commit"]) == ("1", "2", c1)
    assert (d2["prefill_num_workers"], d2["decode_num_workers"], d2["enrich_commit"]) == ("1", "3", c2)
    assert d1["decode_dp_attn"] == "true" and d1["decode_ep"] == "8" and d1["decode_max_batch"] == "32"
    assert d1["client_range_ratio"] == "0.8" and d1["client_num_prompts"] == ""
    d3 = rows["d3"]     # its concurrency only appears in the next config change: matched there, and said so
    assert (d3["decode_num_workers"], d3["enrich_commit"]) == ("3", c2) and "merged after" in d3["enrich_reason"]
    assert "merged after" not in d1["enrich_reason"]
    assert rows["x1"]["enrich_status"] == "other-harness" and rows["x1"]["spec_decoding"] == "unknown"
    assert rows["old"]["enrich_status"] == "unmatched" and "before the repository" in rows["old"]["enrich_reason"]
    assert report.status == {"matched": 4, "ambiguous": 1, "other-harness": 1, "unmatched": 1}
    assert report.fields["decode_num_workers"]["2026-03-25.csv"] == 3


def test_recorded_worker_counts_are_kept(repo, tmp_path):
    root, _ = repo
    path = runs_csv(tmp_path / "runs.csv")
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",,8,1,1,1,8,,,8,", ",7,8,1,1,1,8,,,8,", 1)   # d1 records 7 prefill workers
    path.write_text("\n".join(lines) + "\n")
    rows = _rows(enrich(path, root)[0])
    assert rows["d1"]["prefill_num_workers"] == "7" and rows["d1"]["decode_num_workers"] == "2"


def test_an_mtp_point_gets_its_depth_from_the_launch_script(repo, tmp_path):
    root, _ = repo
    snap = tmp_path / "snapshot"                 # a plain directory: one snapshot, commit "worktree"
    write_tree(snap, 2)
    cfg = snap / ".github/configs/nvidia-master.yaml"
    cfg.write_text(cfg.read_text().replace("- { tp: 8, ep: 8, conc-start: 4, conc-end: 16 }\n", ""))
    rows = _rows(enrich(runs_csv(tmp_path / "runs.csv"), snap)[0])
    assert rows["a4"]["spec_decoding"] == "on" and rows["a4"]["spec_tokens"] == "3"
    assert rows["a4"]["enrich_commit"] == "worktree"
    assert rows["a16"]["enrich_status"] == "unmatched"      # conc 16 is no longer swept


def test_bare_clone_reads_the_same(repo, tmp_path):
    root, _ = repo
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(root), str(bare)], check=True)
    assert enrich(runs_csv(tmp_path / "runs.csv"), bare)[0] == enrich(runs_csv(tmp_path / "r2.csv"), root)[0]


@pytest.mark.parametrize("case", ["not-inferencex", "missing-column", "unknown-layout"])
def test_bad_input_is_one_line_and_writes_nothing(repo, tmp_path, case, monkeypatch, capsys):
    root, _ = repo
    runs, ix = runs_csv(tmp_path / "runs.csv"), root
    if case == "not-inferencex":
        ix = tmp_path / "empty"
        ix.mkdir()
    elif case == "missing-column":
        runs.write_text(runs.read_text().replace("decode_tp_size", "decode_tp", 1))
    else:
        ix = tmp_path / "odd"
        write_tree(ix, 2)
        (ix / ".github/configs/nvidia-master.yaml").write_text("- just\n- a list\n")
    out = tmp_path / "out.csv"
    monkeypatch.setattr(sys, "argv", ["servecast", "calibrate", "enrich", str(runs), "--inferencex", str(ix),
                                      "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and not out.exists()
    line = capsys.readouterr().err.strip()
    assert line.startswith("error:") and "\n" not in line
    expected = {"not-inferencex": "not an InferenceX repository", "missing-column": "missing column(s) decode_tp_size",
                "unknown-layout": "unknown config layout"}[case]
    assert expected in line
    with pytest.raises((DataError, InputError)):
        enrich(runs, ix)


def test_the_engine_environment_is_what_the_server_starts_with():
    """engine_env: engine variables exported (a value; `?` where the branch is undecided) or set on the
    server's command line; other exports, and engine variables set only for the client, are not."""
    from calibrate.inferencex.scripts import engine_env

    text = "\n".join([
        "export PYTHONNOUSERSITE=1", "export VLLM_MXFP4_USE_MARLIN=1", "VLLM_NOT_EXPORTED=1",
        'if [[ "$UNKNOWN" == "x" ]]; then', "  export VLLM_USE_DEEP_GEMM=0", "fi",
        "SGLANG_ENABLE_JIT_DEEPGEMM=false PYTHONNOUSERSITE=1 python3 -m sglang.launch_server --tp 8 \\",
        "  --port 8000", "VLLM_CLIENT_ONLY=1 python3 benchmark_serving.py --model m"])
    assert engine_env(shell.run(text, {"TP": "8"})) == {"VLLM_MXFP4_USE_MARLIN": "1", "VLLM_USE_DEEP_GEMM": "?",
                                                        "SGLANG_ENABLE_JIT_DEEPGEMM": "false"}


def test_shell_reader_takes_decided_branches_and_leaves_the_rest_unknown():
    text = ('if [[ $TP -eq 8 ]] && [[ "$X" == "a" ]]; then\n  A=1\nelif [[ $ISL -ne 8192 ]] || [[ $OSL -ne 1024 ]]; '
            'then\n  A=2\nelse\n  A=3\nfi\nB=$(( CONC < 4 ? CONC : CONC / 4 ))\nif [[ $UNSET == 1 ]]; then\n  C=5\nfi\n'
            'serve --a $A --b=$B --c "$C"\n')
    w = shell.run(text, {"TP": "8", "X": "b", "ISL": "8192", "OSL": "1024", "CONC": "64"})
    assert w.vars["A"] == "3" and w.vars["B"] == "16" and w.vars["C"] is None
    assert w.commands == [("serve --a 3 --b=16 --c \"?\"", True)]
    assert shell.run(text, {"TP": "4", "ISL": "1024", "OSL": "1024", "CONC": "2"}).vars["A"] == "2"
    assert shell.arith("2 * max_concurrency", {"max_concurrency": "12"}) == 24


def test_a_continued_quoted_assignment_and_a_config_file_with_an_unknown_value_keep_their_flags():
    """The shape of benchmarks/70b_fp8_b200_docker.sh (InferenceX ac1998a5): a JSON flag built from
    `\\`-continued single-quoted pieces, written into a YAML here-document beside a variable the run's
    environment does not state. Bash joins the pieces with nothing between; the unknown value must not
    cost the file's other flags (fp8 KV cache, the token budget)."""
    from calibrate.inferencex.scripts import engine_flags

    text = ("F='{'\\\n'\"a\": true,'\\\n'\"b\": [\"+x\"]'\\\n'}'\n"
            "cat > config.yaml <<-EOF\nkv-cache-dtype: fp8\ncompilation-config: '$F'\n"
            "max-num-batched-tokens: 8192\nmax-model-len: $MAX_MODEL_LEN\nEOF\n"
            "vllm serve $MODEL --tensor-parallel-size=$TP \\\n--config config.yaml\n")
    w = shell.run(text, {"TP": "1"})
    assert w.vars["F"] == '{"a": true,"b": ["+x"]}'
    flags = engine_flags(w)
    assert flags["kv-cache-dtype"] == "fp8" and flags["max-num-batched-tokens"] == "8192"
    assert flags["compilation-config"] == '{"a": true,"b": ["+x"]}' and flags["max-model-len"] == "?"
    assert flags["tensor-parallel-size"] == "1" and flags["config"] == "config.yaml"
    assert shell.word("\"x$A\"'$B'c", {"A": "1"}) == "x1$Bc" and shell.word("$U", {}) is None


def test_committed_facts_reproduce_the_enrichment(repo, tmp_path):
    root, _ = repo
    runs = runs_csv(tmp_path / "runs.csv")
    facts = tmp_path / "facts.csv.gz"
    from calibrate.enrich import write

    write(enrich(runs, root, columns_only=True)[0], facts)
    assert enrich(runs, facts=facts)[0] == enrich(runs, root)[0]


def test_the_command_writes_a_facts_file_and_a_table_from_it(repo, tmp_path, monkeypatch, capsys):
    """`--columns-only` through the CLI exits 0 (the facts file is not a run table: nothing counts its
    rows as runs), and `--facts` then enriches the table from it, as the README's commands do."""
    root, _ = repo
    runs, facts, out = runs_csv(tmp_path / "runs.csv"), tmp_path / "facts.csv.gz", tmp_path / "enriched.csv"
    for args, dest in ((["--inferencex", str(root), "--columns-only"], facts), (["--facts", str(facts)], out)):
        monkeypatch.setattr(sys, "argv", ["servecast", "calibrate", "enrich", str(runs), *args, "--out", str(dest)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 0 and dest.exists() and "error" not in capsys.readouterr().err
    assert out.read_text() == enrich(runs, root)[0]


def test_committed_training_facts_cover_the_inferencex_rows(silicon_csv, tmp_path):
    """The committed facts (calibrate/data/e2e_train_enrichment.csv.gz) still fit the training table and
    the run_facts columns, with the Done-when shares BENCHMARKS.md states."""
    from pathlib import Path

    import calibrate

    facts = Path(calibrate.__file__).parent / "data" / "e2e_train_enrichment.csv.gz"
    text, report = enrich(silicon_csv, facts=facts)
    rows = list(csv.DictReader(text.splitlines()))
    ix = [r for r in rows if "source_file=2026-" in r["silicon_data_source"]]
    assert len(ix) == 2134 and not any(r["enrich_reason"] == "run id not in the enrichment file" for r in rows)
    share = lambda ok: sum(map(ok, ix)) / len(ix)   # noqa: E731
    assert share(lambda r: r["spec_decoding"] in ("on", "off", "ambiguous")) >= 0.95
    assert share(lambda r: r["client_range_ratio"] != "") >= 0.95
    dis = [r for r in ix if r["mode"] == "disagg"]
    assert sum(bool(r["prefill_num_workers"] and r["decode_num_workers"]) for r in dis) == 900
    # the srt-slurm recipes (`--srt-slurm`): request and warm-up counts of the multi-node runs they launched
    recipes = [r for r in dis if "srt-slurm" in r["enrich_recipe"]]
    assert len(recipes) == 907 and all(r["client_num_prompts"] and r["client_num_warmups"] for r in recipes)
    # the Dynamo launch files (`--dynamo`) of the dynamo-sglang runs before 2026-01-28, and the engine limits
    # the dynamo-trt configs name
    dynamo = [r for r in dis if "ai-dynamo/dynamo@" in r["enrich_recipe"]]
    assert len(dynamo) == 34 and all(r["client_num_prompts"] and r["prefill_dp_attn"] for r in dynamo)
    trt = [r for r in dis if r["enrich_config_key"].endswith("-dynamo-trt") and "no single srt-slurm" in r["enrich_reason"]]
    assert sum(bool(r["decode_max_batch"] and r["prefill_max_num_tokens"]) for r in trt) >= 0.8 * len(trt) > 0
    # the engine environment of the single-node launch scripts: the vLLM gpt-oss Hopper runs measured on the
    # scripts that export VLLM_MXFP4_USE_MARLIN=1 (benchmarks/single_node/gptoss_fp4_h100.sh / _h200.sh)
    marlin = [r for r in ix if "VLLM_MXFP4_USE_MARLIN=1" in r["engine_env"]]
    assert len(marlin) == 98 and {(r["backend"], r["system"], r["model_path"]) for r in marlin} == \
        {("vllm", s, "openai/gpt-oss-120b") for s in ("h100_sxm", "h200_sxm")}
    assert all("single_node/gptoss_fp4_h" in r["enrich_script"] for r in marlin)


def test_an_unpinned_client_clone_runs_no_warmups_but_its_test_request(tmp_path):
    """benchmark_lib.sh cloning kimbochen/bench_serving without a ref (InferenceX before 2026-01-21): the
    client is that repository's HEAD at measured=, whose benchmark_serving.py sends one test request and no
    warm-ups; pinned to a ref the reader cannot read, the warm-up stays unknown."""
    unpinned = ("run_benchmark_serving() {\n    git clone https://github.com/kimbochen/bench_serving.git \"$D\"\n"
                "    python3 \"$D/benchmark_serving.py\" \"$@\" --save-result\n}\n")
    for name, lib, want in (("unpinned", unpinned, ("0", "test-request")),
                            ("pinned", unpinned.replace("\"$D\"\n", "\"$D\"\n    git -C \"$D\" checkout abc123\n"),
                             ("", ""))):
        root = make_repo(tmp_path / name)[0]
        (root / "benchmarks/benchmark_lib.sh").write_text(lib)
        _git(root, "commit", "-qam", "client", date="2026-01-15T00:00:00Z")    # in effect at a16's measured=
        row = _rows(enrich(runs_csv(tmp_path / f"{name}.csv"), root)[0])["a16"]
        assert row["client_num_prompts"] == "160"
        assert (row["client_num_warmups"], row["client_warmup"]) == want, name
        if name == "unpinned":
            assert "github.com/kimbochen/bench_serving@HEAD at measured=" in row["enrich_client"]


def test_a_docker_launch_takes_the_client_its_runners_agree_on(tmp_path):
    """A `_docker.sh` script only starts the server; the runner scripts that start docker launches call the
    client, and the machine (which runner) is not recorded: what they all state stands, the rest stays
    unknown."""
    server = "#!/usr/bin/env bash\ntrtllm-serve $MODEL --tp_size=$TP --max_batch_size=16 > log 2>&1 &\n"
    runner = ("#!/usr/bin/env bash\ndocker run img benchmarks/\"${EXP_NAME%%_*}_docker.sh\"\n"
              "git clone https://github.com/kimbochen/bench_serving.git\n"
              "python3 bench_serving/benchmark_serving.py --random-range-ratio $RANDOM_RANGE_RATIO \\\n"
              "    --num-prompts $(( $CONC * PER )) --max-concurrency $CONC --save-result\n")
    for name, per_b, prompts in (("same", 10, "160"), ("differ", 20, "")):
        root = make_repo(tmp_path / name)[0]
        for rel in ("benchmarks/single_node/dsr1_fp8_h200_trt.sh", "benchmarks/single_node/dsr1_fp8_h200_trt_mtp.sh"):
            (root / rel).unlink()
        (root / "benchmarks/dsr1_fp8_h200_trt_docker.sh").write_text(server)
        (root / "runners/launch_h200-a.sh").write_text(runner.replace("PER", "10"))
        (root / "runners/launch_h200-b.sh").write_text(runner.replace("PER", str(per_b)))
        _git(root, "add", "-A")
        _git(root, "commit", "-qm", "docker", date="2026-01-15T00:00:00Z")
        row = _rows(enrich(runs_csv(tmp_path / f"{name}.csv"), root)[0])["a16"]
        assert row["enrich_script"] == "benchmarks/dsr1_fp8_h200_trt_docker.sh" and row["engine_max_batch_size"] == "16"
        assert (row["client_num_prompts"], row["client_num_warmups"], row["client_warmup"]) == (prompts, "0",
                                                                                               "test-request")
        assert "runners/launch_h200-a.sh" in row["enrich_client"] and "runners/launch_h200-b.sh" in row["enrich_client"]
