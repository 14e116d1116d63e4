"""The `servecast db` surface: help with an example on every command, one-line errors on bad input."""
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servecast.cli import app

COMMANDS = ["systems", "info", "ls", "query", "validate", "compact", "check-interp"]
REPO = Path(__file__).resolve().parents[2]


def _servecast(*args: str) -> subprocess.CompletedProcess:
    """The real console entry point (servecast.cli.main) in a fresh interpreter: what users see."""
    code = "import sys; from servecast.cli import main; sys.argv = ['servecast'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def _main(monkeypatch, capsys, *args: str) -> subprocess.CompletedProcess:
    """servecast.cli.main in this process (same error handling, no interpreter start-up)."""
    from servecast.cli import main

    monkeypatch.setattr(sys, "argv", ["servecast", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return subprocess.CompletedProcess(args, code if isinstance(code, int) else 1, out, err)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_db_command_has_help_with_an_example(command):
    result = CliRunner().invoke(app, ["db", command, "--help"])
    assert result.exit_code == 0
    assert "Example: servecast db" in " ".join(result.output.split())


def test_info_ls_query_on_the_fixture(tiny_db):
    runner = CliRunner()
    info = runner.invoke(app, ["db", "info", "--db", str(tiny_db)])
    assert info.exit_code == 0 and "h200_sxm/trtllm/1.0.0" in info.output
    ls = runner.invoke(app, ["db", "ls", "--db", str(tiny_db), "--op", "gemm"])
    assert ls.exit_code == 0 and "gemm" in ls.output and "40" in ls.output
    csv = runner.invoke(app, ["db", "query", "--db", str(tiny_db), "-w", "op=gemm", "-w", "m>=1024", "--format", "csv"])
    assert csv.exit_code == 0 and len(csv.output.strip().splitlines()) == 1 + 16


def test_query_writes_parquet_and_validate_passes(tiny_db, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "rows.parquet"
    result = CliRunner().invoke(app, ["db", "query", "--db", str(tiny_db), "-w", "op=moe", "--format", "parquet",
                                      "--out", str(out)])
    assert result.exit_code == 0 and pq.read_table(out).num_rows == 15
    assert CliRunner().invoke(app, ["db", "validate", "--db", str(tiny_db)]).exit_code == 0


def test_check_interp_prints_errors_per_dtype(tiny_db):
    result = CliRunner().invoke(app, ["db", "check-interp", "--db", str(tiny_db), "--op", "gemm", "--system",
                                      "h200_sxm", "--backend", "trtllm", "--sample", "10"])
    assert result.exit_code == 0
    assert "seeded sample of 10" in result.output and "median rel err" in result.output


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_not_a_database_end_to_end_in_a_fresh_interpreter(tmp_path):
    _one_line_error(_servecast("db", "info", "--db", str(tmp_path)), "not a servecast database")


def test_bad_inputs_are_one_line_errors(tiny_db, tmp_path, monkeypatch, capsys):
    run = lambda *a: _main(monkeypatch, capsys, *a)  # noqa: E731
    _one_line_error(run("db", "ls", "--db", str(tmp_path)), "not a servecast database")
    _one_line_error(run("db", "check-interp", "--db", str(tiny_db), "--op", "gemm", "--system", "nope",
                               "--backend", "trtllm"), "unknown system 'nope'", "h200_sxm")
    _one_line_error(run("db", "check-interp", "--db", str(tiny_db), "--op", "gemm", "--system", "h200_sxm",
                        "--backend", "trtllm", "--version", "9.9"), "available: 1.0.0")
    _one_line_error(run("db", "check-interp", "--db", str(tiny_db), "--op", "flux", "--system", "h200_sxm",
                        "--backend", "trtllm"), "unknown op family 'flux'", "gemm")
    out = tmp_path / "never.csv"
    _one_line_error(run("db", "query", "--db", str(tiny_db), "-w", "colour=red", "--format", "csv",
                               "--out", str(out)), "unknown column 'colour'", "latency_ms")
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))   # nothing half-written


def test_corrupt_and_missing_shards_are_one_line_errors(tmp_path, monkeypatch, capsys):
    from fixtures.tinydb import build

    run = lambda *a: _main(monkeypatch, capsys, *a)  # noqa: E731

    root = build(tmp_path / "db")
    shard = next((root / "h200_sxm" / "trtllm" / "1.0.0" / "gemm").glob("part-*.parquet"))
    shard.write_bytes(b"PAR1 torn")
    _one_line_error(run("db", "query", "--db", str(root), "-w", "op=gemm"), "corrupt Parquet shard", shard.name)
    _one_line_error(run("db", "compact", "--db", str(root)), "corrupt Parquet shard")
    assert shard.exists()   # compact refuses and touches nothing
    shard.unlink()          # a table whose only shard vanished is simply absent
    _one_line_error(run("db", "check-interp", "--db", str(root), "--op", "gemm", "--system", "h200_sxm",
                        "--backend", "trtllm"), "no gemm rows")
    (root / "h200_sxm" / "trtllm" / "1.0.0" / "moe" / "part-torn-1-0.parquet").write_bytes(b"x")
    validate = run("db", "validate", "--db", str(root))
    assert validate.returncode == 1 and "not readable Parquet" in validate.stdout
