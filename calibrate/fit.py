"""Fit a Calibration to a prediction frame (calibrate.predict), with grouped k-fold cross-validation.

Per metric (TTFT = prefill phase, TPOT = decode phase), in log space, r = log(measured / predicted):
1. Scope factors: the median of r over each scope (each row's pull on it clipped to a factor of 2
   from the parent's), shrunk towards its parent scope's by the deployments behind it. Scopes, widest
   first: all -> (mode) -> (system, backend, mode, model) -> (system, backend, version, mode, model) ->
   (system, backend, version, mode, model, weights); a run falls back to the narrowest one the fit has,
   and the fit says so in its notes. The weights' numerics (weights_label) split a model's scope because
   its FP8 and FP4 checkpoints run different kernels from different tables, whose biases differ: on the
   simulate base and for the static base's TPOT (NUMERICS_SCOPED says where, and on what evidence).
   What the factors correct is mostly how far one system's kernel
   tables are from what an engine runs for one model's shapes, so a scope names both: a
   (system, backend) factor learned on Llama and gpt-oss is a mix that made a third model *worse*
   than uncalibrated, and a (backend, model) factor learned on other GPUs made an unseen system's
   TPOT worse (leave one model / system out, docs/bench/calibration.md). A model or system the fit
   never saw gets the per-mode factor only. A median, not a mean: a few broken runs cannot move a scope.
2. A residual model on the load features of estimator.calibration_features.FEATURES (concurrency, ISL, OSL,
   the predictions themselves, GPUs per instance, agg/disagg) fitted to what the factors leave:
   small gradient-boosted trees (Huber loss, shallow, many rows per leaf) or a ridge line.
3. Held-out protocols (calibrate.heldout: grouped by deployment, one model out, one system out) decide
   which parts reach an unseen model or system and give the intervals per novelty; calibrate.train
   checks both honestly by nesting.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from estimator.calibration import (
    ANY,
    Calibration,
    Factor,
    Reach,
    Residual,
    Scope,
    model_key,
)
from estimator.calibration_features import FEATURES, FeatureInputs, feature_matrix, weights_label
from estimator.trees import Trees
from perfdb.errors import InputError

METRICS = ("ttft", "tpot")
# frame columns, narrowest level first; each level nests in the next (one parent per group)
SCOPE_LEVELS = (("system", "backend", "version", "mode", "model_key", "weights"),
                ("system", "backend", "version", "mode", "model_key"), ("system", "backend", "mode", "model_key"),
                ("mode",), ())
SCOPE_FIELDS = dict(zip(SCOPE_LEVELS[0], ("system", "backend", "version", "mode", "model", "weights"),
                        strict=True))  # frame column -> Scope field
# The (base, metric) fits whose narrowest scope names the weights' numerics. Nested CV by deployment on
# e2e_train_silicon.csv (imported tables / bundled database, 2,014 rows): simulate TTFT 15.2 -> 14.4 /
# 16.7 -> 15.7, TPOT 7.4 -> 6.9 / 8.4 -> 7.9; static TPOT 7.3 -> 7.1 / 8.7 -> 7.9; static TTFT 19.5 -> 20.8 /
# 19.8 -> 20.0, worse: the static estimate has no queueing, so a scope's TTFT median carries its
# deployments' load mix, and an FP8 and an FP4 scope hold different loads (chosen on those figures,
# in-sample for this choice: BENCHMARKS.md, the twenty-fourth session).
NUMERICS_SCOPED = frozenset({("simulate", "ttft"), ("simulate", "tpot"), ("estimate", "tpot")})
RESIDUAL_KINDS = ("gbm", "linear", "none")
LOSSES = ("absolute_error", "huber", "squared_error")


@dataclass(frozen=True)
class FitOptions:
    folds: int = 5
    min_rows: int = 1
    min_deployments: int = 1
    # prior weight of the wider scope, in deployments (0 = a scope's own median), per metric: TTFT depends
    # on each deployment's unrecorded serving setup (worker counts, router) far more than TPOT does.
    # Chosen on e2e_train_silicon.csv by the mean of three grouped CVs (by deployment, leave one model
    # out, leave one system out) among 2/0.5, 4/1 and 8/2 (docs/bench/calibration.md).
    shrink_ttft: float = 8.0
    shrink_tpot: float = 2.0
    # how far (|log|) one row may pull its scope's median away from the parent scope's factor; 0 = no
    # limit. A deployment the estimator misses by 10x is a regime it does not model (a KV pool thrashing
    # at tp1, an unrecorded disaggregated setup), not a bias of its scope: unclipped, one such deployment
    # alone in its scope moved every later deployment of that scope 30% (SGLang Qwen3-32B on h100: 12.7%
    # -> 32.7% held-out TTFT error). log(2) chosen on e2e_train_silicon.csv among 0 / log 1.5 / log 2 /
    # log 3 by the three protocols (docs/bench/calibration.md).
    clip: float = float(np.log(2.0))
    # TTFT residual trees weight each row by predicted / measured, bounded to exp(+-this) (0 = unweighted).
    # The reported error |predicted / measured - 1| punishes an over-prediction more than the same
    # under-prediction in log space, and TTFT's log errors are wide (p10..p90 -0.5..0.7 aggregated,
    # -0.4..2.2 disaggregated: bimodal), so the unweighted log-median fit made disaggregated TTFT worse
    # than no calibration (54% vs 48%). TPOT's log errors are narrow, where the two optima coincide and the
    # weights only add variance (grouped CV 13.1% -> 13.2-13.7%), so it stays unweighted. 0.5 chosen on
    # e2e_train_silicon.csv among 0 / 0.25 / 0.5 / 1 / 2 / 3 by grouped CV and leave one system out over
    # two seeds (TTFT 29.8 / 33.2 -> 27.9 / 29.6; docs/bench/calibration.md).
    rel_weight_ttft: float = 0.5
    rel_weight_tpot: float = 0.0
    residual: str = "gbm"
    loss: str = "absolute_error"   # of the residual trees, in log space: absolute_error | huber | squared_error
    coverage: float = 0.8
    # 50 trees of depth 2: the same held-out error as 100 of depth 3 (grouped CV 31.7/13.9 vs 31.6/14.1,
    # leave one system out 34.7/23.0 vs 33.9/22.8) at a fifth of the nodes, which `plan` evaluates on
    # every one of its 10^4-10^5 points (docs/bench/calibration.md)
    trees: int = 50
    depth: int = 2
    learning_rate: float = 0.2
    min_leaf: int = 25
    seed: int = 0
    inner_folds: int = 3         # grouped-by-deployment folds of the nested fits that check coverage honestly

    def __post_init__(self) -> None:
        if self.residual not in RESIDUAL_KINDS:
            raise InputError(f"unknown residual model {self.residual!r}; accepted: {', '.join(RESIDUAL_KINDS)}")
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; accepted: {', '.join(LOSSES)}")
        if self.clip < 0:
            raise InputError(f"clip={self.clip}: must be >= 0 (a log ratio; 0 = no limit)")
        if min(self.rel_weight_ttft, self.rel_weight_tpot) < 0:
            raise InputError(f"rel_weight={self.rel_weight_ttft}/{self.rel_weight_tpot}: must be >= 0 (a log bound; 0 = unweighted)")
        if min(self.shrink_ttft, self.shrink_tpot) < 0:
            raise InputError(f"shrink={self.shrink_ttft}/{self.shrink_tpot}: must be >= 0 (deployments of prior weight)")
        if self.folds < 2:
            raise InputError(f"folds={self.folds}: cross-validation needs at least 2")
        if not 0.0 < self.coverage < 1.0:
            raise InputError(f"coverage={self.coverage}: must be between 0 and 1")

    def shrink_for(self, metric: str) -> float:
        return self.shrink_ttft if metric == "ttft" else self.shrink_tpot

    def rel_weight_for(self, metric: str) -> float:
        return self.rel_weight_ttft if metric == "ttft" else self.rel_weight_tpot


# scope columns a frame derives from its own (calibrate.predict's `model`, `weight_bits`)
DERIVED_SCOPE_COLUMNS = {"model_key": lambda f: f["model"].map(model_key),
                         "weights": lambda f: f["weight_bits"].map(weights_label)}


def usable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a measurement and a prediction, plus the derived scope columns (`model_key`, `weights`)."""
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    return ok.assign(**{c: derive(ok) for c, derive in DERIVED_SCOPE_COLUMNS.items()})


def _scope_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A scope column of `frame`, derived where a frame not passed through `usable` lacks it."""
    return frame[column] if column in frame.columns else DERIVED_SCOPE_COLUMNS[column](frame)


def features(frame: pd.DataFrame) -> np.ndarray:
    return feature_matrix(FeatureInputs(isl=frame["isl"].to_numpy(), osl=frame["osl"].to_numpy(),
                                        concurrency=frame["concurrency"].to_numpy(),
                                        pred_ttft_ms=frame["pred_ttft"].to_numpy(),
                                        pred_tpot_ms=frame["pred_tpot"].to_numpy(), gpus=frame["gpus"].to_numpy(),
                                        is_agg=(frame["mode"] == "agg").to_numpy(dtype=np.float64),
                                        weight_bits=frame["weight_bits"].to_numpy(dtype=np.float64)))


def log_ratio(frame: pd.DataFrame, metric: str) -> np.ndarray:
    return np.log(frame[f"measured_{metric}"].to_numpy() / frame[f"pred_{metric}"].to_numpy())


def _scope(level: tuple[str, ...], key: tuple) -> Scope:
    vals = dict(zip(level, key, strict=True))
    return Scope(**{field: str(vals.get(col, ANY)) for col, field in SCOPE_FIELDS.items()})


def scope_levels(base: str, metric: str) -> tuple[tuple[str, ...], ...]:
    """SCOPE_LEVELS of a fit, narrowest first: without the weights' level where NUMERICS_SCOPED leaves it out."""
    return SCOPE_LEVELS if (base, metric) in NUMERICS_SCOPED else SCOPE_LEVELS[1:]


def fit_factors(frame: pd.DataFrame, metric: str, opts: FitOptions,
                levels: tuple[tuple[str, ...], ...] = SCOPE_LEVELS) -> tuple[tuple[Factor, ...], list[str]]:
    """Scope factors, widest scope first. Each qualifying scope moves its parent's factor towards its own
    median by the weight d / (d + shrink) (d = its deployments): a scope resting on one deployment goes
    only part way, so that one unusual deployment cannot set the correction of every later one. A scope
    holding exactly its parent's deployments adds nothing (the same evidence is not counted twice).
    A serving mode holding one model stores its factor for that model in that mode (scope mode/model, on
    any system and backend) and none (0) for the models new to the mode: its median is that model's bias,
    not the mode's (fitted on gpt-oss-120b's 42 disaggregated rows alone, it moved an unseen DeepSeek-R1's
    disaggregated TPOT 36% the wrong way, where its intervals covered 31%: nested one model out,
    BENCHMARKS.md, issue 15 item 5); every scope of that model gets what it got before. The factor stored
    per scope is the cumulative one, so `Calibration.factor` (narrowest match wins) gives the shrunk value,
    and a scope absent from the fit falls back to its widest ancestor that is present."""
    k = opts.shrink_for(metric)
    r = log_ratio(frame, metric)
    deps_all = frame["deployment_key"].to_numpy()
    models = _scope_column(frame, "model_key").to_numpy()
    chain = np.full(len(frame), float(np.median(r)))        # each row's cumulative factor so far
    chain_deps = np.full(len(frame), int(pd.unique(deps_all).size))
    factors = [Factor(_scope((), ()), metric, float(chain[0]), len(frame), int(chain_deps[0]))]
    for level in reversed(levels[:-1]):
        nxt, nxt_deps = chain.copy(), chain_deps.copy()
        for key, idx in sorted(frame.groupby(list(level)).indices.items()):
            key = key if isinstance(key, tuple) else (key,)
            n, d = len(idx), int(pd.unique(deps_all[idx]).size)
            if n < opts.min_rows or d < opts.min_deployments or d == chain_deps[idx[0]]:
                continue                                    # too thin, or nothing beyond its parent
            value = _shrunk(r[idx], float(chain[idx[0]]), d, k, opts.clip)   # nested levels: one parent per group
            scope = _scope(level, key)
            if level == ("mode",) and len(only := pd.unique(models[idx])) == 1:
                factors.append(Factor(scope, metric, 0.0, n, d))     # for the models new to the mode: none
                scope = replace(scope, model=str(only[0]))            # the one model's, in this mode
            factors.append(Factor(scope, metric, value, n, d))
            nxt[idx], nxt_deps[idx] = value, d
        chain, chain_deps = nxt, nxt_deps
    return tuple(factors), _fallback_notes(frame, Calibration(tuple(factors), (), ()), metric, k, levels[0])


def _shrunk(r: np.ndarray, parent: float, d: int, k: float, clip: float) -> float:
    """`parent` moved towards the median of `r` by d / (d + k), each row's pull clipped to `clip` (0: none)."""
    dev = r - parent
    if clip > 0:
        dev = np.clip(dev, -clip, clip)
    return parent + d / (d + k) * float(np.median(dev))


def _fallback_notes(frame: pd.DataFrame, cal: Calibration, metric: str, k: float,
                    narrowest: tuple[str, ...]) -> list[str]:
    """Per (system, backend, version, mode, model, weights) of `frame`: that it falls back to a wider scope, or
    rests on so few deployments that its parent's factor weighs most."""
    notes = []
    for key, g in frame.groupby(list(narrowest), sort=True):
        used = cal.factor(metric, *map(str, key))
        d = g["deployment_key"].nunique()
        if used is not None and used.n_deployments > d:
            notes.append(f"{metric}: {'/'.join(map(str, key))} has {len(g)} rows from {d} deployments; "
                         f"uses the wider scope {used.scope.label()}")
        elif k > 0 and d <= 2:
            notes.append(f"{metric}: {'/'.join(map(str, key))} rests on {d} deployment(s); its own median counts "
                         f"{d / (d + k):.0%} against its parent scope's")
    return notes


def _export_trees(model) -> Trees:
    left, right, feat, thr, val = [], [], [], [], []
    for est in model.estimators_[:, 0]:
        t = est.tree_
        left.append(tuple(int(v) for v in t.children_left))
        right.append(tuple(int(v) for v in t.children_right))
        feat.append(tuple(max(int(v), 0) for v in t.feature))
        thr.append(tuple(float(v) for v in t.threshold))
        val.append(tuple(float(v) for v in t.value[:, 0, 0]))
    init = float(np.ravel(model.init_.predict(np.zeros((1, len(FEATURES)))))[0])
    return Trees(init=init, learning_rate=float(model.learning_rate), left=tuple(left), right=tuple(right),
                 feature=tuple(feat), threshold=tuple(thr), value=tuple(val))


def fit_residual(x: np.ndarray, y: np.ndarray, metric: str, opts: FitOptions) -> Residual | None:
    if opts.residual == "none" or len(y) < 2 * opts.min_leaf:
        return None
    bound = opts.rel_weight_for(metric)
    weight = np.exp(-np.clip(y, -bound, bound)) if bound > 0 else None    # predicted / measured, bounded
    if opts.residual == "linear":
        from sklearn.linear_model import Ridge

        m = Ridge(alpha=1.0).fit(x, y, sample_weight=weight)
        return Residual(metric, FEATURES, coef=tuple(float(c) for c in m.coef_), intercept=float(m.intercept_))
    from sklearn.ensemble import GradientBoostingRegressor

    m = GradientBoostingRegressor(loss=opts.loss, n_estimators=opts.trees, max_depth=opts.depth,
                                  learning_rate=opts.learning_rate, min_samples_leaf=opts.min_leaf,
                                  subsample=0.8, random_state=opts.seed).fit(x, y, sample_weight=weight)
    return Residual(metric, FEATURES, trees=_export_trees(m))


def scope_keys(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    """Each row's (system, backend, version, mode, model, weights) key."""
    cols = [_scope_column(frame, c) for c in SCOPE_FIELDS]
    return list(zip(*(c.astype(str) for c in cols), strict=True))


def factor_logs(cal: Calibration, frame: pd.DataFrame, metric: str) -> np.ndarray:
    keys = scope_keys(frame)
    per_key = {k: cal.factor_log(metric, k) for k in dict.fromkeys(keys)}   # a few hundred keys, not every row
    return np.array([per_key[k] for k in keys], dtype=np.float64)


def corrected_logs(cal: Calibration, frame: pd.DataFrame, metric: str) -> np.ndarray:
    """log(calibrated / predicted) per row: the factor and the residual trees where they reach the row's
    novelty (Calibration.reaches)."""
    r = cal.residual(metric)
    out = factor_logs(cal, frame, metric)
    if r is not None:
        keys = scope_keys(frame)
        per_key = {k: cal.reaches(metric, "residual", cal.novelty_of(k)) for k in dict.fromkeys(keys)}
        mine = np.array([per_key[k] for k in keys], dtype=bool)
        if mine.any():
            out[mine] += r.predict(features(frame[mine].reset_index(drop=True)))
    return out


def fit_point(frame: pd.DataFrame, opts: FitOptions, base: str, intervals=(), reach: tuple[Reach, ...] = ()) \
        -> Calibration:
    """Factors + residual models on `frame` (usable rows only), no cross-validation; `intervals` and
    `reach` come from held-out fits (calibrate.heldout)."""
    factors, residuals, notes = [], [], []
    x = features(frame)
    for metric in METRICS:
        fs, ns = fit_factors(frame, metric, opts, scope_levels(base, metric))
        factors += fs
        notes += ns
        partial = Calibration(fs, (), ())
        res = fit_residual(x, log_ratio(frame, metric) - factor_logs(partial, frame, metric), metric, opts)
        if res is not None:
            residuals.append(res)
    cols = [frame[c].astype(str) for c in ("system", "backend", "mode", "model_key")]
    fitted = tuple(sorted(set(zip(*cols, strict=True))))
    return Calibration(tuple(factors), tuple(residuals), tuple(intervals), base=base, notes=tuple(notes),
                       reach=tuple(reach), fitted=fitted)


def fold_ids(frame: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Fold of each row, whole deployments per fold (shuffled, balanced by row count)."""
    deps = frame["deployment_key"].to_numpy()
    uniq, counts = np.unique(deps, return_counts=True)
    if len(uniq) < folds:
        raise InputError(f"{len(uniq)} deployments cannot fill {folds} folds; give fewer --folds or more runs")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    load = np.zeros(folds)
    assign = {}
    for i in sorted(order, key=lambda j: -counts[j]):    # biggest first into the lightest fold
        k = int(np.argmin(load))
        assign[uniq[i]] = k
        load[k] += counts[i]
    return np.array([assign[d] for d in deps])
