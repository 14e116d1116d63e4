"""Launch arguments of one worker for each serving engine, from its parallelism and limits.

Flag names and their meaning, per engine (the tests check every generated flag against these
engines' argument lists; see tests/search/test_artifacts_engines.py for the sources):

vLLM (`vllm serve`): --tensor-parallel-size x --data-parallel-size x --pipeline-parallel-size GPUs;
  attention-DP with MoE is --data-parallel-size plus --enable-expert-parallel (EP over tp*dp).
  --max-num-seqs and --max-num-batched-tokens apply per DP engine core, so the replica's limits are
  divided by dp.
SGLang (`python -m sglang.launch_server`): --tp-size counts every GPU of a stage (attention TP x DP),
  --dp-size with --enable-dp-attention splits attention, --ep-size sets MoE expert parallelism;
  --max-running-requests is the replica total; --chunked-prefill-size the token budget.
TensorRT-LLM (`trtllm-serve`, PyTorch backend): --tp_size counts every GPU of a stage; with
  enable_attention_dp every rank runs its own attention batch, so max_batch_size is per rank;
  moe_expert_parallel_size / moe_tensor_parallel_size split the experts (LLM-API YAML).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from estimator.parallel import ParallelConfig
from perfdb.types import Backend, Dtype
from search.types import WorkerSetup


class Role(str, Enum):
    AGG = "agg"
    PREFILL = "prefill"
    DECODE = "decode"


@dataclass(frozen=True)
class EngineSettings:
    """What every worker of a deployment shares."""

    model: str
    max_model_len: int          # isl + osl: the longest request the plan serves
    kv_dtype: Dtype
    mem_fraction: float         # the engine's memory knob the estimate used (see estimator.engine)
    is_moe: bool = False        # MoE flags are only emitted for models with experts
    port: int = 8000
    # hybrid (linear-attention / Mamba) models: the recurrent-state dtype the estimate sized the state
    # pool with ("float32" / "bfloat16"); "" for models without linear layers (no flag emitted)
    mamba_ssm_dtype: str = ""


def _kv_flag(kv: Dtype) -> str:
    return "fp8" if kv in (Dtype.FP8, Dtype.FP8_BLOCK) else "auto"


def per_rank(total: int, dp: int) -> int:
    return max(1, -(-total // dp))


def vllm_args(w: WorkerSetup, role: Role, s: EngineSettings) -> list[str]:
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
        "--kv-cache-dtype", _kv_flag(s.kv_dtype),
        "--max-model-len", str(s.max_model_len),
    ]
    if role == Role.AGG:
        args += ["--enable-chunked-prefill"]
    if s.mamba_ssm_dtype:   # the state pool shares the KV pool's pages (V1 hybrid allocator)
        args += ["--mamba-ssm-cache-dtype", s.mamba_ssm_dtype]
    return args


def sglang_args(w: WorkerSetup, role: Role, s: EngineSettings) -> list[str]:
    p = w.parallel
    args = ["--tp-size", str(p.tp * p.attn_dp), "--pp-size", str(p.pp)]
    if p.attn_dp > 1:
        args += ["--dp-size", str(p.attn_dp), "--enable-dp-attention"]
    if s.is_moe and p.moe_ep > 1:
        args += ["--ep-size", str(p.moe_ep)]
    args += [
        "--max-running-requests", str(w.max_batch),
        "--chunked-prefill-size", str(w.max_num_tokens),
        "--mem-fraction-static", f"{s.mem_fraction:.2f}",
        "--kv-cache-dtype", "fp8_e4m3" if s.kv_dtype in (Dtype.FP8, Dtype.FP8_BLOCK) else "auto",
        "--context-length", str(s.max_model_len),
    ]
    if role != Role.AGG:
        args += ["--disaggregation-mode", role.value, "--disaggregation-transfer-backend", "nixl"]
    if s.mamba_ssm_dtype:   # one state slot per running request, as the plan's memory model sized it
        args += ["--mamba-ssm-dtype", s.mamba_ssm_dtype, "--max-mamba-cache-size", str(w.max_batch)]
    return args


def trtllm_cli_args(w: WorkerSetup, role: Role, s: EngineSettings, options_path: str) -> list[str]:
    p = w.parallel
    ep = ["--ep_size", str(p.moe_ep)] if s.is_moe else []
    return [
        "--backend", "pytorch",
        "--tp_size", str(p.tp * p.attn_dp), "--pp_size", str(p.pp), *ep,
        "--max_batch_size", str(per_rank(w.max_batch, p.attn_dp)),
        "--max_num_tokens", str(w.max_num_tokens),
        "--max_seq_len", str(s.max_model_len),
        "--kv_cache_free_gpu_memory_fraction", f"{s.mem_fraction:.2f}",
        "--extra_llm_api_options", options_path,
    ]


def trtllm_options(w: WorkerSetup, role: Role, s: EngineSettings) -> dict:
    """The LLM-API options YAML (`--extra_llm_api_options` / Dynamo `--extra-engine-args`)."""
    p = w.parallel
    batch = per_rank(w.max_batch, p.attn_dp)
    opts = {
        "backend": "pytorch",
        "tensor_parallel_size": p.tp * p.attn_dp,
        "pipeline_parallel_size": p.pp,
        "enable_attention_dp": p.attn_dp > 1,
        "max_batch_size": batch,
        "max_num_tokens": w.max_num_tokens,
        "max_seq_len": s.max_model_len,
        "enable_chunked_prefill": role == Role.AGG,
        "kv_cache_config": {"free_gpu_memory_fraction": round(s.mem_fraction, 2),
                            "dtype": "fp8" if s.kv_dtype in (Dtype.FP8, Dtype.FP8_BLOCK) else "auto"},
        "cuda_graph_config": {"enable_padding": True, "max_batch_size": batch},
    }
    if s.mamba_ssm_dtype:   # MambaHybridCacheManager: max_batch_size state slots of this dtype
        opts["kv_cache_config"]["mamba_ssm_cache_dtype"] = s.mamba_ssm_dtype
    if s.is_moe:
        opts["moe_expert_parallel_size"] = p.moe_ep
        opts["moe_tensor_parallel_size"] = p.moe_tp
    if role != Role.AGG:
        opts["cache_transceiver_config"] = {"backend": "DEFAULT"}
        opts["disable_overlap_scheduler"] = role == Role.PREFILL
    return opts


def launch_command(backend: Backend, w: WorkerSetup, role: Role, s: EngineSettings,
                   options_path: str = "engine.yaml") -> list[str]:
    """The standalone launch command of one worker, as argv."""
    host = ["--host", "0.0.0.0"]
    if backend == Backend.VLLM:
        return ["vllm", "serve", s.model, *vllm_args(w, role, s), *host, "--port", str(s.port)]
    if backend == Backend.SGLANG:
        return ["python", "-m", "sglang.launch_server", "--model-path", s.model, *sglang_args(w, role, s),
                *host, "--port", str(s.port)]
    if backend == Backend.TRTLLM:
        return ["trtllm-serve", s.model, *trtllm_cli_args(w, role, s, options_path), *host, "--port", str(s.port)]
    raise ValueError(f"no launch command for backend {backend.value}")


def supports(backend: Backend, p: ParallelConfig) -> bool:
    """Whether the engine can express this parallelism (the search skips shapes it cannot)."""
    if backend == Backend.TRTLLM:
        return p.attn_dp == 1 or p.tp == 1       # attention DP runs attention with TP 1
    if backend == Backend.VLLM:
        return p.moe_tp == 1 or p.moe_ep == 1    # MoE is either all-TP or all-EP
    return True
