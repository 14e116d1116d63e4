"""The same agg replica shape serves the same tokens/s/GPU at any GPU count: the calibration's features
describe one replica (or one xPyD group), never the fleet, and the simulator replays a bounded slice."""
from __future__ import annotations

import numpy as np
import pytest

from perfdb.lookup import PerfDB
from perfdb.types import Backend
from search.decide import decide
from search.plan import plan
from search.simcheck import sim_calibration, simulate_candidate
from search.types import Mode, PlanRequest, Sla


def test_same_agg_replica_same_tokens_per_gpu_at_8_64_and_1024_gpus():
    db = PerfDB(None)   # the bundled database and its shipped calibrations
    static, simulated, decided = [], [], []
    for gpus in (8, 64, 1024):
        req = PlanRequest(model="Qwen/Qwen3-32B-FP8", system="h200_sxm", backends=(Backend.TRTLLM,), total_gpus=gpus,
                          isl=4000, osl=500, sla=Sla(600, 16.67), mode=Mode.AGG, top_n=1)
        r = plan(req, db)
        assert r.calibrations, "the bundled database ships a calibration for h200_sxm / trtllm"
        p = r.points
        rows = np.flatnonzero((p["d_tp"] == 2) & (p["d_pp"] == 1) & (p["d_dp"] == 1) & (p["d_batch"] == 20)
                              & (p["d_max_tokens"] == 2048))
        assert len(rows) == 1 and int(p["d_workers"][rows[0]]) == gpus // 2
        static.append(float(p["tokens_per_s_per_gpu"][rows[0]]))
        c = p.candidate(int(rows[0]), r.versions[Backend.TRTLLM])
        simulated.append(simulate_candidate(r, c, db, cal=sim_calibration(r, Backend.TRTLLM)).tokens_per_s_per_gpu)
        # the plan path: the winner decided on load (backed off where its static concurrency misses)
        d = decide(r, db)
        w, s = d.winner, d.sims[d.winner.row]
        decided.append(((w.decode.parallel, w.decode.max_batch, w.decode.max_num_tokens, s.concurrency / w.decode.workers),
                        w.metrics.tokens_per_s_per_gpu, s.tokens_per_s_per_gpu))
    for values in (static, simulated, [x[1] for x in decided], [x[2] for x in decided]):
        assert max(values) == pytest.approx(min(values), rel=0.02)
    assert len({x[0] for x in decided}) == 1     # the same replica shape, at the same clients per replica
