"""A synthetic prediction frame with a known truth: measured = predicted x scope factor x load effect x noise."""
from __future__ import annotations

import numpy as np
import pandas as pd

TRUE_FACTORS = {("h200_sxm", "vllm", "agg"): 1.5, ("h200_sxm", "trtllm", "agg"): 0.8, ("b200_sxm", "trtllm", "disagg"): 2.0}


def frame(deployments_per_scope: int = 5, concs=(1, 4, 16, 64, 256), noise: float = 0.05, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for (system, backend, mode), f in TRUE_FACTORS.items():
        for d in range(deployments_per_scope):
            tp = 2 ** (d % 3)
            for c in concs:
                pred_ttft = 50.0 * (1 + d) * (1 + 0.01 * c)
                pred_tpot = 8.0 + 0.05 * c
                load = (c ** 0.15)                    # the queueing the predictor misses, same everywhere
                rows.append({
                    "run_id": f"{system}-{backend}-{mode}-{d}-c{c}", "deployment_key": f"{system}|{backend}|{mode}|{d}",
                    "model": "m", "system": system, "backend": backend, "version": "1.0", "mode": mode,
                    "isl": 1024.0, "osl": 256.0, "concurrency": float(c), "gpus": tp, "weight_bits": 16.0,
                    "pred_ttft": pred_ttft, "pred_tpot": pred_tpot,
                    "measured_ttft": pred_ttft * f * load * np.exp(rng.normal(0, noise)),
                    "measured_tpot": pred_tpot * f ** 0.5 * np.exp(rng.normal(0, noise)),
                    "status": "ok"})
    rows.append({**rows[0], "run_id": "broken", "status": "no finite prediction", "pred_ttft": np.nan})
    return pd.DataFrame(rows)
