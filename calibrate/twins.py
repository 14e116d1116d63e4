"""One measurement, one deployment: the facts of run-table rows that record the same measured run.

The training table lists some runs twice: 428 pairs of rows (856 of 2,437) carry the same point (backend,
system, model, mode, ISL, OSL, concurrency) and the same TTFT and TPOT (to 12 significant digits: 345 pairs
bit-identical, 83 printed a unit or two apart in the last digit), one row from each of two source files
(2026-03-25.csv and 2026-04-06.csv, whose `measured=` stamps name the same day). Thirty pairs record the
layout in two conventions (2026-04-06.csv writes tp x ep in `tp_size`, tp16 for the other's tp4 / ep4, or in `attention_dp_size`: what estimator.deployment.agg_layout resolves from the launch flags),
so the measurement, not the layout columns, identifies the run. Each row was matched to the configs of its
own source file, so twins could come out with contradictory facts: nine H100 SGLang DeepSeek-R1 runs were
replayed once with EAGLE and once without against one measurement, others disagreed on engine flags or
memory fractions, and a row that matched nothing had a twin that did.

`reconcile` gives every row of a measurement what all its rows' candidates allow: a value one row states
and no other contradicts is every twin's (a row whose own candidates disagreed, speculative decoding
`ambiguous` or a flag `key=?`, takes its twin's answer: the run is among both rows' candidates); values
that differ become unknown (speculative decoding `ambiguous`; engine flags flag by flag, `key=?`, as
calibrate.agree writes them).
Provenance (`enrich_*`) stays each row's own; `enrich_reason` names the twin. The table's own columns
(layout, and the worker counts the enrichment fills into them) are not touched.
"""
from __future__ import annotations

import math
from collections import defaultdict

from calibrate.agree import UNRESOLVED, agree
from estimator.run_facts import COLUMNS, SpecStatus, parse_flags

# the raw columns that identify one measured run, with the concurrency of `silicon_data_source`: its point
# and its two measurements (not the layout columns, which the source files write in two conventions, nor
# the backend version, which one file leaves empty for some rows)
POINT = ("backend", "model_path", "system", "precision", "mode", "isl", "osl")
MEASURED = ("silicon_ttft_ms", "silicon_tpot_ms")
# The two files print some of one run's means one or two units in the 17th digit apart (a TPOT of
# 23.31753080856876 in one, 23.317530808568762 in the other: the same mean, computed in another order):
# 83 of the training table's pairs. Two runs that agree to 12 digits in both TTFT and TPOT are one run
# (no two distinct rows of the table agree even to 8).
SAME_DIGITS = 12
PROVENANCE = tuple(c for c in COLUMNS if c.startswith("enrich_"))
_UNKNOWN = ("", SpecStatus.UNKNOWN.value)


def _key(raw: dict, concurrency: int | None) -> tuple | None:
    """The row's measurement (None for a row without both measured values): its point and its TTFT and
    TPOT to SAME_DIGITS significant digits."""
    values = [_measured(raw.get(c)) for c in MEASURED]
    if any(v is None for v in values):
        return None
    return (concurrency, *((raw.get(c) or "").strip() for c in POINT), *(f"{v:.{SAME_DIGITS}g}" for v in values))


def _measured(text: str | None) -> float | None:
    """A positive, finite measurement (an empty or `nan` cell identifies no run)."""
    try:
        v = float((text or "").strip())
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


_ABSENT = object()


def _merged_flags(texts: list[str]) -> str:
    """Flag by flag, what the twins' launch candidates all allow: a value some row leaves unresolved
    (`?`: its own candidates differ) takes the value another row states; values rows state differently,
    or a flag one row sets that another's launch omits, become `?` (calibrate.agree's convention)."""
    cands = [dict(parse_flags(t)) for t in texts]
    parts = []
    for k in sorted(set().union(*cands)):
        one = agree(v for c in cands if (v := c.get(k, _ABSENT)) != UNRESOLVED)
        if one is not _ABSENT:
            parts.append(f"{k}={UNRESOLVED if one is None else one}")
    return ";".join(parts)


def _merged(column: str, values: list[str]) -> str:
    """What the twins' values of one fact allow: the unknown ones (and, for speculative decoding, the
    `ambiguous` ones, whose candidates include either answer) yield to one a twin states; differing
    statements make it unknown (`ambiguous` for speculative decoding)."""
    spec = column == "spec_decoding"
    open_ = _UNKNOWN + ((SpecStatus.AMBIGUOUS.value,) if spec else ())
    stated = [v for v in values if v not in open_]
    if column == "engine_flags":
        return _merged_flags(stated) if stated else values[0]
    if not stated:
        return SpecStatus.AMBIGUOUS.value if spec and SpecStatus.AMBIGUOUS.value in values else values[0]
    one = agree(stated)
    if one is not None:
        return one
    return SpecStatus.AMBIGUOUS.value if spec else ""


def reconcile(raws: list[dict], extras: list[dict[str, str]], concurrency: list[int | None]) -> int:
    """Give the twins among `raws` (one measurement: `_key`) the facts they agree on, in `extras` (each
    row's COLUMNS, edited in place). Returns the number of rows whose facts changed."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, raw in enumerate(raws):
        key = _key(raw, concurrency[i])
        if key is not None:
            groups[key].append(i)
    changed = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        merged = {c: _merged(c, [extras[i][c] for i in members]) for c in COLUMNS if c not in PROVENANCE}
        if merged["spec_decoding"] != SpecStatus.ON.value:   # a method and depth only where it is on
            merged.update(spec_method="", spec_tokens="")
        for i in members:
            diff = [c for c, v in merged.items() if extras[i][c] != v]
            if not diff:
                continue
            changed += 1
            extras[i].update({c: merged[c] for c in diff})
            others = ", ".join(raws[j]["id"] for j in members if j != i)
            note = f"one measurement with {others}: facts where the rows agree ({', '.join(diff)})"
            extras[i]["enrich_reason"] = "; ".join(r for r in (extras[i].get("enrich_reason", ""), note) if r)
    return changed
