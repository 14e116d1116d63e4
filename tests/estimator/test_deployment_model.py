"""One deployment model: the layout rules live in estimator.deployment and every layer takes its word."""
from __future__ import annotations

import numpy as np
import pytest

from estimator.deployment import Deployment, Pool, from_row, kv_same_node, within_domain
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
