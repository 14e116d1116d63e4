"""Engine profiles: one per backend, every value with its provenance, read by the estimator and simulator."""
from __future__ import annotations

import dataclasses

import pytest

from estimator.engine import EngineConfig, resolve
from estimator.engines import EngineProfile, profile_for, profiles, register
from estimator.parallel import ParallelConfig
from estimator.sim import policy_for
from perfdb.errors import NotFoundError
from perfdb.specs import load_system
from perfdb.types import Backend


def test_every_backend_has_one_profile_and_every_value_a_provenance():
    assert set(profiles()) == set(Backend)
    for prof in profiles().values():
        named = {f.name for f in dataclasses.fields(prof)} - {"backend", "provenance", "layout_defaults"}
        assert named <= set(prof.provenance) and all(prof.provenance[k].strip() for k in named)
    with pytest.raises(RuntimeError, match="registered twice"):
        register(profile_for(Backend.VLLM))
    with pytest.raises(RuntimeError, match="no provenance"):
        dataclasses.replace(profile_for(Backend.VLLM), provenance={})


def test_estimator_and_simulator_read_the_same_profile():
    h200 = load_system("h200_sxm")
    for b in (Backend.VLLM, Backend.SGLANG, Backend.TRTLLM):
        prof: EngineProfile = profile_for(b)
        res = resolve(EngineConfig(b), h200, ParallelConfig(tp=2))
        pol = policy_for(b)
        assert res.mixes_prefill == pol.mixes_decode == prof.scheduler.mixes_decode
        assert res.ttft_overhead_ms == prof.ttft_overhead_ms and res.reserves_full_sequence == prof.reserves_full_sequence
        assert pol.default_max_batch == prof.max_batch
    with pytest.raises(NotFoundError, match="no serving scheduler"):
        policy_for(Backend.TORCH)


def test_a_substituted_profile_stands_for_its_backend_only_inside_the_block():
    from estimator.engines import substituted

    original = profile_for(Backend.SGLANG)
    trial = dataclasses.replace(original, context_step_ms_by_arch={"DeepseekV3ForCausalLM": 1.0})
    with pytest.raises(RuntimeError, match="inside"):
        with substituted(trial):
            assert profile_for(Backend.SGLANG) is trial
            assert profile_for(Backend.TRTLLM) is not trial
            raise RuntimeError("inside")
    assert profile_for(Backend.SGLANG) is original
