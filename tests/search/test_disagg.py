"""Disaggregated composition: the closed-form closed loop equals the estimator's own disagg_metrics,
dominated prefill workers are dropped, and every group fits the budget."""
import numpy as np

from estimator.engine import EngineConfig
from estimator.estimate import WorkerSpec, estimate_disagg
from estimator.models import load_model
from estimator.parallel import ParallelConfig
from estimator.serving import RHO_MAX, _mdl_wait, seen_share
from estimator.workload import Workload
from perfdb.lookup import PerfDB
from perfdb.specs import load_system
from perfdb.types import Backend
from search.disagg import GroupLoad, WorkerPoints, closed_loop_rate, compose, dominant
from search.evaluate import Context, decode_workers, prefill_workers


def test_closed_loop_rate_solves_the_loop_equation():
    rng = np.random.default_rng(1)
    service = rng.uniform(50, 500, 200)
    t0 = service + rng.uniform(100, 10000, 200)
    mu = rng.uniform(1e-3, 1e-1, 200)
    n = rng.uniform(1, 500, 200)
    lam = closed_loop_rate(n, t0, service, mu)
    inside = lam < np.minimum(RHO_MAX * mu, n / t0) * (1 - 1e-9)
    resid = lam * (t0 + _mdl_wait(seen_share(n) * lam / mu, service)) - n
    assert np.all(np.abs(resid[inside]) <= 1e-6 * n[inside])
    assert np.all(lam <= RHO_MAX * mu + 1e-15) and np.all(lam <= n / t0 + 1e-15)
    assert inside.any() and (~inside).any()


def _workers(gpus, batch, step, rate, cfg=None):
    n = len(gpus)
    return WorkerPoints(cfg=np.zeros(n, int) if cfg is None else np.array(cfg), gpus=np.array(gpus),
                        batch=np.array(batch), max_tokens=np.full(n, 8192), step_ms=np.array(step, float),
                        rate=np.array(rate, float), headroom=np.full(n, 0.5), feasible=np.ones(n, bool),
                        source=np.zeros(n, int), share=np.zeros(n))


def test_dominated_prefill_workers_are_dropped_per_gpu_count():
    w = _workers([1, 1, 1, 2], [1, 2, 1, 1], [100, 150, 120, 60], [0.010, 0.013, 0.008, 0.016])
    assert sorted(dominant(w).tolist()) == [0, 1, 3]    # row 2: slower and lower rate than row 0


def test_compose_fills_the_budget_and_counts_every_gpu():
    pre = _workers([1, 2], [1, 1], [100.0, 60.0], [0.01, 1 / 60], cfg=[0, 1])
    dec = _workers([2], [32], [20.0], [0.0])
    pts = compose(pre, dec, lambda p, d, same: 5.0, GroupLoad(osl=100, budget=8), 0,
                  [ParallelConfig(tp=1), ParallelConfig(tp=2)], [ParallelConfig(tp=2)])
    used, budget = pts["gpus_used"], pts["total_gpus"]
    assert np.all(used <= budget) and np.all(budget == 8)
    group = pts["p_workers"] * pts["p_tp"] + pts["d_workers"] * pts["d_tp"]
    assert np.all(used == group * pts["replicas"])
    assert np.all(np.gcd(pts["p_workers"], pts["d_workers"]) == 1)
    # tokens/s/GPU divides by the whole budget, idle GPUs included
    lam = pts["concurrency"] / pts["request_latency_ms"]          # requests per ms, all groups
    assert np.allclose(pts["tokens_per_s_per_gpu"], lam * 100 * 1e3 / 8)
    assert np.all(pts["ttft_ms"] >= 60.0)             # at least one prefill forward
    assert np.allclose(pts["tpot_ms"], 20.0)


def test_composition_matches_estimate_disagg_point_by_point():
    model, system = load_model("Qwen/Qwen3-32B-FP8"), load_system("h200_sxm")
    view = PerfDB(None).view("h200_sxm", Backend.TRTLLM)
    ctx = Context(model, system, Backend.TRTLLM, view, view.version, None, 4000, 500, 0, 8)
    cfgs = [ParallelConfig(tp=1), ParallelConfig(tp=2), ParallelConfig(tp=4)]
    pre, dec = prefill_workers(ctx, cfgs), decode_workers(ctx, cfgs)

    def kv(pi, di, same):
        sm = ctx.step_model(cfgs[pi], 16384)
        return float(sm.kv_transfer_ms(4000, cfgs[di], same))

    overhead = ctx.step_model(cfgs[0], 16384).resolved.ttft_overhead_ms
    pts = compose(pre, dec, kv, GroupLoad(500, 8, overhead, system.nvlink_domain_gpus), 0, cfgs, cfgs)
    rows = np.random.default_rng(0).choice(len(pts), 12, replace=False)
    for r in rows:
        pp = ParallelConfig(tp=int(pts["p_tp"][r]))
        dp = ParallelConfig(tp=int(pts["d_tp"][r]))
        est = estimate_disagg(model, system,
                              WorkerSpec(pp, EngineConfig(Backend.TRTLLM, max_num_tokens=16384),
                                         int(pts["p_workers"][r]), int(pts["p_batch"][r])),
                              WorkerSpec(dp, EngineConfig(Backend.TRTLLM), int(pts["d_workers"][r]), None),
                              Workload.benchmark(4000, 500, 0, int(pts["d_batch"][r])), view)
        assert np.isclose(est.ttft_ms, pts["ttft_ms"][r], rtol=1e-6)
        assert np.isclose(est.tpot_ms, pts["tpot_ms"][r], rtol=1e-9)
        group = int(pts["gpus_used"][r]) // int(pts["replicas"][r])
        assert np.isclose(est.tokens_per_s_per_gpu * group * pts["replicas"][r] / 8,
                          pts["tokens_per_s_per_gpu"][r], rtol=1e-6)


def test_huge_budgets_of_small_workers_stay_under_the_row_limit():
    from search import disagg

    pre = _workers([1] * 8, [1] * 8, np.linspace(50, 80, 8), np.linspace(0.02, 0.0125, 8), cfg=[0] * 8)
    dec = _workers([1] * 60, list(range(1, 31)) * 2, np.r_[np.linspace(10, 40, 30), np.linspace(11, 41, 30)],
                   np.zeros(60), cfg=[0] * 60)
    assert disagg.composed_rows(pre, dec, 256, disagg.MAX_WORKERS) > disagg.MAX_COMPOSED_ROWS
    kept = disagg.decode_dominant(dec)
    assert sorted(kept.tolist()) == list(range(30))          # the slower twin of each batch goes
    pts = compose(pre, dec, lambda p, d, same: 1.0, GroupLoad(100, 256), 0, [ParallelConfig()], [ParallelConfig()])
    assert 0 < len(pts) <= disagg.MAX_COMPOSED_ROWS
    assert np.all(pts["gpus_used"] <= 256)
