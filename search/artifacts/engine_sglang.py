"""SGLang launch commands, router and Dynamo args (SGLang 0.5.23, sglang-router 0.3.2, ai-dynamo 1.6.1).

Engine flags (`python -m sglang.launch_server`, sglang/srt/arg_groups/fields/*.py): --tp-size counts
every GPU of a stage (attention TP x attention DP), --attn-dp-size splits attention into DP groups
(0.5.23 replaced `--dp-size N --enable-dp-attention`, kept only as a deprecated spelling until
2026-12-31, fields/parallel.py), --ep-size sets MoE expert parallelism; --max-running-requests is the
replica total; --chunked-prefill-size the token budget per iteration.
Multi-node: the same command on each node with --nnodes N --node-rank r --dist-init-addr <head>:port.
Disaggregated workers: --disaggregation-mode prefill|decode over NIXL; each prefill worker serves its
bootstrap server on --disaggregation-bootstrap-port (default 8998 for every instance, fields/disagg.py),
so co-located prefill workers get 8998, 8999, ...
Router: `python -m sglang_router.launch_router --pd-disaggregation --prefill URL BOOTSTRAP_PORT
--decode URL` (sglang_router/router_args.py), `--worker-urls` for aggregated replicas.
"""
from __future__ import annotations

from estimator.parallel import ParallelConfig
from search.artifacts.engines import Command, EngineSettings, Role, Router, address, kv_flag
from search.types import WorkerSetup

BOOTSTRAP_PORT = 8998          # SGLang's default --disaggregation-bootstrap-port
DIST_INIT_PORT = 20000         # multi-node --dist-init-addr port, + the worker's order


def supports(p: ParallelConfig, role: Role) -> bool:
    return True


def bootstrap_port(p) -> int:
    return BOOTSTRAP_PORT + p.slot


def serve_args(w: WorkerSetup, role: Role, s: EngineSettings) -> list[str]:
    p = w.parallel
    args = ["--tp-size", str(p.tp * p.attn_dp), "--pp-size", str(p.pp)]
    if p.attn_dp > 1:
        args += ["--attn-dp-size", str(p.attn_dp)]
    if s.is_moe and p.moe_ep > 1:
        args += ["--ep-size", str(p.moe_ep)]
    args += [
        "--max-running-requests", str(w.max_batch),
        "--chunked-prefill-size", str(w.max_num_tokens),
        "--mem-fraction-static", f"{s.mem_fraction:.2f}",
        "--kv-cache-dtype", kv_flag(s, "fp8_e4m3", "bfloat16"),
        "--context-length", str(s.max_model_len),
    ]
    if role != Role.AGG:
        args += ["--disaggregation-mode", role.value, "--disaggregation-transfer-backend", "nixl"]
    if s.mamba_ssm_dtype:   # one state slot per running request, as the plan's memory model sized it
        args += ["--mamba-ssm-dtype", s.mamba_ssm_dtype, "--max-mamba-cache-size", str(w.max_batch)]
    return args



def options(w: WorkerSetup, role: Role, s: EngineSettings) -> dict:
    """No config file: every flag is on the command line."""
    return {}


def node_commands(p, s: EngineSettings) -> list[Command]:
    base = ["python", "-m", "sglang.launch_server", "--model-path", s.model, *serve_args(p.worker, p.role, s)]
    if p.role == Role.PREFILL:
        base += ["--disaggregation-bootstrap-port", str(bootstrap_port(p))]
    base += ["--host", "0.0.0.0", "--port", str(p.port)]
    gpus = ",".join(map(str, p.gpus))
    out = []
    for rank, node in enumerate(p.nodes):
        argv = list(base)
        if p.multinode:
            argv += ["--nnodes", str(len(p.nodes)), "--node-rank", str(rank),
                     "--dist-init-addr", f"{address(p.head)}:{DIST_INIT_PORT + p.order}"]
        what = f"{p.name}" + (f", node rank {rank} of {len(p.nodes)}" if p.multinode else "")
        out.append(Command(node=node, argv=tuple(argv), env=(("CUDA_VISIBLE_DEVICES", gpus),), comment=what,
                           worker=p.order))
    return out


def router(placements, s: EngineSettings) -> Router:
    argv = ["python", "-m", "sglang_router.launch_router"]
    if any(q.role != Role.AGG for q in placements):
        argv += ["--pd-disaggregation"]
        for q in placements:
            url = f"http://{address(q.head)}:{q.port}"
            argv += ["--prefill", url, str(bootstrap_port(q))] if q.role == Role.PREFILL else ["--decode", url]
    else:
        argv += ["--worker-urls", *(f"http://{address(q.head)}:{q.port}" for q in placements)]
    argv += ["--host", "0.0.0.0", "--port", str(s.port)]
    return Router(Command(node=0, argv=tuple(argv), comment=f"router: the front door on port {s.port}"))


def dynamo_args(w: WorkerSetup, role: Role, s: EngineSettings, config: str) -> list[str]:
    """`python3 -m dynamo.sglang` takes SGLang's own ServerArgs (ai-dynamo 1.6.1 dynamo/sglang/args.py),
    and reserves each prefill worker's bootstrap port itself."""
    return ["--model-path", s.model, "--served-model-name", s.model, *serve_args(w, role, s)]
