"""Four real `servecast collect run` processes into one database measure each case exactly once; a crashed
collector's claims return to the pool (perfdb.claims)."""
import json
import os
import subprocess
import sys
import time

from collectors.cases import key
from collectors.failures import read_failures
from collectors.plan import make_plan
from collectors.registry import GridSize
from perfdb.claims import CLAIMS_DIR, ClaimBook, Claimer
from perfdb.types import Backend, OpKind
from tests.collectors.test_kill_resume import REPO, _cmd, _rows


def test_four_concurrent_collectors_measure_each_case_once(tmp_path, cpu_session):
    db = tmp_path / "db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(_cmd(db, 10), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-800:]
    rows = _rows(db)
    plan = make_plan([OpKind.GEMM, OpKind.ELEMENTWISE], GridSize.TINY, cpu_session.ctx, cpu_session.spec,
                     cpu_session.timer)
    expected = {(c.KIND.value,) + key(c) for c in plan.cases}
    failed = [(f.op.value,) + f.key for f in read_failures(db)]   # e.g. nvfp4 GEMM has no CPU kernel
    assert len(rows) == len(set(rows)), f"{len(rows) - len(set(rows))} cases measured twice"
    assert len(failed) == len(set(failed)), "a failing case was tried twice"
    assert set(rows) | set(failed) == expected and not set(rows) & set(failed)
    writers = {shard.name.split("-")[2] for shard in db.rglob("part-*.parquet")}
    assert len(writers) >= 2, "one collector did all the work: the test did not exercise sharing"
    assert not [p for p in (db / CLAIMS_DIR).rglob("*") if p.is_file()], "claims left behind after the runs"


def test_a_dead_claimers_case_returns_to_the_pool(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()   # a pid that ran on this host and no longer does
    k = ("bf16", 16, 16, 16)
    crashed = ClaimBook(tmp_path, "cpu_host", Backend.TORCH, "2", Claimer(Claimer.this_process().host, dead.pid))
    assert crashed.claim(OpKind.GEMM, k)
    live = ClaimBook(tmp_path, "cpu_host", Backend.TORCH, "2")
    assert live.claim(OpKind.GEMM, k), "a dead process's claim must be taken over"
    other = ClaimBook(tmp_path, "cpu_host", Backend.TORCH, "2", Claimer(Claimer.this_process().host, os.getppid()))
    assert not other.claim(OpKind.GEMM, k), "a live claimer's case must not be taken"


def test_a_remote_claim_expires_with_its_lease(tmp_path):
    k = ("bf16", 32, 32, 32)
    remote = ClaimBook(tmp_path, "cpu_host", Backend.TORCH, "2", Claimer("another-host", 1))
    assert remote.claim(OpKind.GEMM, k)
    here = ClaimBook(tmp_path, "cpu_host", Backend.TORCH, "2", lease_s=60)
    assert not here.claim(OpKind.GEMM, k), "another host's fresh claim holds"
    path = next(p for p in (tmp_path / CLAIMS_DIR).rglob("*.claim"))
    path.write_text(json.dumps({**json.loads(path.read_text()), "taken_at": time.time() - 120}))
    assert here.claim(OpKind.GEMM, k), "another host's claim older than the lease returns to the pool"
    here.release(OpKind.GEMM, k)
    assert not path.exists()
