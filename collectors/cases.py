"""Case generation shared by every op family: grids, point expansion, keys and coarse-first order.

A *point* case has 0-d numeric fields; the runner measures points. Model-driven cases (from the
estimator, via the CLI) may carry arrays: `points` expands them.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Iterable, Sequence

import numpy as np

from perfdb.ops import OpCase
from perfdb.schema import key_columns

CaseKey = tuple


def pow2(lo: int, hi: int) -> list[int]:
    """Powers of two from lo to hi inclusive."""
    out, v = [], lo
    while v <= hi:
        out.append(v)
        v *= 2
    return out


def product(cls: type[OpCase], fixed: dict, axes: dict[str, Sequence[int]], keep=None) -> list[OpCase]:
    """Point cases over the Cartesian product of `axes`, optionally filtered by keep(**point)."""
    names = list(axes)
    out = []
    for values in itertools.product(*(axes[n] for n in names)):
        point = dict(zip(names, values, strict=True))
        if keep is None or keep(**point):
            out.append(cls(**fixed, **point))
    return out


def points(case: OpCase) -> list[OpCase]:
    """Expand an array case into unique point cases (integers along every numeric axis)."""
    flat = {n: np.rint(getattr(case, n)).astype(np.int64).ravel() for n in case.NUMERIC}
    seen, out = set(), []
    for i in range(case.shape and int(np.prod(case.shape)) or 1):
        values = tuple(int(flat[n][i]) for n in case.NUMERIC)
        if values in seen:
            continue
        seen.add(values)
        out.append(dataclasses.replace(case, **dict(zip(case.NUMERIC, values, strict=True))))
    return out


def key(case: OpCase) -> CaseKey:
    """The case's values in perfdb key-column order (categoricals as stored, numerics as int)."""
    cats = case.categoricals()
    return tuple(cats[c] if c in cats else int(getattr(case, c)) for c in key_columns(case.KIND))


def dedupe(cases: Iterable[OpCase]) -> list[OpCase]:
    seen, out = set(), []
    for case in cases:
        for p in points(case):
            k = (p.KIND, key(p))
            if k not in seen:
                seen.add(k)
                out.append(p)
    return out


def _level(index: int) -> int:
    """Refinement level of position `index` on an axis: 0 for every 4th-ish point first (bit-reversal)."""
    if index == 0:
        return 0
    return 32 - (index & -index).bit_length()


def coarse_first(cases: list[OpCase]) -> list[OpCase]:
    """Order cases so that any prefix covers every axis evenly: a budget-truncated run is a coarse grid.

    Each value of a numeric axis (per op family) gets a refinement level by its position among the
    axis' sorted values (ends and every 2^k-th position first); a case's level is its worst axis'.
    Families interleave, so a short run samples every family.
    """
    ranks: dict[tuple, dict[int, int]] = {}
    for kind in {c.KIND for c in cases}:
        family = [c for c in cases if c.KIND == kind]
        for name in family[0].NUMERIC:
            values = sorted({int(getattr(c, name)) for c in family})
            ranks[kind, name] = {v: 0 if i == len(values) - 1 else _level(i) for i, v in enumerate(values)}

    def score(c: OpCase) -> tuple:
        levels = [ranks[c.KIND, n][int(getattr(c, n))] for n in c.NUMERIC]
        return (max(levels), sum(levels))

    return sorted(cases, key=score)
