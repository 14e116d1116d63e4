"""The calibration artifact (plain data) and how it corrects an Estimate.

`calibrate` fits it from measured runs; the estimator only applies it. It is JSON: per-scope
multiplicative factors on TTFT (prefill phase) and TPOT (decode phase), a small residual model on
load features stored as numbers (gradient-boosted regression trees as threshold arrays, or linear
coefficients), and 80% prediction intervals from cross-validated residuals. Loading one executes
nothing.

Correction of one metric (times in ms; all arithmetic in log space):
    log(corrected) = log(predicted) + factor[scope] + residual(features)
    interval       = corrected * exp(q10[mode]), corrected * exp(q90[mode])
A scope is (system, backend, version, mode, model, weights); a key field "*" matches anything, and the
narrowest matching scope wins, so scopes the fit had too little data for fall back to wider ones.
Model-specific corrections stay with their model (`model_key`): a model the fit never saw gets only the
model-wide scopes, because kernel-table biases differ per architecture and one model's factor hurts
another's. The narrowest scope also names the served weights' numerics (`weights_label`): an FP8 and an
FP4 checkpoint of one model run different GEMM and MoE kernels, priced from different tables, whose
biases differ (BENCHMARKS.md, the twenty-fourth session).

How new a query is to the fit (`Novelty`, from the (system, backend, mode, model) scopes it was fitted
on) decides two things: which parts of the correction reach it (`Reach`: a per-mode factor or the
residual trees reach an unseen model or system only where held-out evidence showed they help there),
and which interval it gets (quantiles of held-out residuals of rows exactly that new to their fit).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from estimator.calibration_features import (
    FEATURES,
    UNSTATED_WEIGHT_BITS,
    FeatureInputs,
    feature_matrix,
    model_weight_bits,
    weights_label,
)
from estimator.calibration_reach import DECIDED, Novelty, Reach, Seen
from estimator.trees import Trees
from perfdb.errors import DataError
from perfdb.types import Phase, Source

if TYPE_CHECKING:
    from estimator.models.spec import ModelSpec

FORMAT, FORMAT_VERSION = "servecast-calibration", 6   # v6: scopes name the weights' numerics
ARTIFACT_FILE = "calibration.json"
ANY = "*"
METRIC_PHASE = {"ttft": Phase.PREFILL, "tpot": Phase.DECODE}
def model_key(name: str) -> str:
    """The model a scope names (estimator.models.catalog.family_name): every checkpoint of one
    architecture shares corrections — Qwen/Qwen3-32B-FP8 and Qwen/Qwen3-32B, meta-llama/Llama-3.1-70B
    and nvidia/Llama-3.1-70B-Instruct-FP8 — since the numerics are a separate recorded field of every run."""
    from estimator.models.catalog import family_name

    return family_name(name)


@dataclass(frozen=True)
class Scope:
    system: str = ANY
    backend: str = ANY
    version: str = ANY
    mode: str = ANY
    model: str = ANY             # model_key of the model (added in format v2)
    weights: str = ANY           # weights_label of the served weights (added in format v6)

    def _fields(self) -> tuple[str, ...]:
        return (self.system, self.backend, self.version, self.mode, self.model, self.weights)

    def matches(self, system: str, backend: str, version: str, mode: str, model: str = "",
                weights: str = "") -> bool:
        return all(mine in (ANY, theirs) for mine, theirs in
                   zip(self._fields(), (system, backend, version, mode, model, weights), strict=True))

    @property
    def width(self) -> int:
        return sum(v == ANY for v in self._fields())

    def label(self) -> str:
        """system/backend/version/mode, then /model and ` <bits>b` (the weights) when the scope names them."""
        head = "/".join(self._fields()[:4])
        head = head if self.model == ANY else f"{head}/{self.model}"
        return head if self.weights == ANY else f"{head} {self.weights}b"


@dataclass(frozen=True)
class Factor:
    """exp(log_factor) multiplies the prediction of `metric` in `scope`; n_rows/n_deployments say what it rests on."""

    scope: Scope
    metric: str                  # ttft | tpot
    log_factor: float
    n_rows: int
    n_deployments: int


@dataclass(frozen=True)
class Residual:
    """Residual log-correction of `metric` as a function of FEATURES (after the scope factor)."""

    metric: str
    features: tuple[str, ...]
    trees: Trees | None = None
    coef: tuple[float, ...] = ()     # linear alternative: intercept + coef . features
    intercept: float = 0.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        if tuple(self.features) != FEATURES:
            raise DataError(f"calibration residual model uses features {self.features}; this servecast computes "
                            f"{FEATURES}: refit with `servecast calibrate fit`")
        if self.trees is not None:
            return self.trees.predict(x)
        return self.intercept + x @ np.asarray(self.coef, dtype=np.float64)


@dataclass(frozen=True)
class IntervalQuantiles:
    """Quantiles of held-out log(measured / calibrated) for `metric` in `mode` ("*" = all), from rows as
    new to the fit that predicted them as `novelty` (a Novelty value) says."""

    metric: str
    mode: str
    lo: float            # log quantile at (1 - coverage) / 2
    hi: float            # log quantile at (1 + coverage) / 2
    coverage: float
    n_rows: int
    novelty: str = Novelty.SCOPE.value


@dataclass(frozen=True)
class Calibration:
    factors: tuple[Factor, ...]
    residuals: tuple[Residual, ...]
    intervals: tuple[IntervalQuantiles, ...]
    base: str = "estimate"           # which prediction was corrected: estimate (analytic) | simulate
    statistic: str = "mean"          # the client statistic fitted (mean TTFT/TPOT)
    notes: tuple[str, ...] = ()      # fallbacks and caveats, in words
    training: dict = field(default_factory=dict)   # summary: rows, deployments, source files, CV errors
    # which parts reach an unseen model / system, decided on held-out rows (none recorded: neither does)
    reach: tuple[Reach, ...] = ()
    fitted: tuple[tuple[str, str, str, str], ...] = ()   # (system, backend, mode, model_key) of the training rows

    @cached_property
    def id(self) -> str:
        """Content hash of everything that changes predictions (not the training summary). Cached: the
        instance is frozen, and hashing a fitted 2 x 100-tree model costs ~0.1 s (plan asks for it often)."""
        payload = json.dumps(_plain({f.name: getattr(self, f.name) for f in fields(self)
                                     if f.name not in ("notes", "training")}),
                             sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def factor(self, metric: str, system: str, backend: str, version: str, mode: str,
               model: str = "", weights: str = "") -> Factor | None:
        """The narrowest factor covering the key (model: a model_key; "" matches model-wide scopes only;
        weights: a weights_label, "" matches scopes that name none)."""
        cands = [f for f in self.factors
                 if f.metric == metric and f.scope.matches(system, backend, version, mode, model, weights)]
        return min(cands, key=lambda f: f.scope.width) if cands else None

    def residual(self, metric: str) -> Residual | None:
        return next((r for r in self.residuals if r.metric == metric), None)

    @cached_property
    def _seen(self) -> Seen:
        return Seen.of(self.fitted)

    def novelty(self, system: str, backend: str | None, mode: str, model: str) -> Novelty:
        """How new (system, backend, mode, model_key) is to the fit (`Seen.novelty`: per serving mode)."""
        return self._seen.novelty(system, backend, mode, model)

    def reaches(self, metric: str, part: str, novelty: Novelty) -> bool:
        """Whether `part` ("factor" | "residual") of `metric` applies to a query of `novelty`."""
        if novelty not in DECIDED and novelty is not Novelty.BOTH:
            return True
        levels = DECIDED if novelty is Novelty.BOTH else (novelty,)
        return all(any(r.applied for r in self.reach if (r.novelty, r.metric, r.part) == (lv.value, metric, part))
                   for lv in levels)

    def interval(self, metric: str, mode: str, model: str | None = None, system: str | None = None,
                 backend: str | None = None) -> IntervalQuantiles | None:
        """The interval for a query in `mode`, from held-out rows as new to their fit as this query is to
        this one (model or system None: a seen scope; backend None: any backend's scope counts). A
        novelty without stored quantiles takes the next wider one that has them."""
        level = Novelty.SCOPE if model is None or system is None else self.novelty(system, backend, mode, model)
        order = list(Novelty)
        for lv in order[order.index(level):] + order[:order.index(level)][::-1]:
            pool = [q for q in self.intervals if q.metric == metric and q.novelty == lv.value]
            found = [q for q in pool if q.mode == mode] or [q for q in pool if q.mode == ANY]
            if found:
                return found[0]
        return None

    def factor_log(self, metric: str, scope: tuple[str, ...]) -> float:
        """The scope factor (log) a key (system, backend, version, mode, model, weights) gets: the narrowest matching
        one, where it reaches the key's novelty (`reaches`), else none."""
        if not self.reaches(metric, "factor", self.novelty_of(scope)):
            return 0.0
        f = self.factor(metric, *scope)
        return f.log_factor if f else 0.0

    def novelty_of(self, scope: tuple[str, ...]) -> Novelty:
        """`novelty` of a scope key (system, backend, version, mode, model, weights)."""
        return self.novelty(scope[0], scope[1], scope[3], scope[4] if len(scope) > 4 else "")

    def correct_log(self, metric: str, scope: tuple[str, ...], x: np.ndarray) -> np.ndarray:
        """log(corrected / predicted) for rows `x` (feature_matrix) of one scope key
        (system, backend, version, mode, model, weights)."""
        r = self.residual(metric)
        out = np.full(x.shape[0], self.factor_log(metric, scope))
        reached = r is not None and self.reaches(metric, "residual", self.novelty_of(scope))
        return out + (r.predict(x) if reached else 0.0)

    def to_json(self) -> str:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, "id": self.id, **_plain(asdict(self))}
        return json.dumps(body, indent=1, sort_keys=True)

    @staticmethod
    def from_json(text: str, where: str = "calibration") -> "Calibration":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(f"{where}: not a {FORMAT} file")
        if d.get("format_version") != FORMAT_VERSION:   # v5: no weights in scopes; v4: no weight-bits feature
            raise DataError(f"{where}: calibration format v{d.get('format_version')}, this servecast reads "
                            f"v{FORMAT_VERSION}; refit with `servecast calibrate fit`")
        try:
            cal = Calibration(
                factors=tuple(Factor(scope=Scope(**f["scope"]), **{k: v for k, v in f.items() if k != "scope"})
                              for f in d["factors"]),
                residuals=tuple(_residual(r) for r in d["residuals"]),
                intervals=tuple(IntervalQuantiles(**q) for q in d["intervals"]),
                base=d["base"], statistic=d["statistic"], notes=tuple(d["notes"]), training=d["training"],
                reach=tuple(Reach(**r) for r in d["reach"]), fitted=tuple(tuple(p) for p in d["fitted"]))
        except (KeyError, TypeError) as exc:
            raise DataError(f"{where}: calibration lacks or mistypes a field ({exc})") from None
        if d.get("id") != cal.id:
            raise DataError(f"{where}: content hash {cal.id} does not match the recorded id {d.get('id')} "
                            "(edited or corrupt)")
        return cal


def _residual(r: dict) -> Residual:
    t = r.get("trees")
    trees = None if t is None else Trees(**{k: (tuple(tuple(v) for v in t[k]) if isinstance(t[k], list) else t[k])
                                           for k in t})
    return Residual(metric=r["metric"], features=tuple(r["features"]), trees=trees, coef=tuple(r["coef"]),
                    intercept=r["intercept"])


def _plain(x):
    """JSON-ready: dataclasses -> dicts (as asdict), tuples -> lists, numpy scalars -> Python, NaN -> None."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, (list, tuple)):
        if all((type(v) is float and math.isfinite(v)) or type(v) is int for v in x):
            return list(x)   # the trees' flat number arrays: no call per number (id hashes ~50k of them)
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# --- applying to an Estimate -------------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationContext:
    """What an Estimate does not carry but the correction needs."""

    system: str
    backend: str
    version: str
    mode: str                      # agg | disagg
    isl: np.ndarray | float
    osl: np.ndarray | float
    gpus: np.ndarray | float       # GPUs of one engine instance (agg replica / decode worker)
    concurrency: np.ndarray | float | None = None   # per agg replica / xPyD group; None = the Estimate's
    model: str = ""                # model_key; "" = not stated: model-wide scopes only
    weight_bits: float = UNSTATED_WEIGHT_BITS   # model_weight_bits of the model served

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        """The scope key `Calibration.factor` / `correct_log` take."""
        return (self.system, self.backend, self.version, self.mode, self.model, weights_label(self.weight_bits))

    def features(self, concurrency, pred_ttft_ms, pred_tpot_ms, gpus=None) -> np.ndarray:
        """The residual's feature matrix of predictions in this context (`gpus`: per point, else the
        context's)."""
        return feature_matrix(FeatureInputs(isl=self.isl, osl=self.osl, concurrency=concurrency,
                                            pred_ttft_ms=pred_ttft_ms, pred_tpot_ms=pred_tpot_ms,
                                            gpus=self.gpus if gpus is None else gpus,
                                            is_agg=float(self.mode == "agg"), weight_bits=self.weight_bits))


@dataclass(frozen=True)
class Interval:
    lo: np.ndarray | float
    hi: np.ndarray | float
    coverage: float

    def text(self, value: float, unit: str = "ms") -> str:
        """"540 ms, 80% interval 500-610"; one decimal below 100 (TPOTs of 8.4 ms must not read 8)."""
        fmt = ",.1f" if max(abs(value), abs(float(self.hi))) < 100 else ",.0f"
        return (f"{value:{fmt}} {unit}, {self.coverage:.0%} interval "
                f"{float(self.lo):{fmt}}-{float(self.hi):{fmt}}")


@dataclass(frozen=True)
class CalibratedEstimate:
    estimate: "Estimate"           # noqa: F821 (estimator.estimate.Estimate; import kept lazy)
    ttft: Interval | None
    tpot: Interval | None
    calibration_id: str
    scope: str                     # the scope label the TTFT factor came from


def calibrate_estimate(estimate, calibration: Calibration, context: CalibrationContext) -> CalibratedEstimate:
    """Corrected TTFT/TPOT (and the latency and throughputs that follow from them), source CALIBRATED,
    with prediction intervals. Arrays in the Estimate and context broadcast."""
    conc = estimate.concurrency if context.concurrency is None else context.concurrency
    x = context.features(conc, estimate.ttft_ms, estimate.tpot_ms)
    key = context.key
    shape = np.broadcast(np.asarray(estimate.ttft_ms), np.asarray(context.isl), np.asarray(context.osl)).shape
    scalar = shape == ()
    out, intervals = {}, {}
    for metric, pred in (("ttft", estimate.ttft_ms), ("tpot", estimate.tpot_ms)):
        corr = np.exp(calibration.correct_log(metric, key, x)).reshape(shape) if shape else \
            float(np.exp(calibration.correct_log(metric, key, x))[0])
        value = np.asarray(pred, dtype=np.float64) * corr
        out[metric] = value.item() if scalar else value
        q = calibration.interval(metric, context.mode, context.model, context.system, context.backend)
        intervals[metric] = None if q is None else Interval(lo=out[metric] * math.exp(q.lo),
                                                            hi=out[metric] * math.exp(q.hi), coverage=q.coverage)
    ttft, tpot = out["ttft"], out["tpot"]
    osl = np.asarray(context.osl, dtype=np.float64)
    latency = ttft + (osl - 1.0) * tpot
    # throughput per GPU scales inversely with request latency in a closed loop at fixed concurrency
    scale = np.asarray(estimate.request_latency_ms, dtype=np.float64) / latency
    tps = np.asarray(estimate.tokens_per_s_per_gpu, dtype=np.float64) * scale
    def _s(v):
        v = np.asarray(v)
        return v.item() if scalar and v.size == 1 else v
    est = replace(estimate, ttft_ms=ttft, tpot_ms=tpot, request_latency_ms=_s(latency), tokens_per_s_per_gpu=_s(tps),
                  tokens_per_s_per_user=_s(1e3 / np.asarray(tpot)), source=Source.CALIBRATED)
    f = calibration.factor("ttft", *key)
    return CalibratedEstimate(est, intervals["ttft"], intervals["tpot"], calibration.id,
                              f.scope.label() if f else "none")


def context_for(system: str, backend: str, version: str | None, mode: str, isl, osl, instance_gpus,
                concurrency=None, model: ModelSpec | None = None) -> CalibrationContext:
    """CalibrationContext from what a command knows. `version` None or "" (newest in the database, or
    not stated) matches only version-wide scopes, never the fitted "unknown version" scope.
    concurrency: requests in flight per agg replica or per xPyD group (the fit's feature; a benchmark
    client's count divided by the replicas / groups); None = the Estimate's own (per replica / per
    decode worker). model: the loaded model served (estimator.models.ModelSpec: its name picks the
    scope, its numerics the weight_bits feature); None: model-wide scopes only, 16-bit weights."""
    return CalibrationContext(system=system, backend=backend, version=version or _NO_VERSION, mode=mode,
                              isl=isl, osl=osl, gpus=instance_gpus, concurrency=concurrency,
                              model=model_key(model.name) if model is not None else "",
                              weight_bits=model_weight_bits(model) if model is not None else UNSTATED_WEIGHT_BITS)


# a version string no scope names: matches version "*" scopes only
_NO_VERSION = "\x00unstated"


def apply(estimate, calibration: Calibration, context: CalibrationContext):
    """The Estimate with calibrated TTFT/TPOT/latency/throughput and source CALIBRATED.
    Use calibrate_estimate for the prediction intervals as well."""
    return calibrate_estimate(estimate, calibration, context).estimate
