"""The aiperf command that measures a deployment at the load the plan predicts for it.

Closed loop at the predicted concurrency (`--concurrency`), synthetic prompts of the planned
length (a shared prefix of `prefix` tokens through `--prefix-prompt-length`), output lengths with
`ignore_eos` so every request really produces its tokens, BENCH_REQUESTS_PER_CONCURRENCY requests per
one in flight: the benchmark plan's numbers predict. The lengths spread as the plan's replays spread
them: uniform in [x(1 - r), x(1 + r)] there, normal here (aiperf's synthetic lengths) with the same
standard deviation, r x / sqrt(3); r = 0 gives fixed lengths. The artifact directory is what `servecast calibrate` reads back.
Flag names: ai-dynamo/aiperf, aiperf/common/config/*.py (see tests/search/test_artifacts_engines.py).
"""
from __future__ import annotations

import math
import shlex

from estimator.workload import BENCH_REQUESTS_PER_CONCURRENCY


def aiperf_command(model: str, url: str, concurrency: float, isl: int, osl: int, prefix: int,
                   artifact_dir: str, range_ratio: float = 0.0) -> list[str]:
    n = max(1, int(math.ceil(concurrency)))
    sd = range_ratio / math.sqrt(3.0)   # a uniform [x(1 - r), x(1 + r)]'s standard deviation, in units of x
    cmd = [
        "aiperf", "profile",
        "--model", model,
        "--url", url,
        "--endpoint-type", "chat",
        "--streaming",
        "--concurrency", str(n),
        "--synthetic-input-tokens-mean", str(isl - prefix),
        "--synthetic-input-tokens-stddev", str(round(sd * (isl - prefix))),
        "--output-tokens-mean", str(osl),
        "--output-tokens-stddev", str(round(sd * osl)),
        "--extra-inputs", "ignore_eos:true",
        "--request-count", str(max(BENCH_REQUESTS_PER_CONCURRENCY * n, 100)),
        "--warmup-request-count", str(n),
        "--artifact-dir", artifact_dir,
    ]
    if prefix:
        cmd[cmd.index("--concurrency"):cmd.index("--concurrency")] = [
            "--prefix-prompt-length", str(prefix), "--num-prefix-prompts", "1"]
    return cmd


def shell_line(cmd: list[str]) -> str:
    """The command as aiperf.sh runs it: $AIPERF_URL, when set, replaces the URL (a port-forward elsewhere, a
    test server), and the script's own arguments go last (e.g. `--tokenizer DIR` where the model's tokenizer
    cannot be downloaded). `bash aiperf.sh` alone runs exactly `cmd`."""
    i = cmd.index("--url")
    return f'{shlex.join(cmd[:i + 1])} "${{AIPERF_URL:-{cmd[i + 1]}}}" {shlex.join(cmd[i + 2:])} "$@"'
