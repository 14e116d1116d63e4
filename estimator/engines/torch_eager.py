"""Plain PyTorch (the collectors' reference backend): TRT-LLM's memory and batching rules, no scheduler
of its own (not simulated)."""
from __future__ import annotations

from estimator.engines import register
from estimator.engines.profile import EngineProfile, KvHandoff
from perfdb.types import Backend

PROFILE = register(EngineProfile(
    backend=Backend.TORCH,
    max_num_tokens=8192, max_batch=2048, mem_fraction=0.9,
    memory_rule="share of the memory free after weights and activations",
    reserves_full_sequence=True, step_overhead_ms=3.0, ttft_overhead_ms=0.0, warms_prefill_at_start=True,
    fuses_allreduce_norm=False, overlaps_shared_experts=False, group_wait_weight=0.0,
    scheduler=None, handoff=KvHandoff(frontend_hops=0, connector="none"),
    provenance={
        "moe_launch": "none: plain torch runs what the collector ran",
        "moe_kernel_switches": "none: plain torch runs what the collector ran",
        "warms_prefill_at_start": "servecast's own harness (collectors/): every timed shape runs warm-up iterations before it is timed",
        "kv_dtype_flag": "none: plain modules store the model dtype",
        "kv_tokens_flag": "none: plain modules keep no KV pool",
        "prefill_server_step_ms_by_arch": "none: plain modules are not served disaggregated",
        "max_num_tokens": "TRT-LLM's default (trtllm.py), no engine of its own",
        "moe_a2a_flag": "none: plain modules have no attention data parallelism",
        "expert_slot_flags": "none: plain torch places each expert once",
        "max_batch": "TRT-LLM's default (trtllm.py)",
        "mem_fraction": "TRT-LLM's default (trtllm.py)",
        "memory_rule": "TRT-LLM's rule (trtllm.py)",
        "reserves_full_sequence": "TRT-LLM's rule (trtllm.py)",
        "step_overhead_ms": "eager PyTorch launch time per iteration, a modelling choice (no e2e rows)",
        "ttft_overhead_ms": "no frontend",
        "fuses_allreduce_norm": "plain modules, no fused kernels",
        "overlaps_shared_experts": "plain modules, one stream",
        "group_wait_weight": "no e2e rows: 0",
        "scheduler": "no serving scheduler: not simulated",
        "handoff": "no disaggregated serving",
        "dp_moe_exchange": "no attention data parallelism in plain modules: the default, unused",
        "kv_dtype_by_arch": "none: the checkpoint's KV dtype",
        "context_step_ms_by_arch": "none: no e2e rows",
    },
))
