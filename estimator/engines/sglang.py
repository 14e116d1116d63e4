"""SGLang. Read from SGLang 0.5.x sources; fitted values from e2e_train_silicon.csv."""
from __future__ import annotations

from dataclasses import replace

from estimator.engines import register
from estimator.engines.profile import (
    DpMoeExchange,
    EngineProfile,
    ExpertSlotFlag,
    KvDefault,
    KvHandoff,
    MoeKernelSwitch,
    SchedulerRules,
    SettingKind,
    flag_int,
)
from perfdb.specs import SystemSpec
from perfdb.types import Backend, Dtype, MoeKernel

FIT = "fit on ../shared/data/e2e_train_silicon.csv"

# `--mem-fraction-static` is the share of total memory for weights + KV pool. Its default
# (sglang/srt/server_args.py `_handle_gpu_memory_settings`, 0.5.x) reserves, in MiB, 512 + 1.5 per
# token of `--chunked-prefill-size` (activations) + 2 per captured CUDA-graph batch size + 1024 per 8
# GPUs of tp*pp (+3 per graph batch per DP rank with DP attention, 4.5 above 300), at least 10 GiB on GPUs
# above 60 GiB, and takes fraction = 1 - reserved / GPU memory. Chunk 8192 and graph batch 256 (tp < 4)
# or 512 on GPUs below 160 GiB (H100/H200), chunk 16384 and graph batch 512 above (B200/GB200). Reserving
# a fixed 10-13 GiB instead of the 0.4 table's 12% (tp1) leaves a tp1 Qwen3-32B on H100 a 21k-token
# pool instead of 38k: the e2e rows of that deployment run 3-8 requests, not 16.
SGLANG_RESERVED_BASE_MIB, SGLANG_RESERVED_PER_TOKEN_MIB, SGLANG_RESERVED_PER_GRAPH_BS_MIB = 512, 1.5, 2
SGLANG_RESERVED_PER_8_GPUS_MIB, SGLANG_RESERVED_DP_PER_GRAPH_BS_MIB = 1024, 3
SGLANG_RESERVED_FLOOR_MIB, SGLANG_FLOOR_ABOVE_MIB = 10 * 1024, 60 * 1024
SGLANG_LARGE_GPU_MIB = 160 * 1024
SGLANG_CHUNK_SMALL, SGLANG_CHUNK_LARGE = 8192, 16384
# DSA models (DeepSeek-V3.2, GLM-5) at --kv-cache-dtype auto: fp8_e4m3 on SM100+ (Blackwell), bfloat16 below
# (server_args.py _set_default_dsa_kv_cache_dtype, 0.5.14: `major >= 10`)
DSA_KV_DEFAULT = (KvDefault(Dtype.FP8, sm_from=100), KvDefault(Dtype.BF16, sm_below=100))


def sglang_defaults(system: SystemSpec, tp: int, pp: int = 1, attn_dp: int = 1,
                    chunk: int | None = None) -> tuple[float, int]:
    """(mem_fraction_static, chunked_prefill_size) SGLang picks when not given (a given chunk size
    changes the activation reserve)."""
    gpu_mib = system.gpu.mem_bytes / 2**20
    large = gpu_mib >= SGLANG_LARGE_GPU_MIB
    chunk = chunk or (SGLANG_CHUNK_LARGE if large else SGLANG_CHUNK_SMALL)
    graph_bs = 512 if large or tp >= 4 else 256
    reserved = (SGLANG_RESERVED_BASE_MIB + SGLANG_RESERVED_PER_TOKEN_MIB * max(chunk, 2048)
                + SGLANG_RESERVED_PER_GRAPH_BS_MIB * graph_bs + SGLANG_RESERVED_PER_8_GPUS_MIB * tp * pp / 8)
    if attn_dp > 1:   # DP attention pads every rank's graphs (x1.5 more above 300 sizes)
        reserved += SGLANG_RESERVED_DP_PER_GRAPH_BS_MIB * graph_bs * attn_dp * (1.5 if graph_bs > 300 else 1.0)
    if gpu_mib > SGLANG_FLOOR_ABOVE_MIB:
        reserved = max(reserved, SGLANG_RESERVED_FLOOR_MIB)
    return round(max(gpu_mib - reserved, 0.0) / gpu_mib, 3), chunk


def scheduler_flags(rules: SchedulerRules, flags) -> SchedulerRules:
    """`--scheduler-recv-interval N` (sglang/srt/server_args.py, default 1): the scheduler polls its
    input socket only once its counter reaches N; each decode (or target-verify) iteration adds 1 and any
    other iteration 1000 (sglang/srt/managers/scheduler_recv_skipper.py, 0.5.x), so while only decodes
    run a new request waits up to N iterations before the scheduler sees it. `--enable-mixed-chunk`
    (server_args.py, off by default): running decodes ride in the prefill batch (scheduler.py
    get_new_batch_prefill mixes them) instead of pausing. `--disable-overlap-schedule` (server_args.py):
    the scheduler forms each batch after the previous one finished instead of while it runs.
    `--num-reserved-decode-tokens` (server_args.py, default 512): a disaggregated decode server's
    pre-allocation reserve per request it holds (estimator.sim.prealloc).
    `--speculative-algorithm` (server_args.py): whether this server drafts, which turns its overlap
    scheduler off; a disaggregated run's prefill server is often launched without it while its decode
    server drafts (absent from known flags: no drafts; `?`: unknown)."""
    mixed = _on(flags, "enable-mixed-chunk") or rules.mixes_decode
    algo = flags.get("speculative-algorithm")
    spec = (algo.upper() not in ("", "NONE")) if algo not in (None, "?") else (None if algo == "?" else False)
    return replace(rules, recv_interval=max(1, flag_int(flags, "scheduler-recv-interval", rules.recv_interval)),
                   reserved_decode_tokens=max(0, flag_int(flags, "num-reserved-decode-tokens",
                                                          rules.reserved_decode_tokens)),
                   mixes_decode=mixed, overlap=rules.overlap and not _on(flags, "disable-overlap-schedule"),
                   speculative=spec)


def _on(flags, key: str) -> bool:
    return flags.get(key, "").lower() in ("true", "1")


PROFILE = register(EngineProfile(
    backend=Backend.SGLANG,
    max_num_tokens=SGLANG_CHUNK_SMALL, max_batch=4096, mem_fraction=0.0,
    memory_rule="share of total GPU memory for weights + KV pool (mem_fraction_static)",
    reserves_full_sequence=False, step_overhead_ms=1.4, ttft_overhead_ms=91.0, warms_prefill_at_start=False,
    fuses_allreduce_norm=True, overlaps_shared_experts=True, group_wait_weight=0.0,
    # new_token_ratio starts at 0.7 and decays towards ~0.1 while nothing is retracted; 0.3 is a mid-run
    # value (a modelling choice, not fitted)
    scheduler=SchedulerRules(mixes_decode=False, reserve_output=0.3, chunked=True, budget_per_dp_rank=False,
                             dp_rank_by_room=True, overlap=True, overlap_spec=False, reserved_decode_tokens=512,
                             from_flags=scheduler_flags),
    handoff=KvHandoff(frontend_hops=0, connector="Mooncake / NIXL (bootstrap server)", decode_first=True,
                      mla_copy_per_decode_rank=True),
    expert_slot_flags=(ExpertSlotFlag("ep-num-redundant-experts", total=False),),
    moe_kernel_switches=tuple(MoeKernelSwitch(SettingKind.FLAG, "deepep-mode", mode, Dtype.FP8_BLOCK, kernel, sm_from=90,
                                              requires=(("moe-a2a-backend", "deepep"),))
                              for mode, kernel in (("normal", MoeKernel.DEEPEP_NORMAL),
                                                   ("low_latency", MoeKernel.DEEPEP_LL))),
    layout_defaults=sglang_defaults,
    dp_moe_exchange=DpMoeExchange.SUM_LEN_ALL_REDUCE,
    moe_a2a_flag="moe-a2a-backend", kv_dtype_flag="kv-cache-dtype", kv_tokens_flag="max-total-tokens",
    context_step_ms_by_arch={"DeepseekV3ForCausalLM": 15.0},
    prefill_server_step_ms_by_arch={"DeepseekV3ForCausalLM": 105.0},
    kv_dtype_by_arch={"DeepseekV4ForCausalLM": (KvDefault(Dtype.FP8),),
                      **{arch: DSA_KV_DEFAULT for arch in ("DeepseekV32ForCausalLM", "GlmMoeDsaForCausalLM")}},
    provenance={
        "moe_launch": "none: the tables price the MoE runner the engine picks by default (moe-runner-backend auto), unless a run names one",
        "moe_kernel_switches": "sglang/srt/layers/moe/token_dispatcher/deepep.py and layers/moe/ep_moe/layer.py "
                               "(0.5.x): with --moe-a2a-backend deepep the experts run DeepGEMM's grouped GEMM "
                               "over the rank's local experts, contiguous after a normal-mode dispatch "
                               "(--deepep-mode normal: prompts), masked after a low-latency one (low_latency: "
                               "decode); AIC times both for block-FP8 DeepSeek experts on Hopper and Blackwell "
                               "(wideep_context / wideep_generation_moe_perf, collector/sglang/"
                               "collect_wideep_deepep_moe.py). --deepep-mode auto (the default) picks per "
                               "batch and is left to the all-to-all case (estimator.layers); SGLANG_ENABLE_JIT_"
                               "DEEPGEMM swaps the block-FP8 GEMM, which no table here times apart",
        "warms_prefill_at_start": "sglang/srt/model_executor/cuda_graph_runner.py captures decode batch sizes only (up to cuda_graph_max_bs); model_runner.py _flashinfer_autotune tunes on a decode dummy run (flashinfer_trtllm / flashinfer_mxfp4 MoE only); entrypoints/http_server.py _execute_server_warmup sends one short request (0.5.x): prefill kernels at a benchmark's token counts are first built, tuned or fetched (flashinfer/jit/cubin_loader.py downloads trtllm-gen cubins on first use; InferenceX's B200 launch scripts patch its download race) by the first prompts. Evidence: InferenceX measured the same B200 DeepSeek-R1 FP4 tp4 / tp8 deployments with no warm-up (2025-11, launch scripts benchmarks/dsr1_fp4_b200_docker.sh) and with 2 x concurrency warm-up prompts (2026-03, benchmarks/single_node/dsr1_fp4_b200.sh): TTFT 1.7-17.7x apart (median 9.8x over 8 pairs), TPOT 1.19x",
        "kv_tokens_flag": "sglang/srt/server_args.py --max-total-tokens (default None); model_executor/"
                          "model_runner.py (0.5.x) takes min(profiled pool, max_total_tokens) tokens per "
                          "scheduler (each attention-DP rank its own); the srt-slurm GB200 / GB300 recipes cap "
                          "their prefill servers' pools at 8,192-524,288 tokens",
        "kv_dtype_flag": "sglang/srt/server_args.py --kv-cache-dtype {auto, fp8_e4m3, fp8_e5m2, bf16, ...} (default auto: the model dtype, or kv_dtype_by_arch)",
        "expert_slot_flags": "sglang/srt/server_args.py --ep-num-redundant-experts (default 0); sglang/srt/eplb/expert_location.py: "
                             "physical experts = routed experts + redundant ones, split evenly over the EP ranks (0.5.x)",
        "max_num_tokens": "sglang/srt/server_args.py: chunked_prefill_size 8192 (16384 on GPUs >= 160 GiB)",
        "max_batch": "sglang/srt/server_args.py: max_running_requests bounded at 4096 here",
        "mem_fraction": "sglang/srt/server_args.py _handle_gpu_memory_settings (0.5.x): computed per GPU and "
                        "layout by sglang_defaults; 0 here means 'computed'",
        "memory_rule": "sglang/srt/model_executor/model_runner.py: KV pool = total x mem_fraction_static - weights",
        "reserves_full_sequence": "sglang/srt/managers/schedule_policy.py PrefillAdder: admits on prompt + "
                                  "new_token_ratio x remaining output; retracts when short",
        "step_overhead_ms": f"{FIT}: decode-dominated rows, small batch",
        "ttft_overhead_ms": f"{FIT}: agg rows at concurrency <= 4 (median measured - predicted TTFT)",
        "fuses_allreduce_norm": "sglang/srt/layers/communicator.py: fused all-reduce + residual RMSNorm",
        "overlaps_shared_experts": "sglang/srt/models/deepseek_v2.py: shared experts on an alternate stream",
        "group_wait_weight": f"{FIT}: grouped 5-fold CV picks 0",
        "scheduler": "sglang/srt/managers/scheduler.py get_next_batch_to_run: a prefill batch whenever "
                     "prompts are admissible (decodes pause), chunked at chunked_prefill_size; "
                     "schedule_policy.py new_token_ratio; with --enable-dp-attention server_args.py sets "
                     "chunked_prefill_size //= dp_size and the scheduler max_running_requests //= dp_size "
                     "(each rank's limits are the configured ones split); "
                     "--scheduler-recv-interval and --enable-mixed-chunk as scheduler_flags "
                     "(managers/scheduler_recv_skipper.py, 0.5.x); a disaggregated run's two servers are "
                     "launched apart and each follows its own flags: the recv interval gates recv_requests in "
                     "the disaggregated loops too (disaggregation/prefill.py event_loop_*_disagg_prefill, "
                     "decode.py event_loop_*_disagg_decode), where a prefill (EXTEND) batch adds 1000, so a "
                     "prefill server reads its socket after every batch, and a decode server reads new "
                     "requests (to pre-allocate) every N decode iterations while process_decode_queue polls "
                     "the KV transfer queue every iteration (0.5.x); a disaggregated worker's DP controller "
                     "sends each request to rank bootstrap_room % dp_size (managers/data_parallel_controller.py, "
                     "0.5.x; the room is a random 63-bit number the router draws per request); "
                     "the overlap scheduler is on by default (server_args.py disable_overlap_schedule False; "
                     "scheduler.py event_loop_overlap, and disaggregation/prefill.py / decode.py "
                     "event_loop_overlap_disagg_*: each iteration polls, forms and launches the next batch "
                     "while the current one runs) and off with EAGLE / MTP drafts (server_args.py: "
                     "speculative EAGLE without SGLANG_ENABLE_SPEC_V2, default off, sets "
                     "disable_overlap_schedule; 0.5.9), per server: a disaggregated prefill server launched without "
                     "--speculative-algorithm keeps it while its decode server drafts",
        "reserved_decode_tokens": "sglang/srt/server_args.py num_reserved_decode_tokens = 512; "
                                  "disaggregation/decode.py DecodePreallocQueue (0.5.x): _allocatable_tokens = "
                                  "free KV tokens - 512 x (running + transfer-queue + waiting requests), and "
                                  "pop_preallocated takes a request (FIFO) while its prompt + 512 fits, "
                                  "subtracting that much for the next",
        "handoff": "sglang/srt/disaggregation/decode.py: the load balancer sends the request to the prefill "
                   "and the decode server at once (bootstrap room); the decode side pre-allocates KV at its "
                   "next loop iteration (recv_requests, then process_decode_queue), polls "
                   "the transfer every scheduler iteration and merges the request into its running batch: "
                   "no second frontend pass; disaggregation/prefill.py PrefillBootstrapQueue lets a request into "
                   "the prefill queue only once the decode side has sent its pre-allocated KV indices, and "
                   "decode.py DecodePreallocQueue pre-allocates only while the KV pool and a request slot "
                   "have room (0.5.x); disaggregation/common/conn.py CommonKVReceiver: a decode worker "
                   "with more attention-TP ranks than the prefill's points every rank at prefill rank "
                   "(rank % attn_tp) // (attn_tp // prefill_attn_tp) and the prefill waits for "
                   "required_dst_info_num = attn_tp // prefill_attn_tp destinations; nixl/conn.py and "
                   "mooncake/conn.py add_transfer_request send the whole MLA cache (send_kvcache) to each "
                   "non-dummy destination (0.5.9)",
        "dp_moe_exchange": "sglang/srt/layers/dp_attention.py (0.5.x): DpPaddingMode.get_dp_padding_mode picks "
                           "SUM_LEN for any batch with prompt tokens, whose dp_gather is _dp_gather_via_all_reduce "
                           "(a zeroed bf16 buffer of the ranks' summed tokens, tensor_model_parallel_all_reduce over "
                           "the worker); models/deepseek_v2.py all-reduces the experts' output over the worker "
                           "before layers/communicator.py dp_scatter copies each rank's rows back (reduce-scatter "
                           "only in MAX_LEN mode: decode, all_gather_into_tensor padded to the busiest rank); "
                           "without --moe-a2a-backend (default none)",
        "moe_a2a_flag": "sglang/srt/server_args.py --moe-a2a-backend {none, deepep, mooncake, ...} (default none); "
                        "with one, layers/moe/token_dispatcher (deepep.py: DeepEPDispatcher, 0.5.x) dispatches each "
                        "rank's tokens to their top-k experts' ranks (low-latency mode: one copy per routed expert, "
                        "FP8 for FP8 experts) and combines the outputs back in bf16 instead of the dp_gather / "
                        "all-reduce above; the srt-slurm wide-EP recipes (GB200 / GB300 dep32-dep48 decode) set "
                        "deepep",
        "context_step_ms_by_arch": f"{FIT}: with ttft_overhead_ms held (fitted on the same architecture's rows at "
                                   "<= 4 clients), DeepseekV3ForCausalLM agg rows at <= 8 clients (52: B200 43, "
                                   "H200 9), the value on a 15 ms grid that minimises the simulator's median "
                                   "|log(predicted / measured TTFT)| (0.196 -> 0.145). Held out (disagg rows, agg rows "
                                   "above 8 clients) in docs/simulator.md. Fitting the frontend jointly on every agg "
                                   "row instead (40 / 60 ms) gained disagg TTFT (54.1 -> 51.7%) but lost agg TTFT "
                                   "(18.7 -> 20.7%) and TPOT (11.9 -> 13.0%): not taken. Rechecked without the 16 rows measured on a cold "
                                   "server (estimator.set_aside.cold_start; 36 left): 15 stays the grid's best (0 / 15 / 30 ms: "
                                   "0.136 / 0.109 / 0.123 bundled, 0.153 / 0.119 / 0.131 on the imported tables)",
        "prefill_server_step_ms_by_arch": f"{FIT}: with ttft_overhead_ms held, every compared DeepseekV3ForCausalLM "
                                          "disagg row (174 on the imported tables since the twenty-sixth session set aside "
                                          "those whose configs disagree on worker counts: B200 44, GB200 73, GB300 46, H100 7, "
                                          "H200 4), the value on a 15 ms grid that minimises the simulator's median "
                                          "|log(simulated / measured TTFT)| (0.523 at 15 ms, the agg servers' cost -> 0.304 "
                                          "at 105; 0.306 at 135, 0.309 at 90 and 120; simulated / measured median 0.60 -> "
                                          "0.82; on all 196 rows before, 0.582 -> 0.307). Held out: each system left out is "
                                          "fitted at 105 by the others; B200 0.516 -> 0.260, GB200 0.635 -> 0.335, GB300 "
                                          "0.517 -> 0.295, H200 0.438 -> 0.325 improve; H100 (7 rows, TP16 over two nodes, "
                                          "whose replayed TPOT is 0.28-0.6 of measured: not the deployment that ran; six of "
                                          "the seven match both a max-dep and a max-tp recipe) worsens 0.165 -> 0.758 "
                                          "(scripts/fit_context_step.py). The agg servers' 15 ms left these rows at 0.60 of "
                                          "measured, 0.68 at <= 8 clients where an agg server of the same model is at 0.95. "
                                          "A prefill "
                                          "server runs its own event loop (disaggregation/prefill.py "
                                          "event_loop_overlap_disagg_prefill: the bootstrap queue, the KV sender and the "
                                          "in-flight transfers polled with a CPU all-reduce over the TP group every "
                                          "iteration; 0.5.x); what of it the excess is, is not measured here",
        "kv_dtype_by_arch": "sglang/srt/arg_groups/deepseek_v4_hook.py (0.5.14 wheel), arg_groups/overrides.py "
                            "_deepseek_v4_kv_cache_dtype (0.5.23 wheel): --kv-cache-dtype auto becomes "
                            "fp8_e4m3 for DeepseekV4ForCausalLM (bfloat16 only on NPU); mem_cache/"
                            "deepseek_v4_memory_pool.py stores 448 FP8 NoPE + 64 BF16 RoPE dims + scales, 584 B a "
                            "token and layer (estimator.kv_layout); server_args.py _set_default_dsa_kv_cache_dtype "
                            "(0.5.14 wheel): DSA models (configs/model_config.py is_deepseek_dsa: DeepseekV32ForCausalLM, "
                            "GlmMoeDsaForCausalLM with index_topk) get fp8_e4m3 at auto when the GPU's compute "
                            "capability major is >= 10, bfloat16 below",
    },
))
