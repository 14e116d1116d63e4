"""Engine profiles, one file per serving engine, in one registry keyed by Backend (see profile.py).

Adding an engine: a new file here that registers its EngineProfile, imported below, plus its tests.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from estimator.engines.profile import EngineProfile, KvHandoff, SchedulerRules
from perfdb.errors import NotFoundError
from perfdb.registry import add
from perfdb.types import Backend

_PROFILES: dict[Backend, EngineProfile] = {}


def register(profile: EngineProfile) -> EngineProfile:
    return add(_PROFILES, profile.backend, profile, "engine profile")


def profile_for(backend: Backend) -> EngineProfile:
    try:
        return _PROFILES[backend]
    except KeyError:
        known = ", ".join(b.value for b in _PROFILES)
        raise NotFoundError(f"no engine profile for backend {backend.value!r}; known: {known}") from None


def profiles() -> dict[Backend, EngineProfile]:
    return dict(_PROFILES)


@contextmanager
def substituted(profile: EngineProfile) -> Iterator[EngineProfile]:
    """Within the block, `profile` stands for its backend's registered one (a fit script trying a value of a
    fitted field, scripts/fit_context_step.py); the registered profile is back on exit, however it exits."""
    original = profile_for(profile.backend)
    _PROFILES[profile.backend] = profile
    try:
        yield profile
    finally:
        _PROFILES[profile.backend] = original


from estimator.engines import sglang, torch_eager, trtllm, vllm  # noqa: E402,F401  (each registers its profile)

__all__ = ["EngineProfile", "KvHandoff", "SchedulerRules", "profile_for", "profiles", "register", "substituted"]
