"""Property-based fuzz of every command's options and file arguments: no traceback, and every error is one line.

Each example takes a command with a cheap valid baseline and replaces one to three of its options (or file
arguments) with values drawn from pools of bad and edge-case inputs: wrong types, negatives, zero, NaN, empty
strings, comma lists, and paths that are a directory, a binary file, a Parquet table, an empty file, missing,
or under a file. The CLI runs in this process (`servecast.cli.run`); an exception escaping it is a traceback.
CI runs FUZZ_EXAMPLES (default 150) seeded examples; BENCHMARKS.md records a local run with 10,000
(FUZZ_REPORT=FILE writes how many ran and their exit statuses).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from perfdb.lookup import BUNDLED_ROOT
from servecast.cli import build_app, run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients" / "format_samples"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
MODEL = ["--model", "Qwen/Qwen3-0.6B", "--system", "h200_sxm", "--backend", "vllm"]
# A valid, quick invocation of each command; the fuzz overrides some of its options.
BASELINES: dict[tuple[str, ...], list[str]] = {
    ("estimate",): MODEL,
    ("plan",): [*MODEL, "--total-gpus", "1", "--isl", "64", "--osl", "16", "--ttft", "200", "--tpot", "5",
                "--mode", "agg", "--top-n", "1", "--no-simulate"],
    ("simulate",): [*MODEL, "--isl", "32", "--osl", "8", "--concurrency", "2", "--num-requests", "8", "--plot", ""],
    ("calibrate", "ingest"): ["{vllm}", "--out", "{tmp}/runs.parquet", "--model", "Qwen/Qwen3-32B", "--system",
                              "h200_sxm", "--backend", "vllm", "--mode", "agg", "--agg", "tp=2"],
    ("calibrate", "show"): ["{cal}"],
    ("calibrate", "validate"): ["{silicon}", "--calibration", "stored", "--plot", ""],
    ("db", "systems"): [],
    ("db", "info"): ["--db", "{tinydb}"],
    ("db", "ls"): ["--db", "{tinydb}"],
    ("db", "query"): ["--db", "{tinydb}", "--op", "gemm", "--limit", "3"],
    ("db", "validate"): ["--db", "{tinydb}", "--system", "h200_sxm"],
    ("db", "check-interp"): ["--db", "{tinydb}", "--op", "gemm", "--system", "h200_sxm", "--backend", "trtllm",
                             "--sample", "5"],
    ("collect", "plan"): ["--ops", "gemm", "--device", "cpu", "--grid", "tiny"],
}
# Options whose valid use is slow (a full search over every backend, kernel collection, importing a wheel)
# keep their baseline values; every other option and argument is fuzzed.
SLOW = {"--backend", "--sample", "--num-requests", "--total-gpus", "--top-n", "--concurrency", "--request-rate",
        "--from-runs", "--replicas", "--grid", "--model", "--trace", "--limit"}
INTS = ["-1", "0", "1", "2", "3", "abc", "1.5", "", "99999999999999999999", "-0", "1,2"]
FLOATS = ["-1", "0", "0.5", "1", "nan", "inf", "-inf", "abc", "", "1e400", "1,2"]
TEXTS = ["", "x", "none", "all", "h200_sxm", "agg", "disagg", "fp8", "tp=2", "tp=0,ep=1", "a,b", "-", "tp=-1",
         "1,4", "2", "0", "-3", "nan", "stored", "upper", "gemm", "op=gemm", "m>=128", "é\u00ff"]


def _paths(tmp: Path, tinydb: Path) -> dict[str, str]:
    """Files a user might give by mistake (or on purpose), made once per test."""
    binary = tmp / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    (tmp / "adir").mkdir(exist_ok=True)
    (tmp / "empty.json").write_text("")
    table = tmp / "table.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), table)
    (tmp / "bad.yaml").write_text("model: [unclosed\n")
    copies = {}   # copies: an output option may be given an input file, and must not overwrite the repository's
    for key, name in (("vllm", "vllm_bench_serve.json"), ("silicon", "silicon_sample.csv"),
                      ("genai", "profile_export_genai_perf.json")):
        copies[key] = str(shutil.copy(FIXTURES / name, tmp / name))
    return {"bin": str(binary), "dir": str(tmp / "adir"), "missing": str(tmp / "missing.json"),
            "empty": str(tmp / "empty.json"), "parquet": str(table), "under_file": str(binary / "x.json"),
            "yaml": str(tmp / "bad.yaml"), **copies,
            "cal": str(BUNDLED_ROOT / "calibrations"), "tinydb": str(tinydb)}


def _commands():
    root = typer.main.get_command(build_app())
    out = {}
    for path in BASELINES:
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        out[path] = cmd
    return out


COMMANDS = _commands()


def _targets(path: tuple[str, ...]) -> list[tuple[str, str]]:
    """(option or argument name, kind) of one command that the fuzz may set."""
    out = []
    for p in COMMANDS[path].params:
        if p.param_type_name == "argument":
            out.append((f"ARG:{p.name}", "path"))
            continue
        flag = p.opts[0]
        if flag in SLOW or flag in ("--help", "--version"):
            continue
        ann = p.type_descriptor.annotation
        kind = "flag" if p.is_flag else {int: "int", float: "float", bool: "flag"}.get(ann, "text")
        if kind == "text" and (getattr(ann, "__name__", "") == "Path" or flag in (
                "--save-dir", "--db", "--calibration", "--plan", "--deployment", "--out", "--plot", "--prior-db")):
            kind = "path"
        out.append((flag, kind))
    return out


@st.composite
def invocations(draw):
    path = draw(st.sampled_from(sorted(BASELINES)))
    targets = _targets(path)
    chosen = draw(st.lists(st.sampled_from(targets), min_size=1, max_size=3, unique=True)) if targets else []
    values = {}
    for name, kind in chosen:
        pool = {"int": INTS, "float": FLOATS, "text": TEXTS + ["{bin}", "{dir}"], "flag": [""],
                "path": ["{bin}", "{dir}", "{missing}", "{empty}", "{parquet}", "{under_file}", "{yaml}", "{vllm}",
                         "{silicon}", "{genai}", "{tmp}/out", "", "none", "stored"]}[kind]
        values[name] = draw(st.sampled_from(pool))
    return path, values


def _argv(path: tuple[str, ...], values: dict[str, str], files: dict[str, str], tmp: Path) -> list[str]:
    base = [a.format(tmp=tmp, **files) for a in BASELINES[path]]
    argv, i = [], 0
    args = [a for a in base if not a.startswith("--")] if not base or not base[0].startswith("--") else []
    positional = [v.format(tmp=tmp, **files) for k, v in values.items() if k.startswith("ARG:")]
    while i < len(base):   # the baseline's options, less the ones the fuzz sets
        if base[i].startswith("--"):
            takes = i + 1 < len(base) and not base[i + 1].startswith("--")
            if base[i] not in values:
                argv += base[i:i + 1 + takes]
            i += 1 + takes
        else:
            i += 1
    for name, value in values.items():
        if name.startswith("ARG:"):
            continue
        argv += [name] if value == "" and any(name == f and k == "flag" for f, k in _targets(path)) else \
            [name, value.format(tmp=tmp, **files)]
    n_args = sum(1 for p in COMMANDS[path].params if p.param_type_name == "argument")
    return [*path, *(positional or args)[:max(n_args, len(positional))], *argv]


def _check(argv: list[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(argv)   # any exception other than a clean exit propagates: that is the traceback we hunt
    text = err.getvalue()
    assert "Traceback" not in text and "Traceback" not in out.getvalue(), argv
    assert code in (0, 1, 2), (argv, code, text)
    if code == 2:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, text)
    return code


@pytest.mark.slow
def test_fuzz_every_command(tmp_path, tiny_db):
    files = _paths(tmp_path, tiny_db)
    codes: Counter = Counter()
    cwd = os.getcwd()
    os.chdir(tmp_path)   # default outputs (PNG plots) land here
    try:
        @seed(20261204)
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(invocations())
        def one(case):
            path, values = case
            codes[_check(_argv(path, values, files, tmp_path))] += 1

        one()
    finally:
        os.chdir(cwd)
    if os.environ.get("FUZZ_REPORT"):   # the figure in BENCHMARKS.md: examples run and their exit statuses
        Path(os.environ["FUZZ_REPORT"]).write_text(json.dumps({"examples": sum(codes.values()),
                                                               "exit_codes": dict(sorted(codes.items()))}))


def test_fuzz_baselines_run(tmp_path, tiny_db):
    """The baselines themselves succeed: a fuzzed option is the only thing wrong in each example."""
    files = _paths(tmp_path, tiny_db)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for path in BASELINES:
            argv = _argv(path, {}, files, tmp_path)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(argv)
            assert code == 0, (argv, err.getvalue()[-500:])
    finally:
        os.chdir(cwd)
