"""Disaggregated deployments composed from prefill-worker and decode-worker candidates.

A candidate worker is one (parallelism, batch) point with its step time from the estimator. A
deployment is an xPyD group (x prefill workers, y decode workers) repeated `copies` times in the
budget. The serving arithmetic is the estimator's (estimator/serving.py `disagg_metrics`), solved in
closed form over every (prefill, decode, x, y) at once instead of by bisection per point:

    N   = y * b_d                       requests in flight per group (decode batch b_d per worker)
    t0  = t_p + t_kv + s_d t_d / 2 + (osl - 1) t_d     a request's time without queueing (s_d = (b_d - 1) / b_d:
                                        the decode worker's running iteration, when others decode)
    mu  = x * b_p / t_p                 prefill capacity, requests per ms
    lam * (t0 + W(s lam / mu)) = N      closed loop, W the M/D/1 wait with service t_p at the load the
                                        other N - 1 clients make (s = (N - 1) / N, the arrival theorem)
    lam <= min(RHO_MAX * mu, N / t0)
    TTFT += (burst - TTFT)+ / 10        the benchmark's opening burst, as in disagg_metrics

With rho = lam / mu the loop equation is the quadratic mu s (t_p - 2 t0) rho^2 + 2 (mu t0 + s N) rho - 2N = 0
(its smaller positive root). TTFT = N / lam - (osl - 1) t_d + the engine's TTFT overhead, TPOT =
t_d, request latency = TTFT + (osl - 1) t_d and the served rate N / latency; tokens/s/GPU counts
copies * rate * osl over the whole budget. tests/search/test_disagg.py pins equality with
`estimate_disagg`, so a change of the estimator's arithmetic fails the tests instead of drifting.

Only (x, y) with gcd 1 are composed: k copies of (x, y) use at least as many GPUs as one (kx, ky)
group with identical per-group metrics, so the reduced pairs lose nothing. At most MAX_WORKERS of
each role per group, fewer when the composition would exceed MAX_COMPOSED_ROWS rows (huge budgets
of small workers). Prefill rows dominated within their GPU count (slower and lower throughput)
are dropped before composing. Every decode row is kept unless the composition would exceed the
row limit: then decode rows slower than another of the same GPU count and batch limit go first,
and only then the worker cap tightens.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estimator.deployment import kv_same_node
from estimator.serving import RHO_MAX, seen_share  # the estimator's queue cap and arrival theorem
from estimator.workload import BENCH_REQUESTS_PER_CONCURRENCY
from search.pareto import frontier
from search.points import MODES, PointTable
from search.space import worker_pairs
from search.types import Mode

MAX_WORKERS = 32               # prefill or decode workers per xPyD group (as AIConfigurator's search)
MAX_COMPOSED_ROWS = 250_000    # composed deployments per backend before the worker cap tightens


@dataclass(frozen=True)
class WorkerPoints:
    """Candidate workers of one phase, one row each (arrays of equal length)."""

    cfg: np.ndarray          # index into the phase's list of parallel configs
    gpus: np.ndarray         # GPUs per worker
    batch: np.ndarray        # requests per batch (prefill) / batch limit (decode)
    max_tokens: np.ndarray   # the worker's token budget per iteration
    step_ms: np.ndarray      # prefill: one batch's forward; decode: one step at `batch`
    rate: np.ndarray         # requests per ms per worker (prefill: batch / step; decode: batch / (step x (osl - 1)))
    headroom: np.ndarray     # share of the KV pool free at this batch
    feasible: np.ndarray     # fits in memory
    source: np.ndarray       # Source codes
    share: np.ndarray        # share of kernel time from extrapolation / roofline

    def take(self, idx: np.ndarray) -> "WorkerPoints":
        return WorkerPoints(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.cfg)


def dominant(w: WorkerPoints) -> np.ndarray:
    """Rows not dominated within their GPU count on (higher rate per worker, lower step time),
    among memory-feasible rows. A dominated worker can never make a better deployment."""
    keep = []
    for g in np.unique(w.gpus):
        mask = (w.gpus == g) & w.feasible
        keep.append(frontier(1.0 / w.step_ms, w.rate, mask))
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)


def decode_dominant(w: WorkerPoints) -> np.ndarray:
    """Per (GPUs per worker, batch limit), the memory-feasible decode row with the shortest step:
    the others serve the same requests on the same GPUs more slowly."""
    ok = np.flatnonzero(w.feasible)
    order = ok[np.lexsort((w.step_ms[ok], w.batch[ok], w.gpus[ok]))]
    key = np.stack([w.gpus[order], w.batch[order]], axis=1)
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(key[1:] != key[:-1], axis=1)
    return np.sort(order[first])


def coprime_pairs(gp: int, gd: int, budget: int, max_workers: int = MAX_WORKERS) -> tuple[np.ndarray, np.ndarray]:
    x, y = worker_pairs(gp, gd, budget, max_workers)
    keep = np.gcd(x, y) == 1
    return x[keep], y[keep]


def composed_rows(prefill: WorkerPoints, decode: WorkerPoints, budget: int, cap: int) -> int:
    gps, pcount = np.unique(prefill.gpus, return_counts=True)
    gds, dcount = np.unique(decode.gpus, return_counts=True)
    return sum(int(a) * int(b) * len(coprime_pairs(int(gp), int(gd), budget, cap)[0])
               for gp, a in zip(gps, pcount, strict=True) for gd, b in zip(gds, dcount, strict=True))


def worker_cap(prefill: WorkerPoints, decode: WorkerPoints, budget: int, limit: int = MAX_COMPOSED_ROWS) -> int:
    """The largest per-role worker count (32, 16, 8, ...) whose composition stays under `limit`
    rows; large budgets of small workers would otherwise compose millions of near-copies."""
    for cap in (MAX_WORKERS, 16, 8, 4, 2):
        if composed_rows(prefill, decode, budget, cap) <= limit:
            return cap
    return 1


@dataclass(frozen=True)
class GroupLoad:
    osl: int
    budget: int              # GPUs in the budget (idle ones count in tokens/s/GPU)
    ttft_overhead_ms: float = 0.0   # the engine's host-side time before the first token (estimator.engine)
    domain_gpus: int = 8     # GPUs of one NVLink domain: a group that fits one moves its KV over NVLink


def compose(prefill: WorkerPoints, decode: WorkerPoints, kv_ms, wl: GroupLoad, backend_code: int,
            prefill_cfgs: list, decode_cfgs: list) -> PointTable:
    """Every (prefill row, decode row, x, y) that fits the budget, as point-table rows.

    `kv_ms(pi, di, same_node) -> float` gives the KV transfer time of one request's prompt from a
    prefill worker of config pi to a decode worker of config di, over NVLink or the network; each
    xPyD group takes the path estimator.deployment.kv_same_node decides for it.
    """
    blocks = []
    if composed_rows(prefill, decode, wl.budget, MAX_WORKERS) > MAX_COMPOSED_ROWS:
        decode = decode.take(decode_dominant(decode))   # first reduction: slower twins of decode rows
    cap = worker_cap(prefill, decode, wl.budget)
    for gp in np.unique(prefill.gpus):
        for gd in np.unique(decode.gpus):
            x, y = coprime_pairs(int(gp), int(gd), wl.budget, cap)
            if not len(x):
                continue
            pi = np.flatnonzero(prefill.gpus == gp)
            di = np.flatnonzero(decode.gpus == gd)
            blocks.append(_compose_group(prefill, decode, pi, di, x, y, kv_ms, wl, backend_code,
                                         prefill_cfgs, decode_cfgs))
    return PointTable.concat(blocks)


def _kv_table(prefill, decode, pi, di, kv_ms, same: bool) -> np.ndarray:
    pc, dc = prefill.cfg[pi].astype(int), decode.cfg[di].astype(int)
    pairs = {(int(a), int(b)) for a in np.unique(pc) for b in np.unique(dc)}
    val = {k: kv_ms(*k, same) for k in pairs}
    return np.array([[val[(int(a), int(b))] for b in dc] for a in pc], dtype=np.float64)


def _attr(cfgs: list, attr: str) -> np.ndarray:
    return np.array([getattr(c, attr) for c in cfgs], dtype=np.int64)


def closed_loop_rate(n, t0, service, mu):
    """Requests per ms of the closed loop (see the module docstring); arrays broadcast. A request sees
    the utilisation the other n - 1 clients make (estimator.serving.seen_share): with s = (n - 1) / n
    the loop is mu s (t_p - 2 t0) rho^2 + 2 (mu t0 + s N) rho - 2N = 0."""
    s = seen_share(n)
    a = mu * s * (service - 2.0 * t0)
    b = 2.0 * (mu * t0 + s * n)
    c = -2.0 * n
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 2.0 * c / (-b - np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0)))
    return np.minimum(np.minimum(rho * mu, RHO_MAX * mu), n / t0)


def _compose_group(prefill, decode, pi, di, x, y, kv_ms, wl, backend_code, prefill_cfgs, decode_cfgs):
    gp, gd = int(prefill.gpus[pi[0]]), int(decode.gpus[di[0]])
    group = x * gp + y * gd                                      # (W,)
    copies = wl.budget // group
    same = kv_same_node(wl.domain_gpus, gp, x, gd, y)[None, None, :]   # (1, 1, W): the group's KV path
    kv = np.where(same, _kv_table(prefill, decode, pi, di, kv_ms, True)[:, :, None],
                  _kv_table(prefill, decode, pi, di, kv_ms, False)[:, :, None])   # (P, D, W)
    P, D, W = len(pi), len(di), len(x)
    shape = (P, D, W)
    tp = prefill.step_ms[pi][:, None, None]
    td = decode.step_ms[di][None, :, None]
    bd = decode.batch[di][None, :, None]
    t0 = tp + kv + 0.5 * td * (bd - 1.0) / bd + (wl.osl - 1) * td   # the decode boundary wait: others decoding
    mu = x[None, None, :] * prefill.batch[pi][:, None, None] / tp
    n = decode.batch[di][None, :, None] * y[None, None, :]
    lam = closed_loop_rate(n, t0, tp, mu)
    ttft = n / lam - (wl.osl - 1) * td + wl.ttft_overhead_ms
    # the benchmark's opening burst (estimator.serving.disagg_metrics): every request queues at the
    # prefill workers at once, weighted by concurrency / requests of the run
    waves = np.ceil(n / (x[None, None, :] * prefill.batch[pi][:, None, None]))
    burst = (waves + 1.0) / 2.0 * tp + kv + wl.ttft_overhead_ms
    ttft = ttft + np.maximum(burst - ttft, 0.0) / BENCH_REQUESTS_PER_CONCURRENCY
    latency = ttft + (wl.osl - 1) * td
    lam = n / latency                                            # the loop slowed by the overhead
    seq_ms = lam * copies[None, None, :]

    def pcol(a):
        return np.broadcast_to(a[pi][:, None, None], shape).ravel()

    def dcol(a):
        return np.broadcast_to(a[di][None, :, None], shape).ravel()

    def wcol(a):
        return np.broadcast_to(a[None, None, :], shape).ravel()

    def full(a):
        return np.broadcast_to(a, shape).ravel()

    cols = dict(
        mode=MODES.index(Mode.DISAGG), backend=backend_code, replicas=wcol(copies),
        p_workers=wcol(x), p_batch=pcol(prefill.batch), p_max_tokens=pcol(prefill.max_tokens),
        d_workers=wcol(y), d_batch=dcol(decode.batch), d_max_tokens=dcol(decode.max_tokens),
        gpus_used=wcol(group * copies), total_gpus=wl.budget,
        source=np.maximum(pcol(prefill.source), dcol(decode.source)),
        estimated_share=np.maximum(pcol(prefill.share), dcol(decode.share)),
        ttft_ms=full(ttft), tpot_ms=full(td), request_latency_ms=full(latency),
        tokens_per_s_per_gpu=full(seq_ms * wl.osl * 1e3 / wl.budget),
        tokens_per_s_per_user=full(1e3 / td), concurrency=full(n * copies[None, None, :]),
        mem_headroom=np.minimum(pcol(prefill.headroom), dcol(decode.headroom)),
        feasible=pcol(prefill.feasible) & dcol(decode.feasible),
    )
    for name, attr in (("tp", "tp"), ("pp", "pp"), ("dp", "attn_dp"), ("moe_tp", "moe_tp"), ("moe_ep", "moe_ep")):
        cols[f"p_{name}"] = pcol(_attr(prefill_cfgs, attr)[prefill.cfg.astype(np.int64)])
        cols[f"d_{name}"] = dcol(_attr(decode_cfgs, attr)[decode.cfg.astype(np.int64)])
    return PointTable.block(P * D * W, **cols)
