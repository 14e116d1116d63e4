"""What the candidate launch files of one measured row agree on.

A row can match several config points (or recipes, or Dynamo launch files) that the public configs cannot
tell apart without the measured results, which enrichment never reads. A fact is kept only where every
candidate states the same value (`agree`). Engine flags are agreed flag by flag (`agree_flags`): a flag
every candidate sets alike is kept as set; one they set differently, or that some set and others do not,
is written `key=?` (set by some, value unresolved; consumers then assume the engine's default, as for any
`?` in estimator.run_facts' engine_flags). Before, the whole flag string had to agree, so a row listed with
and without EAGLE lost every flag, `--scheduler-recv-interval` included.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

UNRESOLVED = "?"


def agree(values: Iterable) -> object | None:
    """The one value every candidate states; None when they differ (or there are none)."""
    s = set(values)
    return s.pop() if len(s) == 1 else None


def agree_flags(candidates: Iterable[Mapping[str, str]]) -> str | None:
    """`key=value;...` (sorted) of the flags every candidate sets alike, `key=?` for the rest; None when
    there is no candidate."""
    cands = [dict(c) for c in candidates]
    if not cands:
        return None
    keys = sorted(set().union(*cands))
    parts = []
    for k in keys:
        v = agree(c.get(k) for c in cands)
        parts.append(f"{k}={v if v is not None else UNRESOLVED}")
    return ";".join(parts)
