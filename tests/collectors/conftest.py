"""Shared fixtures: a CPU session with a short timer (real torch, real Parquet)."""
from __future__ import annotations

import pytest

from collectors.session import open_session
from collectors.timer import TimerConfig
from perfdb.types import Backend


@pytest.fixture(scope="session")
def fast_timer() -> TimerConfig:
    return TimerConfig(budget_s=0.005, warmup_s=0.001, min_reps=3, max_reps=20, flush_bytes=1 << 16, use_graph=False)


@pytest.fixture(scope="session")
def cpu_session(fast_timer):
    return open_session(Backend.TORCH, "cpu", fast_timer)
