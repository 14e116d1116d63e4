"""Write the deployable artifacts of one candidate into its own directory:

    deployment.yaml      the spec (`servecast calibrate ingest --deployment` reads it)
    launch.sh            standalone launch commands, one per worker, with GPUs and ports assigned
    <role>.yaml          TensorRT-LLM only: the LLM-API options each trtllm-serve reads
    k8s/dynamo.yaml      ConfigMap (TensorRT-LLM) + DynamoGraphDeployment
    aiperf.sh            the benchmark at the predicted concurrency, ISL/OSL and prefix
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

from perfdb.types import Backend
from search.artifacts import yamlio
from search.artifacts.aiperf import aiperf_command
from search.artifacts.deployment import deployment_spec
from search.artifacts.dynamo import manifests
from search.artifacts.engines import EngineSettings, Role, launch_command, trtllm_options
from search.types import Candidate, Mode, Sla, WorkerSetup

VLLM_NIXL = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"}, separators=(",", ":"))


def slug(c: Candidate, rank: int) -> str:
    text = f"{rank:02d}-{c.mode.value}-{c.backend.value}-{c.label()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:96]


def _roles(c: Candidate) -> list[tuple[Role, WorkerSetup, int]]:
    if c.mode == Mode.AGG:
        return [(Role.AGG, c.decode, c.decode.workers)]
    return [(Role.PREFILL, c.prefill, c.prefill.workers * c.replicas),
            (Role.DECODE, c.decode, c.decode.workers * c.replicas)]


def launch_script(c: Candidate, s: EngineSettings, gpus_per_node: int) -> str:
    lines = ["#!/usr/bin/env bash", f"# {c.label()} on {c.total_gpus} GPUs ({c.gpus_used} used), "
             f"{c.backend.value}, planned by servecast", "set -euo pipefail", ""]
    gpu, port = 0, s.port
    for role, w, count in _roles(c):
        for i in range(count):
            n = w.parallel.num_gpus
            node, first = divmod(gpu, gpus_per_node)
            visible = ",".join(str(first + k) for k in range(min(n, gpus_per_node)))
            argv = launch_command(c.backend, w, role, replace(s, port=port),
                                  options_path=f"{role.value}.yaml")
            if c.backend == Backend.VLLM and role != Role.AGG:
                argv += ["--kv-transfer-config", VLLM_NIXL]
            lines.append(f"# {role.value} worker {i + 1}/{count}: node {node}, {n} GPU(s)")
            lines.append(f"CUDA_VISIBLE_DEVICES={visible} {shlex.join(argv)} &")
            gpu, port = gpu + n, port + 1
    lines += ["wait", ""]
    if c.mode == Mode.DISAGG:
        lines.insert(4, "# Disaggregated workers need a KV-aware router in front: deploy k8s/dynamo.yaml,\n"
                        "# or run Dynamo's frontend (python -m dynamo.frontend) beside these workers.")
    elif c.decode.workers > 1:
        lines.insert(4, f"# {c.decode.workers} replicas on ports {s.port}-{s.port + c.decode.workers - 1}: put a router "
                        "in front (Dynamo's frontend, k8s/dynamo.yaml, or any HTTP load balancer).")
    return "\n".join(lines)


def write_candidate(directory: Path, c: Candidate, rank: int, system: str, gpus_per_node: int, isl: int, osl: int,
                    prefix: int, sla: Sla, s: EngineSettings, gemm_quant: str = "", moe_quant: str = "",
                    calibrated: dict | None = None) -> Path:
    """calibrated: calibration_id and intervals added to deployment.yaml's `predicted` (calibrated plans)."""
    out = Path(directory) / slug(c, rank)
    (out / "k8s").mkdir(parents=True, exist_ok=True)
    spec = deployment_spec(c, system, isl, osl, prefix, sla, s, gemm_quant, moe_quant)
    if calibrated:
        spec.predicted.update(calibrated)
    (out / "deployment.yaml").write_text(yamlio.dump(spec.to_dict()))
    (out / "launch.sh").write_text(launch_script(c, s, gpus_per_node))
    if c.backend == Backend.TRTLLM:
        for role, w, _ in _roles(c):
            (out / f"{role.value}.yaml").write_text(yamlio.dump(trtllm_options(w, role, s)))
    name = re.sub(r"[^a-z0-9-]+", "-", f"sc-{c.backend.value}-{c.mode.value}-{rank}".lower())
    (out / "k8s" / "dynamo.yaml").write_text(yamlio.dump_all(manifests(c, s, name, gpus_per_node)))
    artifact = f"aiperf-{slug(c, rank)}"
    bench = aiperf_command(s.model, f"http://localhost:{s.port}", c.metrics.concurrency, isl, osl, prefix, artifact)
    (out / "aiperf.sh").write_text("#!/usr/bin/env bash\n# Benchmark at the predicted concurrency through the deployment's front door (the Dynamo\n"
                                   "# frontend of k8s/dynamo.yaml, port-forwarded to localhost:8000); then\n"
                                   f"#   servecast calibrate ingest {artifact} --deployment {out.name}/deployment.yaml --out runs.parquet\n"
                                   f"{shlex.join(bench)}\n")
    for script in ("launch.sh", "aiperf.sh"):
        (out / script).chmod(0o755)
    return out
