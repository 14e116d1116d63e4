"""How new a query is to a calibration (`Novelty`), and which parts of the correction reach it (`Reach`).

estimator.calibration applies them; calibrate.heldout decides them from held-out rows."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Novelty(str, Enum):
    """How new a query's (system, backend, mode, model) is to a calibration, narrowest first."""

    SCOPE = "scope"      # the fit had runs of this (system, backend, mode, model): a new deployment of it
    PAIR = "pair"        # ... of this model in this mode on this system, with another backend
    SYSTEM = "system"    # ... of this model in this mode, never on this system
    MODEL = "model"      # a model the fit never saw in this mode (agg / disagg), on a system it saw
    BOTH = "both"        # neither the model in this mode nor the system


@dataclass(frozen=True)
class Seen:
    """What a fit's (system, backend, mode, model_key) scopes cover, indexed for `novelty`."""

    scopes: frozenset
    placed: frozenset      # (system, mode, model)
    modeled: frozenset     # (mode, model): a model counts as seen per serving mode
    systems: frozenset

    @staticmethod
    def of(fitted) -> "Seen":
        return Seen(frozenset(fitted), frozenset((s, mo, m) for s, _, mo, m in fitted),
                    frozenset((mo, m) for _, _, mo, m in fitted), frozenset(s for s, *_ in fitted))

    def novelty(self, system: str, backend: str | None, mode: str, model: str) -> Novelty:
        """How new (system, backend, mode, model_key) is (backend None: any backend's scope counts); nothing
        recorded: SCOPE. A model counts as seen only in the serving mode it was fitted in: what decides a
        disaggregated TTFT (prefill pools' queues, the KV hand-off) is not what decides an aggregated one, so
        a model's agg runs are no evidence for its disagg correction (the disagg factor, fitted on
        DeepSeek-R1 multi-node runs, must not reach a same-node dense model's disagg plan unless the
        held-out rows of models new to disagg show it helps: `Reach`)."""
        if not self.scopes or (system, backend, mode, model) in self.scopes or \
                (backend is None and (system, mode, model) in self.placed):
            return Novelty.SCOPE
        if (system, mode, model) in self.placed:
            return Novelty.PAIR
        if (mode, model) in self.modeled:
            return Novelty.SYSTEM
        return Novelty.MODEL if system in self.systems else Novelty.BOTH


PARTS = ("factor", "residual")
# levels whose reach is decided on held-out evidence; narrower ones always get both parts (grouped CV by
# deployment is their evidence), BOTH gets a part only where SYSTEM and MODEL both do
DECIDED = (Novelty.SYSTEM, Novelty.MODEL)


@dataclass(frozen=True)
class Reach:
    """Whether `part` (the per-mode "factor" or the "residual" trees) of `metric` reaches queries of
    `novelty`, and the held-out evidence: median |error| % of the `n_rows` held-out rows of that
    novelty with the part applied and without it (the other part as decided)."""

    novelty: str
    metric: str
    part: str
    applied: bool
    n_rows: int
    with_pct: float | None
    without_pct: float | None
