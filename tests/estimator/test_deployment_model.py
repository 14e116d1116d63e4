"""One deployment model: the layout rules live in estimator.deployment and every layer takes its word."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.deployment import (
    Deployment,
    Pool,
    RoutePolicy,
    agg_layout,
    from_row,
    kv_same_node,
    role_batch_cap,
    role_layout,
    row_layouts,
    within_domain,
)
from estimator.parallel import ParallelConfig
from estimator.runs import parse_row
from perfdb.errors import InputError
from perfdb.specs import load_system
from perfdb.types import Backend, Transport


def test_tp_beyond_one_nvlink_domain_is_read_as_attention_dp():
    b200, gb200 = load_system("b200_sxm"), load_system("gb200")
    assert within_domain(ParallelConfig(tp=16, moe_ep=4), b200) == ParallelConfig(tp=8, attn_dp=2, moe_tp=4, moe_ep=4)
    assert within_domain(ParallelConfig(tp=64, moe_ep=64), b200) == ParallelConfig(tp=8, attn_dp=8, moe_tp=1, moe_ep=64)
    assert within_domain(ParallelConfig(tp=16), b200) == ParallelConfig(tp=8, attn_dp=2, moe_tp=16)   # dense / unset split
    for par, sys_ in ((ParallelConfig(tp=8, moe_ep=8), b200), (ParallelConfig(tp=16, moe_ep=4), gb200),
                      (ParallelConfig(tp=12), b200)):
        assert within_domain(par, sys_) == par          # inside the domain, or not a whole number of domains


def test_kv_path_is_decided_per_xpyd_group_not_per_pair():
    # 1P tp2 + 1D tp2 fits an 8-GPU domain; 3P tp2 + 1D tp4 (10 GPUs) does not, though each pair does
    assert kv_same_node(8, 2, 1, 2, 1) and not kv_same_node(8, 2, 3, 4, 1)
    assert list(kv_same_node(8, 2, np.array([1, 3, 4]), 2, 1)) == [True, True, False]   # 4, 8, 10 GPUs
    tp2, tp4 = ParallelConfig(tp=2), ParallelConfig(tp=4)
    small = Deployment.disaggregated(Backend.TRTLLM, Pool(tp2, 2), Pool(tp2, 2), 8, groups=2)   # two 1P1D groups
    big = Deployment.disaggregated(Backend.TRTLLM, Pool(tp2, 3), Pool(tp4, 1), 8)
    assert small.kv_path == Transport.NVLINK and small.unit_gpus == 4 and small.units == 2
    assert big.kv_path == Transport.NETWORK and not big.same_node
    with pytest.raises(InputError, match="equal xPyD groups"):
        Deployment.disaggregated(Backend.TRTLLM, Pool(tp2, 3), Pool(tp2, 2), 8, groups=2)


def _raw(**kw) -> dict:
    base = {"id": "r1", "backend": "trtllm", "model_path": "Qwen/Qwen3-32B", "system": "b200_sxm", "isl": "1024",
            "osl": "128", "silicon_data_source": "x silicon_concurrency=16"}
    return {**base, **kw}


def test_from_row_applies_the_domain_rule_and_the_group_path():
    b200 = load_system("b200_sxm")
    agg = from_row(parse_row(_raw(mode="agg", tp_size="16", moe_ep_size="4")), b200)
    assert agg.agg.parallel == ParallelConfig(tp=8, attn_dp=2, moe_tp=4, moe_ep=4) and agg.units == 1
    row = parse_row(_raw(mode="disagg", prefill_tp_size="4", decode_tp_size="4"))
    with pytest.raises(InputError, match="worker counts"):
        from_row(row, b200)
    assert from_row(row, b200, 1, 1).same_node          # 8 GPUs: one HGX node
    assert not from_row(row, b200, 2, 1).same_node      # 12 GPUs: across nodes


def test_an_agg_engine_is_the_tp_its_launch_flags_state_not_the_tables_tp_times_ep():
    """InferenceX tables record tp x ep in tp_size for single-node EP runs (tp64 for `--tp 8 --ep 8`); with
    the enrichment's no-attention-DP and EP, the launch flag's TP is the engine (SGLang and TRT-LLM names)."""
    b200 = load_system("b200_sxm")
    for flags in ("tensor-parallel-size=8;ep-size=8;data-parallel-size=1", "tp_size=8;ep_size=8"):
        row = parse_row(_raw(mode="agg", model_path="deepseek-ai/DeepSeek-R1", tp_size="64", moe_tp_size="8",
                             moe_ep_size="8", agg_dp_attn="false", agg_ep="8", engine_flags=flags))
        assert agg_layout(row, b200) == ParallelConfig(tp=8, moe_tp=1, moe_ep=8)
        assert from_row(row, b200).agg.parallel == ParallelConfig(tp=8, moe_tp=1, moe_ep=8)
    # attention DP on: the launched TP's ranks each run attention (TRT-LLM enable_attention_dp)
    dp = parse_row(_raw(mode="agg", model_path="deepseek-ai/DeepSeek-R1", tp_size="16", moe_ep_size="4",
                        agg_dp_attn="true", agg_ep="4", engine_flags="tp_size=8"))
    assert agg_layout(dp, b200) == ParallelConfig(tp=1, attn_dp=8, moe_tp=2, moe_ep=4)
    # a launched TP that does not divide the table's GPUs, or no flag: the table (within one domain) stands
    odd = parse_row(_raw(mode="agg", model_path="deepseek-ai/DeepSeek-R1", tp_size="12", agg_dp_attn="false",
                         engine_flags="tp_size=8"))
    assert agg_layout(odd, b200) == within_domain(odd.agg.parallel, b200)
    bare = parse_row(_raw(mode="agg", tp_size="16", moe_ep_size="4"))
    assert agg_layout(bare, b200) == ParallelConfig(tp=8, attn_dp=2, moe_tp=4, moe_ep=4)


def test_the_launch_flags_ep_and_attention_dp_stand_over_the_configs():
    """InferenceX's TRT-LLM scripts pick EP and attention DP from the load whatever the config says
    (dsr1_fp4_b200_trt_slurm.sh: EP_SIZE=$TP above 8 clients, DP_ATTENTION at 256), and its SGLang docker
    script passed --enable-ep-moe (EP = TP) to every run: the engine is what was launched."""
    b200 = load_system("b200_sxm")
    dsr1 = dict(mode="agg", model_path="deepseek-ai/DeepSeek-R1", agg_dp_attn="false", agg_ep="1")
    ep_by_script = parse_row(_raw(**dsr1, tp_size="8", moe_ep_size="1",
                                  engine_flags="tp_size=8;ep_size=8;enable_attention_dp=False"))
    assert agg_layout(ep_by_script, b200) == ParallelConfig(tp=8, moe_tp=1, moe_ep=8)
    old_sglang = parse_row(_raw(**{**dsr1, "backend": "sglang"}, tp_size="4", moe_ep_size="1",
                                engine_flags="tensor-parallel-size=4;data-parallel-size=1;enable-ep-moe=true"))
    assert agg_layout(old_sglang, b200) == ParallelConfig(tp=4, moe_tp=1, moe_ep=4)
    # attention DP as launched: one engine of 8 GPUs, where the table's dp column says 64 (tp x ep)
    dp_by_script = parse_row(_raw(**{**dsr1, "agg_dp_attn": "true", "agg_ep": "8"}, tp_size="1",
                                  attention_dp_size="64", moe_ep_size="8",
                                  engine_flags="tp_size=8;ep_size=8;enable_attention_dp=True"))
    assert agg_layout(dp_by_script, b200) == ParallelConfig(tp=1, attn_dp=8, moe_tp=1, moe_ep=8)
    assert from_row(dp_by_script, b200).agg.parallel.num_gpus == 8
    sglang_dp = parse_row(_raw(**{**dsr1, "backend": "sglang"}, tp_size="8", moe_ep_size="8",
                               engine_flags="tp-size=8;dp-size=8;enable-dp-attention=true;ep-size=8"))
    assert agg_layout(sglang_dp, b200) == ParallelConfig(tp=1, attn_dp=8, moe_tp=1, moe_ep=8)
    # unresolved flags (`?`) leave the config's word
    unresolved = parse_row(_raw(**dsr1, tp_size="8", engine_flags="tp_size=8;enable_attention_dp=?"))
    assert agg_layout(unresolved, b200) == ParallelConfig(tp=8, moe_tp=8, moe_ep=1)


def _dsr1(**kw) -> dict:
    """A DeepSeek-R1 disagg row as the enrichment leaves it: the table's decode_moe_* repeat the prefill EP."""
    base = dict(mode="disagg", model_path="deepseek-ai/DeepSeek-R1", system="gb200", prefill_tp_size="4",
                prefill_moe_tp_size="1", prefill_moe_ep_size="4", decode_tp_size="32", decode_moe_tp_size="8",
                decode_moe_ep_size="4")
    return _raw(**{**base, **kw})


def test_role_layout_reads_attention_dp_and_ep_from_the_config():
    tp4 = ParallelConfig(tp=4, moe_ep=4)
    assert role_layout(tp4, True, 4) == ParallelConfig(tp=1, attn_dp=4, moe_tp=1, moe_ep=4)
    assert role_layout(tp4, False, 2) == ParallelConfig(tp=4, moe_tp=2, moe_ep=2)
    assert role_layout(tp4, None, None) is tp4                     # un-enriched: the table stands
    assert role_layout(tp4, True, 3) == ParallelConfig(tp=1, attn_dp=4, moe_tp=1, moe_ep=4)   # 3 does not divide 4
    gb200 = load_system("gb200")
    row = parse_row(_dsr1(prefill_dp_attn="true", prefill_ep="4", decode_dp_attn="true", decode_ep="32",
                          decode_max_batch="16", prefill_num_workers="8", decode_num_workers="1"))
    p, d = row_layouts(row, gb200)
    assert p == ParallelConfig(tp=1, attn_dp=4, moe_tp=1, moe_ep=4)
    assert d == ParallelConfig(tp=1, attn_dp=32, moe_tp=1, moe_ep=32)   # not the table's etp8 x ep4
    dep = from_row(row, gb200, 1, 1)
    assert (dep.prefill.parallel, dep.decode.parallel) == (p, d)
    assert dep.decode.max_batch == 16 * 32                  # TRT-LLM max_batch_size per attention rank
    assert dep.router is RoutePolicy.ROUND_ROBIN             # the harness's Dynamo frontend default


def test_several_frontends_behind_nginx_route_without_coordination():
    # srtctl's nginx in front of 7 Dynamo frontends (the enrichment's `frontends`): 7 round-robins that
    # share no state; one frontend, or unknown: one round-robin
    gb200 = load_system("gb200")
    for cell, routers in (("7", 7), ("1", 1), ("", 1)):
        dep = from_row(parse_row(_dsr1(frontends=cell)), gb200, 1, 3)
        assert (dep.router, dep.routers) == (RoutePolicy.ROUND_ROBIN, routers)
    with pytest.raises(InputError, match="router"):
        Deployment(Backend.TRTLLM, agg=Pool(ParallelConfig(tp=2)), routers=0)


def test_role_batch_cap_counts_the_engines_ranks_not_the_cost_layout():
    # tp16 across two H100 nodes without attention DP is one engine of one attention rank, although the
    # cost model prices it as tp8 x dp2 inside NVLink domains
    h100 = load_system("h100_sxm")
    row = parse_row(_dsr1(system="h100_sxm", decode_tp_size="16", decode_dp_attn="false", decode_ep="16",
                          decode_max_batch="1"))
    assert role_batch_cap(row) == 1
    assert from_row(row, h100, 1, 3).decode.parallel.attn_dp == 2
    table = parse_row(_dsr1(decode_batch_size="64", decode_max_batch="16", decode_dp_attn="true"))
    assert role_batch_cap(table) == 64                    # the table's own decode batch wins
    assert role_batch_cap(parse_row(_dsr1())) is None      # unknown: the engine's default


def test_each_role_gets_its_recipes_batch_cap_and_token_budget():
    from estimator.run_facts import RunFacts

    raw = _dsr1(prefill_dp_attn="true", prefill_ep="4", prefill_max_batch="8", prefill_max_num_tokens="8448",
                decode_dp_attn="false", decode_ep="32", decode_max_batch="32", decode_max_num_tokens="96",
                decode_mem_fraction="0.9")
    dep = from_row(parse_row(raw), load_system("gb200"), 1, 2)
    assert (dep.prefill.max_batch, dep.prefill.max_num_tokens) == (8 * 4, 8448)   # per rank x 4 attention ranks
    assert (dep.decode.max_batch, dep.decode.max_num_tokens) == (32, 96)
    facts = RunFacts.from_row(raw)                       # carried through calibration's engine_extra as well
    assert RunFacts.from_extra(facts.to_extra()) == facts
    assert facts.decode.mem_fraction == 0.9 and facts.prefill.max_num_tokens == 8448


def test_a_recipes_memory_share_reaches_its_roles_engine_and_sglangs_chunking_off_is_no_budget():
    # SGLang recipes set chunked-prefill-size (e.g. 131072) beside mem-fraction-static; the default
    # fraction SGLang derives from such a chunk leaves no KV pool, so the recorded share must reach the
    # role's engine (the static estimate and the simulator both take it from Pool.engine_for)
    from estimator.engine import EngineConfig, resolve

    b200 = load_system("b200_sxm")
    raw = _dsr1(backend="sglang", system="b200_sxm", prefill_tp_size="8", prefill_moe_ep_size="8",
                prefill_dp_attn="true", prefill_ep="8", prefill_max_num_tokens="131072",
                prefill_mem_fraction="0.8", decode_tp_size="8", decode_dp_attn="false", decode_ep="8",
                decode_max_num_tokens="-1", decode_mem_fraction="0.85")
    dep = from_row(parse_row(raw), b200, 1, 1)
    assert (dep.prefill.max_num_tokens, dep.prefill.mem_fraction) == (131072, 0.8)
    assert (dep.decode.max_num_tokens, dep.decode.mem_fraction) == (None, 0.85)   # -1: chunking off
    engine = EngineConfig(Backend.SGLANG)
    default = resolve(EngineConfig(Backend.SGLANG, max_num_tokens=131072), b200, dep.prefill.parallel)
    assert default.mem_fraction < 0.5                      # what the chunk alone would leave
    pre = resolve(dep.prefill.engine_for(engine), b200, dep.prefill.parallel)
    assert (pre.mem_fraction, pre.max_num_tokens) == (0.8, 131072)
    dec = resolve(dep.decode.engine_for(engine), b200, dep.decode.parallel)
    assert dec.mem_fraction == 0.85 and dec.max_num_tokens == resolve(engine, b200, dep.decode.parallel).max_num_tokens


def test_recorded_worker_counts_are_used_as_recorded(tmp_path, tiny_db):
    from estimator.runs import predict_runs, read_runs
    from estimator.sim.runs import simulate_runs
    from perfdb.lookup import PerfDB

    gb200 = load_system("gb200")
    row = parse_row(_dsr1(prefill_num_workers="3", decode_num_workers="2"))
    dep = from_row(row, gb200, 7, 9)                        # derived counts are ignored when recorded
    assert (dep.prefill.workers, dep.decode.workers) == (3, 2)
    # both predictors on a table row with recorded counts: the simulator's deployment holds them
    qwen = {**_raw(mode="disagg", system="h200_sxm", prefill_tp_size="1", decode_tp_size="2",
                   prefill_num_workers="3", decode_num_workers="2", silicon_ttft_ms="100", silicon_tpot_ms="10")}
    cols = list(qwen)
    path = tmp_path / "runs.csv"
    path.write_text(",".join(cols) + "\n" + ",".join(qwen[c] for c in cols) + "\n")
    rows = read_runs(path)
    sim = simulate_runs(rows, PerfDB(tiny_db), max_requests=100)[0]
    assert sim.status == "ok" and (sim.deployment.prefill.workers, sim.deployment.decode.workers) == (3, 2)
    assert predict_runs(rows, PerfDB(tiny_db))[0].status == "ok"


def test_redundant_expert_slots_make_the_launched_ep_split_place_experts():
    """Twelve GB200/GB300 SGLang rows run DeepSeek-R1's 256 experts over 48 EP ranks with
    --ep-num-redundant-experts 32: 288 slots, 6 per rank. Read per role from the launch flags (the
    decode engine's only here), the deployment places them; without the flag the split is infeasible."""
    from estimator.engine import EngineConfig
    from estimator.engines import profile_for
    from estimator.models import load_model
    from estimator.run_facts import RunFacts
    from estimator.steps import StepModel
    from perfdb.errors import InfeasibleError
    from perfdb.lookup import PerfDB

    flags = "prefill.tp-size=4;decode.ep-num-redundant-experts=32;decode.tp-size=48"
    facts = RunFacts.from_row({"engine_flags": flags})
    assert facts.role_flags("decode") == {"ep-num-redundant-experts": "32", "tp-size": "48"}
    assert facts.role_flags("prefill") == {"tp-size": "4"}
    assert profile_for(Backend.SGLANG).expert_slots({"ep-num-redundant-experts": "32"}, 256) == 288
    assert profile_for(Backend.TRTLLM).expert_slots({"moe_config.load_balancer.num_slots": "288"}, 256) == 288
    assert profile_for(Backend.TRTLLM).expert_slots({"moe_config.load_balancer.num_slots": "256"}, 256) is None
    assert profile_for(Backend.SGLANG).expert_slots({"ep-num-redundant-experts": "32"}, 0) is None   # dense

    gb200 = load_system("gb200")
    raw = _dsr1(backend="sglang", decode_tp_size="48", decode_dp_attn="true", decode_ep="48", engine_flags=flags)
    dep = from_row(parse_row(raw), gb200, 1, 1, experts=256)
    assert dep.decode.parallel == ParallelConfig(tp=1, attn_dp=48, moe_tp=1, moe_ep=48)
    assert (dep.prefill.expert_slots, dep.decode.expert_slots) == (None, 288)
    model, view = load_model("deepseek-ai/DeepSeek-R1"), PerfDB(None).view("gb200", Backend.SGLANG, None)
    engine = EngineConfig(Backend.SGLANG)
    with pytest.raises(InfeasibleError, match="256 experts are not divisible by moe_ep=48"):
        StepModel.build(model, gb200, dep.decode.parallel, engine, view)
    placed = StepModel.build(model, gb200, dep.decode.parallel, dep.decode.engine_for(engine), view)
    assert placed.model.num_experts == 288
    # each rank holds 6 experts' weights: at EP 32 (8 per rank) without copies the same model holds more
    ep32 = StepModel.build(model, gb200, ParallelConfig(tp=1, attn_dp=32, moe_tp=1, moe_ep=32), engine, view)
    assert placed.memory.weights_bytes < ep32.memory.weights_bytes


def test_each_role_gets_the_kv_pool_cap_its_own_flags_set():
    """A recipe's `prefill.max-total-tokens` caps the prefill server's pool only; engines without such a flag
    here (vLLM, TRT-LLM) read none."""
    from estimator.engines import profile_for

    flags = "prefill.max-total-tokens=8192;decode.mem-fraction-static=0.85"
    dep = from_row(parse_row(_dsr1(backend="sglang", engine_flags=flags)), load_system("gb200"), 1, 1)
    assert (dep.prefill.kv_tokens, dep.decode.kv_tokens) == (8192, None)
    assert profile_for(Backend.SGLANG).kv_tokens({"max-total-tokens": "?"}) is None
    assert profile_for(Backend.VLLM).kv_tokens({"max-total-tokens": "8192"}) is None
