"""Resolve a `--model` argument to a ModelSpec.

Accepted, in this order: a local directory holding config.json (and optionally hf_quant_config.json),
a path to a config.json, a Hugging Face id (or alias) in the bundled catalog (estimator/catalog/*.json,
written from the public config.json facts), or a model in the local Hugging Face cache
(`<hf_home>/hub/models--org--name/snapshots/*/config.json`; offline). The CLI passes `hf_home`
(it reads $HF_HOME); the library never reads the environment.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

from estimator.models.hf_config import parse_config
from estimator.models.spec import ModelSpec
from perfdb.errors import DataError, NotFoundError
from perfdb.types import Dtype


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read model config {path}: {exc}") from None


@cache
def _catalog() -> dict[str, dict]:
    """Lower-cased id or alias -> catalog entry (with its canonical id under 'id')."""
    out: dict[str, dict] = {}
    for item in (resources.files("estimator") / "catalog").iterdir():
        if not item.name.endswith(".json"):
            continue
        entry = json.loads(item.read_text())
        for key in [entry["id"], *entry.get("aliases", [])]:
            out[key.lower()] = entry
    return out


def catalog_ids() -> tuple[str, ...]:
    return tuple(sorted({e["id"] for e in _catalog().values()}))


def _from_hf_cache(name: str, hf_home: Path) -> Path | None:
    repo = hf_home / "hub" / ("models--" + name.replace("/", "--"))
    snaps = sorted((repo / "snapshots").glob("*/config.json")) if repo.is_dir() else []
    return snaps[-1].parent if snaps else None


def _from_dir(path: Path, name: str) -> ModelSpec:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise NotFoundError(f"model directory {path} has no config.json")
    qpath = path / "hf_quant_config.json"
    return parse_config(_read_json(cfg_path), name, _read_json(qpath) if qpath.is_file() else None)


def _base_spec(spec: str, hf_home: Path | None) -> ModelSpec:
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_dir(path, spec)
    if path.is_file():
        sibling = path.with_name(path.name.replace("config.json", "hf_quant_config.json"))
        quant = _read_json(sibling) if sibling != path and sibling.is_file() else None
        return parse_config(_read_json(path), spec, quant)
    entry = _catalog().get(spec.lower())
    if entry is not None:
        return parse_config(entry["config"], entry["id"], entry.get("hf_quant_config"))
    if hf_home is not None:
        snap = _from_hf_cache(spec, Path(hf_home))
        if snap is not None:
            return _from_dir(snap, spec)
    raise NotFoundError(f"unknown model {spec!r}: not a directory, a config.json, or a catalog id"
                        f"{' or in the HF cache at ' + str(hf_home) if hf_home else ''}; "
                        f"catalog: {', '.join(catalog_ids())}")


@cache
def load_model(spec: str, gemm_quant: Dtype | None = None, moe_quant: Dtype | None = None,
               kv_dtype: Dtype | None = None, hf_home: Path | None = None) -> ModelSpec:
    """ModelSpec for `spec`, with optional quantization overrides (None keeps the checkpoint's)."""
    model = _base_spec(spec, hf_home)
    if gemm_quant or moe_quant or kv_dtype:
        model = model.with_quant(gemm_quant=gemm_quant, moe_quant=moe_quant, kv_dtype=kv_dtype)
    return model
