"""Resolve a `--model` argument to a ModelSpec.

Accepted, in this order: a local directory holding config.json (and optionally hf_quant_config.json),
a path to a config.json, a Hugging Face id (or alias) in the bundled catalog (estimator/catalog/*.json,
written from the public config.json facts), or a model in the local Hugging Face cache
(`<hf_hub>/models--org--name/snapshots/<the commit refs/main names>/config.json`; offline). The CLI
passes `hf_hub` (servecast.hfcache reads $HF_HUB_CACHE / $HF_HOME); the library never reads the environment.
"""
from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path

from estimator.models.hf_config import parse_config
from estimator.models.spec import ModelSpec
from perfdb.errors import DataError, NotFoundError
from perfdb.types import Dtype
from perfdb.userfiles import read_text


def _read_json(path: Path) -> dict:
    text = read_text(path, "model config", "a Hugging Face config.json (or a directory holding one)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"model config {path} is not valid JSON ({exc.msg} at line {exc.lineno}); expected a "
                        "Hugging Face config.json") from None
    if not isinstance(data, dict):
        raise DataError(f"model config {path} is a JSON {type(data).__name__}; expected a config.json object")
    return data


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


# checkpoint-name suffixes that do not change the architecture (numerics come from the config or flags)
NAME_SUFFIXES = ("-fp8", "-fp4", "-nvfp4", "-mxfp4", "-bf16", "-fp16", "-awq", "-gptq", "-int4", "-int8",
                 "-w4a16", "-w8a8", "-instruct", "-chat", "-thinking", "-dynamic", "-block")
# release-date suffixes of re-trained checkpoints of one architecture: Qwen3-235B-A22B-Instruct-2507,
# DeepSeek-R1-0528, Kimi-K2-Instruct-0905
_DATE_SUFFIX = re.compile(r"-\d{4}$")


def base_name(spec: str) -> str:
    """The architecture a checkpoint name stands for: its last path part in lower case without
    quantisation, instruction-tuning or release-date suffixes (nvidia/DeepSeek-R1-FP4 -> deepseek-r1,
    Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 -> qwen3-235b-a22b)."""
    key = str(spec).rstrip("/").rsplit("/", 1)[-1].lower()
    stripped = True
    while stripped:
        stripped = False
        for suffix in NAME_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key, stripped = key[: -len(suffix)], True
        dated = _DATE_SUFFIX.search(key)
        if dated and dated.start() > 0:
            key, stripped = key[: dated.start()], True
    return key


@cache
def _by_base_name() -> dict[str, dict]:
    """base_name -> catalog entry; where several entries share one (BF16 and FP8 checkpoints of a model),
    the entry whose id has no suffix wins."""
    out: dict[str, dict] = {}
    for entry in sorted({e["id"]: e for e in _catalog().values()}.values(), key=lambda e: e["id"]):
        plain = base_name(entry["id"]) == entry["id"].rsplit("/", 1)[-1].lower()
        for key in (entry["id"], *entry.get("aliases", [])):
            if plain or base_name(key) not in out:
                out[base_name(key)] = entry
    return out


def catalog_entry(spec: str) -> dict | None:
    """The catalog entry for an id or alias, else for another publisher's checkpoint of a catalog
    architecture (nvidia/DeepSeek-R1-FP4 -> deepseek-ai/DeepSeek-R1), else None."""
    return _catalog().get(spec.lower()) or _by_base_name().get(base_name(spec))


# config.json fields that describe a checkpoint, not its architecture
_NOT_ARCHITECTURE = ("quantization_config", "torch_dtype", "transformers_version", "_name_or_path", "use_cache")


def _architecture(entry: dict) -> str:
    return json.dumps({k: v for k, v in entry["config"].items() if k not in _NOT_ARCHITECTURE}, sort_keys=True)


@cache
def _families() -> dict[str, str]:
    """Catalog id -> family key: entries with the same architecture (DeepSeek-R1 and -V3, a model and its
    FP8 checkpoint) share the base name of the first unsuffixed id among them."""
    groups: dict[str, list[str]] = {}
    for entry in sorted({e["id"]: e for e in _catalog().values()}.values(), key=lambda e: e["id"]):
        groups.setdefault(_architecture(entry), []).append(entry["id"])
    out = {}
    for ids in groups.values():
        plain = [i for i in ids if base_name(i) == i.rsplit("/", 1)[-1].lower()] or ids
        out.update({i: base_name(plain[0]) for i in ids})
    return out


def family_name(spec: str) -> str:
    """One key per architecture, for every checkpoint of it: Qwen/Qwen3-32B-FP8 -> qwen3-32b,
    nvidia/Llama-3.1-70B-Instruct-FP8 -> meta-llama-3.1-70b, deepseek-ai/DeepSeek-V3 -> deepseek-r1 (same
    config); a name outside the catalog keys by its own base name."""
    entry = catalog_entry(spec)
    return base_name(spec) if entry is None else _families()[entry["id"]]


def catalog_ids() -> tuple[str, ...]:
    return tuple(sorted({e["id"] for e in _catalog().values()}))


@cache
def block_fp8_families() -> frozenset[str]:
    """Families whose catalog FP8 checkpoint is block-scaled (quant_method fp8 with weight_block_size:
    DeepSeek-R1, Qwen3-32B-FP8): what a run labelled only "fp8" of such a model serves."""
    out = set()
    for entry in {e["id"]: e for e in _catalog().values()}.values():
        q = entry["config"].get("quantization_config") or {}
        if str(q.get("quant_method", "")).lower() == "fp8" and q.get("weight_block_size"):
            out.add(_families()[entry["id"]])
    return frozenset(out)


def _from_hf_cache(name: str, hf_hub: Path) -> Path | None:
    """The snapshot `refs/main` names (what huggingface_hub loads for the default revision); without that
    ref, the most recently written snapshot holding a config.json."""
    repo = hf_hub / ("models--" + name.replace("/", "--"))
    if not repo.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        if (snap / "config.json").is_file():
            return snap
    snaps = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    return snaps[-1].parent if snaps else None


def _from_dir(path: Path, name: str) -> ModelSpec:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise NotFoundError(f"model directory {path} has no config.json")
    qpath = path / "hf_quant_config.json"
    return parse_config(_read_json(cfg_path), name, _read_json(qpath) if qpath.is_file() else None)


def _base_spec(spec: str, hf_hub: Path | None) -> ModelSpec:
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_dir(path, spec)
    if path.is_file():
        sibling = path.with_name(path.name.replace("config.json", "hf_quant_config.json"))
        quant = _read_json(sibling) if sibling != path and sibling.is_file() else None
        return parse_config(_read_json(path), spec, quant)
    # another publisher's checkpoint of a catalog architecture resolves to it (nvidia/DeepSeek-R1-FP4):
    # the run's recorded numerics (--gemm-quant / --moe-quant, the table's quant columns) say how it is quantised
    entry = catalog_entry(spec)
    if entry is not None:
        return parse_config(entry["config"], entry["id"], entry.get("hf_quant_config"))
    if hf_hub is not None:
        snap = _from_hf_cache(spec, Path(hf_hub))
        if snap is not None:
            return _from_dir(snap, spec)
    raise NotFoundError(f"unknown model {spec!r}: not a directory, a config.json, or a catalog id"
                        f"{' or in the HF cache at ' + str(hf_hub) if hf_hub else ''}; "
                        f"catalog: {', '.join(catalog_ids())}")


@cache
def load_model(spec: str, gemm_quant: Dtype | None = None, moe_quant: Dtype | None = None,
               kv_dtype: Dtype | None = None, hf_hub: Path | None = None) -> ModelSpec:
    """ModelSpec for `spec`, with optional quantization overrides (None keeps the checkpoint's)."""
    model = _base_spec(spec, hf_hub)
    if gemm_quant or moe_quant or kv_dtype:
        model = model.with_quant(gemm_quant=gemm_quant, moe_quant=moe_quant, kv_dtype=kv_dtype)
    return model
