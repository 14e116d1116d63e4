"""InferenceX (SemiAnalysisAI/InferenceX) result rows: the `agg_<result>.json` that utils/process_result.py
writes per benchmark point, a JSON array of such rows, or JSON lines of them.

Each row carries the deployment and the load (`hw`, `framework`, `precision`, `image`, `model`,
`isl`, `osl`, `conc`; single node: `tp`, `ep`, `dp_attention`, `pp`; multinode/disagg:
`prefill_/decode_` + `tp, ep, dp_attention, num_workers`, `num_prefill_gpu`, `num_decode_gpu`)
and the client's statistics re-expressed: latencies in SECONDS (the `_ms` suffix dropped and the
value divided by 1000: `mean_ttft`, `median_tpot`, `p99_itl`, ...); `tput_per_gpu` = total
(input + output) tokens/s over all GPUs; `output_tput_per_gpu` = output tokens/s over all GPUs,
but over DECODE GPUs only in disaggregated rows. Both are turned back into whole-deployment
throughputs here.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from calibrate.parsers.common import fail, load_json_objects, number, optional, prefixed_stat
from calibrate.runs import Client, Deployment, Load, MeasuredRun, Metrics, Mode, Role
from estimator.parallel import ParallelConfig
from perfdb.types import Backend

# InferenceX runner names (`hw`) -> perfdb system names.
_SYSTEMS = (("gb300", "gb300"), ("gb200", "gb200"), ("b300", "b300_sxm"), ("b200", "b200_sxm"),
            ("h200", "h200_sxm"), ("h100", "h100_sxm"), ("a100", "a100_sxm"))


def looks_like(record: dict) -> bool:
    return "tput_per_gpu" in record and "conc" in record


def system_of(path: Path, hw: str) -> str:
    name = str(hw).lower()
    for prefix, system in _SYSTEMS:
        if name.startswith(prefix):
            return system
    raise fail(path, f"hardware {hw!r} has no servecast system; known: {', '.join(p for p, _ in _SYSTEMS)}")


def backend_of(path: Path, framework: str) -> Backend:
    name = str(framework).lower()
    for key, backend in (("trt", Backend.TRTLLM), ("sglang", Backend.SGLANG), ("vllm", Backend.VLLM)):
        if key in name:
            return backend
    raise fail(path, f"framework {framework!r} is not one of trtllm/sglang/vllm")


def version_of(image: str) -> str:
    """Container tag without a leading v and CUDA suffix: lmsysorg/sglang:v0.5.9-cu130 -> 0.5.9."""
    tag = str(image).rsplit(":", 1)[-1] if ":" in str(image) else ""
    m = re.match(r"v?(\d+(?:\.\d+)+(?:[.\-]?(?:rc|post|dev)\d*)*(?:\.post\d+)?)", tag)
    return m.group(1) if m else ""


def _truthy(value: object) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def _parallel(tp: int, ep: int, dp_attention: bool, pp: int = 1) -> ParallelConfig:
    """InferenceX's TP is the GPUs per stage; with DP attention, attention runs data-parallel on them."""
    ep = max(ep, 1)
    if dp_attention:
        return ParallelConfig(tp=1, pp=pp, attn_dp=tp, moe_tp=max(tp // ep, 1), moe_ep=ep)
    return ParallelConfig(tp=tp, pp=pp, attn_dp=1, moe_tp=max(tp // ep, 1), moe_ep=ep)


def _deployment(path: Path, r: dict, where: str) -> Deployment:
    common = dict(model=str(r.get("model") or ""), system=system_of(path, r.get("hw", "")),
                  backend=backend_of(path, r.get("framework", "")), version=version_of(r.get("image", "")),
                  precision=str(r.get("precision") or ""))
    if _truthy(r.get("disagg")) or "num_decode_gpu" in r:
        roles = {}
        for side in ("prefill", "decode"):
            workers = int(number(path, r, f"{side}_num_workers", where))
            tp = int(number(path, r, f"{side}_tp", where))
            ep = int(optional(path, r, f"{side}_ep", where) if r.get(f"{side}_ep") is not None else 1)
            pp = int(r.get(f"{side}_pp") or 1)
            roles[side] = Role(parallel=_parallel(tp, ep, _truthy(r.get(f"{side}_dp_attention")), pp), workers=workers)
        return Deployment(mode=Mode.DISAGG, prefill=roles["prefill"], decode=roles["decode"], **common)
    tp = int(number(path, r, "tp", where))
    ep = int(r.get("ep") or 1)
    par = _parallel(tp, ep, _truthy(r.get("dp_attention")), int(r.get("pp") or 1))
    return Deployment(mode=Mode.AGG, agg=Role(parallel=par, workers=1), **common)


def parse_record(path: Path, r: dict, index: int, where: str = "") -> MeasuredRun:
    for key in ("conc", "isl", "osl", "mean_ttft", "mean_tpot", "tput_per_gpu"):
        number(path, r, key, where)
    dep = _deployment(path, r, where)
    total = number(path, r, "tput_per_gpu", where) * dep.num_gpus
    out_per_gpu = optional(path, r, "output_tput_per_gpu", where)
    output = out_per_gpu * dep.decode_gpus
    isl, osl = number(path, r, "isl", where), number(path, r, "osl", where)
    s_to_ms = 1000.0  # InferenceX latencies are in seconds
    metrics = Metrics(ttft=prefixed_stat(path, r, "ttft", where, s_to_ms), tpot=prefixed_stat(path, r, "tpot", where, s_to_ms),
                      itl=prefixed_stat(path, r, "itl", where, s_to_ms), e2el=prefixed_stat(path, r, "e2el", where, s_to_ms),
                      request_throughput=total / (isl + osl) if isl + osl > 0 else math.nan,
                      output_throughput=output, total_token_throughput=total)
    load = Load(isl=isl, osl=osl, concurrency=number(path, r, "conc", where))
    run_id = f"{Path(path).name}#{index}"
    return MeasuredRun(run_id=run_id, deployment=dep, load=load, metrics=metrics, client=Client.INFERENCEX,
                       source_file=str(path), measured_at=str(r.get("date") or ""))


def parse(path: Path) -> list[MeasuredRun]:
    return [parse_record(Path(path), r, i, where) for i, (where, r) in enumerate(load_json_objects(path), start=1)]
