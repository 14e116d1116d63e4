"""TensorRT-LLM (PyTorch backend, LLM API). Read from TensorRT-LLM 1.0-1.1 sources; fitted values from
e2e_train_silicon.csv."""
from __future__ import annotations

from dataclasses import replace

from estimator.engines import register
from estimator.engines.profile import (
    EngineProfile,
    ExpertSlotFlag,
    KvHandoff,
    MoeKernelSwitch,
    MoeLaunch,
    SchedulerRules,
    SettingKind,
    flag_bool,
    flag_float,
    flag_int,
)
from perfdb.types import Backend, Dtype, MoeKernel

FIT = "fit on ../shared/data/e2e_train_silicon.csv"

ADP_TIMEOUT_ITERS = 50   # tensorrt_llm/llmapi/llm_args.py AttentionDpConfig.timeout_iters default (1.0-1.1)


def scheduler_flags(rules: SchedulerRules, flags) -> SchedulerRules:
    """The LLM API options that change scheduling (tensorrt_llm/llmapi/llm_args.py, 1.0-1.1):
    `batch_wait_timeout_iters` / `batch_wait_max_tokens_ratio` (PyExecutor._waiting_requests, in
    tensorrt_llm/_torch/pyexecutor/py_executor.py: while generations run, the scheduled context
    requests are held back until the iteration would hold ratio x max_num_tokens tokens or the wait
    reached the timeout), attention-DP balancing (`attention_dp_config.enable_balance`, `timeout_iters`:
    PyExecutor._balance_adp_requests holds context requests until every attention-DP rank has one, for at
    most timeout_iters iterations, while every rank runs generations), `enable_chunked_prefill`, and the
    capacity scheduler policy
    (`scheduler_config.capacity_scheduler_policy`: MAX_UTILIZATION admits on the tokens present
    instead of GUARANTEED_NO_EVICT's prompt + max output), and `disable_overlap_scheduler` (default
    False: the overlap executor, PyExecutor._executor_loop_overlap, schedules batch n+1 once batch n is
    launched, so what arrives after that waits one more batch; the disaggregated context servers set it)."""
    chunked = flags.get("enable_chunked_prefill", "").lower() in ("true", "1") or rules.chunked
    policy = flags.get("scheduler_config.capacity_scheduler_policy", "").upper()
    overlap = rules.overlap and flag_bool(flags, "disable_overlap_scheduler") is not True
    return replace(rules, chunked=chunked, overlap=overlap,
                   reserve_output=0.0 if policy == "MAX_UTILIZATION" else rules.reserve_output,
                   wait_iters=max(0, flag_int(flags, "batch_wait_timeout_iters", rules.wait_iters)),
                   balance_iters=max(0, flag_int(flags, "attention_dp_config.timeout_iters", ADP_TIMEOUT_ITERS))
                   if flags.get("attention_dp_config.enable_balance", "").lower() in ("true", "1") else 0,
                   wait_tokens_ratio=max(0.0, flag_float(flags, "batch_wait_max_tokens_ratio", rules.wait_tokens_ratio)))


PROFILE = register(EngineProfile(
    backend=Backend.TRTLLM, kv_dtype_flag="kv_cache_config.dtype",
    max_num_tokens=8192, max_batch=2048, mem_fraction=0.9,
    memory_rule="share of the memory free after weights and activations",
    reserves_full_sequence=True, step_overhead_ms=0.0, ttft_overhead_ms=36.0, warms_prefill_at_start=True,
    fuses_allreduce_norm=True, overlaps_shared_experts=True, group_wait_weight=0.5,
    scheduler=SchedulerRules(mixes_decode=True, reserve_output=1.0, chunked=False, overlap=True, overlap_spec=True,
                             from_flags=scheduler_flags),
    handoff=KvHandoff(frontend_hops=1, connector="UCX/NIXL cache transceiver", mla_copy_per_decode_rank=True),
    expert_slot_flags=(ExpertSlotFlag("moe_config.load_balancer.num_slots", total=True),),
    context_step_ms_by_arch={"DeepseekV3ForCausalLM": 80.0},
    moe_kernel_switches=(MoeKernelSwitch(SettingKind.FLAG, "moe_config.backend", "cutlass", Dtype.NVFP4,
                                         MoeKernel.CUTLASS, sm_from=100),),
    moe_launch=(MoeLaunch("moe_config.backend", "TRTLLM", Dtype.NVFP4, sm_from=100),),
    provenance={
        "moe_launch": "tensorrt_llm/llmapi/llm_args.py MoeConfig.backend (default CUTLASS, AUTO, chosen by "
                      "model, in later sources): TRTLLM runs TRTLLMGenFusedMoE, the kernel the imported SM100 nvfp4 MoE rows time "
                      "fastest (moe_torch_flow_min_latency) and the one InferenceX's B200 / GB200 DeepSeek-R1 FP4 "
                      "recipes launch most (59 of 89 agg runs, every prefill role)",
        "moe_kernel_switches": "tensorrt_llm/llmapi/llm_args.py MoeConfig.backend {CUTLASS, TRTLLM, DEEPGEMM, "
                               "CUTEDSL, WIDEEP, ...} (1.0-1.2); _torch/modules/fused_moe/create_moe.py "
                               "picks CutlassFusedMoE or TRTLLMGenFusedMoE by it. The imported tables time nvfp4 MoE "
                               "on SM100 with both (aiconfigurator collector/trtllm/collect_moe.py: "
                               "moe_torch_flow_cutlass = CUTLASS, moe_torch_flow_min_latency = trtllm-gen, the faster "
                               "one, which a lookup takes where two kernels time a shape): a run launched with "
                               "CUTLASS is priced by the CUTLASS rows where the experts are compute-bound "
                               "(estimator.steps.StepModel._latency; its decode steps keep the fastest: the 30 B200 "
                               "agg CUTLASS runs' TPOT 0.98 of measured so, 1.34 with CUTLASS rows at decode sizes, "
                               "in-sample; TTFT 42.1 -> 32.5%). Where the flag is absent the tables' fastest "
                               "(trtllm-gen) stands, and the plan's launch files say TRTLLM (moe_launch) so that it "
                               "is what runs",
        "warms_prefill_at_start": "tensorrt_llm/_torch/pyexecutor/model_engine.py warmup (1.0-1.1): _run_torch_compile_warmup / _general_warmup over context and generation shapes, _run_autotuner_warmup (a context batch of max_num_tokens under autotune()), then CUDA-graph warm-up. Not every kernel: DeepGEMM (FP8 block-scale GEMMs) JIT-compiles per M bucket on first use. The training table cannot settle it: its B200 DeepSeek-R1 FP8 agg rows without warm-up (1.1.0rc2) simulate at 0.62x the measured TTFT against 1.00x for warmed ones (1.2.0rc6), a version apart and no deployment measured both ways, so no TRT-LLM row is set aside",
        "prefill_server_step_ms_by_arch": "none: its prefill servers pay context_step_ms_by_arch (the disagg rows show no excess of their own: simulated / measured TTFT 0.93)",
        "kv_tokens_flag": "none: KvCacheConfig.max_tokens caps the pool too, but no recipe here sets it; the fraction rules",
        "kv_dtype_flag": "tensorrt_llm/llmapi/llm_args.py KvCacheConfig.dtype (extra-llm-api-options kv_cache_config.dtype; default auto: the checkpoint's kv_cache_quant_algo, FP8 in NVIDIA's ModelOpt checkpoints, estimator.runs.RUN_FP8_KV)",
        "context_step_ms_by_arch": f"{FIT}: with ttft_overhead_ms held (36), DeepseekV3ForCausalLM agg rows at <= 8 "
                                   "clients (61: B200 46, H200 13, GB200 2), the value on a 0-130 ms grid that "
                                   "minimises the simulator's median |log(predicted / measured TTFT)| (0.657 at 0 -> "
                                   "0.163 at 80; 0.168 at 90); their excess is ~100 ms at 1k and 8k prompts alike (a "
                                   "per-step cost, not a kernel's), and as a per-step cost it also carries the queueing "
                                   "at load, which a per-request one over-predicts (disagg median ratio 2.0). Per "
                                   "system the excess differs: B200 alone is best at 90 (ratio 0.99), H200 alone beyond "
                                   "130 (0.74 there), so H200 stays under-predicted (0.57). Held out (disagg rows, agg "
                                   "rows above 8 clients) in docs/simulator.md. Llama and gpt-oss rows show no such "
                                   "excess, so no other architecture pays it",
        "moe_a2a_flag": "not read: TRT-LLM picks its all-to-all inside the MoE backend (_torch/modules/fused_moe/fused_moe_wide_ep.py alltoall_method_type, from the backend, GPU and environment), not from one flag; dp_moe_exchange stands",
        "expert_slot_flags": "tensorrt_llm/_torch/modules/fused_moe/moe_load_balancer.py (MoeLoadBalancerConfig.num_slots: every "
                             "expert slot of a layer, num_slots // ep_size per rank; 1.0-1.1)",
        "max_num_tokens": "tensorrt_llm/llmapi/llm_args.py: max_num_tokens 8192",
        "max_batch": "tensorrt_llm/llmapi/llm_args.py: max_batch_size 2048",
        "mem_fraction": "tensorrt_llm/llmapi/llm_args.py KvCacheConfig.free_gpu_memory_fraction 0.9",
        "memory_rule": "tensorrt_llm/_torch/pyexecutor/_util.py: KV pool from the memory free after the "
                       "profiling forward",
        "reserves_full_sequence": "tensorrt_llm/_torch/pyexecutor/scheduler.py capacity scheduler, default "
                                  "GUARANTEED_NO_EVICT: a request is admitted when prompt + max output fit",
        "step_overhead_ms": f"{FIT}: decode-dominated rows, small batch (0: no residual host time)",
        "ttft_overhead_ms": f"{FIT}: agg rows at concurrency <= 4 (median measured - predicted TTFT); refitted "
                            "2026-12-06 once DeepseekV3 rows had their own per-step term (context_step_ms_by_arch): "
                            "52 -> 36 ms (the 90 rows' median residual was -16.4 ms on the simulator, bundled "
                            "tables; -20.0 imported; -20.8 without DeepSeek-R1: Llama-3.1-70B -49, gpt-oss-120b -1)",
        "fuses_allreduce_norm": "tensorrt_llm/_torch/models/modeling_llama.py: AllReduce fusion with "
                                "residual add + RMSNorm",
        "overlaps_shared_experts": "tensorrt_llm/_torch/models/modeling_deepseekv3.py: shared experts on an "
                                   "auxiliary stream",
        "group_wait_weight": f"{FIT}: grouped 5-fold CV by deployment family picks 0.5 in 4 of 5 folds "
                             "(TRT-LLM agg TTFT 35.8% -> 29.3% held out; docs/bench/estimator.md)",
        "scheduler": "tensorrt_llm/_torch/pyexecutor/scheduler.py: in-flight batching, every generation plus "
                     "context requests within max_num_tokens / max_batch_size; chunked context off by default; "
                     "with enable_attention_dp every rank runs its own scheduler with these limits "
                     "(pyexecutor/py_executor.py, attention-DP request balancing); batch waiting off by default "
                     "(batch_wait_timeout_iters 0); the launch flags that change these as scheduler_flags, "
                     "each disaggregated worker under its own (a context and a generation server are launched "
                     "with their own configs); batch waiting and attention-DP balancing hold context requests "
                     "(py_executor.py _waiting_requests, _balance_adp_requests), which a generation-only "
                     "worker does not schedule (its received requests run as generations), so they hold "
                     "nothing there; the overlap executor is on by default (llmapi/llm_args.py "
                     "disable_overlap_scheduler False; _torch/pyexecutor/py_executor.py _executor_loop_overlap: "
                     "each iteration schedules and launches batch n+1, then waits for batch n's results), also "
                     "with MTP (py_executor_creator.py turns it off only for a separate draft-model engine "
                     "without the chain drafter or TrtllmAttention), and off on the context servers, which run "
                     "disable_overlap_scheduler: true (docs/source/features/disagg-serving.md, 1.0-1.1: not "
                     "supported on disaggregated context servers)",
        "handoff": "tensorrt_llm/serve/openai_disagg_server.py: the disaggregated server sends the context "
                   "request, waits for its answer (first token + disaggregated_params), then sends the "
                   "generation request; the generation worker takes it at its next iteration, allocates its KV "
                   "and starts the receive (_torch/pyexecutor/py_executor.py _prepare_disagg_gen_init), and "
                   "checks the transfer every iteration (_check_disagg_gen_transfer_status); the cache "
                   "transceiver moves the blocks "
                   "(docs/source/features/disagg-serving.md, cache_transceiver_config). MLA "
                   "(cpp/tensorrt_llm/batch_manager/mlaCacheFormatter.cpp, 1.0-1.1): every generation rank "
                   "receives the whole latent from one context rank (pickRecvConnections: one connection per "
                   "PP domain) and a context rank sends it to each generation rank it serves (formatOutput "
                   "loops over its connections; needSendCache: every context TP rank of an attention group "
                   "sends when it has no more ranks than the generation side), so a tp8 generation worker "
                   "pulls 8 copies, from the one rank of an attention-DP context worker that holds the request",
        "dp_moe_exchange": "tensorrt_llm/_torch/modules/fused_moe (1.0-1.1): with enable_attention_dp and no "
                           "all-to-all backend the MoE all-gathers every rank's quantised activations "
                           "(allgather with all_rank_num_tokens) and reduce-scatters the output",
        "kv_dtype_by_arch": "none: kv_cache_config.dtype auto follows the checkpoint's kv_cache_quant_algo "
                            "(null in deepseek-ai/DeepSeek-V4-* and nvidia/DeepSeek-V4-*-NVFP4); "
                            "_torch/model_config.py from_pretrained's DeepseekV4ForCausalLM branch sets only the "
                            "sparse attention config and _torch/attention_backend/sparse/deepseek_v4/"
                            "cache_manager.py DeepseekV4CacheManager takes BF16 or FP8 (main, read 2026-12); "
                            "examples/models/core/deepseek_v4/README.md recommends dtype fp8 for benchmarking",
    },
))
