"""Attention-DP MoE physics no fitted constant can move: what crosses the links between a DP rank's
attention and the experts (per engine, as its source does it), where the bytes go when the expert group
spans nodes, a lone prompt staying on one rank, and the speculative draft module's pass over the prompt."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.engine import EngineConfig
from estimator.engines.profile import DpMoeExchange
from estimator.layers import ACT_BYTES
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.steps import StepModel
from perfdb.lookup import PerfDB
from perfdb.network import split
from perfdb.roofline import link_bw_bytes_per_s
from perfdb.specs import load_system
from perfdb.types import Backend, CommOp, Dtype, Phase, Transport

DEP4 = ParallelConfig(tp=1, attn_dp=4, moe_tp=1, moe_ep=4)
DEP8 = ParallelConfig(tp=1, attn_dp=8, moe_tp=1, moe_ep=8)
DEP16 = ParallelConfig(tp=1, attn_dp=16, moe_tp=1, moe_ep=16)   # two 8-GPU B200 nodes


@pytest.fixture(scope="module")
def dsr1():
    db = PerfDB(None)
    model, system = load_model("deepseek-ai/DeepSeek-R1"), load_system("b200_sxm")
    return model, system, {b: db.view("b200_sxm", b) for b in (Backend.SGLANG, Backend.TRTLLM)}


def _step(dsr1, backend, par, **eng):
    model, system, views = dsr1
    return StepModel.build(model, system, par, EngineConfig(backend, **eng), views[backend])


def _exchange(sm: StepModel, pb, s, db=0, kv=0, stage_tokens=None):
    """(cases, ms) of the attention-DP exchange ops of one step: pb, db per rank (the busiest), every rank
    as busy unless stage_tokens (the worker's new tokens) says otherwise."""
    uses = [u for u in sm.composer.ops(pb, s, 0, db, kv, stage_tokens) if u.name in ("moe_dispatch", "moe_combine")]
    live = [u for u in uses if u.mask is None or bool(np.all(u.mask))]
    ms = sum(float(np.ravel(sm.view.latency(u.case).ms)[0]) * u.count for u in live)
    return [u.case for u in live], ms


def test_sglang_prefill_exchange_is_two_bf16_all_reduces_of_the_summed_tokens(dsr1):
    """SGLang (dp_attention.py SUM_LEN): with prompt tokens in the step, each MoE layer all-reduces a bf16
    buffer of every rank's tokens before the experts and their output after, so each layer moves at least
    2 x 2(n-1)/n x tokens x hidden x 2 bytes per GPU: more than TRT-LLM's quantised all-gather +
    reduce-scatter of the same tokens."""
    model, system, _ = dsr1
    sg, trt = _step(dsr1, Backend.SGLANG, DEP8), _step(dsr1, Backend.TRTLLM, DEP8)
    assert sg.resolved.dp_moe_exchange is DpMoeExchange.SUM_LEN_ALL_REDUCE
    assert trt.resolved.dp_moe_exchange is DpMoeExchange.GATHER_SCATTER
    for per_rank in (1024, 8192):
        cases, ms = _exchange(sg, 1, per_rank)
        total = per_rank * DEP8.attn_dp
        assert [c.op for c in cases] == [CommOp.ALL_REDUCE, CommOp.ALL_REDUCE]
        assert all(float(c.msg_bytes) == total * model.hidden * ACT_BYTES for c in cases)
        floor = 2 * 2 * 7 / 8 * total * model.hidden * ACT_BYTES / link_bw_bytes_per_s(system, Transport.NVLINK)
        assert ms >= floor * 1e3 * model.num_moe_layers * (1 - 1e-9)
        assert ms > _exchange(trt, 1, per_rank)[1]


def test_sglang_decode_exchange_pads_every_rank_to_the_busiest(dsr1):
    """Decode-only steps (MAX_LEN): all-gather and reduce-scatter of busiest-rank tokens x ranks, in bf16."""
    model, _, _ = dsr1
    cases, _ = _exchange(_step(dsr1, Backend.SGLANG, DEP8), 0, 0, db=16, kv=4096)
    assert [c.op for c in cases] == [CommOp.ALL_GATHER, CommOp.REDUCE_SCATTER]
    assert all(float(c.msg_bytes) == 16 * DEP8.attn_dp * model.hidden * ACT_BYTES for c in cases)


def _spanning_floor_ms(case, system) -> float:
    """The least time a collective over GPUs in several NVLink domains can take on a rail-optimised fabric
    (one NIC per GPU): each GPU's share over its NIC, and its domain's share over NVLink (in sequence for
    the ring collectives, at once for an all-to-all)."""
    if case.transport is Transport.NVLINK:
        return float(case.bytes()) / link_bw_bytes_per_s(system, Transport.NVLINK) * 1e3
    n, g = split(case.num_gpus, system.nvlink_domain_gpus)
    s, net, nvl = float(case.msg_bytes), link_bw_bytes_per_s(system, Transport.NETWORK), \
        link_bw_bytes_per_s(system, Transport.NVLINK)
    if case.op is CommOp.ALL_TO_ALL:
        return max(s * (case.num_gpus - g) / case.num_gpus / net, s * (g - 1) / case.num_gpus / nvl) * 1e3
    k = 2 if case.op is CommOp.ALL_REDUCE else 1   # an all-reduce is a reduce-scatter and an all-gather
    return k * ((n - 1) / n * s / g / net + (g - 1) / g * s / nvl) * 1e3


def test_the_exchange_grows_with_its_bytes_and_crosses_to_the_network_beyond_one_nvlink_domain(dsr1):
    """More tokens, more exchange time; an expert group of 16 B200 GPUs (two NVLink domains of 8) pays the
    inter-node network: its exchange is no faster than each GPU's share over its own NIC plus the
    domain's share over NVLink (perfdb.network: a rail-optimised fabric), and slower than the same
    per-rank load inside one node."""
    model, system, _ = dsr1
    for backend in (Backend.SGLANG, Backend.TRTLLM):
        sm8, sm16 = _step(dsr1, backend, DEP8), _step(dsr1, backend, DEP16)
        times = [_exchange(sm8, 1, s)[1] for s in (512, 2048, 8192)]
        assert times[0] < times[1] < times[2]
        assert {c.transport for c in _exchange(sm8, 1, 2048)[0]} == {Transport.NVLINK}
        cases, ms16 = _exchange(sm16, 1, 2048)
        assert {c.transport for c in cases} == {Transport.NETWORK}
        floor = sum(_spanning_floor_ms(c, system) for c in cases)
        assert ms16 >= floor * model.num_moe_layers * (1 - 1e-9)
        assert ms16 > _exchange(sm8, 1, 2048)[1]
        # the whole prefill step carries it
        assert float(sm16.prefill_ms(16, 2048)) > float(sm8.prefill_ms(8, 2048))


def test_a_lone_prompt_under_attention_dp_stays_on_one_rank(dsr1):
    """One request is one rank's: its attention runs at TP 1 on all its tokens (not 1/dp of them), and the
    experts see only its tokens, whatever the number of ranks."""
    for backend in (Backend.SGLANG, Backend.TRTLLM):
        one = _step(dsr1, backend, DEP4).step(Phase.PREFILL, 1, 8192, 0, 0, 0)
        wide = _step(dsr1, backend, DEP8).step(Phase.PREFILL, 1, 8192, 0, 0, 0)
        attn = {r: next(float(o.ms) for o in res.ops if o.name == "attn_prefill") for r, res in (("4", one), ("8", wide))}
        assert attn["4"] == pytest.approx(attn["8"], rel=1e-9)
        tokens = [c.msg_bytes for c in _exchange(_step(dsr1, backend, DEP8), 1, 8192, stage_tokens=[8192.0])[0]]
        assert max(float(np.max(t)) for t in tokens) <= 8192 * 7168 * ACT_BYTES


def test_speculative_prefill_runs_the_draft_module_over_the_prompt_once(dsr1):
    """MTP / EAGLE: the draft layer runs once over the prompt in prefill (one decoder layer of the
    target's: its embedding and logits are not a layer's), k times per decode step."""
    model, _, _ = dsr1
    for backend in (Backend.SGLANG, Backend.TRTLLM):
        base, spec = _step(dsr1, backend, DEP8), _step(dsr1, backend, DEP8, spec_tokens=3)
        pre = spec.step(Phase.PREFILL, 1, 8192, 0, 0, 0)
        draft = next(float(o.ms) for o in pre.ops if o.name == "spec_draft")
        plain = base.step(Phase.PREFILL, 1, 8192, 0, 0, 0)
        head = sum(float(o.ms) for o in plain.ops if o.name in ("embedding", "lm_head", "logits_gather"))
        host = sum(float(o.ms) for o in plain.ops if o.name == "step_overhead")   # + the context step's cost
        kernels = float(plain.ms) - host - head
        assert draft == pytest.approx(kernels / model.num_layers, rel=1e-6)
        dec = spec.step(Phase.DECODE, 0, 0, 0, 64, 4096)
        dec_draft = next(float(o.ms) for o in dec.ops if o.name == "spec_draft")
        assert dec_draft > 0 and float(pre.ms) > float(base.prefill_ms(1, 8192))


def test_sglang_moe_a2a_backend_flag_picks_the_all_to_all_exchange_per_engine():
    """SGLang's --moe-a2a-backend (deepep in the srt-slurm wide-EP recipes) replaces the dp_gather /
    all-reduce exchange; `none`, an unresolved `?` or no flag keep the default. Engines whose profile reads
    no such flag never switch."""
    from estimator.engines import profile_for

    sg = profile_for(Backend.SGLANG)
    assert sg.moe_exchange({"moe-a2a-backend": "deepep"}) is DpMoeExchange.ALL_TO_ALL
    assert sg.moe_exchange({"moe-a2a-backend": "mooncake"}) is DpMoeExchange.ALL_TO_ALL
    for flags in ({}, {"moe-a2a-backend": "none"}, {"moe-a2a-backend": "?"}):
        assert sg.moe_exchange(flags) is None
    for backend in (Backend.TRTLLM, Backend.VLLM):
        assert profile_for(backend).moe_exchange({"moe-a2a-backend": "deepep"}) is None
    # as launched per role, into the engine each role's steps are priced with
    facts = "prefill.moe-a2a-backend=none;decode.moe-a2a-backend=deepep"
    from estimator.deployment import role_exchange
    from estimator.run_facts import RunFacts
    from estimator.runs import parse_row

    assert RunFacts.from_row({"engine_flags": facts}).role_flags("decode") == {"moe-a2a-backend": "deepep"}
    row = parse_row({"id": "r", "backend": "sglang", "model_path": "deepseek-ai/DeepSeek-R1", "system": "gb200",
                     "mode": "disagg", "isl": "1024", "osl": "1024", "prefill_tp_size": "8", "decode_tp_size": "8",
                     "silicon_ttft_ms": "100", "silicon_tpot_ms": "10", "engine_flags": facts})
    assert (role_exchange(row, "prefill"), role_exchange(row, "decode")) == (None, DpMoeExchange.ALL_TO_ALL)


def test_all_to_all_sends_each_token_to_its_experts_ranks_not_every_rank(dsr1):
    """DeepEP: a decode step (low-latency kernels) sends one copy of each token per routed expert, a step
    with prompt tokens (normal kernels) one per destination rank (ep (1 - (1 - 1/ep)^topk) of topk uniform
    picks), dispatched in the experts' activation dtype and combined in bf16, and no rank is padded to
    the busiest. Over 16+ ranks with 8 experts a token, that is fewer bytes than gathering every rank's
    tokens, and no faster than those bytes over the links (across two domains: each GPU's NIC carries
    the copies bound for the other domain, its NVLink the ones that stay)."""
    from perfdb.ops.base import act_bytes

    model, system, _ = dsr1
    a2a = _step(dsr1, Backend.SGLANG, DEP16, dp_moe_exchange=DpMoeExchange.ALL_TO_ALL)
    gather = _step(dsr1, Backend.SGLANG, DEP16)
    assert a2a.resolved.dp_moe_exchange is DpMoeExchange.ALL_TO_ALL
    cases, ms = _exchange(a2a, 0, 0, db=64, kv=2048)
    assert [c.op for c in cases] == [CommOp.ALL_TO_ALL, CommOp.ALL_TO_ALL]
    assert [c.dtype for c in cases] == [model.moe_quant, Dtype.BF16]
    copies = 64 * model.topk * model.expert_hidden
    assert [float(c.msg_bytes) for c in cases] == [copies * act_bytes(model.moe_quant), copies * ACT_BYTES]
    floor = sum(_spanning_floor_ms(c, system) for c in cases)
    assert ms >= floor * model.num_moe_layers * (1 - 1e-9)
    gathered = _exchange(gather, 0, 0, db=64, kv=2048)[0]
    assert sum(float(c.bytes()) for c in cases) < sum(float(c.bytes()) for c in gathered)
    pre, _ = _exchange(a2a, 1, 4096)
    ranks = 16 * (1 - (1 - 1 / 16) ** model.topk)
    assert float(pre[1].msg_bytes) == pytest.approx(4096 * ranks * model.expert_hidden * ACT_BYTES)
    assert ranks < model.topk


def test_all_to_all_experts_run_only_the_copies_routed_to_the_rank(dsr1):
    """With an all-to-all the rank's experts see t x topk routed copies, one grouped GEMM over its local
    experts (as much work as the gathered case's average share), not a kernel over every rank's tokens."""
    from perfdb.ops import MoeCase

    model, _, _ = dsr1
    a2a = _step(dsr1, Backend.SGLANG, DEP16, dp_moe_exchange=DpMoeExchange.ALL_TO_ALL)
    gather = _step(dsr1, Backend.SGLANG, DEP16)

    def experts(sm):
        return next(u.case for u in sm.composer.ops(0, 0, 0, 64, 2048) if isinstance(u.case, MoeCase))

    mine, theirs = experts(a2a), experts(gather)
    assert (mine.num_experts, mine.topk, mine.moe_ep) == (model.num_experts // 16, 1, 1)
    assert float(mine.num_tokens) == 64 * model.topk and float(theirs.num_tokens) == 64 * 16
    assert float(mine.flops()) == pytest.approx(float(theirs.flops()))
    # a lone prompt on one rank: every rank's experts receive a 1/ep share of its copies, not all of them
    lone = next(u.case for u in a2a.composer.ops(1, 4096, 0, 0, 0, [4096.0]) if isinstance(u.case, MoeCase))
    assert float(np.ravel(lone.num_tokens)[0]) == pytest.approx(4096 * model.topk / 16)
