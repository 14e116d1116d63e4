"""Kubernetes manifests for an NVIDIA Dynamo deployment (DynamoGraphDeployment, nvidia.com/v1alpha1).

Layout as in Dynamo's own examples (examples/backends/<engine>/deploy/{agg,disagg}.yaml): one
Frontend service, and one worker service per role with `componentType: worker`,
`subComponentType: prefill|decode` for disaggregated workers, `replicas` = worker count,
`resources.limits.gpu` = GPUs per worker (per node when the worker spans nodes, with
`multinode.nodeCount`). Workers run `python3 -m dynamo.<engine>` with the engine's own flags;
TensorRT-LLM reads its LLM-API options from a ConfigMap mounted at /config.
"""
from __future__ import annotations

from perfdb.types import Backend
from search.artifacts import yamlio
from search.artifacts.engines import EngineSettings, Role, sglang_args, trtllm_options, vllm_args
from search.types import Candidate, Mode, WorkerSetup

# Runtime images published by the Dynamo project; set the tag to the Dynamo release you deploy.
IMAGE = {
    Backend.VLLM: "nvcr.io/nvidia/ai-dynamo/vllm-runtime:{tag}",
    Backend.SGLANG: "nvcr.io/nvidia/ai-dynamo/sglang-runtime:{tag}",
    Backend.TRTLLM: "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:{tag}",
}
DEFAULT_TAG = "0.6.1"
_SERVICE_PREFIX = {Backend.VLLM: "Vllm", Backend.SGLANG: "SGLang", Backend.TRTLLM: "TRTLLM"}
_ROLE_NAME = {Role.AGG: "Worker", Role.PREFILL: "PrefillWorker", Role.DECODE: "DecodeWorker"}


def _worker_args(backend: Backend, w: WorkerSetup, role: Role, s: EngineSettings, config_name: str) -> list[str]:
    if backend == Backend.VLLM:
        args = ["--model", s.model, *vllm_args(w, role, s)]
    elif backend == Backend.SGLANG:
        args = ["--model-path", s.model, "--served-model-name", s.model, *sglang_args(w, role, s)]
        return args  # sglang_args already carries --disaggregation-mode for P/D workers
    else:
        args = ["--model-path", s.model, "--served-model-name", s.model, "--extra-engine-args", f"/config/{config_name}"]
    if role != Role.AGG:
        args += ["--disaggregation-mode", role.value]
    return args


def _service(backend: Backend, w: WorkerSetup, role: Role, s: EngineSettings, name: str, gpus_per_node: int,
             tag: str, config_map: str | None, config_name: str) -> dict:
    gpus = w.parallel.num_gpus
    nodes = -(-gpus // gpus_per_node)
    container = {
        "image": IMAGE[backend].format(tag=tag),
        "workingDir": "/workspace",
        "command": ["python3", "-m", f"dynamo.{backend.value}"],
        "args": _worker_args(backend, w, role, s, config_name),
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
        scale = c.replicas
        roles = [(Role.PREFILL, _scaled(c.prefill, scale)), (Role.DECODE, _scaled(c.decode, scale))]
    docs: list[dict] = []
    config_map = None
    if c.backend == Backend.TRTLLM:
        config_map = f"{name}-engine-config"
        data = {f"{role.value}.yaml": yamlio.dump(trtllm_options(w, role, s)) for role, w in roles}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map}, "data": data})
    services: dict = {
        "Frontend": {
            "dynamoNamespace": name, "componentType": "frontend", "replicas": 1,
            "extraPodSpec": {"mainContainer": {"image": IMAGE[c.backend].format(tag=tag)}},
        }
    }
    for role, w in roles:
        services[_SERVICE_PREFIX[c.backend] + _ROLE_NAME[role]] = _service(
            c.backend, w, role, s, name, gpus_per_node, tag, config_map, f"{role.value}.yaml")
    docs.append({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                 "metadata": {"name": name}, "spec": {"services": services}})
    return docs


def _scaled(w: WorkerSetup, k: int) -> WorkerSetup:
    return WorkerSetup(parallel=w.parallel, workers=w.workers * k, max_batch=w.max_batch, max_num_tokens=w.max_num_tokens)
