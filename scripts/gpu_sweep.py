"""The one prepared device run: GPU tests, the kernels the chain check needs, the chain check's model steps,
a model-driven kernel sweep and SGLang's Triton kernels, inside a wall-clock budget, writing under --out as
it goes (at most 8 files, so that a run cut short still returns what it measured).

    PYTHONPATH=. python3 scripts/gpu_sweep.py --out $OUT --minutes 5.5              (an H100/H200/B200 node)
    PYTHONPATH=. python3 scripts/gpu_sweep.py --out /tmp/rehearsal --device cpu --tiny   (the CPU rehearsal)

Files: env.txt, gpu_tests.txt, chain.jsonl (one line per timed model step), profile.txt (per-kernel time
of one prefill and one decode step per model), db.tar.gz (the collected database, re-packed after every
stage), sglang.jsonl, log.txt. Everything that compares (the chain check against the estimator, the
collected kernels against imported tables) runs afterwards on any machine: scripts/chain_check.py,
scripts/collect_report.py.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors import runner  # noqa: E402
from collectors.model_steps import StepPoint, build_model, step_fn, time_step, tiny_config, truncated_config  # noqa: E402
from collectors.plan import make_plan  # noqa: E402
from collectors.registry import GridSize  # noqa: E402
from collectors.session import open_session  # noqa: E402
from collectors.timer import TimerConfig  # noqa: E402
from estimator.collect_cases import model_cases  # noqa: E402
from estimator.models.catalog import catalog_entry  # noqa: E402
from estimator.models.hf_config import parse_config  # noqa: E402
from perfdb.types import Backend, Dtype, OpKind  # noqa: E402

# The chain check's models (architecture family -> catalog ids) and their truncated depth.
# Ordered so that a run cut short has covered every family first.
CHAIN_MODELS = (("dense_gqa", "meta-llama/Meta-Llama-3.1-8B"), ("moe", "Qwen/Qwen3-30B-A3B"),
                ("mla", "deepseek-ai/DeepSeek-V3"), ("dense_gqa", "Qwen/Qwen3-32B"))
CHAIN_LAYERS = 4
# (batch, new tokens) prefill and (batch, KV length) decode steps: 21 + 18 points per model
PREFILL_POINTS = tuple((b, s) for s in (128, 512, 1024, 2048, 4096, 8192) for b in (1, 2, 4, 8) if b * s <= 16384)
DECODE_POINTS = tuple((b, kv) for b in (1, 4, 16, 64, 256) for kv in (512, 2048, 8192)) + \
    ((1, 32768), (8, 32768), (32, 16384))
# The model-driven sweep (issue 18): shapes of these models at TP 1/2/4/8, bf16 and fp8 (GEMM + KV cache).
SWEEP_MODELS = ["meta-llama/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-70B", "Qwen/Qwen3-32B",
                "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V3"]
SWEEP_TPS = [1, 2, 4, 8]
# A short per-case budget: graph replays make even 50 repetitions of a 10 us kernel cheap.
KERNEL_TIMER = TimerConfig(budget_s=0.03, warmup_s=0.01, min_reps=5, max_reps=60)
STEP_TIMER = TimerConfig(budget_s=0.06, warmup_s=0.02, min_reps=5, max_reps=40)


class Run:
    def __init__(self, out: Path, seconds: float, device: str, tiny: bool, db: Path):
        self.out, self.device, self.tiny = out, device, tiny
        self.deadline = time.monotonic() + seconds
        self.db = db  # outside --out: only the packed copy travels back (the device returns at most 8 files)
        out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "log.txt", "a", buffering=1)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} {self.left():6.0f}s left] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def pack(self) -> None:
        if self.db.exists():
            tmp = self.out / "db.tar.gz.tmp"
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(self.db, arcname="db")
            tmp.replace(self.out / "db.tar.gz")


def chain_specs(tiny: bool) -> list[tuple[str, str, dict]]:
    """(family, model id, truncated config) of every chain-check model."""
    out = []
    for family, model_id in CHAIN_MODELS:
        cfg = truncated_config(catalog_entry(model_id)["config"], CHAIN_LAYERS - (family == "mla"))
        out.append((family, model_id, tiny_config(cfg) if tiny else cfg))
    return out


def points(tiny: bool) -> list[StepPoint]:
    if tiny:
        return [StepPoint("prefill", 2, 32), StepPoint("decode", 2, 40)]
    return [StepPoint("prefill", b, s) for b, s in PREFILL_POINTS] + [StepPoint("decode", b, kv) for b, kv in DECODE_POINTS]


def env(run: Run) -> None:
    import platform

    import torch

    lines = [f"date {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}", f"python {platform.python_version()}",
             f"torch {torch.__version__} cuda {torch.version.cuda} available {torch.cuda.is_available()}"]
    for name in ("triton", "transformers", "numpy", "pandas", "pyarrow", "pynvml"):
        try:
            version = getattr(__import__(name), "__version__", "(no version attribute)")
            lines.append(f"{name} {version}")
        except ImportError as exc:
            lines.append(f"{name} MISSING ({exc})")
    if run.device == "cuda":
        lines.append(f"gpu {torch.cuda.get_device_name(0)} capability {torch.cuda.get_device_capability(0)}")
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,"
                              "temperature.gpu", "--format=csv"], capture_output=True, text=True, check=False)
        lines.append(smi.stdout.strip() or smi.stderr.strip())
    (run.out / "env.txt").write_text("\n".join(lines) + "\n")
    run.say("env: " + " | ".join(lines[2:4]))


def gpu_tests(run: Run, seconds: float) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/collectors"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, check=False)
        text = res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        text = f"timed out after {seconds:.0f} s\n{exc.stdout or ''}"
    (run.out / "gpu_tests.txt").write_text(text)
    run.say("gpu tests: " + (text.strip().splitlines() or ["(no output)"])[-1])


def collect(run: Run, session, cases, seconds: float, what: str) -> None:
    ops = [k for k in OpKind if k != OpKind.COMM]   # one GPU: no collectives
    plan = make_plan(ops, GridSize.TINY, session.ctx, session.spec, session.timer, cases, base=False)
    summary = runner.run(list(plan.cases), run.db, session, budget_s=max(seconds, 1.0), rows_per_shard=64)
    run.say(f"{what}: {summary.measured} measured, {summary.failed} failed, {summary.skipped} already there, "
            f"{summary.remaining} left for lack of time")
    run.pack()


def chain_cases(run: Run, system) -> list:
    out = []
    pts = points(run.tiny)
    prefill = tuple((p.batch, p.seq) for p in pts if p.phase == "prefill")
    decode = tuple((p.batch, p.seq) for p in pts if p.phase == "decode")
    for _, _, cfg in chain_specs(run.tiny):
        spec = parse_config(cfg, "chain")
        out += model_cases(spec, system, [1], prefill, decode).cases
    return out


def sweep_cases(run: Run, system) -> list:
    if run.tiny:
        return []
    out = []
    for model_id in SWEEP_MODELS:
        spec = parse_config(catalog_entry(model_id)["config"], model_id)
        for variant in (spec, spec.with_quant(gemm_quant=Dtype.FP8, kv_dtype=Dtype.FP8)):
            out += model_cases(variant, system, SWEEP_TPS).cases
    return out


def chain(run: Run, seconds: float) -> None:
    import torch

    stop = time.monotonic() + seconds
    with open(run.out / "chain.jsonl", "a", buffering=1) as fh:
        for family, model_id, cfg in chain_specs(run.tiny):
            if time.monotonic() > stop:
                run.say(f"chain: out of time before {model_id}")
                break
            t0 = time.monotonic()
            model = build_model(cfg, run.device)
            run.say(f"chain: {model_id} built in {time.monotonic() - t0:.1f} s")
            for point in points(run.tiny):
                if time.monotonic() > stop:
                    break
                rec = {"family": family, "model": model_id, "config": cfg, **asdict(point)}
                try:
                    timing = time_step(model, point, run.device, STEP_TIMER)
                    rec.update(ms=timing.median_ms, p10_ms=timing.p10_ms, p90_ms=timing.p90_ms, n=timing.n,
                               method=timing.method.value)
                except (RuntimeError, ValueError, torch.cuda.OutOfMemoryError) as exc:
                    rec["error"] = str(exc).splitlines()[0][:300]
                fh.write(json.dumps(rec) + "\n")
                if run.device == "cuda":
                    torch.cuda.empty_cache()  # the last point's static cache and graph pool
            stage(run, f"profile {model_id}", profile, run, model_id, model)
            del model
            if run.device == "cuda":
                torch.cuda.empty_cache()


def profile(run: Run, model_id: str, model) -> None:
    """Per-kernel device time of one prefill and one decode step (eager), to read a composition error by."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from collectors.timer import time_op

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.device == "cuda" else [])
    sort = "cuda_time_total" if run.device == "cuda" else "cpu_time_total"
    with open(run.out / "profile.txt", "a") as fh:
        for point in (StepPoint("prefill", 1, 64 if run.tiny else 2048), StepPoint("decode", 2 if run.tiny else 64,
                                                                                      64 if run.tiny else 2048)):
            fn = step_fn(model, point, run.device)
            time_op(fn, run.device, TimerConfig(budget_s=0.01, use_graph=False, min_reps=2, max_reps=3))
            with torch_profile(activities=acts) as prof:
                fn()
                if run.device == "cuda":
                    torch.cuda.synchronize()
            fh.write(f"\n=== {model_id} {point.label} ===\n")
            fh.write(prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60) + "\n")


def sglang(run: Run, seconds: float) -> None:
    wheels = Path(".whl")
    script = Path("scripts/gpu_sglang_kernels.py")
    if not (wheels.is_dir() and script.exists()):
        run.say("sglang: no carried wheel (.whl/) or no scripts/gpu_sglang_kernels.py; skipped")
        return
    cmd = [sys.executable, str(script), "--wheel-dir", str(wheels), "--out", str(run.out / "sglang.jsonl"),
           "--seconds", str(max(5, int(seconds) - 10)), "--device", run.device] + (["--tiny"] if run.tiny else [])
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, check=False)
        run.say("sglang: " + ((res.stdout + res.stderr).strip().splitlines() or ["(no output)"])[-1][:300])
    except subprocess.TimeoutExpired:
        run.say(f"sglang: timed out after {seconds:.0f} s")


def stage(run: Run, name: str, fn, *args) -> None:
    """Run one stage; a failure is logged with its traceback and the run goes on: a device run must bring
    back whatever the other stages measured."""
    import traceback

    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - any stage's failure is reported, never fatal, on the device
        run.say(f"{name} FAILED:\n{traceback.format_exc()}")
    run.pack()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=5.5, help="wall-clock budget of the whole run")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="CPU rehearsal: tiny models, tiny shapes")
    ap.add_argument("--db", type=Path, default=Path("/tmp/servecast_gpu_db"), help="where the database is built")
    ap.add_argument("--skip", default="", help="comma list of stages to skip: tests,chain,sweep,sglang")
    args = ap.parse_args()
    run = Run(args.out, args.minutes * 60, args.device, args.tiny, args.db)
    skip = set(filter(None, args.skip.split(",")))
    stage(run, "env", env, run)
    timer = KERNEL_TIMER if args.device == "cuda" else TimerConfig.for_device("cpu", 0.005)
    session = open_session(Backend.TORCH, args.device, timer, None if args.device == "cuda" else "cpu_host")
    run.say(f"session: {session.prov.system} / torch {session.prov.backend_version} on {session.info.gpu_name}")
    if "tests" not in skip:
        stage(run, "gpu tests", gpu_tests, run, min(75.0, run.left() * 0.2))
    if "chain" not in skip:
        stage(run, "chain kernels", lambda: collect(run, session, chain_cases(run, session.spec),
                                                     min(75.0, run.left() * 0.3), "chain kernels"))
        stage(run, "chain", chain, run, min(110.0, run.left() * 0.55))
    if "sweep" not in skip:
        reserve = 0 if "sglang" in skip else 40
        stage(run, "sweep", lambda: collect(run, session, sweep_cases(run, session.spec), run.left() - reserve - 5,
                                            "model sweep"))
    if "sglang" not in skip:
        stage(run, "sglang", sglang, run, max(run.left() - 5, 10))
    run.pack()
    run.say("done")


if __name__ == "__main__":
    main()
