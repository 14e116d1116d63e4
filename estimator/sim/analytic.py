"""A closed-form step model with the StepModel method names: for queueing tests and back-of-envelope runs.

Times are linear in the work of a step (plus a quadratic attention term for prefill), so queueing
results can be checked against theory: e.g. at concurrency 1, TTFT is exactly prefill_ms(1, isl, 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estimator.parallel import ParallelConfig


@dataclass(frozen=True)
class AnalyticMemory:
    kv_capacity_tokens: int
    feasible: bool = True
    reason: str = ""


@dataclass(frozen=True)
class AnalyticStepModel:
    """All coefficients in ms (per token / per request / per KV token as named)."""

    step_fixed_ms: float = 5.0              # launch + weight streaming of one forward, any batch
    prefill_ms_per_token: float = 0.05
    attn_ms_per_token_pair: float = 0.0     # prefill attention: per (new token x context token)
    decode_ms_per_request: float = 0.05
    decode_ms_per_kv_token: float = 0.0     # attention read per cached token per request
    transfer_fixed_ms: float = 1.0
    transfer_ms_per_token: float = 0.001
    kv_capacity_tokens: int = 1_000_000

    def prefill_ms(self, batch, seq_len, prefix_len) -> np.ndarray:
        b, s, p = (np.asarray(x, dtype=np.float64) for x in (batch, seq_len, prefix_len))
        return self.step_fixed_ms + b * s * (self.prefill_ms_per_token + self.attn_ms_per_token_pair * (s / 2 + p))

    def decode_ms(self, batch, kv_len) -> np.ndarray:
        b, kv = np.asarray(batch, dtype=np.float64), np.asarray(kv_len, dtype=np.float64)
        return self.step_fixed_ms + b * (self.decode_ms_per_request + self.decode_ms_per_kv_token * kv)

    def mixed_ms(self, prefill_tokens, decode_batch, kv_len) -> np.ndarray:
        p, b, kv = (np.asarray(x, dtype=np.float64) for x in (prefill_tokens, decode_batch, kv_len))
        return (self.step_fixed_ms + p * self.prefill_ms_per_token
                + b * (self.decode_ms_per_request + self.decode_ms_per_kv_token * kv))

    def kv_transfer_ms(self, tokens, decode_parallel: ParallelConfig, same_node: bool) -> np.ndarray:
        return self.transfer_fixed_ms + np.asarray(tokens, dtype=np.float64) * self.transfer_ms_per_token

    @property
    def memory(self) -> AnalyticMemory:
        return AnalyticMemory(self.kv_capacity_tokens)
