"""Collectives across NVLink domains (perfdb.network): composed from the measured in-domain collective and
NCCL's model of the inter-node ring, on the bundled database's real tables."""
from __future__ import annotations

import numpy as np
import pytest

from perfdb import network
from perfdb.lookup import PerfDB
from perfdb.ops import CommCase
from perfdb.roofline import link_bw_bytes_per_s
from perfdb.types import Backend, CommOp, Dtype, Phase, Source, Transport

HIDDEN_BYTES = 7168 * 2   # one DeepSeek token's bf16 activation


@pytest.fixture(scope="module")
def view():
    return PerfDB().view("h100_sxm", Backend.TRTLLM)


def _case(op: CommOp, gpus: int, tokens, transport=Transport.NETWORK) -> CommCase:
    return CommCase(op=op, num_gpus=gpus, transport=transport, dtype=Dtype.BF16,
                    msg_bytes=np.asarray(tokens, dtype=np.float64) * HIDDEN_BYTES)


def test_split_lays_a_group_over_whole_domains():
    assert network.split(16, 8) == (2, 8)
    assert network.split(32, 8) == (4, 8)
    assert network.split(12, 8) == (2, 6)


def test_only_collectives_wider_than_a_domain_are_composed(view):
    assert network.spans_domains(_case(CommOp.ALL_REDUCE, 16, 8), 8)
    assert not network.spans_domains(_case(CommOp.ALL_REDUCE, 8, 8, Transport.NVLINK), 8)
    assert not network.spans_domains(_case(CommOp.P2P, 2, 8), 8)   # one hop: the ladder's


def test_small_messages_pay_nccls_inter_node_latency(view):
    """A decode-sized all-reduce over two nodes costs at least NCCL's modelled latency for 16 ranks in two
    nodes (~27 us, its tree), more than the same all-reduce inside one node."""
    across = float(view.latency(_case(CommOp.ALL_REDUCE, 16, 8)).ms)
    inside = float(view.latency(_case(CommOp.ALL_REDUCE, 8, 8, Transport.NVLINK)).ms)
    floor = network.group_latency_ms(CommOp.ALL_REDUCE, 16, 2)
    assert floor == pytest.approx(0.0275, abs=1e-4)
    assert across >= floor > inside
    # a wider group (four nodes) waits longer
    assert float(view.latency(_case(CommOp.ALL_REDUCE, 32, 8)).ms) > across


def test_large_messages_move_each_gpus_rail_share_over_its_own_nic(view):
    """A prefill-sized all-reduce (8,192 tokens) over two nodes: no faster than each GPU's slice over its
    NIC plus the in-domain reduce-scatter and all-gather over NVLink, and far below the whole buffer over
    one NIC (the pricing this replaced), and its source says a model priced it."""
    tokens = 8192
    lat = view.latency(_case(CommOp.ALL_REDUCE, 16, tokens))
    ms, system = float(lat.ms), view.system
    s = tokens * HIDDEN_BYTES
    floor = (2 * 0.5 * s / 8 / link_bw_bytes_per_s(system, Transport.NETWORK)
             + 2 * 7 / 8 * s / link_bw_bytes_per_s(system, Transport.NVLINK)) * 1e3
    whole_buffer_one_nic = 2 * 15 / 16 * s / link_bw_bytes_per_s(system, Transport.NETWORK) * 1e3
    assert floor <= ms < whole_buffer_one_nic / 2
    assert Source.from_code(int(lat.source)) is Source.ROOFLINE
    # more tokens, more time; the composition is vectorised like every other lookup
    many = view.latency(_case(CommOp.ALL_REDUCE, 16, [512, 2048, 8192]))
    assert np.all(np.diff(many.ms) > 0)


def test_all_to_all_sends_the_other_domains_share_over_the_nic(view):
    tokens = 4096
    ms = float(view.latency(_case(CommOp.ALL_TO_ALL, 16, tokens)).ms)
    net_only = tokens * HIDDEN_BYTES * 8 / 16 / link_bw_bytes_per_s(view.system, Transport.NETWORK) * 1e3
    assert ms >= net_only


def test_a_table_that_times_the_group_across_nodes_prices_it(tmp_path):
    """Measured rows of the exact (op, GPUs, network) combination win over the composition."""
    from fixtures.tinydb import write_family

    from perfdb.types import OpKind

    groups = [(("all_reduce", 16, "network", "bf16"),
               {"msg_bytes": np.array([1024, 65536, 1 << 20, 16 << 20, 128 << 20], dtype=np.int64)})]
    root = write_family(tmp_path, OpKind.COMM, groups, latency=lambda case, sol: np.full(sol.shape, 5.0),
                        system="h100_sxm")
    lat = PerfDB(root).view("h100_sxm", Backend.TRTLLM).latency(_case(CommOp.ALL_REDUCE, 16, 8192))
    assert Source.from_code(int(lat.source)) in (Source.MEASURED, Source.INTERPOLATED)
    assert float(lat.ms) == pytest.approx(5.0, rel=0.05)


def test_a_step_says_which_ops_were_priced_across_domains():
    """`estimate --breakdown` notes the collectives priced by the composition (provenance), and only them."""
    from estimator.engine import EngineConfig
    from estimator.models import load_model
    from estimator.parallel import ParallelConfig
    from estimator.steps import StepModel
    from perfdb.specs import load_system

    model, system = load_model("deepseek-ai/DeepSeek-R1"), load_system("h100_sxm")
    db = PerfDB()

    def ops(tp: int) -> dict:
        sm = StepModel(model, system, ParallelConfig(tp=tp, moe_tp=tp), EngineConfig(Backend.SGLANG),
                       db.view("h100_sxm", Backend.SGLANG))
        return {o.name: o for o in sm.step(Phase.DECODE, 0, 0, 0, 8, 1024).ops}

    across, inside = ops(16), ops(8)
    assert "NVLink domains" in across["tp_allreduce"].note and "perfdb.network" in across["tp_allreduce"].note
    assert "NVLink domains" not in inside["tp_allreduce"].note
    assert "NVLink domains" not in across["moe_experts"].note
