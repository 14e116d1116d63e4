"""The srt-slurm recipes behind InferenceX's multi-node disaggregated runs: worker counts, per-role
parallelism and engine limits, speculative decoding, and the benchmark client's protocol.

How InferenceX launches them (read from its runner scripts, `runners/launch_<gpu>-*.sh`, 2026-01-28 on):
`git clone https://github.com/ishandhanani/srt-slurm.git` (now github.com/NVIDIA/srt-slurm), `git checkout
<branch or commit>` (`sa-submission-q1-2026` for the 2026-Q1 runs), then `srtctl apply -f $CONFIG_FILE`
with the config point's `additional-settings: CONFIG_FILE=recipes/...yaml`, a path inside that clone; the
recipe is applied as written (only its `name:` is replaced), so its `benchmark.concurrencies` are the
concurrencies that run measured. Before 2026-01-28 the runners cloned ai-dynamo/dynamo instead: those rows
name no srt-slurm recipe. The client is srt-slurm's `sa-bench` (`src/srtctl/benchmarks/scripts/sa-bench/
bench.sh`): per concurrency c a warm-up run of its own (2c prompts in the 2026 versions) and the measured
run (10c prompts), lengths drawn with --random-range-ratio (bench.sh's default 0.8, or the recipe's
`benchmark.random_range_ratio` where `sa_bench.py` passes it). These are launch configuration and client
code of the same runs, read on that ground; srt-slurm's result files and logs are never read.

The client does not talk to one router: srtctl's frontend stage (src/srtctl/cli/mixins/frontend_stage.py,
2026-01 on) puts nginx on the head node and one Dynamo frontend on each other node, up to
`num_additional_frontends + 1`, when `frontend.enable_multiple_frontends` (schema defaults True and 9,
src/srtctl/core/schema.py FrontendConfig) and the job has 2+ nodes; else one frontend and no nginx.
`Recipe.frontends` is that count, with the defaults read from schema.py at the recipe's commit.

Which recipe commit: the runner's ref at the row's InferenceX commit; a commit id or a branch this clone
holds is read as in effect at `measured=` (exact). The 2026-Q1 branch is not in the public history: it
was squash-merged into main (2026-03-03 and 2026-03-25, commits whose message names the branch), and
main had its own recipe changes, some later fixed on the branch (an H100 recipe's decode workers 2 on
main, 3 in the merge). So the branch's state at `measured=` is bracketed by two main-line snapshots:
the recipe as main had it at `measured=` (or, deleted there, its last earlier main-line version) and
the recipe in the first later main-line commit that names the branch (its merge). Where both exist,
a fact is kept only where they agree; where one exists, it is used and `note` says which.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace

import yaml

from calibrate.inferencex import shell
from calibrate.inferencex.repo import Kind, Repo
from calibrate.inferencex.scripts import ENGINE_ENV_PREFIXES
from estimator.run_facts import flatten_options
from perfdb.errors import DataError

SRT_SLURM = Kind("--srt-slurm", "srt-slurm", ("src/srtctl/benchmarks/scripts/sa-bench/bench.sh",
                                              "src/srtctl/__init__.py"), "github.com/NVIDIA/srt-slurm")
SA_BENCH = "src/srtctl/benchmarks/scripts/sa-bench/bench.sh"
SA_BENCH_PY = "src/srtctl/benchmarks/sa_bench.py"
SCHEMA = "src/srtctl/core/schema.py"
_MULTI_FE = re.compile(r"enable_multiple_frontends:\s*bool\s*=\s*(True|False)")
_EXTRA_FE = re.compile(r"num_additional_frontends:\s*int\s*=\s*(\d+)")
_CLONE = re.compile(r"git clone\s+(?:--\S+\s+)*(https://github\.com/[\w.-]+/srt-slurm[\w.-]*?)(?:\.git)?[\s\"]")
_CHECKOUT = re.compile(r"git checkout\s+([\w./-]+)")
# recipe key spellings per engine -> role field
_SGLANG = {"tp": ("tensor-parallel-size", "tp-size", "tp"), "dp": ("data-parallel-size", "dp-size", "dp"),
           "ep": ("expert-parallel-size", "ep-size", "ep"), "dp_attn": ("enable-dp-attention",),
           "max_batch": ("max-running-requests",), "max_num_tokens": ("chunked-prefill-size",),
           "mem_fraction": ("mem-fraction-static",), "cuda_graph_max_bs": ("cuda-graph-max-bs",),
           "spec_tokens": ("speculative-num-steps",), "spec": ("speculative-algorithm",)}
_TRTLLM = {"tp": ("tensor_parallel_size",), "ep": ("moe_expert_parallel_size",),
           "dp_attn": ("enable_attention_dp",), "max_batch": ("max_batch_size",),
           "max_num_tokens": ("max_num_tokens",), "mem_fraction": ("kv_cache_config.free_gpu_memory_fraction",),
           "cuda_graph_max_bs": ("cuda_graph_config.max_batch_size",),
           "spec_tokens": ("speculative_config.num_nextn_predict_layers",), "spec": ("speculative_config.decoding_type",)}
_ENGINES = {"sglang_config": _SGLANG, "trtllm_config": _TRTLLM}


@dataclass(frozen=True)
class RoleRecipe:
    """One role's engine as the recipe configures it; None = the recipe does not say."""

    tp: int | None
    ep: int | None
    dp_attn: bool | None
    attn_ranks: int | None           # attention-DP ranks of one worker (1 without attention DP)
    max_batch: int | None            # per attention rank (SGLang max-running-requests / dp-size)
    max_num_tokens: int | None       # as configured (TRT-LLM per rank; SGLang chunked-prefill-size)
    mem_fraction: float | None
    cuda_graph_max_bs: int | None
    spec_tokens: int | None          # draft steps when speculative decoding is configured, else None
    spec: bool | None
    flags: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)   # engine variables (ENGINE_ENV_PREFIXES) of its environment

    def common(self, other: "RoleRecipe") -> "RoleRecipe":
        """What both versions state alike (None where they differ)."""
        same = {f.name: getattr(self, f.name) if getattr(self, f.name) == getattr(other, f.name) else None
                for f in fields(self) if f.name not in ("flags", "env")}
        return RoleRecipe(**same, flags={k: v for k, v in self.flags.items() if other.flags.get(k) == v},
                          env={k: v for k, v in self.env.items() if other.env.get(k) == v})


@dataclass(frozen=True)
class Recipe:
    path: str
    commits: tuple[str, ...]         # the one version read, or the two bracketing the run (module doc)
    note: str                        # "" when read at the ref the run used, in effect at measured=
    prefill_workers: int | None
    decode_workers: int | None
    prefill: RoleRecipe
    decode: RoleRecipe
    concs: tuple[int, ...] | None    # benchmark.concurrencies (None: the recipe does not list them)
    bench: str                       # benchmark.type
    range_ratio: float | None        # benchmark.random_range_ratio when the recipe sets it
    frontends: int | None = None     # routers the client's requests are spread over (module doc); None: unknown

    def provenance(self, url: str) -> str:
        return f"{url}@{'+'.join(c[:12] for c in self.commits)}:{self.path}"

    def common(self, other: "Recipe", note: str) -> "Recipe":
        """Both versions' agreement; the concurrencies either lists (a point is only dropped when no
        version of its recipe runs the row's concurrency)."""
        def same(a, b):
            return a if a == b else None

        concs = None if self.concs is None or other.concs is None else tuple(sorted({*self.concs, *other.concs}))
        return Recipe(self.path, (*self.commits, *other.commits), note,
                      same(self.prefill_workers, other.prefill_workers), same(self.decode_workers, other.decode_workers),
                      self.prefill.common(other.prefill), self.decode.common(other.decode), concs,
                      self.bench if self.bench == other.bench else "", same(self.range_ratio, other.range_ratio),
                      same(self.frontends, other.frontends))


def runner_ref(ix: Repo, commit: str, gpu: str) -> tuple[str, str] | None:
    """(clone url, ref) of srt-slurm the InferenceX runners for `gpu` use at `commit`; None when they clone
    none (the runs before 2026-01-28 used ai-dynamo/dynamo recipes) or disagree on it."""
    found = set()
    for name in ix.listdir(commit, "runners"):
        if not name.startswith(f"launch_{gpu}") or not name.endswith(".sh"):
            continue
        text = ix.read(commit, f"runners/{name}") or ""
        url, ref = _CLONE.search(text), _CHECKOUT.search(text)
        if url and ref:
            found.add((url.group(1), ref.group(1)))
    return sorted(found)[0] if len(found) == 1 else None


def _pick(flat: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((flat[n] for n in names if n in flat and flat[n] not in ("None", "null")), None)


def _int(v: str | None) -> int | None:
    return int(float(v)) if v is not None and re.fullmatch(r"-?\d+(\.0+)?", v.strip()) else None


def _environment(backend: dict, role: str) -> dict[str, str]:
    """The engine variables srtctl gives one role's servers: `backend.<role>_environment` (srtctl's
    BackendConfig, src/srtctl/core/schema.py: a mapping of names to values exported into that worker's
    container), those of ENGINE_ENV_PREFIXES only, as engine_env keeps them."""
    block = backend.get(f"{role}_environment")
    if not isinstance(block, dict):
        return {}
    return {str(k): str(v) for k, v in block.items() if str(k).startswith(ENGINE_ENV_PREFIXES)}


def _role(cfg: dict, keys: dict, where: str) -> RoleRecipe:
    if not isinstance(cfg, dict):
        raise DataError(f"{where}: role config is not a mapping (unknown srt-slurm recipe layout)")
    flat = flatten_options(cfg)
    get = {k: _pick(flat, names) for k, names in keys.items()}
    dp_attn = (get["dp_attn"] or "").lower() == "true"
    tp = _int(get["tp"])
    ranks = (_int(get.get("dp")) or tp or 1) if dp_attn else 1
    batch = _int(get["max_batch"])
    if batch is not None and keys is _SGLANG:
        batch = max(1, batch // ranks)       # SGLang divides max_running_requests over the DP ranks
    graph = _int(get["cuda_graph_max_bs"])
    sizes = re.findall(r"\d+", flat.get("cuda-graph-bs", flat.get("cuda_graph_config.batch_sizes", "")))
    if graph is None and sizes:
        graph = max(int(s) for s in sizes)
    spec = get["spec"] is not None
    mem = get["mem_fraction"]
    return RoleRecipe(tp=tp, ep=_int(get["ep"]), dp_attn=dp_attn, attn_ranks=ranks, max_batch=batch,
                      max_num_tokens=_int(get["max_num_tokens"]), mem_fraction=None if mem is None else float(mem),
                      cuda_graph_max_bs=graph, spec_tokens=_int(get["spec_tokens"]) if spec else None, spec=spec,
                      flags=flat)


def sglang_role(flags: dict[str, str], where: str) -> RoleRecipe:
    """One role's engine from SGLang server flags (`name -> value`, the spellings recipes use); the Dynamo
    launch scripts (calibrate.inferencex.dynamo) pass the same flags on the command line."""
    return _role(flags, _SGLANG, where)


def frontend_defaults(srt: Repo, commit: str) -> tuple[bool | None, int | None]:
    """srtctl's FrontendConfig defaults at `commit` (enable_multiple_frontends, num_additional_frontends);
    None where schema.py does not state them."""
    text = srt.read(commit, SCHEMA) or ""
    multi, extra = _MULTI_FE.search(text), _EXTRA_FE.search(text)
    return (multi.group(1) == "True" if multi else None, int(extra.group(1)) if extra else None)


def _nodes(res: dict) -> int | None:
    """Nodes of the job: the recipe's prefill/decode/agg node counts, or its workers x GPUs per worker."""
    stated = [_int(str(res[k])) for k in ("prefill_nodes", "decode_nodes", "agg_nodes") if k in res]
    if stated and None not in stated:
        return sum(stated)
    per_node = _int(str(res.get("gpus_per_node")))
    gpus = [(_int(str(res.get(f"{r}_workers"))), _int(str(res.get(f"gpus_per_{r}")))) for r in ("prefill", "decode")]
    if not per_node or any(w is None or g is None for w, g in gpus):
        return None
    return sum(-(-w * g // per_node) for w, g in gpus)


def _frontends(doc: dict, res: dict, defaults: tuple[bool | None, int | None]) -> int | None:
    """How many routers srtctl puts behind its nginx for this recipe (module doc); None when unknown."""
    fe = doc.get("frontend") if isinstance(doc.get("frontend"), dict) else {}
    multi = fe.get("enable_multiple_frontends", defaults[0])
    nodes = _nodes(res)
    if multi is False or nodes == 1:
        return 1
    extra = _int(str(fe.get("num_additional_frontends", defaults[1])))
    if multi is None or extra is None or nodes is None:
        return None
    return min(extra + 1, nodes - 1)


def parse_recipe(text: str, path: str, commit: str, note: str = "",
                 fe_defaults: tuple[bool | None, int | None] = (None, None)) -> Recipe:
    """A recipe file (srtctl's layout: `resources`, `backend.<engine>_config.{prefill,decode}`, `benchmark`);
    DataError for anything else. `fe_defaults`: srtctl's frontend defaults at the commit (frontend_defaults)."""
    where = f"{path}@{commit[:10]}"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), dict) or \
            not isinstance(doc.get("backend"), dict):
        raise DataError(f"{where}: no resources / backend mapping (unknown srt-slurm recipe layout)")
    engines = [k for k in _ENGINES if isinstance(doc["backend"].get(k), dict)]
    if len(engines) != 1 or not {"prefill", "decode"} <= set(doc["backend"][engines[0]]):
        raise DataError(f"{where}: backend has no sglang_config / trtllm_config with prefill and decode "
                        "(unknown srt-slurm recipe layout)")
    cfg, keys, res = doc["backend"][engines[0]], _ENGINES[engines[0]], doc["resources"]
    bench = doc.get("benchmark") if isinstance(doc.get("benchmark"), dict) else {}
    concs = bench.get("concurrencies")
    concs = tuple(int(c) for c in re.findall(r"\d+", str(concs))) if concs not in (None, "") else None
    ratio = bench.get("random_range_ratio")
    return Recipe(path=path, commits=(commit,), note=note, prefill_workers=_int(str(res.get("prefill_workers"))),
                  decode_workers=_int(str(res.get("decode_workers"))),
                  prefill=replace(_role(cfg["prefill"], keys, f"{where}: prefill"),
                                  env=_environment(doc["backend"], "prefill")),
                  decode=replace(_role(cfg["decode"], keys, f"{where}: decode"),
                                 env=_environment(doc["backend"], "decode")), concs=concs,
                  bench=str(bench.get("type") or ""), range_ratio=None if ratio is None else float(ratio),
                  frontends=_frontends(doc, res, fe_defaults))


def recipe_at(srt: Repo, ref: str, measured: str, path: str) -> Recipe | None:
    """The recipe `path` as the run read it (see the module doc for the commits); None when none has it.
    Read and parsed once per (ref, time, path): matching asks for its concurrencies, enrichment for its facts."""
    return srt.remember(("recipe_at", ref, measured, path), lambda: _recipe_at(srt, ref, measured, path))


def _recipe_at(srt: Repo, ref: str, measured: str, path: str) -> Recipe | None:
    tip = srt.rev(ref)
    if tip is not None:
        commit = srt.commit_at(measured, tip)
        text = srt.read(commit, path) if commit else None
        return None if text is None else parse_recipe(text, path, commit, "", frontend_defaults(srt, commit))
    first = srt.commit_at(measured)
    if first is None:
        return None
    before = next((c for c in srt.earlier_changes(first, path) if srt.read(c, path) is not None), None)
    before = first if before is not None and srt.read(first, path) is not None else before
    merge = srt.after(srt.naming(ref), first)
    after = merge if merge is not None and srt.read(merge, path) is not None else None
    versions = [parse_recipe(srt.read(c, path), path, c, "", frontend_defaults(srt, c))
                for c in (before, after) if c is not None]
    if not versions:
        return None
    where = (f"main {before[:10]}" + ("" if before == first else ", its last version before measured=")
             if before else "") + (" and " if before and after else "") + \
        (f"{after[:10]} merging {ref} after measured=" if after else "")
    note = f"recipe at srt-slurm {where} ({ref} itself is not in the clone" + \
        ("; facts where both agree)" if len(versions) == 2 else ")")
    return versions[0].common(versions[1], note) if len(versions) == 2 else replace(versions[0], note=note)


@dataclass(frozen=True)
class Client:
    num_prompts: int | None
    num_warmups: int | None
    range_ratio: float | None
    file: str


def sa_bench(srt: Repo, commit: str, conc: int, recipe_ratio: float | None) -> Client | None:
    """The sa-bench client's protocol at `commit` for concurrency `conc`: bench.sh walked (never run) with
    that concurrency; its last benchmark_serving.py call that saves a result is the measured run, an
    earlier one the warm-up."""
    text = srt.read(commit, SA_BENCH)
    if text is None:
        return None
    env = {"concurrency": str(conc)}
    if recipe_ratio is not None and "random_range_ratio" in (srt.read(commit, SA_BENCH_PY) or ""):
        env["12"] = f"{recipe_ratio:g}"
    calls = [(c, ok) for c, ok in shell.run(text, env).commands if "benchmark_serving.py" in c]
    measured = [c for c, ok in calls if ok and "--save-result" in c]
    if not measured:
        return None
    flags = dict(re.findall(r"--([\w-]+)[= ]+\"?([0-9.]+)\"?", measured[-1]))
    warm = [(c, ok) for c, ok in calls if "--save-result" not in c]
    n = re.search(r"--num-prompts[= ]+\"?(\d+)\"?", warm[-1][0]) if warm else None
    # no warm-up call: none sent; one in a branch not decided, or with a count not read: unknown
    warmups = 0 if not warm else int(n.group(1)) if n and all(ok for _, ok in warm) else None
    ratio = flags.get("random-range-ratio")
    return Client(num_prompts=_int(flags.get("num-prompts")), num_warmups=warmups,
                  range_ratio=float(ratio) if ratio is not None else None, file=SA_BENCH)
