"""The Dynamo-era multi-node rows (before 2026-01-28; calibrate.inferencex.dynamo): per-role engine limits
from the config's dynamo-trt settings, and with a Dynamo clone (`--dynamo`) the dynamo-sglang workers'
engines and the benchmark client at the commit the launch script checked out. A fact is kept where every
matching config point agrees; nothing is chosen from measured values.
"""
from __future__ import annotations

from calibrate.agree import agree, agree_flags
from calibrate.inferencex.configs import ConfigPoint
from calibrate.inferencex.dynamo import TRT_SETTINGS, DynamoRecipe, dynamo_commit, launch, sglang_recipe, trt_limits
from calibrate.inferencex.match import Row
from calibrate.inferencex.repo import Repo
from calibrate.inferencex.scripts import find_script, run_env

_FIELDS = ("dp_attn", "ep", "max_batch", "max_num_tokens", "mem_fraction", "cuda_graph_max_bs")


def _column(role: str, name: str) -> str:
    return "spec_tokens" if name == "spec_tokens" else f"{role}_{name}"


def read(ix: Repo, dyn: Repo | None, r: Row, commit: str, pts: tuple[ConfigPoint, ...]) -> tuple[dict, list[str]]:
    """(enrichment columns, notes) of a Dynamo-era multi-node row; empty for any other row."""
    if not pts or pts[0].decode is None or not all(p.framework.startswith("dynamo-") for p in pts):
        return {}, []
    out: dict = {}
    if all(p.framework == "dynamo-trt" for p in pts):
        limits = [trt_limits(p) for p in pts]
        for key in TRT_SETTINGS.values():
            out[_column(*key)] = agree(lim.get(key) for lim in limits)
    if dyn is None or not all(p.framework == "dynamo-sglang" for p in pts):
        return out, []
    recs: list[DynamoRecipe] = []
    for p in pts:
        got = _sglang(ix, dyn, r, commit, p)
        if not isinstance(got, DynamoRecipe):     # None: the launch script clones no Dynamo (not this era)
            return out, [got] if got else []
        recs.append(got)
    out.update(_recipe_columns(recs))
    return out, []


def _sglang(ix: Repo, dyn: Repo, r: Row, commit: str, p: ConfigPoint) -> DynamoRecipe | str | None:
    """The point's Dynamo launch; a note when it is not read; None when its launch script clones no single
    Dynamo at one ref."""
    script = find_script(ix, commit, p)
    lx = launch(ix, commit, script, p, run_env(p, r.conc or 0, None)) if script else None
    if lx is None:
        return None
    at = dynamo_commit(dyn, lx.ref, r.measured)
    if at is None:
        return f"Dynamo {lx.url} {lx.ref} (the launch script's) is not in the --dynamo clone: not read"
    return sglang_recipe(dyn, at, lx, p.concs, r.conc or 0)


def _recipe_columns(recs: list[DynamoRecipe]) -> dict:
    out: dict = {"enrich_recipe": ",".join(sorted({x.provenance for x in recs}))}
    for role in ("prefill", "decode"):
        roles = [getattr(x, role) for x in recs]
        for name in _FIELDS:
            out[f"{role}_{name}"] = agree(getattr(x, name) for x in roles)
        out[f"{role}_gpus"] = agree(x.tp for x in roles)
    if agree(x.decode.spec for x in recs):
        out["spec_tokens"] = agree(x.decode.spec_tokens for x in recs)
    out["engine_flags"] = agree_flags({f"{role}.{k}": v for role in ("prefill", "decode")
                                       for k, v in getattr(x, role).flags.items()} for x in recs)
    clients = [x.client for x in recs]
    if all(c is not None for c in clients):
        out["client_num_prompts"] = agree(c.num_prompts for c in clients)
        out["client_num_warmups"] = agree(c.num_warmups for c in clients)
        out["client_range_ratio"] = agree(c.range_ratio for c in clients)
        out["client_warmup"] = "sweep" if out["client_num_warmups"] else None
        out["enrich_client"] = ",".join(sorted({c.file for c in clients}))
    return out
