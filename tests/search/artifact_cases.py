"""Deployments whose artifacts the artifact tests check, per engine: one worker, aggregated replicas,
disaggregated MoE groups repeated over nodes, a decode worker wider than a node, dense PP prefill.
Shared by test_artifacts_*.py and the engine-parser test (test_engine_parsers.py)."""
from __future__ import annotations

from pathlib import Path

from estimator.parallel import ParallelConfig
from perfdb.types import Backend, Dtype, Source
from search.artifacts.engines import EngineSettings
from search.types import Candidate, Metrics, Mode, WorkerSetup

KEYS = Path(__file__).parent / "engine_keys"
DENSE = ParallelConfig(tp=4, pp=2)
MOE = ParallelConfig(tp=1, attn_dp=8, moe_tp=1, moe_ep=8)
WIDE = ParallelConfig(tp=1, attn_dp=16, moe_tp=1, moe_ep=16)       # 16 GPUs: two 8-GPU nodes
SETTINGS = EngineSettings(model="Qwen/Qwen3-32B-FP8", max_model_len=4500, kv_dtype=Dtype.FP8, mem_fraction=0.9)
MOE_SETTINGS = EngineSettings(model="deepseek-ai/DeepSeek-R1", max_model_len=15500, kv_dtype=Dtype.BF16,
                              mem_fraction=0.85, is_moe=True)
GPUS_PER_NODE = 8


def metrics() -> Metrics:
    return Metrics(400.0, 15.0, 7885.0, 700.0, 66.7, 72.4, 0.8, Source.ROOFLINE)


def agg(backend: Backend, parallel: ParallelConfig = DENSE, workers: int = 1) -> Candidate:
    return Candidate(Mode.AGG, backend, "1.0", WorkerSetup(parallel, workers, 64, 8192), None, 1, 8, metrics(), 3)


def disagg(backend: Backend, prefill: ParallelConfig = MOE, decode: ParallelConfig = MOE, x: int = 1, y: int = 3,
           replicas: int = 2) -> Candidate:
    return Candidate(Mode.DISAGG, backend, None, WorkerSetup(decode, y, 256, 8192), WorkerSetup(prefill, x, 2, 16384),
                     replicas, 64, metrics(), 7)


def cases(backend: Backend) -> list[tuple[str, Candidate, EngineSettings]]:
    return [
        ("agg-one", agg(backend), SETTINGS),
        ("agg-replicas", agg(backend, ParallelConfig(tp=2), workers=3), SETTINGS),
        ("disagg-moe", disagg(backend), MOE_SETTINGS),
        ("disagg-wide-decode", disagg(backend, ParallelConfig(tp=4), WIDE, x=2, y=1, replicas=1), MOE_SETTINGS),
        ("disagg-dense-pp-prefill", disagg(backend, ParallelConfig(tp=2, pp=2), ParallelConfig(tp=2), x=1, y=2,
                                           replicas=1), SETTINGS),
    ]


ALL_CASES = [(b, name, c, s) for b in (Backend.VLLM, Backend.SGLANG, Backend.TRTLLM) for name, c, s in cases(b)]


def addresses(token: str, nodes: int = 16) -> str:
    """A launch.sh argument with its node addresses filled in (node k -> 10.0.0.k+1)."""
    for k in range(nodes):
        token = token.replace("${ADDR[%d]}" % k, f"10.0.0.{k + 1}")
    return token


def key_list(section: str) -> tuple[set[str], set[str]]:
    """(accepted, deprecated) names of one section of engine_keys/trtllm.txt."""
    accepted, deprecated, current = set(), set(), None
    for raw in (KEYS / "trtllm.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section:
            (deprecated if line.startswith("!") else accepted).add(line.lstrip("!"))
    if not accepted:
        raise KeyError(f"no section [{section}] in {KEYS / 'trtllm.txt'}")
    return accepted, deprecated
