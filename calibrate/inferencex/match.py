"""One run-table row -> the InferenceX config points that produced it, and the facts they state.

A row matches a point when model (by model-prefix), GPU (runner), engine (framework), precision,
ISL/OSL, concurrency (in the point's sweep) and the recorded parallelism agree, at the main-line commit
in effect at the row's `measured=` time; when the row names its container `image=`, the point's image
must be the same. Runs often ran from a branch merged shortly after: when the commit in effect has
no match, the next commits that changed the configs (MAX_LATER of them) are tried, and the commit that
matched is the provenance. Several matching points that disagree on a fact leave that fact unknown
(worker counts) or say so (spec decoding `ambiguous`): nothing is ever chosen from measured latencies.

Parallelism as the table records it (its curation from InferenceX result rows): `tp_size` /
`prefill_tp_size` / `decode_tp_size` are the config's tp, `moe_ep_size` / `prefill_moe_ep_size` the
config's ep; the decode moe columns repeat the prefill ep (decode_moe_tp = decode tp / prefill ep), so
the decode ep is read from the config only, and attention-DP is not recorded (always 1).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from calibrate.inferencex.configs import MASTER, ConfigPoint, points_at
from calibrate.inferencex.repo import Repo

MAX_LATER = 40
# model-prefix of the configs -> model names the run tables use for it. The training table labels
# InferenceX's Llama-3.3-70B-Instruct runs "Llama-3.1-70B" (the same architecture).
MODEL_PREFIXES = {"dsr1": ("deepseek-r1",), "gptoss": ("gpt-oss-120b",), "70b": ("llama-3.1-70b", "llama-3.3-70b")}
_INFERENCEX_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.csv$")


@dataclass(frozen=True)
class Row:
    """The fields of a run-table row that matching uses."""

    id: str
    source_file: str
    measured: str
    image: str
    model: str
    system: str
    backend: str
    precision: str
    mode: str
    isl: int
    osl: int
    conc: int | None
    tp: int | None
    ep: int | None
    prefill_tp: int | None
    prefill_ep: int | None
    decode_tp: int | None

    @property
    def inferencex(self) -> bool:
        return bool(_INFERENCEX_FILE.match(self.source_file))


@dataclass(frozen=True)
class Match:
    commit: str
    points: tuple[ConfigPoint, ...]
    image_checked: bool
    reason: str = ""          # why there is no match (points empty)


def _model_ok(p: ConfigPoint, model: str) -> bool:
    name = model.split("/")[-1].lower()
    return any(name.startswith(a) for a in MODEL_PREFIXES.get(p.prefix, ()))


def _agg_images(c) -> set[tuple[int, int]]:
    """(tp_size, moe_ep_size) the table records for an aggregated config: as written; with attention-DP
    tp_size 1; without it and ep > 1, tp x ep (how the curation wrote those rows)."""
    out = {(c.tp, c.ep)}
    out.add((1, c.ep) if c.dp_attn else (c.tp * c.ep, c.ep))
    return out


def records_deployment(p: ConfigPoint, r: Row) -> bool:
    """True where a disaggregated row writes the point's whole deployment in both tp columns, ep 1: the
    early rows' (2025-12) convention, tp20 for one tp4 prefill and one tp16 decode worker. Such a row's
    tp is no worker's: each role's GPUs are its config's tp (calibrate.enrich records them)."""
    pre, dec = p.prefill, p.decode
    total = pre.tp * pre.workers + dec.tp * dec.workers
    return r.prefill_tp == r.decode_tp == total and r.prefill_ep in (None, 1)


def _disagg_ok(p: ConfigPoint, r: Row) -> bool:
    pre, dec = p.prefill, p.decode
    if pre.tp == r.prefill_tp and dec.tp == r.decode_tp and (r.prefill_ep is None or pre.ep == r.prefill_ep):
        return True
    return records_deployment(p, r)


def _parallel_ok(p: ConfigPoint, r: Row) -> bool:
    if r.mode == "disagg":
        return p.prefill is not None and _disagg_ok(p, r)
    return p.agg is not None and (r.tp, r.ep or 1) in _agg_images(p.agg)


def _conc_ok(p: ConfigPoint, r: Row) -> bool:
    """The row's concurrency is a swept one, or (multi-node recipes that set it per decode worker) one of
    them times the decode workers."""
    return r.conc in p.concs or (p.decode is not None and r.conc in {c * p.decode.workers for c in p.concs})


def candidates(points: list[ConfigPoint], r: Row,
               concs_of: Callable[[ConfigPoint], tuple[int, ...] | None] | None = None) -> list[ConfigPoint]:
    """Points matching the row; a point that sweeps the row's concurrency itself outranks one that
    reaches it only as conc x decode workers. With `concs_of` (a multi-node point's recipe concurrencies)
    the concurrency is matched against those instead of the config's."""
    def conc_ok(p: ConfigPoint) -> bool:
        return _conc_ok(p, r) if concs_of is None else p.decode is not None and r.conc in (concs_of(p) or ())

    found = [p for p in points if p.system == r.system and p.backend == r.backend and p.precision == r.precision
             and p.isl == r.isl and p.osl == r.osl and _model_ok(p, r.model) and _parallel_ok(p, r)
             and conc_ok(p)]
    direct = [p for p in found if r.conc in p.concs]
    return direct or found


def _commits(repo: Repo, r: Row) -> list[str]:
    first = repo.commit_at(r.measured)
    if first is None:
        return []
    later = repo.later_changes(first, MASTER, MAX_LATER)
    return [first, *later]


def match(repo: Repo, r: Row, concs_of: Callable[[str, ConfigPoint], tuple[int, ...] | None] | None = None) -> Match:
    """The row's config points (module doc). `concs_of(commit, point)`: match the concurrency on what the
    point's launch recipe runs instead of the config's list (calibrate.enrich_recipes)."""
    if not r.inferencex:
        return Match("", (), False, "not an InferenceX run (another harness: its configs are not in this repository)")
    if not r.measured or r.conc is None:
        return Match("", (), False, "row has no measured= time or no concurrency")
    tried = _commits(repo, r)
    if not tried:
        return Match("", (), False, f"measured {r.measured}, before the repository's first commit")
    loose: Match | None = None
    for commit in tried:
        _, points = points_at(repo, commit)
        found = candidates(points, r, None if concs_of is None else partial(concs_of, commit))
        if not found:
            continue
        same = [p for p in found if p.image == r.image] if r.image else found
        if same:
            return Match(commit, tuple(same), bool(r.image))
        loose = loose or Match(commit, tuple(found), False)
    if loose is not None:
        return loose          # the deployment is listed, under another image tag than the row's
    return Match(tried[0], (), False, f"no config point for {r.model} {r.system} {r.backend} {r.precision} "
                                      f"{r.mode} {r.isl}/{r.osl} conc {r.conc} with this parallelism at "
                                      f"{tried[0][:10]} or the {len(tried) - 1} config changes after it")
