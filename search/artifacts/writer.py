"""Write the deployable artifacts of one candidate into its own directory:

    deployment.yaml      the spec (`servecast calibrate ingest --deployment` reads it)
    launch.sh            every worker's command per node (GPUs, ports, multi-node flags) and the router
    <role>.yaml          TensorRT-LLM only: the LLM-API options each trtllm-serve reads
    disagg.yaml          TensorRT-LLM disaggregated only: `trtllm-serve disaggregated`'s config
    k8s/dynamo.yaml      ConfigMap (TensorRT-LLM) + DynamoGraphDeployment
    aiperf.sh            the benchmark at the planned concurrency (the simulator's, backed off when the
                         static one missed a target under load), ISL/OSL and prefix
    .servecast-files     the list of the files above: `remove_written` deletes exactly these (and in a
                         directory from before the list, only the names servecast wrote then)

A reused --save-dir must hold exactly the new plan, and must never lose a user's own files (an aiperf
run started inside a candidate directory leaves its results there): so a stale directory loses only
the files its list names, and goes only when nothing else is left in it.
"""
from __future__ import annotations

import re
from pathlib import Path

from perfdb.types import Backend
from search.artifacts import yamlio
from search.artifacts.aiperf import aiperf_command, shell_line
from search.artifacts.deployment import DeploymentSpec, deployment_spec
from search.artifacts.dynamo import DEFAULT_TAG, manifests
from search.artifacts.engine_trtllm import options as trtllm_options
from search.artifacts.engines import EngineSettings
from search.artifacts.launch import launch_plan, render, worker_order
from search.types import Candidate, SimCheck, Sla

MANIFEST = ".servecast-files"


def slug(c: Candidate, rank: int) -> str:
    text = f"{rank:02d}-{c.mode.value}-{c.backend.value}-{c.label()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:96]


def launch_script(c: Candidate, s: EngineSettings, gpus_per_node: int) -> tuple[str, dict]:
    """launch.sh's text and the router's files to write beside it."""
    lp = launch_plan(c, s, gpus_per_node)
    title = (f"{c.label()} on {c.total_gpus} GPUs ({c.gpus_used} used, {lp.nodes} node(s)), "
             f"{c.backend.value}, planned by servecast")
    return render(lp, title), (lp.router.files if lp.router else {})


def _aiperf_script(c: Candidate, s: EngineSettings, rank: int, spec: DeploymentSpec, out: Path) -> str:
    """At the deployment spec's concurrency: the one the simulator replayed (backed off when the static
    one missed a target under load), else the static estimate's."""
    artifact = f"aiperf-{slug(c, rank)}"
    bench = aiperf_command(s.model, f"http://localhost:{s.port}", spec.concurrency, spec.isl, spec.osl, spec.prefix,
                           artifact, spec.range_ratio)
    return ("#!/usr/bin/env bash\n# Benchmark at the planned concurrency through the deployment's front door: on node 0\n"
            f"# of launch.sh (its router, or its only worker) or the Dynamo frontend of k8s/dynamo.yaml\n"
            f"# port-forwarded to localhost:{s.port}; then\n"
            f"#   servecast calibrate ingest {artifact} --deployment {out.name}/deployment.yaml --out runs.parquet\n"
            f"{shell_line(bench)}\n")


def write_candidate(directory: Path, c: Candidate, rank: int, system: str, gpus_per_node: int, isl: int, osl: int,
                    prefix: int, sla: Sla, s: EngineSettings, gemm_quant: str = "", moe_quant: str = "",
                    calibrated: dict | None = None, dynamo_tag: str = DEFAULT_TAG, sim: SimCheck | None = None,
                    range_ratio: float = 0.0) -> Path:
    """calibrated: calibration_id and intervals added to deployment.yaml's `predicted` (calibrated plans).
    sim: the simulator's replay that decided the plan: deployment.yaml and aiperf.sh take its concurrency.
    range_ratio: the request lengths' spread the plan replayed (deployment.yaml and aiperf.sh take it)."""
    out = Path(directory) / slug(c, rank)
    if written_by_servecast(out) is not None:
        remove_written(out)
    spec = deployment_spec(c, system, isl, osl, prefix, sla, s, gemm_quant, moe_quant, sim, range_ratio)
    if calibrated:
        spec.predicted.update(calibrated)
    launch, router_files = launch_script(c, s, gpus_per_node)
    name = re.sub(r"[^a-z0-9-]+", "-", f"sc-{c.backend.value}-{c.mode.value}-{rank}".lower())
    files = {"deployment.yaml": yamlio.dump(spec.to_dict()), "launch.sh": launch, **router_files,
             "k8s/dynamo.yaml": yamlio.dump_all(manifests(c, s, name, gpus_per_node, dynamo_tag)),
             "aiperf.sh": _aiperf_script(c, s, rank, spec, out)}
    if c.backend == Backend.TRTLLM:
        files.update({f"{role.value}.yaml": yamlio.dump(trtllm_options(w, role, s))
                      for role, w in dict(worker_order(c)).items()})
    (out / "k8s").mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text("".join(f"{f}\n" for f in files))   # first: a crash mid-way stays removable
    for rel, text in files.items():
        (out / rel).write_text(text)
    for script in ("launch.sh", "aiperf.sh"):
        (out / script).chmod(0o755)
    return out


# What servecast wrote into a candidate directory before it kept a MANIFEST (recognised only beside a
# deployment.yaml of its own format).
_UNLISTED = ("deployment.yaml", "launch.sh", "aiperf.sh", "k8s/dynamo.yaml", "agg.yaml", "prefill.yaml",
             "decode.yaml")


def written_by_servecast(directory: Path) -> list[str] | None:
    """The files servecast wrote into a candidate directory: its MANIFEST, or for a directory from before
    the MANIFEST the known names beside a servecast deployment.yaml; None when it is not servecast's."""
    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        return [*(directory / MANIFEST).read_text().splitlines(), MANIFEST]
    try:
        head = (directory / "deployment.yaml").read_text()[:200]
    except (OSError, UnicodeDecodeError):
        return None
    if "format: servecast-deployment" not in head:
        return None
    return [f for f in _UNLISTED if (directory / f).is_file()]


def remove_written(directory: Path) -> bool:
    """Delete the files servecast wrote in `directory` (written_by_servecast: never anything else, nothing
    outside it), then the directory and its k8s/ if empty. Returns whether the directory is gone."""
    directory = Path(directory)
    root = directory.resolve()
    listed = written_by_servecast(directory) or []
    for rel in listed:
        path = directory / rel
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts or not path.resolve().is_relative_to(root):
            continue
        if path.is_file() or path.is_symlink():
            path.unlink()
    for d in (directory / "k8s", directory):
        if d.is_dir() and not d.is_symlink() and not any(d.iterdir()):
            d.rmdir()
    return not directory.exists()
