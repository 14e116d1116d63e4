"""vLLM (V1 engine). Read from vLLM 0.10-0.11 sources; fitted values from e2e_train_silicon.csv."""
from __future__ import annotations

from dataclasses import replace

from estimator.engines import register
from estimator.engines.profile import (
    EngineProfile,
    ExpertSlotFlag,
    KvDefault,
    KvHandoff,
    MoeKernelSwitch,
    SchedulerRules,
    SettingKind,
    flag_bool,
)
from perfdb.types import Backend, Dtype, MoeKernel

FIT = "fit on ../shared/data/e2e_train_silicon.csv"

def scheduler_flags(rules: SchedulerRules, flags) -> SchedulerRules:
    """`--enable-chunked-prefill` / `--no-enable-chunked-prefill` (vllm/engine/arg_utils.py, 0.10-0.11;
    on by default in V1), and `--async-scheduling` (off by default: v1/engine/core.py step_with_batch_queue
    schedules step n+1 while step n runs, so a request that arrives after that waits one more step, as
    SGLang's overlap scheduler; vllm/config refuses it with speculative decoding, 0.10-0.11). The token
    budget (`--max-num-batched-tokens`) and `--max-num-seqs` are the run's recorded limits, not rules."""
    off = flags.get("enable-chunked-prefill", "").lower() in ("false", "0") or "no-enable-chunked-prefill" in flags
    ahead = flag_bool(flags, "async-scheduling") is True
    return replace(rules, chunked=rules.chunked and not off, overlap=rules.overlap or ahead)


PROFILE = register(EngineProfile(
    backend=Backend.VLLM, kv_dtype_flag="kv-cache-dtype",
    max_num_tokens=8192, max_batch=1024, mem_fraction=0.9, memory_rule="share of total GPU memory",
    reserves_full_sequence=False, step_overhead_ms=0.0, ttft_overhead_ms=27.0, warms_prefill_at_start=True,
    fuses_allreduce_norm=False, overlaps_shared_experts=False, group_wait_weight=0.0,
    scheduler=SchedulerRules(mixes_decode=True, reserve_output=0.0, chunked=True, from_flags=scheduler_flags),
    handoff=KvHandoff(frontend_hops=1, connector="NixlConnector"),
    expert_slot_flags=(ExpertSlotFlag("num-redundant-experts", total=False),),
    kv_dtype_by_arch={"DeepseekV4ForCausalLM": (KvDefault(Dtype.FP8),),
                      "GlmMoeDsaForCausalLM": (KvDefault(Dtype.FP8, sm_from=100, sm_below=110),)},
    moe_kernel_switches=(MoeKernelSwitch(SettingKind.ENV, "VLLM_MXFP4_USE_MARLIN", "1", Dtype.MXFP4, MoeKernel.MARLIN,
                                         sm_below=100),),
    provenance={
        "moe_launch": "none: the tables time one kernel per format at a shape on each GPU, the one vLLM picks without variables",
        "moe_kernel_switches": "vllm/model_executor/layers/quantization/mxfp4.py get_mxfp4_backend (0.10-0.13): on Hopper "
                          "the mxfp4 experts (gpt-oss) run the OAI Triton kernels (triton_kernels, "
                          "OAITritonExperts) unless VLLM_MXFP4_USE_MARLIN is set, which picks Marlin's "
                          "weight-only kernel (dequantize in the main loop, 16-bit MMA); on Blackwell the "
                          "FlashInfer paths come first (vllm/envs.py; InferenceX's benchmarks/single_node/"
                          "gptoss_fp4_h100.sh and _h200.sh export it from 2026-01)",
        "warms_prefill_at_start": "vllm/v1/worker/gpu_model_runner.py profile_run: a dummy forward of max_num_batched_tokens while sizing the KV cache; vllm/model_executor/warmup/kernel_warmup.py (0.10-0.11): DeepGEMM and FlashInfer warm-up / autotune up to max_num_tokens, \"we don't want JIT'ing to happen during model execution\"; then CUDA-graph capture",
        "prefill_server_step_ms_by_arch": "none: no disaggregated vLLM runs to show one",
        "kv_tokens_flag": "none: vLLM caps its pool in blocks (--num-gpu-blocks-override), which no recipe here sets",
        "kv_dtype_flag": "vllm/engine/arg_utils.py --kv-cache-dtype {auto, fp8, fp8_e4m3, fp8_e5m2, ...} (default auto: the model dtype, vllm/config/cache.py)",
        "moe_a2a_flag": "not read: vllm --all2all-backend (default allgather_reducescatter, i.e. dp_moe_exchange); no training run launches another",
        "expert_slot_flags": "vllm/engine/arg_utils.py --num-redundant-experts (with --enable-eplb); vllm/model_executor/models/"
                             "deepseek_v2.py: n_physical_experts = n_logical_experts + n_redundant_experts (0.10-0.11)",
        "max_num_tokens": "vllm/engine/arg_utils.py: max_num_batched_tokens 8192 for online serving on GPUs "
                          ">= 70 GiB (0.10)",
        "max_batch": "vllm/engine/arg_utils.py: max_num_seqs 1024 for online serving on GPUs >= 70 GiB (0.10)",
        "mem_fraction": "vllm/config: gpu_memory_utilization default 0.9",
        "memory_rule": "vllm/v1/worker/gpu_worker.py determine_available_memory: total x utilisation - "
                       "weights - peak activations",
        "reserves_full_sequence": "vllm/v1/core/sched/scheduler.py: KV blocks allocated for the tokens "
                                  "scheduled; out of blocks preempts the latest request (recompute)",
        "step_overhead_ms": f"{FIT}: decode-dominated rows, small batch (0: no residual host time)",
        "ttft_overhead_ms": f"{FIT}: agg rows at concurrency <= 4 (median measured - predicted TTFT)",
        "fuses_allreduce_norm": "vllm/model_executor/models/llama.py: all-reduce and RMSNorm separate kernels",
        "overlaps_shared_experts": "vllm/model_executor/layers/fused_moe: shared experts on the main stream",
        "group_wait_weight": f"{FIT}: grouped 5-fold CV picks 0 (chunked prefill spreads a group)",
        "scheduler": "vllm/v1/core/sched/scheduler.py schedule(): running requests first (1 token each of "
                     "the budget), then waiting, chunked to the token budget; nothing reserved for output; "
                     "data-parallel attention runs one engine core (one scheduler) per DP rank; "
                     "--async-scheduling as scheduler_flags",
        "handoff": "vllm tests/v1/kv_connector/nixl_integration/toy_proxy_server.py: the proxy sends the "
                   "prompt with max_tokens=1 to a prefill server, then a second request with the "
                   "kv_transfer_params to a decode server, which pulls the blocks with NIXL "
                   "(vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py) before scheduling it: "
                   "its scheduler takes the request at its next schedule() (WAITING_FOR_REMOTE_KVS, the "
                   "worker starts the read) and schedules it at the first step after the read finished "
                   "(v1/core/sched/scheduler.py _update_waiting_for_remote_kv, 0.10-0.11)",
        "dp_moe_exchange": "vllm/distributed/device_communicators/all2all.py (0.10+): the default --all2all-backend allgather_reducescatter gathers the ranks' tokens before the experts and reduce-scatters after",
        "context_step_ms_by_arch": "none: no architecture's rows show a per-step excess (Llama-3.1-70B and "
                                   "gpt-oss-120b agg at <= 4 clients within 6 ms at 1k prompts)",
        "kv_dtype_by_arch": "vllm 0.34.0 wheel: models/deepseek_v4/nvidia/model.py gives DeepseekV4ForCausalLM "
                            "the FlashMLA attention on SM90 / SM100 unless --attention-backend says otherwise, and "
                            "models/deepseek_v4/attention.py _resolve_dsv4_kv_cache_dtype turns --kv-cache-dtype "
                            "auto into fp8 for its fp8_ds_mla layout (448 FP8 NoPE + 64 BF16 RoPE dims + scales, "
                            "584 B a token and layer; 0.24.0 refused auto there, asking for fp8); bf16 KV only "
                            "with FLASHINFER_MLA_SPARSE_DSV4 on SM100; model_executor/models/config.py (0.34.0) "
                            "GlmMoeDsaForCausalLM.verify_and_update_config sets fp8_e4m3 at auto on CUDA SM10x "
                            "(is_device_capability_family(100)), while DeepseekV32ForCausalLM keeps auto (the "
                            "checkpoint's bf16)",
    },
))
