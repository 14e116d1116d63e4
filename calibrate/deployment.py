"""What was deployed, for result files that do not say: a deployment spec file or command-line values.

Spec file (YAML or JSON; a top-level `deployment:` section is also accepted, so a plan artifact can
carry it beside other things):

    model: Qwen/Qwen3-32B          # HF id or path, as `servecast estimate --model` takes
    system: h200_sxm
    backend: vllm
    version: 0.12.0                # optional
    mode: agg                      # agg | disagg
    precision: fp8                 # optional: gemm_quant / moe_quant (perfdb Dtype values) too
    agg: {tp: 2, pp: 1, attn_dp: 1, moe_tp: 1, moe_ep: 1, workers: 1}
    # disagg instead: prefill: {tp: 4, workers: 2}   decode: {tp: 8, workers: 1}
    engine: {max_batch_size: 256, max_num_tokens: 8192, mem_fraction: 0.9, kv_dtype: fp8}

Role values on the command line use the same keys: "tp=4,ep=4,workers=2" (`dp` = attn_dp, `ep` = moe_ep).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from calibrate.runs import Deployment, EngineSettings, Mode, Role
from estimator.parallel import ParallelConfig
from perfdb.errors import DataError, InputError
from perfdb.types import Backend, parse_enum
from perfdb.userfiles import read_text

_ROLE_KEYS = {"tp": "tp", "pp": "pp", "attn_dp": "attn_dp", "dp": "attn_dp", "moe_tp": "moe_tp",
              "etp": "moe_tp", "moe_ep": "moe_ep", "ep": "moe_ep", "workers": "workers", "batch_size": "batch_size"}
_ENGINE_KEYS = ("max_batch_size", "max_num_tokens", "mem_fraction", "kv_dtype", "extra", "flags")


@dataclass(frozen=True)
class DeploymentFlags:
    """Deployment values given on the command line; None = not given."""

    model: str | None = None
    system: str | None = None
    backend: str | None = None
    version: str | None = None
    mode: str | None = None
    agg: str | None = None        # role spec "tp=2,workers=1"
    prefill: str | None = None
    decode: str | None = None
    precision: str | None = None

    def any(self) -> bool:
        return any(v is not None for v in vars(self).values())


def parse_role(spec: object, what: str) -> Role:
    """A Role from {"tp": 4, ...} or "tp=4,ep=4,workers=2"; unknown keys are errors."""
    if isinstance(spec, str):
        items = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise InputError(f"{what}: {part!r} is not key=value; e.g. tp=4,ep=4,workers=2")
            k, v = part.split("=", 1)
            items[k.strip()] = v.strip()
        spec = items
    if not isinstance(spec, dict):
        raise InputError(f"{what}: expected a mapping or 'tp=..,workers=..', got {type(spec).__name__}")
    vals: dict[str, int] = {}
    for key, value in spec.items():
        if key not in _ROLE_KEYS:
            raise InputError(f"{what}: unknown key {key!r}; accepted: {', '.join(_ROLE_KEYS)}")
        try:
            vals[_ROLE_KEYS[key]] = int(value)
        except (TypeError, ValueError):
            raise InputError(f"{what}: {key}={value!r} is not an integer") from None
    workers, batch = vals.pop("workers", 1), vals.pop("batch_size", None)
    par = ParallelConfig(**vals)
    return Role(parallel=par, workers=workers, batch_size=batch)


def from_mapping(d: dict, where: str) -> Deployment:
    if isinstance(d.get("deployment"), dict):
        d = d["deployment"]
    missing = [k for k in ("model", "system", "backend", "mode") if not d.get(k)]
    if missing:
        raise InputError(f"{where}: deployment lacks {', '.join(missing)}")
    mode = parse_enum(Mode, str(d["mode"]), "mode")
    roles = {r: parse_role(d[r], f"{where}: {r}") for r in ("agg", "prefill", "decode") if d.get(r) is not None}
    if mode is Mode.AGG and "agg" not in roles:
        roles["agg"] = parse_role(d.get("parallel") or {}, f"{where}: parallel")
    engine = d.get("engine") or {}
    unknown = sorted(set(engine) - set(_ENGINE_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown engine key(s) {', '.join(unknown)}; accepted: {', '.join(_ENGINE_KEYS)}")
    return Deployment(model=str(d["model"]), system=str(d["system"]),
                      backend=parse_enum(Backend, str(d["backend"]), "backend"), version=str(d.get("version") or ""),
                      mode=mode, precision=str(d.get("precision") or ""), gemm_quant=str(d.get("gemm_quant") or ""),
                      moe_quant=str(d.get("moe_quant") or ""), engine=EngineSettings(**engine), **roles)


def load_spec(path: Path) -> Deployment:
    """A spec file, or a `servecast plan --save-dir` candidate directory holding deployment.yaml."""
    path = Path(path)
    if path.is_dir():
        path = path / "deployment.yaml"
    text = read_text(path, "--deployment", "a deployment spec (YAML/JSON, e.g. deployment.yaml from `servecast plan "
                     "--save-dir`) or the directory holding it")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: deployment spec is not valid {'JSON' if path.suffix == '.json' else 'YAML'} "
                        f"({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: deployment spec must be a mapping with model/system/backend/mode")
    return from_mapping(data, str(path))


def resolve(spec: Path | None, flags: DeploymentFlags) -> Deployment | None:
    """The deployment from a spec file, with any command-line values overriding its fields."""
    base: dict = {}
    if spec is not None:
        dep = load_spec(spec)
        base = {"model": dep.model, "system": dep.system, "backend": dep.backend.value, "version": dep.version,
                "mode": dep.mode.value, "precision": dep.precision, "gemm_quant": dep.gemm_quant,
                "moe_quant": dep.moe_quant, "engine": {k: getattr(dep.engine, k) for k in _ENGINE_KEYS
                                                        if getattr(dep.engine, k) not in (None, "")}}
        for r in ("agg", "prefill", "decode"):
            role = getattr(dep, r)
            if role is not None:
                p = role.parallel
                base[r] = {"tp": p.tp, "pp": p.pp, "attn_dp": p.attn_dp, "moe_tp": p.moe_tp, "moe_ep": p.moe_ep,
                           "workers": role.workers, **({"batch_size": role.batch_size} if role.batch_size else {})}
    elif not flags.any():
        return None
    for key, value in vars(flags).items():
        if value is not None:
            base[key] = value
    if flags.mode == "disagg":
        base.pop("agg", None)
    elif flags.mode == "agg":
        base.pop("prefill", None)
        base.pop("decode", None)
    return from_mapping(base, str(spec) if spec else "command line")
