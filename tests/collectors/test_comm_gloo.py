"""Two real processes under torchrun (gloo on CPU) run every collective through `servecast collect run`;
rank 0 writes the rows, each the slowest rank's time."""
import socket
import subprocess
import sys
from pathlib import Path

from perfdb.storage import list_tables, read_table
from perfdb.types import CommOp, OpKind

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_collectives(tmp_path):
    db = tmp_path / "db"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "servecast.cli", "collect", "run", "--device", "cpu", "--ops", "comm", "--grid", "tiny",
           "--db", str(db), "--timer-budget-ms", "3", "--quiet"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (key,) = [k for k in list_tables(db) if k.op == OpKind.COMM]
    t = read_table(db, key).to_pandas()
    assert set(t.op) == {op.value for op in CommOp}
    assert set(t.num_gpus) == {2} and set(t.transport) == {"loopback"} and set(t.kernel_source) == {"gloo"}
    assert (t.latency_ms > 0).all() and len(t) == len(t.drop_duplicates(["op", "msg_bytes"]))
    # a 16 MiB all_reduce moves 16384x the bytes of a 1 KiB one: tens of ms against tens of us on loopback,
    # a gap that scheduler noise on a loaded 2-core runner (a few ms) cannot close
    ar = t[t.op == "all_reduce"].set_index("msg_bytes").p10_ms
    assert ar[1 << 24] > ar[1 << 10]
