"""TensorRT-LLM launch commands, router and Dynamo args (PyTorch backend; trtllm-serve options and LLM-API
keys as in tests/search/engine_keys/trtllm.txt, read from TensorRT-LLM's source; ai-dynamo 1.6.1).

Engine flags (`trtllm-serve MODEL`): --tp_size counts every GPU of a stage; with enable_attention_dp
every rank runs its own attention batch, so max_batch_size is per rank; moe_expert_parallel_size /
moe_tensor_parallel_size split the experts (the LLM-API YAML given to --extra_llm_api_options).
The PyTorch backend is the default: the `--backend` option and the YAML `backend` key are deprecated.
Multi-node: TensorRT-LLM runs its ranks under MPI, so a worker wider than a node is one
`mpirun -H <node>:<gpus>,... trtllm-llmapi-launch trtllm-serve ...` started on its head node (its other
nodes need passwordless SSH and the same files, nothing started by hand) with --gpus_per_node.
Disaggregated: context (prefill) and generation (decode) workers carry cache_transceiver_config; the
router is `trtllm-serve disaggregated -c disagg.yaml` (hostname, port, context_servers /
generation_servers with num_instances and urls: tensorrt_llm/llmapi/disagg_utils.py
extract_disagg_cfg). Aggregated replicas: SGLang's router in its OpenAI-backend mode.
"""
from __future__ import annotations

from estimator.parallel import ParallelConfig
from search.artifacts import yamlio
from search.artifacts.engines import Command, EngineSettings, Role, Router, address, is_fp8_kv, per_rank
from search.types import WorkerSetup

SERVER_START_TIMEOUT_S = 3600     # trtllm-serve disaggregated waits 180 s by default: too short to load a large model


def supports(p: ParallelConfig, role: Role) -> bool:
    return p.attn_dp == 1 or p.tp == 1       # attention DP runs attention with TP 1


def options(w: WorkerSetup, role: Role, s: EngineSettings) -> dict:
    """The LLM-API options YAML (`--extra_llm_api_options` / Dynamo `--extra-engine-args`)."""
    p = w.parallel
    batch = per_rank(w.max_batch, p.attn_dp)
    opts = {
        "tensor_parallel_size": p.tp * p.attn_dp,
        "pipeline_parallel_size": p.pp,
        "enable_attention_dp": p.attn_dp > 1,
        "max_batch_size": batch,
        "max_num_tokens": w.max_num_tokens,
        "max_seq_len": s.max_model_len,
        "enable_chunked_prefill": role == Role.AGG,
        "kv_cache_config": {"free_gpu_memory_fraction": round(s.mem_fraction, 2),
                            "dtype": "fp8" if is_fp8_kv(s.kv_dtype) else "auto"},
        "cuda_graph_config": {"enable_padding": True, "max_batch_size": batch},
    }
    if s.mamba_ssm_dtype:   # MambaHybridCacheManager: max_batch_size state slots of this dtype
        opts["kv_cache_config"]["mamba_ssm_cache_dtype"] = s.mamba_ssm_dtype
    if s.is_moe:
        opts["moe_expert_parallel_size"] = p.moe_ep
        opts["moe_tensor_parallel_size"] = p.moe_tp
        for key, value in s.moe_launch:   # e.g. moe_config.backend TRTLLM: the kernel the estimate priced
            *heads, leaf = key.split(".")
            node = opts
            for h in heads:
                node = node.setdefault(h, {})
            node[leaf] = value
    if role != Role.AGG:
        opts["cache_transceiver_config"] = {"backend": "DEFAULT"}
        opts["disable_overlap_scheduler"] = role == Role.PREFILL
    return opts


def serve_args(w: WorkerSetup, role: Role, s: EngineSettings) -> list[str]:
    p = w.parallel
    ep = ["--ep_size", str(p.moe_ep)] if s.is_moe else []
    return [
        "--tp_size", str(p.tp * p.attn_dp), "--pp_size", str(p.pp), *ep,
        "--max_batch_size", str(per_rank(w.max_batch, p.attn_dp)),
        "--max_num_tokens", str(w.max_num_tokens),
        "--max_seq_len", str(s.max_model_len),
        "--kv_cache_free_gpu_memory_fraction", f"{s.mem_fraction:.2f}",
        "--extra_llm_api_options", f"{role.value}.yaml",
    ]


def node_commands(p, s: EngineSettings) -> list[Command]:
    serve = ["trtllm-serve", s.model, *serve_args(p.worker, p.role, s), "--host", "0.0.0.0", "--port", str(p.port)]
    gpus = ",".join(map(str, p.gpus))
    env = (("CUDA_VISIBLE_DEVICES", gpus),)
    if not p.multinode:
        return [Command(node=p.head, argv=tuple(serve), env=env, comment=p.name, worker=p.order)]
    per_node = len(p.gpus)
    hosts = ",".join(f"{address(n)}:{per_node}" for n in p.nodes)
    mpi = ["mpirun", "-np", str(per_node * len(p.nodes)), "-H", hosts, "-x", "CUDA_VISIBLE_DEVICES",
           "trtllm-llmapi-launch", *serve, "--gpus_per_node", str(per_node)]
    out = [Command(node=p.head, argv=tuple(mpi), env=env,
                   comment=f"{p.name}: all {len(p.nodes)} nodes' ranks, started by MPI from here", worker=p.order)]
    out += [Command(node=n, argv=(), comment=f"{p.name}: ranks started by mpirun on node {p.head} "
                                             "(needs passwordless SSH from it)", worker=p.order) for n in p.nodes[1:]]
    return out


def disagg_config(placements, s: EngineSettings, host) -> dict:
    """`trtllm-serve disaggregated` config. host(node) -> the address the router reaches it at."""
    def servers(role: Role) -> dict:
        qs = [q for q in placements if q.role == role]
        return {"num_instances": len(qs), "urls": [f"{host(q.head)}:{q.port}" for q in qs]}

    return {"hostname": "0.0.0.0", "port": s.port,
            "context_servers": servers(Role.PREFILL), "generation_servers": servers(Role.DECODE)}


def router(placements, s: EngineSettings) -> Router:
    if all(q.role == Role.AGG for q in placements):
        argv = ["python", "-m", "sglang_router.launch_router", "--backend", "openai", "--worker-urls",
                *(f"http://{address(q.head)}:{q.port}" for q in placements), "--host", "0.0.0.0", "--port", str(s.port)]
        return Router(Command(node=0, argv=tuple(argv), comment=f"router: the front door on port {s.port}"))
    remote = sorted({q.head for q in placements if q.head})
    text = yamlio.dump(disagg_config(placements, s, lambda n: f"@NODE{n}@" if n else "localhost"))
    prelude, config = (), "disagg.yaml"
    if remote:   # the node addresses are known only when launch.sh runs: render them into a copy
        subs = " ".join(f"-e \"s/@NODE{n}@/{address(n)}/g\"" for n in remote)
        prelude = ('CONFIG="$(mktemp)"', f'sed {subs} disagg.yaml > "$CONFIG"')
        config = "$CONFIG"
    argv = ("trtllm-serve", "disaggregated", "-c", config, "--server_start_timeout", str(SERVER_START_TIMEOUT_S))
    return Router(Command(node=0, argv=argv, comment=f"router: the front door on port {s.port}", prelude=prelude),
                  files={"disagg.yaml": text})


def dynamo_args(w: WorkerSetup, role: Role, s: EngineSettings, config: str) -> list[str]:
    """`python3 -m dynamo.trtllm` args (ai-dynamo 1.6.1 dynamo/trtllm/backend_args.py: --model,
    --served-model-name, --extra-engine-args, --disaggregation-mode agg|prefill|decode)."""
    args = ["--model", s.model, "--served-model-name", s.model, "--extra-engine-args", config]
    if role != Role.AGG:
        args += ["--disaggregation-mode", role.value]
    return args
