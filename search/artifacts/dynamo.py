"""Kubernetes manifests for an NVIDIA Dynamo deployment (DynamoGraphDeployment, nvidia.com/v1alpha1).

Written for Dynamo 1.6.1 (PyPI ai-dynamo 1.6.1; the image tag is a parameter, `plan --dynamo-version`).
Layout as in Dynamo's examples (examples/backends/<engine>/deploy/{agg,disagg}.yaml): one Frontend
service running `python3 -m dynamo.frontend --http-port 8000`, and one worker service per role with
`componentType: worker`, `subComponentType: prefill|decode` for disaggregated workers, `replicas` =
worker count, `resources.limits.gpu` = GPUs per node of a worker and `multinode.nodeCount` when a
worker spans nodes (the operator then starts it on each node with the engine's multi-node flags).
Workers run `python3 -m dynamo.<engine>` with the args each engine builder writes for Dynamo
(`dynamo_args`: the flags that release accepts, e.g. vLLM's --disaggregation-mode and the prefill
worker's required --kv-transfer-config); TensorRT-LLM reads its LLM-API options from a ConfigMap
mounted at /config.
"""
from __future__ import annotations

import re

from perfdb.errors import InputError
from perfdb.types import Backend
from search.artifacts import yamlio
from search.artifacts.engine_trtllm import options as trtllm_options
from search.artifacts.engines import EngineSettings, Role, builder
from search.types import Candidate, Mode, WorkerSetup

# Runtime images published by the Dynamo project, one per engine; the tag is the Dynamo release.
IMAGE = {
    Backend.VLLM: "nvcr.io/nvidia/ai-dynamo/vllm-runtime:{tag}",
    Backend.SGLANG: "nvcr.io/nvidia/ai-dynamo/sglang-runtime:{tag}",
    Backend.TRTLLM: "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:{tag}",
}
DEFAULT_TAG = "1.6.1"
FRONTEND_PORT = 8000
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")     # an OCI image tag
_SERVICE_PREFIX = {Backend.VLLM: "Vllm", Backend.SGLANG: "SGLang", Backend.TRTLLM: "TRTLLM"}
_ROLE_NAME = {Role.AGG: "Worker", Role.PREFILL: "PrefillWorker", Role.DECODE: "DecodeWorker"}


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise InputError(f"dynamo version {tag!r} is not an image tag (letters, digits, '_', '.', '-'; "
                         f"e.g. {DEFAULT_TAG})")
    return tag


def _service(backend: Backend, w: WorkerSetup, role: Role, s: EngineSettings, name: str, gpus_per_node: int,
             image: str, config_map: str | None) -> dict:
    gpus = w.parallel.num_gpus
    nodes = -(-gpus // gpus_per_node)
    container = {
        "image": image,
        "workingDir": "/workspace",
        "command": ["python3", "-m", f"dynamo.{backend.value}"],
        "args": builder(backend).dynamo_args(w, role, s, f"/config/{role.value}.yaml"),
    }
    svc: dict = {
        "envFromSecret": "hf-token-secret",
        "dynamoNamespace": name,
        "componentType": "worker",
        "replicas": w.workers,
        "resources": {"limits": {"gpu": str(gpus // nodes)}},
        "extraPodSpec": {"mainContainer": container},
    }
    if role != Role.AGG:
        svc["subComponentType"] = role.value
    if nodes > 1:
        svc["multinode"] = {"nodeCount": nodes}
    if config_map:
        container["volumeMounts"] = [{"name": "engine-config", "mountPath": "/config"}]
        svc["extraPodSpec"]["volumes"] = [{"name": "engine-config", "configMap": {"name": config_map}}]
    return svc


def manifests(c: Candidate, s: EngineSettings, name: str, gpus_per_node: int, tag: str = DEFAULT_TAG) -> list[dict]:
    """The documents of one deployment: a ConfigMap (TensorRT-LLM only) and the DynamoGraphDeployment.
    Disaggregated candidates repeat the xPyD group `replicas` times: worker counts are multiplied."""
    if c.mode == Mode.AGG:
        roles = [(Role.AGG, c.decode)]
    else:
        roles = [(Role.PREFILL, _scaled(c.prefill, c.replicas)), (Role.DECODE, _scaled(c.decode, c.replicas))]
    image = IMAGE[c.backend].format(tag=tag)
    docs: list[dict] = []
    config_map = None
    if c.backend == Backend.TRTLLM:
        config_map = f"{name}-engine-config"
        data = {f"{role.value}.yaml": yamlio.dump(trtllm_options(w, role, s)) for role, w in roles}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map}, "data": data})
    frontend = {"image": image, "workingDir": "/workspace", "command": ["python3", "-m", "dynamo.frontend"],
                "args": ["--http-port", str(FRONTEND_PORT)]}
    services: dict = {"Frontend": {"dynamoNamespace": name, "componentType": "frontend", "replicas": 1,
                                   "extraPodSpec": {"mainContainer": frontend}}}
    for role, w in roles:
        services[_SERVICE_PREFIX[c.backend] + _ROLE_NAME[role]] = _service(
            c.backend, w, role, s, name, gpus_per_node, image, config_map)
    docs.append({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                 "metadata": {"name": name}, "spec": {"services": services}})
    return docs


def _scaled(w: WorkerSetup, k: int) -> WorkerSetup:
    return WorkerSetup(parallel=w.parallel, workers=w.workers * k, max_batch=w.max_batch, max_num_tokens=w.max_num_tokens)
