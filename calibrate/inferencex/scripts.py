"""Launch scripts and the benchmark client of one InferenceX run: engine flags and client protocol.

The runner scripts start `benchmarks/[single_node/|multi_node/]<prefix>_<precision>_<gpu><framework
suffix><_mtp>[_slurm|_docker].sh` (`runners/launch_*.sh`: FRAMEWORK_SUFFIX `_trt` for TensorRT-LLM, none
for the model's default engine; SPEC_SUFFIX `_mtp`). The single-node client call is in that script
(`benchmark_serving.py` or, from 2025-11-21, `run_benchmark_serving` of `benchmarks/benchmark_lib.sh`,
which adds `--num-warmups 2 x concurrency` from 2026-01-21), or, for a `_docker.sh` launch, in the
runner that started it (`runner_client`); the client itself is InferenceX's vendored one (from
2026-01-21) or a clone made at run time (`UNPINNED_CLIENTS`); RANDOM_RANGE_RATIO comes from the workflow
template's env (`benchmark-tmpl.yml`, `benchmark-multinode-tmpl.yml`) or, before 2025-11, the sweep
workflow's input. Multi-node disaggregated recipes live in an external repository (srt-slurm); of
those runs InferenceX records the range ratio (workflow env) and the recipe file name (batch, MTP
depth), not the request count.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from calibrate.inferencex import shell
from calibrate.inferencex.configs import ConfigPoint, RoleCfg
from calibrate.inferencex.repo import Repo

SCRIPT_DIRS = ("benchmarks/single_node", "benchmarks/multi_node", "benchmarks")
LIB = "benchmarks/benchmark_lib.sh"
VENDORED_CLIENT = "utils/bench_serving/benchmark_serving.py"
WORKFLOWS = {False: ".github/workflows/benchmark-tmpl.yml", True: ".github/workflows/benchmark-multinode-tmpl.yml"}
_SERVERS = ("trtllm-serve", "sglang.launch_server", "vllm serve", "vllm.entrypoints")
_CLIENTS = ("run_benchmark_serving", "benchmark_serving.py")
# The client cloned at run time without a pinned ref (`git clone https://github.com/kimbochen/bench_serving`,
# no checkout): the run used that repository's default-branch HEAD at the moment it ran, i.e. the commit in
# effect at measured=. Its benchmark_serving.py has no --num-warmups: it sends one "initial single prompt test
# run" (the first prompt, alone, awaited) and then the measured requests. Read at kimbochen/bench_serving
# 406abc35 and at 2ddd364c, the commit InferenceX vendored on 2026-01-21 (InferenceX d053ae24e, "upstream
# kimbochen/bench_serving, adding warmup": the warm-up requests were what the port added), so every clone
# before that date ran a version without warm-up requests (docs/calibration.md section 2b).
UNPINNED_CLIENTS = {"github.com/kimbochen/bench_serving": 0}
_CLONE = re.compile(r"git clone\s+(?:--\S+\s+)*https://(github\.com/[\w.-]+/[\w.-]+?)(?:\.git)?(?=[\s\"']|$)", re.M)
_PINNED = re.compile(r"git (?:-C \S+ )?checkout\s|git clone\s+[^\n]*(?:--branch|\s-b)\s")
_FLAG = re.compile(r"--([\w-]+)(?:[= ]+(\"[^\"]*\"|'[^']*'|[^\s-][^\s]*))?")
# engine flag (any spelling) -> enrichment column
_KNOWN = {
    "engine_max_batch_size": ("max_batch_size", "max-running-requests", "max-num-seqs"),
    "engine_max_num_tokens": ("max_num_tokens", "max-num-batched-tokens", "chunked-prefill-size"),
    "engine_kv_dtype": ("kv-cache-dtype", "kv_cache_config.dtype"),
    "engine_mem_fraction": ("gpu-memory-utilization", "mem-fraction-static", "kv_cache_config.free_gpu_memory_fraction"),
    "engine_cuda_graph_max_bs": ("cuda-graph-max-bs", "cuda_graph_config.max_batch_size", "max-cudagraph-capture-size"),
    "spec_tokens": ("speculative_config.num_nextn_predict_layers", "speculative-num-steps",
                    "speculative_config.num_speculative_tokens"),
}


# Environment variables the engines read for themselves (vllm/envs.py VLLM_*, sglang/srt/environ.py and
# server_args SGLANG_* / SGL_*, tensorrt_llm TRTLLM_* / TLLM_*): some choose kernels no launch flag names
# (VLLM_MXFP4_USE_MARLIN: Marlin's mxfp4 MoE on Hopper; SGLANG_ENABLE_JIT_DEEPGEMM=false: no DeepGEMM).
ENGINE_ENV_PREFIXES = ("VLLM_", "SGLANG_", "SGL_", "TRTLLM_", "TLLM_")
_PREFIX_ASSIGN = re.compile(r"([A-Za-z_]\w*)=(\S*)\s+")


@dataclass(frozen=True)
class ScriptFacts:
    path: str
    flags: dict[str, str]              # every flag read; "?" where shell logic left it unknown
    known: dict[str, str]              # enrichment column -> value (only decided ones)
    client: dict[str, float | int]     # client_range_ratio / client_num_prompts / client_num_warmups
    client_files: tuple[str, ...]
    warmup: str | None = None          # client_warmup (estimator.run_facts)
    env: dict[str, str] | None = None  # engine environment (engine_env): ENGINE_ENV_PREFIXES names the server gets


def find_script(repo: Repo, commit: str, p: ConfigPoint) -> str | None:
    """The launch script the runner starts for this point, None if the commit has none."""
    gpu = p.runner.split("-")[0]
    stem = f"{p.prefix}_{p.precision}_{gpu}"
    fw = {"trt": {"trt"}, "sglang": {"sglang"}, "vllm": {"vllm"}}.get(p.framework, {p.framework})
    want_spec = {"mtp"} if p.spec == "mtp" else set()
    found = []
    for folder in SCRIPT_DIRS:
        for name in repo.listdir(commit, folder):
            if not (name.startswith(stem + "_") or name == stem + ".sh") or not name.endswith(".sh"):
                continue
            tokens = set(name[len(stem):-3].split("_")) - {"", "slurm", "docker"}
            spec = tokens & {"mtp"}
            engine = tokens - spec
            default_engine = not engine and p.framework in ("sglang", "vllm")
            if spec == want_spec and (engine == fw or default_engine):
                rank = (0 if engine else 1, 0 if "slurm" in name else 1)
                found.append((rank, f"{folder}/{name}"))
    return min(found)[1] if found else None


def run_env(p: ConfigPoint, conc: int, range_ratio: float | None) -> dict[str, str]:
    role = p.agg or p.decode or RoleCfg(tp=1)
    env = {"TP": str(role.tp), "EP_SIZE": str(role.ep), "DP_ATTENTION": "true" if role.dp_attn else "false",
           "CONC": str(conc), "ISL": str(p.isl), "OSL": str(p.osl), "PRECISION": p.precision,
           "FRAMEWORK": p.framework, "SPEC_DECODING": p.spec, "MODEL_PREFIX": p.prefix}
    if range_ratio is not None:
        env["RANDOM_RANGE_RATIO"] = f"{range_ratio:g}"
    return env


def workflow_range_ratio(repo: Repo, commit: str, multinode: bool) -> tuple[float | None, str]:
    """RANDOM_RANGE_RATIO of the benchmark workflow template's env (a literal, or its
    `random-range-ratio` input's default when no caller passes one), with the file read."""
    path = WORKFLOWS[multinode]
    text = repo.read(commit, path) or ""
    m = re.search(r"^\s*RANDOM_RANGE_RATIO:\s*['\"]?([0-9.]+)", text, re.M) or \
        re.search(r"^\s*random-range-ratio:\s*\n(?:\s+[\w-]+:.*\n)*?\s+default:\s*['\"]?([0-9.]+)", text, re.M)
    return (float(m.group(1)), path) if m else (None, path)


def _flags(cmd: str) -> dict[str, str]:
    return {m.group(1): (m.group(2) or "true").strip("\"'") for m in _FLAG.finditer(cmd)}


def _flatten(d, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (d or {}).items() if isinstance(d, dict) else ():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def _config_file(body: str) -> dict[str, str]:
    """A here-document's YAML flattened. Where the whole fails to parse (an unknown variable left as `?`,
    which YAML reads as a key marker: `max-model-len: ?`), each top-level `key: value` line is read alone
    and a line that still fails keeps its key as unknown, so one unknown value loses no other flag."""
    try:
        return _flatten(yaml.safe_load(body))
    except yaml.YAMLError:
        pass
    out: dict[str, str] = {}
    for line in body.splitlines():
        if m := re.match(r"([\w.-]+):\s*(.*)$", line):
            try:
                out.update(_flatten(yaml.safe_load(line)))
            except yaml.YAMLError:
                out[m.group(1)] = "?"
    return out


def engine_flags(walk: shell.Walk) -> dict[str, str]:
    flags: dict[str, str] = {}
    for body, certain in walk.heredocs:
        for k, v in _config_file(body).items():
            flags[k] = v if certain and flags.get(k, v) == v else "?"
    for cmd, certain in walk.commands:
        if any(s in cmd for s in _SERVERS):
            head = cmd.split(">")[0]
            for k, v in _flags(head).items():
                flags[k] = v if certain and "$" not in v else "?"
    return flags


def engine_env(walk: shell.Walk) -> dict[str, str]:
    """The engine variables (ENGINE_ENV_PREFIXES) the server starts with: those the script exports, and
    those set on the server's own command line (`VLLM_X=1 vllm serve ...`); `?` where shell logic left the
    value unknown (an undecided branch, an unknown variable)."""
    out = {name: walk.vars.get(name) or "?" for name in walk.exported
           if name.startswith(ENGINE_ENV_PREFIXES) and name in walk.vars}
    for cmd, certain in walk.commands:
        if not any(s in cmd for s in _SERVERS):
            continue
        pos = 0
        while m := _PREFIX_ASSIGN.match(cmd, pos):
            if m.group(1).startswith(ENGINE_ENV_PREFIXES):
                out[m.group(1)] = m.group(2).strip("\"'") if certain and "?" not in m.group(2) else "?"
            pos = m.end()
    return out


def _known(flags: dict[str, str]) -> dict[str, str]:
    out = {}
    for col, names in _KNOWN.items():
        vals = [flags[n] for n in names if n in flags]
        if vals and "?" not in vals[0]:
            out[col] = vals[0]
    return out


def client_protocol(repo: Repo, commit: str, walk: shell.Walk, conc: int, text: str = "") -> tuple[dict, tuple[str, ...]]:
    """--random-range-ratio, --num-prompts, --num-warmups of the script's client call (with benchmark_lib's),
    and `client_warmup` where the client's own code is known (`text`: the launch script)."""
    out: dict = {}
    files: list[str] = []
    source, called = text, False
    for cmd, certain in walk.commands:
        if not certain or not any(c in cmd for c in _CLIENTS):
            continue
        called = True
        f = _flags(cmd)
        if re.fullmatch(r"[0-9.]+", f.get("random-range-ratio", "")):
            out["client_range_ratio"] = float(f["random-range-ratio"])
        if "num-prompts" in f and f["num-prompts"].isdigit():
            out["client_num_prompts"] = int(f["num-prompts"])
        if "num-warmups" in f and f["num-warmups"].isdigit():
            out["client_num_warmups"] = int(f["num-warmups"])
        if "run_benchmark_serving" in cmd:
            source = repo.read(commit, LIB) or ""
            files.append(LIB)
            m = re.search(r"--num-warmups\s+\"?\$\(\((.+?)\)\)", source)
            if m and "client_num_warmups" not in out:
                w = shell.arith(m.group(1), {"max_concurrency": str(conc)})
                if w is not None:
                    out["client_num_warmups"] = w
        break
    if called:
        files.extend(_client_code(repo, commit, source, out))
    return out, tuple(files)


def _client_code(repo: Repo, commit: str, source: str, out: dict) -> list[str]:
    """The warm-up the client's own code sends (sets client_num_warmups when the call does not pass it, and
    client_warmup); returns what was read. The client is InferenceX's vendored one, or a clone the script
    (or benchmark_lib.sh) makes at run time."""
    if VENDORED_CLIENT in source:
        client = repo.read(commit, VENDORED_CLIENT) or ""
        if "client_num_warmups" not in out and re.search(r"['\"]--num-warmups['\"].*default=0\b", client):
            out["client_num_warmups"] = 0      # flag not passed; the vendored client's default
        if "initial single prompt test run" in client:
            out["client_warmup"] = "test-request"
        return [VENDORED_CLIENT] if client else []
    clones = {m.group(1) for m in _CLONE.finditer(source)} & set(UNPINNED_CLIENTS)
    if len(clones) == 1 and not _PINNED.search(source) and "client_num_warmups" not in out:
        url = clones.pop()
        out["client_num_warmups"] = UNPINNED_CLIENTS[url]
        out["client_warmup"] = "test-request"
        return [f"{url}@HEAD at measured= (cloned unpinned)"]
    return []


def runner_client(repo: Repo, commit: str, p: ConfigPoint, env: dict[str, str], conc: int) -> tuple[dict, tuple[str, ...]]:
    """The client of a `_docker.sh` launch, which only starts the server: the runner scripts that start
    docker launches (`runners/launch_<gpu>-*.sh`, the one run is the machine's, not recorded) call it;
    each is walked with the run's environment and what they all state alike is kept."""
    found = []
    gpu = p.runner.split("-")[0]
    for name in repo.listdir(commit, "runners"):
        text = (repo.read(commit, f"runners/{name}") or "") if name.startswith(f"launch_{gpu}-") else ""
        if "_docker.sh" in text:
            client, files = client_protocol(repo, commit, shell.run(text, env), conc, text)
            found.append((client, (f"runners/{name}", *files)))
    if not found:
        return {}, ()
    keys = {k for client, _ in found for k in client}
    same = {k: found[0][0].get(k) for k in keys if len({repr(client.get(k)) for client, _ in found}) == 1}
    return {k: v for k, v in same.items() if v is not None}, tuple(sorted({f for _, fs in found for f in fs}))


def read_script(repo: Repo, commit: str, p: ConfigPoint, conc: int, range_ratio: float | None) -> ScriptFacts | None:
    path = find_script(repo, commit, p)
    if path is None:
        return None
    text = repo.read(commit, path) or ""
    env = run_env(p, conc, range_ratio)
    walk = shell.run(text, env)
    flags = engine_flags(walk)
    client, files = client_protocol(repo, commit, walk, conc, text)
    if not client and path.endswith("_docker.sh"):
        client, files = runner_client(repo, commit, p, env, conc)
    warmup = client.pop("client_warmup", None)
    return ScriptFacts(path=path, flags=flags, known=_known(flags), client=client, client_files=(path, *files),
                       warmup=warmup, env=engine_env(walk))
