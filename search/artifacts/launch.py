"""launch.sh: every command of a deployment, grouped by node, with the router in front.

    NODE_ADDRS="10.0.0.1 10.0.0.2" ./launch.sh 0     # on node 0 (also runs the router)
    NODE_ADDRS="10.0.0.1 10.0.0.2" ./launch.sh 1     # on node 1
    ./launch.sh                                      # a single-node plan (NODE_ADDRS defaults to 127.0.0.1)

The script changes to its own directory first, so the engine configs beside it (TensorRT-LLM's
<role>.yaml, disagg.yaml) are found from wherever it is started. Node addresses come from NODE_ADDRS
(node 0 first); a missing address or an unknown node index stops it with a one-line error before
anything starts. `launch_plan` is the same content as data (tests parse every command with the
engines' own parsers).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from search.artifacts.engines import Command, EngineSettings, Role, Router, builder
from search.artifacts.layout import Placement, node_count, place
from search.types import Candidate, Mode, WorkerSetup


@dataclass(frozen=True)
class LaunchPlan:
    placements: tuple[Placement, ...]
    commands: tuple[Command, ...]     # every worker's per-node commands, then the router's
    router: Router | None             # None: a single worker serves the front door itself
    nodes: int


def worker_order(c: Candidate) -> list[tuple[Role, WorkerSetup]]:
    """Every worker in placement order: the replicas, or one xPyD group after another (prefill first)."""
    if c.mode == Mode.AGG:
        return [(Role.AGG, c.decode)] * c.decode.workers
    group = [(Role.PREFILL, c.prefill)] * c.prefill.workers + [(Role.DECODE, c.decode)] * c.decode.workers
    return group * c.replicas


def launch_plan(c: Candidate, s: EngineSettings, gpus_per_node: int) -> LaunchPlan:
    b = builder(c.backend)
    placements = place(worker_order(c), gpus_per_node, s.port)
    commands = [cmd for p in placements for cmd in b.node_commands(p, s)]
    router = b.router(placements, s) if len(placements) > 1 else None
    if router is not None:
        commands.append(router.command)
    return LaunchPlan(placements, tuple(commands), router, node_count(placements))


def _word(token: str) -> str:
    """Shell-quote one argument; node addresses (`${ADDR[k]}`) and `$CONFIG` stay expandable."""
    if "$" in token:
        return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return shlex.quote(token)


def _line(cmd: Command) -> list[str]:
    out = [f"  # {cmd.comment}"] if cmd.comment else []
    out += [f"  {line}" for line in cmd.prelude]
    if cmd.argv:
        env = " ".join(f"{k}={_word(v)}" for k, v in cmd.env)
        out.append("  " + (env + " " if env else "") + " ".join(_word(a) for a in cmd.argv) + " &")
    return out


def _header(lp: LaunchPlan, title: str) -> list[str]:
    n = lp.nodes
    lines = ["#!/usr/bin/env bash", f"# {title}"]
    if n == 1:
        lines += ["# Run: ./launch.sh   (from any directory; the files it reads sit beside it)",
                  "set -euo pipefail", 'cd "$(dirname "${BASH_SOURCE[0]}")"', 'NODE="${1:-0}"',
                  'read -r -a ADDR <<< "${NODE_ADDRS:-127.0.0.1}"']
    else:
        lines += [f"# {n} nodes. Run on each, node 0 first in NODE_ADDRS (node 0 also runs the router):",
                  f'#   NODE_ADDRS="<node 0> ... <node {n - 1}>" ./launch.sh <node index 0..{n - 1}>',
                  "set -euo pipefail", 'cd "$(dirname "${BASH_SOURCE[0]}")"',
                  f'NODE="${{1:?usage: NODE_ADDRS=\\"<{n} node addresses>\\" launch.sh NODE (0..{n - 1})}}"',
                  'read -r -a ADDR <<< "${NODE_ADDRS:-}"',
                  f'if [ "${{#ADDR[@]}}" -lt {n} ]; then',
                  f'  echo "error: NODE_ADDRS lists ${{#ADDR[@]}} address(es); this plan runs on {n} nodes '
                  '(space-separated, node 0 first)" >&2; exit 2',
                  "fi"]
    nodes = "|".join(str(k) for k in range(n))
    which = f"nodes 0..{n - 1}" if n > 1 else "one node, 0"
    lines += [f'case "$NODE" in {nodes}) ;; *) echo "error: node $NODE: this plan has {which}" >&2; '
              "exit 2 ;; esac", ""]
    return lines


def render(lp: LaunchPlan, title: str) -> str:
    lines = _header(lp, title)
    for node in range(lp.nodes):
        cmds = [c for c in lp.commands if c.node == node]
        if not cmds:
            continue
        lines.append(f'if [ "$NODE" = {node} ]; then')
        for cmd in cmds:
            lines += _line(cmd)
        if not any(c.argv for c in cmds):
            lines.append("  :   # nothing to start by hand here")
        lines.append("fi")
    lines += ["wait", ""]
    return "\n".join(lines)
