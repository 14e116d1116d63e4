"""Engine profiles, one file per serving engine, in one registry keyed by Backend (see profile.py).

Adding an engine: a new file here that registers its EngineProfile, imported below, plus its tests.
"""
from __future__ import annotations

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


from estimator.engines import sglang, torch_eager, trtllm, vllm  # noqa: E402,F401  (each registers its profile)

__all__ = ["EngineProfile", "KvHandoff", "SchedulerRules", "profile_for", "profiles", "register"]
