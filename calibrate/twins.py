"""One measurement, one deployment: the facts of run-table rows that record the same measured run.

The training table lists some runs twice: 419 pairs of rows (838 of 2,437) carry the same point (backend,
system, model, mode, ISL, OSL, concurrency), the same recorded layout and bit-identical TTFT and TPOT, one
row from each of two source files (e.g. 2026-03-25.csv and 2026-04-06.csv, whose `measured=` stamps name
the same day). Each row was matched to the configs of its own source file, so twins could come out with
contradictory facts: 16 pairs disagreed on speculative decoding (ten H100 SGLang DeepSeek-R1 runs were
replayed once with EAGLE and once without, against one measurement), others on engine flags or memory
fractions; one row of a pair matched nothing while its twin did.

`reconcile` gives every row of a measurement the facts its rows agree on (calibrate.agree): a value one
row states and no other contradicts is every twin's; values that differ become unknown (speculative
decoding: `ambiguous`, as when one row's own candidates disagree; engine flags flag by flag, `key=?`).
Twins whose recorded layouts differ (the table lists 30 measurements under two layouts: 18 with two
tensor-parallel sizes, 12 with and without attention DP) are left as they are: which layout ran is the
table's own contradiction, not something the configs settle. On the training table 18 rows change (nine
H100 SGLang pairs, all listed once with EAGLE and once without: now `ambiguous`).
Provenance (`enrich_*`) stays each row's own; `enrich_reason` names the twin. The worker counts the
enrichment fills into the table's own columns are not reconciled (two pairs differ there).
"""
from __future__ import annotations

from collections import defaultdict

from calibrate.agree import agree, agree_flags
from estimator.run_facts import COLUMNS, SpecStatus

# the raw columns that identify one measured run (with the concurrency of `silicon_data_source`)
MEASURED = ("silicon_ttft_ms", "silicon_tpot_ms")
PROVENANCE = tuple(c for c in COLUMNS if c.startswith("enrich_"))
_UNKNOWN = ("", SpecStatus.UNKNOWN.value)


def _key(raw: dict, concurrency: int | None, ignore: frozenset[str]) -> tuple | None:
    """The row's measurement and recorded layout: every raw column but its id, source and the worker counts
    the enrichment fills (None for a row without both measurements)."""
    if not all((raw.get(c) or "").strip() for c in MEASURED):
        return None
    return (concurrency, *((k, (v or "").strip()) for k, v in sorted(raw.items()) if k not in ignore))


def _flags(text: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in text.split(";") if "=" in p)


def _merged(column: str, values: list[str]) -> str:
    stated = [v for v in values if v not in _UNKNOWN]
    if not stated:
        return values[0]
    if column == "engine_flags":
        return agree_flags(_flags(v) for v in stated) or ""
    one = agree(stated)
    if one is not None:
        return one
    return SpecStatus.AMBIGUOUS.value if column == "spec_decoding" else ""


def reconcile(raws: list[dict], extras: list[dict[str, str]], concurrency: list[int | None],
              ignore: frozenset[str]) -> int:
    """Give the twins among `raws` (same measurement and recorded layout) the facts they agree on, in
    `extras` (each row's COLUMNS, edited in place). `ignore`: raw columns that do not identify a run (id,
    source, filled worker counts). Returns the number of rows whose facts changed."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, raw in enumerate(raws):
        key = _key(raw, concurrency[i], ignore)
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
