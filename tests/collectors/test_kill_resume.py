"""A real `servecast collect run` subprocess is SIGKILLed mid-run; re-running the same command completes
the sweep with every case present exactly once (measured) or recorded as failed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from collectors.cases import key
from collectors.failures import read_failures
from collectors.plan import make_plan
from collectors.registry import GridSize
from perfdb.types import OpKind
from servecast.commands.collect import app

REPO = Path(__file__).resolve().parents[2]


def _cmd(db: Path, timer_ms: int) -> list[str]:
    return [sys.executable, "-m", "servecast.cli", "collect", "run", "--device", "cpu", "--ops", "gemm,elementwise",
            "--grid", "tiny", "--db", str(db), "--shard-rows", "2", "--timer-budget-ms", str(timer_ms), "--quiet"]


def _rows(db: Path) -> list[tuple]:
    out = []
    for shard in db.rglob("part-*.parquet"):
        t = pq.read_table(shard).to_pylist()
        op = shard.parent.name
        keys = {"gemm": ("dtype", "m", "n", "k"), "elementwise": ("op", "dtype", "hidden", "num_tokens")}[op]
        out += [(op,) + tuple(r[k] for k in keys) for r in t]
    return out


def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path, cpu_session):
    db = tmp_path / "db"
    proc = subprocess.Popen(_cmd(db, 150), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list(db.rglob("part-*.parquet"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()[-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _rows(db)
    plan = make_plan([OpKind.GEMM, OpKind.ELEMENTWISE], GridSize.TINY, cpu_session.ctx, cpu_session.spec, cpu_session.timer)
    expected = {(c.KIND.value,) + key(c) for c in plan.cases}
    assert 0 < len(partial) < len(expected)

    # The same command again, in-process (saves a second torch start-up; same code path as the CLI).
    done = CliRunner().invoke(app, _cmd(db, 5)[4:])
    assert done.exit_code == 0, done.output
    rows = _rows(db)
    failed = {(f.op.value,) + f.key for f in read_failures(db)}
    assert len(rows) == len(set(rows)), "a case was measured twice"
    assert set(rows) | failed == expected, "a case was lost"
    assert not set(rows) & failed
    assert set(partial) <= set(rows)
