"""Interpolation structure that a family's physics gives beyond its rectilinear grid.

Iso-work lines (linear attention: GDN / KDA / Mamba-2 mixers, `linear_prefill` / `linear_decode`).
The recurrent decode kernels (fla `fused_recurrent_gated_delta_rule` / `fused_recurrent_kda` and the
SGLang, vLLM and TRT-LLM ports) launch one program per (request, value head) state, and the chunked
prefill kernels (`chunk_gated_delta_rule`, `chunk_kda`) one per (request, value head) x chunk. How
full the GPU is, and so the achieved utilisation, follows the number of head-states in flight,
batch x num_v_heads, not how it splits into requests and heads: in the aiconfigurator-core 0.12.0
b200_sxm SGLang decode table every (batch, value heads) pair with batch x heads = 256, from (128, 2)
to (4, 64), reaches 45.0% of its roofline, and at 512 all reach 54.0-54.7%; the prefill tables
agree within ~2% at every sequence length. The key heads enter as the value heads sharing one key
head (v / k, as in GQA), which sets the q/k share of the bytes that sol_ms carries.
So the grid nodes with equal (batch x num_v_heads, seq_len, num_v_heads / num_k_heads) lie on one
line along num_v_heads on which utilisation is nearly flat (decode: also across v / k, a looser line
tried second). perfdb.interp estimates a missing node from its nearest measured neighbours on that
line (linear in log num_v_heads between two, held from one) and weighs that against the grid-line and
plane estimates as ISO_RULES says. The stored grid stays the interpolation grid: a node is still one
stored shape, so exact hits stay exact.

Tied axes. An axis whose values are a one-to-one function of an earlier axis' in a group's rows
spans one diagonal of its grid (a KDA table's key and value head counts are equal: 12/12 ... 96/96):
every off-diagonal node is missing and no line or plane through measured nodes reaches it, so the
grid keeps the earlier axis.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdb.types import OpKind

_LINEAR_KINDS = (OpKind.LINEAR_PREFILL, OpKind.LINEAR_DECODE)


@dataclass(frozen=True)
class IsoRule:
    """How a missing node's iso-work estimate enters its fill: votes in the median of grid estimates when
    measured nodes on both sides of the line bracket it (None: it answers alone) and when only one side
    has one (the nearest held)."""

    two_sided: int | None
    one_sided: int


# Decode: batch x heads is exactly the kernel's parallel work (one program per request x value head), so
# a bracketed line answers; a value held from one side is weaker (tables timed near the launch floor
# step by ~2 us: vLLM KDA batch 1 runs 6.5 us where batch 2 runs 9-11 us) and gets 3 votes. Prefill:
# the engines pack a batch's sequences into one varlen stream (cu_seqlens) whose per-sequence cost makes
# the law approximate (vLLM 0.24.0 KDA prefill at 32,768 tokens and head_batch 96: 9.2% for 96 heads x
# 1 request, 4.6% for 12 x 8): 2 votes either way. Figures of the alternatives: docs/bench/perfdb-lookup.md.
ISO_RULES: dict[OpKind, IsoRule] = {OpKind.LINEAR_DECODE: IsoRule(None, 3), OpKind.LINEAR_PREFILL: IsoRule(2, 2)}


def iso_coordinates(kind: OpKind, axes: tuple[str, ...], raw: np.ndarray) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Keys of each row's iso-work lines, strict first ((n, m) arrays: head_batch, the other axes and
    v_per_k; then without v_per_k), and its position along them; None when the family has none."""
    if kind not in _LINEAR_KINDS or not {"batch", "num_v_heads", "num_k_heads"} <= set(axes):
        return None
    b, v, k = (raw[:, axes.index(a)] for a in ("batch", "num_v_heads", "num_k_heads"))
    loose = np.stack([b * v] + [raw[:, j] for j, a in enumerate(axes)
                                if a not in ("batch", "num_v_heads", "num_k_heads")], axis=1)
    strict = np.concatenate([loose, (v / np.maximum(k, 1e-9))[:, None]], axis=1)
    return ([strict, loose] if kind == OpKind.LINEAR_DECODE else [strict]), np.log(np.maximum(v, 1e-9))


class IsoLines:
    """Measured grid nodes grouped by iso-work line, ordered along it (see the module docstring)."""

    def __init__(self, levels: list[np.ndarray], pos: np.ndarray, nodes: np.ndarray):
        """levels: key arrays (m, k_l), strict first; pos (m,), nodes (m,): one entry per measured node."""
        self.levels = [self._lines(keys, pos, nodes) for keys in levels]

    @staticmethod
    def _lines(keys: np.ndarray, pos: np.ndarray, nodes: np.ndarray) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
        lines: dict[tuple, tuple[list, list]] = {}
        order = np.lexsort((pos, *keys.T[::-1]))
        for key, p, node in zip(map(tuple, keys[order]), pos[order], nodes[order], strict=True):
            ps, ns = lines.setdefault(key, ([], []))
            ps.append(p)
            ns.append(node)
        return {k: (np.array(ps), np.array(ns)) for k, (ps, ns) in lines.items() if len(ps) > 1}

    def estimate(self, levels: list[np.ndarray], pos: np.ndarray, logu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log util of each asked node from the measured nodes on its strictest line that has any (NaN
        where none has), and whether measured nodes on both sides bracket it."""
        out, two_sided = np.full(len(pos), np.nan), np.zeros(len(pos), bool)
        for lines, keys in zip(self.levels, levels, strict=True):
            todo = np.flatnonzero(np.isnan(out))
            for i in todo:
                out[i], two_sided[i] = self._on_line(lines.get(tuple(keys[i])), pos[i], logu)
        return out, two_sided

    @staticmethod
    def _on_line(line: tuple[np.ndarray, np.ndarray] | None, p: float, logu: np.ndarray) -> tuple[float, bool]:
        """Linear in position between the nearest measured nodes on either side, else the nearest held."""
        if line is None:
            return np.nan, False
        ps, ns = line
        vals = logu[ns]
        ok = ~np.isnan(vals) & (ps != p)
        below, above = np.flatnonzero(ok & (ps < p)), np.flatnonzero(ok & (ps > p))
        if below.size and above.size:
            jb, ja = below[-1], above[0]
            return vals[jb] + (p - ps[jb]) / (ps[ja] - ps[jb]) * (vals[ja] - vals[jb]), True
        if below.size or above.size:
            return (vals[below[-1]] if below.size else vals[above[0]]), False
        return np.nan, False


def tied_axes(raw: np.ndarray) -> dict[int, tuple[int, np.ndarray, np.ndarray]]:
    """Axes whose values are a one-to-one function of an earlier axis' in these rows (module docstring).

    Returns {j: (i, values of i sorted, the value of j at each)}.
    """
    ties: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
    levels = [np.unique(raw[:, j]) for j in range(raw.shape[1])]
    for j in range(raw.shape[1]):
        for i in range(j):
            if i in ties or len(levels[i]) < 2 or len(levels[i]) != len(levels[j]):
                continue
            pairs = np.unique(raw[:, [i, j]], axis=0)
            if len(pairs) == len(levels[i]):   # as many pairs as values on each side: a bijection
                ties[j] = (i, pairs[:, 0], pairs[:, 1])
                break
    return ties
