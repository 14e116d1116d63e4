"""The srt-slurm recipes of one matched multi-node row (calibrate.inferencex.srtslurm): which of the
matching config points ran it, and the facts their recipes state.

Narrowing is by launch configuration only: a config point whose recipe's own `benchmark.concurrencies`
exclude the row's concurrency did not measure it (srtctl runs exactly the recipe's list), so it is
dropped, unless that would drop every point. Nothing is chosen from measured latencies or result files.
"""
from __future__ import annotations

from dataclasses import dataclass

from calibrate.agree import agree, agree_flags
from calibrate.inferencex.configs import ConfigPoint
from calibrate.inferencex.match import Match, Row
from calibrate.inferencex.repo import Repo
from calibrate.inferencex.srtslurm import Client, Recipe, recipe_at, runner_ref, sa_bench


@dataclass(frozen=True)
class Recipes:
    points: tuple[ConfigPoint, ...]       # the matching points left after narrowing
    recipes: tuple[Recipe, ...]           # theirs (empty unless every point's recipe was read)
    url: str
    notes: tuple[str, ...]                # why a recipe is not exactly the run's, what was dropped


def _recipe_path(p: ConfigPoint) -> str | None:
    for s in (*p.prefill.settings, *p.decode.settings):
        if s.startswith("CONFIG_FILE="):
            return s.split("=", 1)[1].strip()
    return None


def read(ix: Repo, srt: Repo, r: Row, m: Match) -> Recipes | None:
    """None when the row is not a multi-node point launched through srt-slurm."""
    pts = m.points
    if not pts or pts[0].decode is None:
        return None
    src = runner_ref(ix, m.commit, pts[0].runner.split("-")[0])
    if src is None:
        return Recipes(pts, (), "", (f"the {pts[0].runner} runner at {m.commit[:10]} names no single srt-slurm "
                                     "clone (before 2026-01-28 the runs cloned ai-dynamo/dynamo: --dynamo)",))
    url, ref = src
    found: dict[ConfigPoint, Recipe | None] = {}
    for p in pts:
        path = _recipe_path(p)
        found[p] = recipe_at(srt, ref, r.measured, path) if path else None
    ran = tuple(p for p in pts if found[p] is None or found[p].concs is None or r.conc in found[p].concs)
    notes = [n for n in dict.fromkeys(rec.note for rec in found.values() if rec is not None) if n]
    if ran and len(ran) < len(pts):
        notes.append(f"{len(pts) - len(ran)} of {len(pts)} matching config points dropped: their recipes' "
                     f"concurrencies exclude {r.conc}")
        pts = ran
    missing = [p for p in pts if found[p] is None]
    if missing:
        notes.append(f"no srt-slurm recipe read for {', '.join(sorted({_recipe_path(p) or p.key for p in missing}))}")
        return Recipes(pts, (), url, tuple(notes))
    return Recipes(pts, tuple(found[p] for p in pts), url, tuple(notes))


def recipe_concs(ix: Repo, srt: Repo, r: Row):
    """For match(concs_of=...): a multi-node point's recipe concurrencies at the row's time (srtctl runs
    the recipe's list, whatever the config's conc-list says); None when no recipe is read."""
    def concs(commit: str, p: ConfigPoint) -> tuple[int, ...] | None:
        src, path = runner_ref(ix, commit, p.runner.split("-")[0]), _recipe_path(p)
        rec = recipe_at(srt, src[1], r.measured, path) if src and path else None
        return rec.concs if rec is not None else None

    return concs


def _flags(rec: Recipe, attr: str = "flags") -> dict[str, str]:
    """A recipe's two engines' flags (or environments: `attr` "env") as engine_flags writes them."""
    return {f"{role}.{k}": v for role in ("prefill", "decode") for k, v in getattr(getattr(rec, role), attr).items()}


def facts(srt: Repo, got: Recipes, conc: int) -> tuple[dict, dict]:
    """(enrichment columns, worker-count fills) the recipes agree on; empty when none were read."""
    recs = got.recipes
    if not recs:
        return {}, {}
    out: dict = {"enrich_recipe": ",".join(sorted({rec.provenance(got.url) for rec in recs}))}
    fills = {}
    for col, attr in (("prefill_num_workers", "prefill_workers"), ("decode_num_workers", "decode_workers")):
        n = agree(getattr(rec, attr) for rec in recs)
        if n is not None:
            fills[col] = n
    for role in ("prefill", "decode"):
        roles = [getattr(rec, role) for rec in recs]
        out[f"{role}_dp_attn"] = agree(x.dp_attn for x in roles)
        out[f"{role}_ep"] = agree(x.ep for x in roles)
        for name in ("max_batch", "max_num_tokens", "mem_fraction", "cuda_graph_max_bs"):
            out[f"{role}_{name}"] = agree(getattr(x, name) for x in roles)
    spec = agree(rec.decode.spec for rec in recs)
    if spec:
        out["spec_tokens"] = agree(rec.decode.spec_tokens for rec in recs)
    out["engine_flags"] = agree_flags(_flags(rec) for rec in recs)
    out["engine_env"] = agree_flags(_flags(rec, "env") for rec in recs)
    out["frontends"] = agree(rec.frontends for rec in recs)
    clients = [_client(srt, rec, conc) for rec in recs]
    if all(c is not None for c in clients):
        out["client_num_prompts"] = agree(c.num_prompts for c in clients)
        out["client_num_warmups"] = agree(c.num_warmups for c in clients)
        out["client_range_ratio"] = agree(c.range_ratio for c in clients)
        out["client_warmup"] = "run" if out["client_num_warmups"] else None
        out["enrich_client"] = ",".join(sorted({f"{got.url}@{c.file}" for c in clients}))
    return out, fills


def _client(srt: Repo, rec: Recipe, conc: int) -> Client | None:
    """The sa-bench protocol at each commit the recipe was read at, where they agree."""
    if rec.bench != "sa-bench":
        return None
    found = [sa_bench(srt, c, conc, rec.range_ratio) for c in rec.commits]
    if any(c is None for c in found):
        return None
    return Client(num_prompts=agree(c.num_prompts for c in found), num_warmups=agree(c.num_warmups for c in found),
                  range_ratio=agree(c.range_ratio for c in found),
                  file=f"{'+'.join(c[:12] for c in rec.commits)}:{found[0].file}")
