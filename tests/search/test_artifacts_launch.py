"""launch.sh as deployed: placement without shared GPUs or ports, one command per node, a router
in front of every multi-worker deployment, the script itself run by bash (engines replaced by
recording stubs: the engines need GPUs), and a reused --save-dir that keeps only the new plan."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from artifact_cases import ALL_CASES, MOE_SETTINGS, SETTINGS, WIDE, disagg

from estimator.parallel import ParallelConfig
from perfdb.lookup import PerfDB
from perfdb.types import Backend
from search.artifacts.engines import Role, supports
from search.artifacts.launch import launch_plan
from search.artifacts.layout import place
from search.artifacts.writer import MANIFEST, write_candidate
from search.outputs import clear_stale
from search.plan import plan
from search.points import BACKENDS, MODES
from search.types import Mode, PlanRequest, Sla, WorkerSetup

IDS = [f"{b.value}-{n}" for b, n, _, _ in ALL_CASES]


def _env(cmd) -> dict:
    return dict(cmd.env)


@pytest.mark.parametrize("backend,name,c,s", ALL_CASES, ids=IDS)
def test_no_two_processes_share_a_gpu_or_a_port_on_a_node(backend, name, c, s):
    lp = launch_plan(c, s, 8)
    gpus, ports = {}, {}
    for p in lp.placements:
        assert len(p.gpus) * len(p.nodes) == p.worker.parallel.num_gpus and max(p.gpus) < 8
        for node in p.nodes:
            used = gpus.setdefault(node, set())
            assert not used & set(p.gpus), f"{p.name} reuses GPUs on node {node}"
            used |= set(p.gpus)
        ports.setdefault(p.head, []).append(p.port)
    if lp.router is not None:
        ports.setdefault(0, []).append(s.port)
    for node, taken in ports.items():
        assert len(taken) == len(set(taken)), f"node {node} binds a port twice: {taken}"
    side = {}
    for cmd in lp.commands:   # vLLM NIXL side channel: port + DP index, per instance
        env = _env(cmd)
        if "VLLM_NIXL_SIDE_CHANNEL_PORT" in env:
            p = lp.placements[cmd.worker]
            first = int(env["VLLM_NIXL_SIDE_CHANNEL_PORT"])
            block = set(range(first, first + p.worker.parallel.attn_dp))
            assert not side.get(cmd.node, set()) & block
            side.setdefault(cmd.node, set()).update(block)
            assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "${ADDR[%d]}" % cmd.node
    boot = {}
    for cmd in lp.commands:   # SGLang bootstrap ports of prefill workers
        if "--disaggregation-bootstrap-port" in cmd.argv:
            port = cmd.argv[cmd.argv.index("--disaggregation-bootstrap-port") + 1]
            assert port not in boot.setdefault(cmd.node, set())
            boot[cmd.node].add(port)


def test_workers_on_a_later_node_number_that_nodes_gpus_from_zero():
    w4, w8 = WorkerSetup(ParallelConfig(tp=4), 1, 8, 8192), WorkerSetup(ParallelConfig(tp=8), 1, 8, 8192)
    ps = place([(Role.PREFILL, w4)] * 3 + [(Role.DECODE, w8), (Role.DECODE, w4)], 8, 8000)
    assert [(p.nodes, p.gpus) for p in ps] == [((0,), (0, 1, 2, 3)), ((0,), (4, 5, 6, 7)), ((1,), (0, 1, 2, 3)),
                                              ((2,), tuple(range(8))), ((1,), (4, 5, 6, 7))]
    assert [p.port for p in ps] == [8001, 8002, 8001, 8001, 8002]
    assert [(p.role, p.index, p.count) for p in ps][2:] == [(Role.PREFILL, 3, 3), (Role.DECODE, 1, 2), (Role.DECODE, 2, 2)]
    (only,) = place([(Role.AGG, w8)], 8, 8000)
    assert only.port == 8000                       # a lone worker is the front door itself


def test_an_xpyd_group_that_fits_a_node_shares_it():
    """As the estimator's KV-transfer time assumes (same NVLink domain when P + D GPUs fit one)."""
    c = disagg(Backend.SGLANG, ParallelConfig(tp=4), ParallelConfig(tp=4), x=1, y=1, replicas=2)
    lp = launch_plan(c, SETTINGS, 8)
    assert [(p.role.value, p.head) for p in lp.placements] == [("prefill", 0), ("decode", 0), ("prefill", 1),
                                                               ("decode", 1)]


@pytest.mark.parametrize("backend", [Backend.VLLM, Backend.SGLANG])
def test_a_worker_wider_than_a_node_gets_one_command_per_node(backend):
    c = disagg(backend, ParallelConfig(tp=4), WIDE, x=2, y=1, replicas=1)
    lp = launch_plan(c, MOE_SETTINGS, 8)
    wide = [cmd for cmd in lp.commands if "decode" in cmd.comment]
    assert [cmd.node for cmd in wide] == [1, 2]
    for rank, cmd in enumerate(wide):
        argv = list(cmd.argv)
        assert argv[argv.index("--nnodes") + 1] == "2" and argv[argv.index("--node-rank") + 1] == str(rank)
        head = argv[argv.index("--master-addr" if backend == Backend.VLLM else "--dist-init-addr") + 1]
        assert head.startswith("${ADDR[1]}")
        assert ("--headless" in argv) == (backend == Backend.VLLM and rank == 1)
        assert _env(cmd)["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"


def test_trtllm_wide_worker_is_one_mpirun_over_its_nodes():
    lp = launch_plan(disagg(Backend.TRTLLM, ParallelConfig(tp=4), WIDE, x=2, y=1, replicas=1), MOE_SETTINGS, 8)
    wide = [cmd for cmd in lp.commands if "decode" in cmd.comment]
    argv = list(wide[0].argv)
    assert argv[0] == "mpirun" and argv[argv.index("-np") + 1] == "16"
    assert argv[argv.index("-H") + 1] == "${ADDR[1]}:8,${ADDR[2]}:8" and "--gpus_per_node" in argv
    assert wide[1].node == 2 and wide[1].argv == ()


@pytest.mark.parametrize("backend,name,c,s", ALL_CASES, ids=IDS)
def test_every_multi_worker_deployment_has_a_router_naming_each_worker_once(backend, name, c, s):
    lp = launch_plan(c, s, 8)
    if len(lp.placements) == 1:
        assert lp.router is None
        return
    text = " ".join(lp.router.command.argv) + "".join(lp.router.files.values())
    for p in lp.placements:
        host = "${ADDR[%d]}" % p.head if backend != Backend.TRTLLM or c.mode == Mode.AGG else (
            "localhost" if p.head == 0 else f"@NODE{p.head}@")
        assert text.count(f"{host}:{p.port}") == 1, (p.name, text)
    if c.mode == Mode.DISAGG:
        assert {Backend.VLLM: "--vllm-pd-disaggregation", Backend.SGLANG: "--pd-disaggregation",
                Backend.TRTLLM: "disaggregated"}[backend] in lp.router.command.argv


STUB = """#!/usr/bin/env bash
# records what launch.sh starts (the engines themselves need GPUs)
line="$(basename "$0") $* | GPUS=${CUDA_VISIBLE_DEVICES:-} PWD=$PWD"
prev=""
for a in "$@"; do
  if [ "$prev" = "-c" ]; then line="$line | CONFIG=$(tr '\\n' ' ' < "$a")"; fi
  prev="$a"
done
echo "$line" >> "$STUB_LOG"
"""


def _run(script: Path, tmp_path: Path, *args, addrs: str | None = None):
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name in ("vllm", "python", "trtllm-serve", "vllm-router", "mpirun"):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    log = tmp_path / "stub.log"
    log.write_text("")
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log)}
    if addrs is not None:
        env["NODE_ADDRS"] = addrs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    done = subprocess.run(["bash", str(script), *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=60)
    return done, log.read_text().splitlines()


def test_single_node_launch_sh_runs_from_any_directory(tmp_path):
    c = disagg(Backend.VLLM, ParallelConfig(tp=2, pp=2), ParallelConfig(tp=2), x=1, y=2, replicas=1)
    out = write_candidate(tmp_path / "plan", c, 1, "h200_sxm", 8, 4000, 500, 0, Sla(600, 16.67), SETTINGS)
    done, started = _run(out / "launch.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(started) == 4 and all(f"PWD={out.resolve()}" in line for line in started)   # cd to its own dir
    router = next(line for line in started if line.startswith("vllm-router"))
    assert "--prefill http://127.0.0.1:8001 --decode http://127.0.0.1:8002 --decode http://127.0.0.1:8003" in router
    assert sorted(line.split("GPUS=")[1].split()[0] for line in started if line.startswith("vllm serve")) == \
        ["0,1,2,3", "4,5", "6,7"]
    done, started = _run(out / "launch.sh", tmp_path, "1")
    assert done.returncode == 2 and started == [] and done.stderr.strip() == "error: node 1: this plan has one node, 0"


def test_multi_node_launch_sh_starts_each_nodes_share_and_refuses_bad_input(tmp_path):
    c = disagg(Backend.TRTLLM, ParallelConfig(tp=4), WIDE, x=2, y=1, replicas=1)
    out = write_candidate(tmp_path / "plan", c, 1, "b200_sxm", 8, 4000, 500, 0, Sla(600, 16.67), MOE_SETTINGS)
    script, addrs = out / "launch.sh", "10.0.0.1 10.0.0.2 10.0.0.3"
    done, started = _run(script, tmp_path, "0", addrs=addrs)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in started].count("trtllm-serve") == 3
    router = " ".join(next(line for line in started if "disaggregated" in line).split())
    assert "- localhost:8001 - localhost:8002" in router and "- '10.0.0.2:8001'" in router   # rendered config
    done, started = _run(script, tmp_path, "1", addrs=addrs)
    assert started == [next(s for s in started if s.startswith("mpirun"))]
    assert "-H 10.0.0.2:8,10.0.0.3:8" in started[0]
    done, started = _run(script, tmp_path, "2", addrs=addrs)
    assert done.returncode == 0 and started == []
    for args, addr, why in ((("0",), None, "NODE_ADDRS lists 0 address(es); this plan runs on 3 nodes"),
                            (("0",), "10.0.0.1 10.0.0.2", "NODE_ADDRS lists 2 address(es)"),
                            (("3",), addrs, "node 3: this plan has nodes 0..2"),
                            ((), addrs, "usage")):
        done, started = _run(script, tmp_path, *args, addrs=addr)
        assert done.returncode != 0 and started == [] and why in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_reused_save_dir_keeps_only_the_new_plan_and_never_a_users_file(tmp_path):
    top = tmp_path / "top"
    old = [write_candidate(top, c, r, "h200_sxm", 8, 4000, 500, 0, Sla(600, 16.67), s)
           for r, (_, c, s) in enumerate([ALL_CASES[2][1:], ALL_CASES[7][1:]], start=1)]
    (old[1] / "aiperf-results").mkdir()
    (old[1] / "aiperf-results" / "profile_export_aiperf.json").write_text("{}")
    (old[1] / "notes.txt").write_text("mine")
    mine = top / "hand-made"
    mine.mkdir()
    (mine / "launch.sh").write_text("echo mine\n")
    legacy = write_candidate(top, ALL_CASES[0][2], 9, "h200_sxm", 8, 4000, 500, 0, Sla(600, 16.67), ALL_CASES[0][3])
    (legacy / MANIFEST).unlink()                      # as written before servecast kept the list
    (legacy / "disagg.yaml").write_text("mine\n")     # not a name servecast wrote then: kept
    (old[0] / MANIFEST).write_text((old[0] / MANIFEST).read_text() + "../../outside.txt\n")
    (tmp_path / "outside.txt").write_text("keep")
    kept = clear_stale(top)
    assert not old[0].exists() and (tmp_path / "outside.txt").read_text() == "keep"
    assert kept == [old[1], legacy] and sorted(os.listdir(old[1])) == ["aiperf-results", "notes.txt"]
    assert os.listdir(legacy) == ["disagg.yaml"]
    assert (mine / "launch.sh").exists()      # no list of servecast's files: not servecast's to remove


def test_vllm_disagg_is_never_planned_with_decode_side_pipeline_parallelism():
    assert not supports(Backend.VLLM, ParallelConfig(tp=2, pp=2), Role.DECODE)
    assert supports(Backend.VLLM, ParallelConfig(tp=2, pp=2), Role.PREFILL)
    assert supports(Backend.SGLANG, ParallelConfig(tp=2, pp=2), Role.DECODE)
    req = PlanRequest(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", backends=(Backend.VLLM, Backend.SGLANG),
                      total_gpus=8, isl=4000, osl=500, sla=Sla(600, 16.67), mode=Mode.DISAGG,
                      stored_calibration=False)
    pts = plan(req, PerfDB(None)).points
    dis = pts["mode"] == MODES.index(Mode.DISAGG)
    vllm, sglang = dis & (pts["backend"] == BACKENDS.index(Backend.VLLM)), dis & (pts["backend"] == BACKENDS.index(Backend.SGLANG))
    assert vllm.any() and np.all(pts["d_pp"][vllm] == 1)
    assert np.any(pts["d_pp"][sglang] > 1)        # the rule is vLLM's, not the search's
