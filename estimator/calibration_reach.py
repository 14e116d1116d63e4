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
