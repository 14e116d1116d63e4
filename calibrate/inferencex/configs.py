"""InferenceX benchmark configurations at one commit -> `ConfigPoint`s (one per search-space item).

Two layouts are known, each from reading the repository's history:
- master configs (from 2025-11-03): `.github/configs/nvidia-master.yaml`, one entry per config key with
  `image, model, model-prefix, runner, precision, framework, multinode, disagg` and either
  `seq-len-configs: [{isl, osl, search-space: [...]}]` or (from 2026-05) `scenarios: {fixed-seq-len: [...]}`.
  A search-space item has `conc-list` or `conc-start`/`conc-end` (doubling, as the sweep generator
  `utils/matrix_logic/generate_sweep_configs.py` expands it), `spec-decoding` (absent = none), and either
  single-node `tp, ep, dp-attn` (defaults ep 1, dp-attn false) or `prefill`/`decode` roles with
  `num-worker, tp, ep, dp-attn, additional-settings` (multi-node disaggregated recipes).
- workflow templates (before 2025-11-03): `.github/workflows/<prefix>-tmpl.yml` jobs that call
  `benchmark-tmpl.yml` with `runner, image, model, framework, precision, tp-list, conc-list` (default the
  template's input default), and `full-sweep-tmpl.yml` giving each prefix's isl/osl/random-range-ratio.
Anything else is an unknown layout (`DataError`), never a silent empty match.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from calibrate.inferencex.repo import Repo
from perfdb.errors import DataError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml: the master file is 7,000+ lines
MASTER = ".github/configs/nvidia-master.yaml"
TEMPLATE = ".github/workflows/benchmark-tmpl.yml"
SWEEP = ".github/workflows/full-sweep-tmpl.yml"
_FRAMEWORKS = {"trt": "trtllm", "dynamo-trt": "trtllm", "sglang": "sglang", "dynamo-sglang": "sglang",
               "vllm": "vllm", "dynamo-vllm": "vllm"}
# runner name prefix -> servecast system (NVIDIA runners only; AMD configs are not in the training runs)
_GPUS = {"h100": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "b300": "b300_sxm", "gb200": "gb200",
         "gb300": "gb300"}


@dataclass(frozen=True)
class RoleCfg:
    tp: int
    ep: int = 1
    dp_attn: bool = False
    workers: int = 1
    settings: tuple[str, ...] = ()      # additional-settings, e.g. CONFIG_FILE=recipes/...mtp3.yaml


@dataclass(frozen=True)
class ConfigPoint:
    """One search-space item of one config: a deployment swept over `concs` at one isl/osl."""

    key: str                  # config key (master) or `<prefix>-tmpl.yml:<job>` (templates)
    file: str                 # repository path the point was read from
    prefix: str               # model-prefix: dsr1 | gptoss | 70b | ...
    system: str               # servecast system from the runner, "" for a runner we do not model
    runner: str
    backend: str              # trtllm | sglang | vllm | "" (other frameworks)
    framework: str
    precision: str
    image: str
    isl: int
    osl: int
    concs: tuple[int, ...]
    spec: str                 # "mtp", "none", ... as the config says
    agg: RoleCfg | None
    prefill: RoleCfg | None
    decode: RoleCfg | None
    range_ratio: float | None = None    # templates layout: from the sweep workflow


def norm_image(image: str) -> str:
    """`nvcr.io#nvidia/x:tag` (enroot spelling) and `nvcr.io/nvidia/x:tag` are the same image."""
    return image.strip().replace("#", "/")


def _concs(item: dict, where: str) -> tuple[int, ...]:
    if "conc-list" in item:
        return tuple(int(c) for c in item["conc-list"])
    try:
        c, end = int(item["conc-start"]), int(item["conc-end"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: search-space item has neither conc-list nor conc-start/conc-end") from None
    out = []
    while c <= end:
        out.append(c)
        if c == end:
            break
        c = min(c * 2, end)
    return tuple(out)


def _role(d: dict) -> RoleCfg:
    return RoleCfg(tp=int(d["tp"]), ep=int(d.get("ep") or 1), dp_attn=bool(d.get("dp-attn")),
                   workers=int(d.get("num-worker") or 1),
                   settings=tuple(str(s) for s in d.get("additional-settings") or ()))


def _seq_lens(entry: dict, where: str) -> list[dict]:
    if "seq-len-configs" in entry:
        return list(entry["seq-len-configs"] or ())
    if isinstance(entry.get("scenarios"), dict):
        return list(entry["scenarios"].get("fixed-seq-len") or ())   # other scenarios are not fixed-length
    raise DataError(f"{where}: config entry has neither seq-len-configs nor scenarios (unknown config layout)")


def _master_points(text: str, path: str, commit: str) -> list[ConfigPoint]:
    where = f"{path}@{commit[:10]}"
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise DataError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataError(f"{where}: not a mapping of config keys to entries (unknown config layout)")
    out = []
    for key, e in data.items():
        missing = [k for k in ("image", "model-prefix", "runner", "precision", "framework") if k not in e]
        if missing:
            raise DataError(f"{where}: entry {key} lacks {', '.join(missing)} (unknown config layout)")
        runner = str(e["runner"])
        common = dict(key=str(key), file=path, prefix=str(e["model-prefix"]), runner=runner,
                      system=_GPUS.get(runner.split("-")[0], ""), backend=_FRAMEWORKS.get(str(e["framework"]), ""),
                      framework=str(e["framework"]), precision=str(e["precision"]), image=norm_image(str(e["image"])))
        for seq in _seq_lens(e, f"{where}: {key}"):
            for item in seq.get("search-space") or ():
                spec = str(item.get("spec-decoding") or "none")
                if "prefill" in item:
                    roles = dict(agg=None, prefill=_role(item["prefill"]), decode=_role(item["decode"]))
                else:
                    roles = dict(agg=_role(item), prefill=None, decode=None)
                out.append(ConfigPoint(isl=int(seq["isl"]), osl=int(seq["osl"]), concs=_concs(item, where),
                                       spec=spec, **roles, **common))
    return out


_TMPL_DEFAULT_CONC = re.compile(r"conc-list:\s*\n(?:\s+\w+:.*\n)*?\s+default:\s*'(\[[^']*\])'")


def _template_points(repo: Repo, commit: str) -> list[ConfigPoint]:
    """The pre-2025-11 layout: per-model workflow templates calling benchmark-tmpl.yml."""
    base = repo.read(commit, TEMPLATE) or ""
    m = _TMPL_DEFAULT_CONC.search(base)
    default_conc = _ints(m.group(1)) if m else None
    sweeps = _sweep_seq_lens(repo.read(commit, SWEEP) or "")
    out = []
    for name in repo.listdir(commit, ".github/workflows"):
        if not name.endswith("-tmpl.yml") or name in ("benchmark-tmpl.yml", "full-sweep-tmpl.yml",
                                                     "benchmark-multinode-tmpl.yml"):
            continue
        path = f".github/workflows/{name}"
        doc = yaml.safe_load(repo.read(commit, path) or "") or {}
        prefix = name[: -len("-tmpl.yml")]
        for job, spec in (doc.get("jobs") or {}).items():
            w = spec.get("with") or {}
            if "benchmark-tmpl.yml" not in str(spec.get("uses", "")) or "tp-list" not in w:
                continue
            concs = _ints(w["conc-list"]) if "conc-list" in w else default_conc
            if not concs:
                raise DataError(f"{path}@{commit[:10]}: job {job} has no conc-list and {TEMPLATE} no default "
                                "(unknown config layout)")
            runner = str(w["runner"])
            for isl, osl, ratio in sweeps.get(prefix, ()):
                for tp in _ints(w["tp-list"]):
                    out.append(ConfigPoint(
                        key=f"{name}:{job}", file=path, prefix=prefix, runner=runner,
                        system=_GPUS.get(runner.split("-")[0], ""), backend=_FRAMEWORKS.get(str(w["framework"]), ""),
                        framework=str(w["framework"]), precision=str(w["precision"]), image=norm_image(str(w["image"])),
                        isl=isl, osl=osl, concs=tuple(int(c) for c in concs), spec="none", agg=RoleCfg(tp=int(tp)),
                        prefill=None, decode=None, range_ratio=ratio))
    return out


def _ints(text) -> list[int]:
    """A workflow's JSON list of integers; entries that are `${{ }}` expressions are not sweep points."""
    return [int(v) for v in re.findall(r"(?<![\w$])(\d+)(?![\w}])", str(text))] if "${{" not in str(text) else []


def _sweep_seq_lens(text: str) -> dict[str, list[tuple[int, int, float | None]]]:
    """prefix -> [(isl, osl, random-range-ratio)] from the jobs of full-sweep-tmpl.yml."""
    doc = yaml.safe_load(text) if text else None
    out: dict[str, list] = {}
    for spec in ((doc or {}).get("jobs") or {}).values():
        uses, w = str(spec.get("uses", "")), spec.get("with") or {}
        m = re.search(r"/([\w.]+)-tmpl\.yml$", uses)
        if m and "isl" in w and m.group(1) not in ("benchmark", "full-sweep"):
            ratio = w.get("random-range-ratio")
            out.setdefault(m.group(1), []).append((int(w["isl"]), int(w["osl"]),
                                                   None if ratio is None else float(ratio)))
    return out


def points_at(repo: Repo, commit: str) -> tuple[str, list[ConfigPoint]]:
    """(layout name, points) of the configs at `commit`; DataError for a layout this parser does not know."""
    text = repo.read(commit, MASTER)
    if text is not None:
        return "master", _cached_master(repo, commit, text)
    if repo.read(commit, TEMPLATE) is not None and repo.read(commit, SWEEP) is not None:
        key = (str(repo.path), commit)
        if key not in _CACHE:
            _CACHE[key] = _template_points(repo, commit)
        return "templates", _CACHE[key]
    raise DataError(f"{repo.path} at {commit[:10]}: neither {MASTER} nor {TEMPLATE} + {SWEEP} "
                    "(unknown InferenceX config layout)")


_CACHE: dict[tuple[str, str], list[ConfigPoint]] = {}


def _cached_master(repo: Repo, commit: str, text: str) -> list[ConfigPoint]:
    key = (str(repo.path), repo.blob(commit, MASTER))     # the same file at many commits is parsed once
    if key not in _CACHE:
        _CACHE[key] = _master_points(text, MASTER, commit)
    return _CACHE[key]
