"""The ai-dynamo/dynamo launch files behind InferenceX's multi-node runs before 2026-01-28: per-role
engine limits and the benchmark client, where the clone holds the commit the run used.

How InferenceX launched them (its `benchmarks/<prefix>_<precision>_<gpu>_dynamo-<engine>_slurm.sh`, read at
the row's InferenceX commit and walked, never run, with the config point's settings as environment):
`git clone https://github.com/ai-dynamo/dynamo.git` and `git checkout <ref>` (or `git clone --branch <ref>`).
- dynamo-sglang: `b7107d00` (a commit, "all configs are frozen") from 2025-12-17; in the runner's
  SGL_SLURM_JOBS_PATH (`runners/launch_<gpu>-*.sh`) `bash ./submit_disagg.sh PREFILL_NODES PREFILL_WORKERS
  DECODE_NODES DECODE_WORKERS FRONTENDS ISL OSL CONCS RATE GPU_TYPE SCRIPT_MODE`. That script (walked with
  these arguments) names the GPU type, the script variant, GPUS_PER_NODE and the profiler; each worker then
  runs `scripts/<GPU_TYPE>/disagg/<variant>.sh prefill|decode` with TOTAL_GPUS = nodes per worker x
  GPUS_PER_NODE (`scripts/worker_setup.py`), whose `python3 -m dynamo.sglang` flags are the role's engine
  (read with the srt-slurm recipes' SGLang spellings, calibrate.inferencex.srtslurm); the client is
  `scripts/<profiler type>/bench.sh` (vllm: a warm-up sweep, then per concurrency c a measured run).
- dynamo-trt: `release/0.5.1-rc0.<date>` branches, whose `benchmark_disagg.slurm` takes the config
  point's own PREFILL_/DECODE_ settings as positional arguments (the InferenceX launch script passes
  them): those are read from the config (`trt_limits`), the branch is read only if the clone has it.
Which commit: a commit id is read exactly; a branch as in effect at `measured=` on it. A ref the clone
does not hold (the 0.5.1 release branches, a fork's branch) is said so and nothing of it is read.
These are launch configuration and client code of the same runs, read on the same ground as InferenceX's
configs and scripts; Dynamo's result files are never read.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace

from calibrate.inferencex import shell
from calibrate.inferencex.configs import ConfigPoint
from calibrate.inferencex.repo import Kind, Repo
from calibrate.inferencex.srtslurm import Client, RoleRecipe, sglang_role

DYNAMO = Kind("--dynamo", "ai-dynamo/dynamo", ("lib/runtime/Cargo.toml",),
              "github.com/ai-dynamo/dynamo (or a fork holding the commits the runs checked out)")
_CLONE = re.compile(r"git clone\s+(?:--branch\s+(\S+)\s+)?(https://github\.com/[\w.-]+/dynamo)(?:\.git)?\b")
_CHECKOUT = re.compile(r"git checkout\s+([\w./-]+)")
_ENGINE = ("dynamo.sglang", "sglang.launch_server")
# InferenceX config settings of a dynamo-trt point -> (role, field): the arguments its launch script passes
# to Dynamo's benchmark_disagg.slurm (ctx_batch_size, ctx_max_num_tokens, gen_batch_size, gen_max_num_tokens,
# gen_gpu_memory_fraction, mtp_size), which its gen_yaml.py writes as the TRT-LLM engine's max_batch_size,
# max_num_tokens, kv_cache_config.free_gpu_memory_fraction, num_nextn_predict_layers (read on Dynamo main at
# 8bd37c96d^, the last main-line version of components/backends/trtllm/performance_sweeps, the path the
# release branches use)
TRT_SETTINGS = {"PREFILL_MAX_BATCH_SIZE": ("prefill", "max_batch"), "PREFILL_MAX_NUM_TOKENS": ("prefill", "max_num_tokens"),
                "DECODE_MAX_BATCH_SIZE": ("decode", "max_batch"), "DECODE_MAX_NUM_TOKENS": ("decode", "max_num_tokens"),
                "DECODE_GPU_MEM_FRACTION": ("decode", "mem_fraction"), "DECODE_MTP_SIZE": ("decode", "spec_tokens")}


@dataclass(frozen=True)
class Launch:
    url: str
    ref: str
    args: tuple[str, ...]          # submit_disagg.sh's arguments as the launch script passes them
    jobs: str                      # the slurm_jobs directory inside the clone


@dataclass(frozen=True)
class DynamoRecipe:
    provenance: str                # clone url@commit:worker script
    prefill: RoleRecipe
    decode: RoleRecipe
    client: Client | None


def settings(p: ConfigPoint) -> dict[str, str]:
    """The point's additional-settings (`KEY=value`) of both roles."""
    pairs = (s.split("=", 1) for s in (*p.prefill.settings, *p.decode.settings) if "=" in s)
    return {k.strip(): v.strip() for k, v in pairs}


def trt_limits(p: ConfigPoint) -> dict[tuple[str, str], float]:
    """(role, field) -> value of a dynamo-trt point's engine settings (TRT_SETTINGS)."""
    out = {}
    for key, value in settings(p).items():
        if key in TRT_SETTINGS and re.fullmatch(r"\d+(\.\d+)?", value):
            out[TRT_SETTINGS[key]] = float(value) if "." in value else int(value)
    return out


def _runner_vars(ix: Repo, commit: str, p: ConfigPoint, env: dict) -> dict[str, str]:
    """Variables the point's runner scripts all set alike (e.g. SGL_SLURM_JOBS_PATH)."""
    seen: dict[str, set] = {}
    for name in ix.listdir(commit, "runners"):
        if name.startswith(f"launch_{p.runner.split('-')[0]}") and name.endswith(".sh"):
            walk = shell.run(ix.read(commit, f"runners/{name}") or "", env)
            for k, v in walk.vars.items():
                seen.setdefault(k, set()).add(v)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1 and None not in v and k not in env}


def launch(ix: Repo, commit: str, script: str, p: ConfigPoint, env: dict[str, str]) -> Launch | None:
    """The Dynamo clone, ref and submit arguments of the point's launch script; None when it names no single
    one (the walk leaves the clone or its ref undecided)."""
    env = {**env, **settings(p), "PREFILL_NUM_WORKERS": str(p.prefill.workers),
           "DECODE_NUM_WORKERS": str(p.decode.workers), "CONC_LIST": " ".join(str(c) for c in p.concs)}
    env.update(_runner_vars(ix, commit, p, env))
    walk = shell.run(ix.read(commit, script) or "", env)
    certain = [c for c, ok in walk.commands if ok]
    clones = [m for c in certain if (m := _CLONE.search(c))]
    refs = [m.group(1) for c in certain if (m := _CHECKOUT.search(c))] + [m.group(1) for m in clones if m.group(1)]
    submit = [c for c in certain if "submit_disagg.sh" in c]
    if len(clones) != 1 or len(set(refs)) != 1:
        return None
    args: tuple[str, ...] = ()
    if len(submit) == 1:
        try:
            args = tuple(shlex.split(submit[0].split("submit_disagg.sh", 1)[1]))
        except ValueError:
            args = ()
    # the runner's path is relative to the clone's parent (`dynamo/examples/...`): inside the clone, drop it
    jobs = (walk.vars.get("SGL_SLURM_JOBS_PATH") or "").split("/", 1)[-1]
    return Launch(clones[0].group(2), refs[0], args, jobs)


def dynamo_commit(dyn: Repo, ref: str, measured: str) -> str | None:
    """A commit id exactly; a branch as in effect at `measured`; None when the clone lacks the ref."""
    tip = dyn.rev(ref)
    if tip is None or tip.startswith(ref):
        return tip
    return dyn.commit_at(measured, tip)


def _flags(cmd: str) -> dict[str, str]:
    """`--name value...` of a command line (several values kept space-separated, a bare flag = true)."""
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = cmd.split()
    out: dict[str, str] = {}
    name = None
    for w in words:
        if w == "?":            # an expansion the walk left unknown (e.g. an optional suffix): not a value
            continue
        if w.startswith("--"):
            name = w[2:]
            out[name] = "true"
        elif name is not None:
            out[name] = w if out[name] == "true" else f"{out[name]} {w}"
    return out


def sglang_recipe(dyn: Repo, commit: str, lx: Launch, concs: tuple[int, ...], conc: int) -> DynamoRecipe | str:
    """The two roles' engines and the client of a dynamo-sglang launch at `commit`; a note when not read."""
    submit = dyn.read(commit, f"{lx.jobs}/submit_disagg.sh") if lx.jobs else None
    if submit is None or len(lx.args) < 4:
        return f"no {lx.jobs or 'slurm_jobs'}/submit_disagg.sh at dynamo {commit[:10]} (or no submit call read)"
    subv = shell.run(submit, {str(i + 1): a for i, a in enumerate(lx.args)}).vars
    gpu, variant, per_node = subv.get("GPU_TYPE"), subv.get("SCRIPT_VARIANT") or "default", subv.get("GPUS_PER_NODE")
    path = f"{lx.jobs}/scripts/{gpu}/disagg/{variant}.sh"
    text = dyn.read(commit, path) if gpu and per_node else None
    if text is None:
        return f"no worker script {path} at dynamo {commit[:10]}"
    roles = {}
    for role, (nodes, workers) in (("prefill", lx.args[0:2]), ("decode", lx.args[2:4])):
        per_worker, rest = divmod(int(nodes), max(int(workers), 1)) if nodes.isdigit() and workers.isdigit() else (0, 1)
        env = {"1": role, "TOTAL_NODES": str(per_worker), "TOTAL_GPUS": str(per_worker * int(per_node)),
               "RANK": "0", "RUN_IN_CI": "true", "USE_INIT_LOCATIONS": "false"}
        if rest or not per_worker:
            env.pop("TOTAL_GPUS")
        cmds = [c for c, ok in shell.run(text, env).commands if ok and any(e in c for e in _ENGINE)]
        if len(cmds) != 1:
            return f"{path} at dynamo {commit[:10]}: no single {role} engine command"
        roles[role] = sglang_role(_flags(cmds[0]), f"{path}@{commit[:10]}: {role}")
    prof = re.search(r"type=(\w+)", subv.get("profiler_args") or "")
    client = _bench(dyn, commit, f"{lx.jobs}/scripts/{prof.group(1)}/bench.sh", concs, conc) if prof else None
    client = replace(client, file=f"{lx.url}@{client.file}") if client is not None else None
    return DynamoRecipe(f"{lx.url}@{commit[:12]}:{path}", roles["prefill"], roles["decode"], client)


def _bench(dyn: Repo, commit: str, path: str, concs: tuple[int, ...], conc: int) -> Client | None:
    """The profiler script's protocol for concurrency `conc` of the sweep `concs`: the measured call (the one
    that saves a result) walked with that concurrency; the warm-up sweep (`warmup_concurrency_list`, the
    sweep's own concurrencies added where the script adds them, k x w prompts each) sent before it."""
    text = dyn.read(commit, path)
    if text is None:
        return None
    calls = [c for c, ok in shell.run(text, {"concurrency": str(conc)}).commands
             if ok and "benchmark_serving.py" in c and "--save-result" in c]
    if not calls:
        return None
    flags = _flags(calls[-1])
    listed = re.search(r"warmup_concurrency_list=\(([\d\s]+)\)", text)
    per = re.search(r"num_prompts=\$\(\(\s*warmup_concurrency\s*\*\s*(\d+)\s*\)\)", text)
    warm = None
    if listed and per:
        levels = {int(w) for w in listed.group(1).split()} | (set(concs) if "warmup_concurrency_list+=" in text else set())
        warm = int(per.group(1)) * sum(levels)
    n, ratio = flags.get("num-prompts", ""), flags.get("random-range-ratio", "")
    return Client(num_prompts=int(n) if n.isdigit() else None, num_warmups=warm,
                  range_ratio=float(ratio) if re.fullmatch(r"[0-9.]+", ratio) else None, file=f"{commit[:12]}:{path}")
