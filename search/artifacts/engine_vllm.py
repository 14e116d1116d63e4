"""vLLM launch commands, router and Dynamo args (vLLM 0.34.0, vllm-router 0.1.17, ai-dynamo 1.6.1).

Engine flags (`vllm serve`, vllm/engine/arg_utils.py): --tensor-parallel-size x --data-parallel-size
x --pipeline-parallel-size GPUs; attention-DP with MoE is --data-parallel-size plus
--enable-expert-parallel (EP over tp*dp). --max-num-seqs and --max-num-batched-tokens apply per DP
engine core, so the replica's limits are divided by dp.
Multi-node (a worker wider than a node): the same command on each node with --nnodes N --node-rank r
--master-addr <head> --master-port P (the multiprocessing backend; arg_utils infers the local DP
ranks from them), and --headless on every node but the head (vllm/entrypoints/cli/serve.py).
Disaggregated workers: --kv-transfer-config with the NixlConnector, kv_role kv_producer (prefill) or
kv_consumer (decode) (kv_both is deprecated in 0.34, nixl/connector.py). The NIXL handshake listens
on VLLM_NIXL_SIDE_CHANNEL_PORT + the DP index (nixl/base_scheduler.py; default 5600 for every
instance) on VLLM_NIXL_SIDE_CHANNEL_HOST (default localhost, unreachable from another node), so each
co-located instance gets its own port block and the node's address.
Router: `vllm-router --vllm-pd-disaggregation --prefill URL --decode URL` (vllm_router/router_args.py),
`--worker-urls` for aggregated replicas.
"""
from __future__ import annotations

import json

from estimator.parallel import ParallelConfig
from search.artifacts.engines import Command, EngineSettings, Role, Router, address, kv_flag, per_rank
from search.types import WorkerSetup

NIXL_SIDE_CHANNEL_PORT = 5600     # vllm/envs.py default
MASTER_PORT = 29500               # multi-node rendezvous, + the worker's order: unique per worker
_KV_ROLE = {Role.PREFILL: "kv_producer", Role.DECODE: "kv_consumer"}


def supports(p: ParallelConfig, role: Role) -> bool:
    if p.moe_tp > 1 and p.moe_ep > 1:
        return False      # MoE runs all-TP or all-EP (--enable-expert-parallel is a switch)
    if role == Role.DECODE and p.pp > 1:
        # vLLM 0.34 NIXL: a KV consumer with pipeline_parallel_size > 1 raises NotImplementedError
        # ("consumer (decode) does not support pipeline_parallel_size > 1", nixl/base_worker.py).
        return False
    return True


def kv_transfer_config(role: Role) -> str:
    return json.dumps({"kv_connector": "NixlConnector", "kv_role": _KV_ROLE[role]}, separators=(",", ":"))


def serve_args(w: WorkerSetup, role: Role, s: EngineSettings) -> list[str]:
    p = w.parallel
    args = ["--tensor-parallel-size", str(p.tp), "--pipeline-parallel-size", str(p.pp)]
    if p.attn_dp > 1:
        args += ["--data-parallel-size", str(p.attn_dp)]
    if s.is_moe and p.moe_ep > 1:
        args += ["--enable-expert-parallel"]
    args += [
        "--max-num-seqs", str(per_rank(w.max_batch, p.attn_dp)),
        "--max-num-batched-tokens", str(w.max_num_tokens),
        "--gpu-memory-utilization", f"{s.mem_fraction:.2f}",
        "--kv-cache-dtype", kv_flag(s, "fp8", "bfloat16"),
        "--max-model-len", str(s.max_model_len),
    ]
    if role == Role.AGG:
        args += ["--enable-chunked-prefill"]
    else:
        args += ["--kv-transfer-config", kv_transfer_config(role)]
    if s.mamba_ssm_dtype:   # the state pool shares the KV pool's pages (V1 hybrid allocator)
        args += ["--mamba-ssm-cache-dtype", s.mamba_ssm_dtype]
    return args



def options(w: WorkerSetup, role: Role, s: EngineSettings) -> dict:
    """No config file: every flag is on the command line."""
    return {}


def node_commands(p, s: EngineSettings) -> list[Command]:
    base = ["vllm", "serve", s.model, *serve_args(p.worker, p.role, s)]
    gpus = ",".join(map(str, p.gpus))
    out = []
    for rank, node in enumerate(p.nodes):
        argv = list(base)
        if p.multinode:
            argv += ["--nnodes", str(len(p.nodes)), "--node-rank", str(rank), "--master-addr", address(p.head),
                     "--master-port", str(MASTER_PORT + p.order)]
            if rank:
                argv += ["--headless"]
        if rank == 0:
            argv += ["--host", "0.0.0.0", "--port", str(p.port)]
        env = [("CUDA_VISIBLE_DEVICES", gpus)]
        if p.role != Role.AGG:
            env += [("VLLM_NIXL_SIDE_CHANNEL_HOST", address(node)),
                    ("VLLM_NIXL_SIDE_CHANNEL_PORT", str(NIXL_SIDE_CHANNEL_PORT + p.side))]
        what = f"{p.name}" + (f", node rank {rank} of {len(p.nodes)}" if p.multinode else "")
        out.append(Command(node=node, argv=tuple(argv), env=tuple(env), comment=what, worker=p.order))
    return out


def router(placements, s: EngineSettings) -> Router:
    url = {q.order: f"http://{address(q.head)}:{q.port}" for q in placements}
    argv = ["vllm-router"]
    if any(q.role != Role.AGG for q in placements):
        argv += ["--vllm-pd-disaggregation"]
        for q in placements:
            argv += ["--prefill" if q.role == Role.PREFILL else "--decode", url[q.order]]
    else:
        argv += ["--worker-urls", *url.values()]
    argv += ["--host", "0.0.0.0", "--port", str(s.port)]
    return Router(Command(node=0, argv=tuple(argv), comment=f"router: the front door on port {s.port}"))


def dynamo_args(w: WorkerSetup, role: Role, s: EngineSettings, config: str) -> list[str]:
    """`python3 -m dynamo.vllm` args (ai-dynamo 1.6.1 dynamo/vllm/backend_args.py: --disaggregation-mode;
    dynamo/vllm/args.py: a prefill worker must carry --kv-transfer-config)."""
    args = ["--model", s.model, *serve_args(w, role, s)]
    if role != Role.AGG:
        args += ["--disaggregation-mode", role.value]
    return args
