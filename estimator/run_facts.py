"""The enrichment columns of a measured-run table: what `servecast calibrate enrich` recovers from the
public benchmark configs behind a run (speculative decoding, engine flags, client protocol), declared
here once with their types so every reader (estimator.runs, the simulator's replay, calibrate) takes
the same names. All are optional: a table without them reads as before, an empty cell means unknown.

Besides these, enrichment fills the table's own `prefill_num_workers` / `decode_num_workers` where
they were empty; a reader needs nothing new for those.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class SpecStatus(str, Enum):
    ON = "on"                # the matching configs run this point with speculative decoding
    OFF = "off"              # ... without it
    AMBIGUOUS = "ambiguous"  # the configs list the same point both with and without it
    UNKNOWN = "unknown"      # no config matched (or the run is from another harness)


class ConfigMatch(str, Enum):
    """What the enrichment found for a run (its enrich_status): the benchmark configs that describe it."""
    MATCHED = "matched"              # configs matched and agree on every fact they state
    AMBIGUOUS = "ambiguous"          # configs matched but disagree (worker counts, speculative decoding)
    UNMATCHED = "unmatched"          # no config lists the run's point
    OTHER_HARNESS = "other-harness"  # measured by another harness than the configs describe
    UNKNOWN = "unknown"              # the table was never enriched

    @property
    def found(self) -> bool:
        """Configs that describe this run were found (what they leave open, they disagree on)."""
        return self in (ConfigMatch.MATCHED, ConfigMatch.AMBIGUOUS)


class Kind(str, Enum):
    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"


# name -> (kind, meaning). Order is the order written after the table's own columns.
COLUMNS: dict[str, tuple[Kind, str]] = {
    "spec_decoding": (Kind.TEXT, "on | off | ambiguous | unknown (SpecStatus)"),
    "spec_method": (Kind.TEXT, "the config's spec-decoding value when on, e.g. mtp"),
    "spec_tokens": (Kind.INT, "draft tokens per step (MTP depth) when on and the config/script says"),
    "agg_dp_attn": (Kind.BOOL, "attention data-parallel in the aggregated engine (config dp-attn)"),
    "agg_ep": (Kind.INT, "expert-parallel size of the aggregated engine, as the config says"),
    "prefill_dp_attn": (Kind.BOOL, "attention data-parallel in each prefill worker"),
    "prefill_ep": (Kind.INT, "expert-parallel size of a prefill worker, as the config says"),
    "decode_dp_attn": (Kind.BOOL, "attention data-parallel in each decode worker"),
    "decode_ep": (Kind.INT, "expert-parallel size of a decode worker, as the config says"),
    "decode_max_batch": (Kind.INT, "max batch per attention rank of a decode worker: its srt-slurm recipe's or "
                                   "Dynamo launch's (TRT-LLM max_batch_size; SGLang max-running-requests / "
                                   "dp-size), else the recipe name's batchN"),
    # per role of a disaggregated run, from its srt-slurm recipe (the engine_* columns are the aggregated
    # engine's launch flags: one disaggregated run has two engines, configured differently)
    "prefill_max_batch": (Kind.INT, "max batch per attention rank of a prefill worker (as decode_max_batch)"),
    "prefill_max_num_tokens": (Kind.INT, "tokens per step of a prefill worker as configured (TRT-LLM "
                                         "max_num_tokens, per rank; SGLang chunked-prefill-size, per worker)"),
    "decode_max_num_tokens": (Kind.INT, "tokens per step of a decode worker as configured (as prefill's)"),
    "prefill_mem_fraction": (Kind.FLOAT, "prefill worker's mem-fraction-static / free_gpu_memory_fraction"),
    "decode_mem_fraction": (Kind.FLOAT, "decode worker's mem-fraction-static / free_gpu_memory_fraction"),
    "prefill_gpus": (Kind.INT, "GPUs of one prefill worker's stage as its launch states (the engine's tensor-"
                               "parallel size, attention-DP ranks included: a Dynamo worker script's tp-size; "
                               "the dynamo-sglang configs' tp is a placeholder the script ignores)"),
    "decode_gpus": (Kind.INT, "GPUs of one decode worker's stage as its launch states (as prefill_gpus)"),
    "prefill_cuda_graph_max_bs": (Kind.INT, "largest CUDA-graph batch of a prefill worker"),
    "decode_cuda_graph_max_bs": (Kind.INT, "largest CUDA-graph batch of a decode worker (cuda-graph-max-bs, "
                                           "the largest of cuda-graph-bs / cuda_graph_config.batch_sizes)"),
    "engine_max_batch_size": (Kind.INT, "engine max batch / max-num-seqs / max-running-requests"),
    "engine_max_num_tokens": (Kind.INT, "max-num-batched-tokens / max_num_tokens / chunked-prefill-size"),
    "engine_kv_dtype": (Kind.TEXT, "KV-cache dtype flag (fp8, fp8_e4m3, auto)"),
    "engine_mem_fraction": (Kind.FLOAT, "gpu-memory-utilization / mem-fraction-static / free_gpu_memory_fraction"),
    "engine_cuda_graph_max_bs": (Kind.INT, "largest CUDA-graph batch"),
    "engine_flags": (Kind.TEXT, "every engine flag read from the launch script, `key=value;...` (`?` = set "
                                "by shell logic the reader did not resolve, or set differently by the "
                                "row's candidate launch files: calibrate.agree); of a disaggregated run, its "
                                "recipe's engine config as `prefill.key=value;...;decode.key=value`"),
    "engine_env": (Kind.TEXT, "engine environment variables the launch script gives the server (VLLM_*, "
                              "SGLANG_*, SGL_*, TRTLLM_*, TLLM_*: exported, or set on the server's command "
                              "line; a multi-node recipe's prefill_environment / decode_environment, prefixed "
                              "`prefill.` / `decode.` as in engine_flags), `NAME=value;...` (`?` as in "
                              "engine_flags); some choose kernels no flag names (VLLM_MXFP4_USE_MARLIN)"),
    "frontends": (Kind.INT, "routers the client's requests were spread over: srtctl's nginx in front of "
                            "min(num_additional_frontends + 1, nodes - 1) Dynamo frontends when "
                            "enable_multiple_frontends, else 1 (calibrate/inferencex/srtslurm.py)"),
    "client_length_dist": (Kind.TEXT, "uniform: ISL/OSL drawn uniformly in [ratio x nominal, nominal]; "
                                      "fixed: ratio 1"),
    "client_range_ratio": (Kind.FLOAT, "the client's --random-range-ratio"),
    "client_num_prompts": (Kind.INT, "requests sent (after warm-up)"),
    "client_num_warmups": (Kind.INT, "warm-up requests sent before measuring"),
    "client_warmup": (Kind.TEXT, "how the client's code warms up, as read: test-request (benchmark_serving.py's "
                                 "one initial request, alone, before the measured requests; client_num_warmups "
                                 "counts any others) | run (a warm-up run of client_num_warmups prompts at the "
                                 "row's concurrency) | sweep (warm-up runs at several concurrencies before the "
                                 "whole sweep; client_num_warmups = their total)"),
    "enrich_status": (Kind.TEXT, "matched | ambiguous | unmatched | other-harness (ConfigMatch)"),
    "enrich_reason": (Kind.TEXT, "why a field stayed unknown"),
    "enrich_commit": (Kind.TEXT, "repository commit whose configs described the run"),
    "enrich_config_key": (Kind.TEXT, "config key(s) of the matching entries"),
    "enrich_script": (Kind.TEXT, "launch script path read for engine flags"),
    "enrich_client": (Kind.TEXT, "file(s) the client protocol was read from"),
    "enrich_recipe": (Kind.TEXT, "srt-slurm recipe(s), or Dynamo worker script(s), read: `clone url@commit:path`"),
}
TRUE = ("true", "1", "yes")


def parse_cell(name: str, text: str | None):
    """A cell of column `name` as its Python value; None for empty / unknown."""
    t = (text or "").strip()
    if not t or t.lower() == "nan":
        return None
    kind = COLUMNS[name][0]
    if kind is Kind.INT:
        return int(float(t))
    if kind is Kind.FLOAT:
        return float(t)
    if kind is Kind.BOOL:
        return t.lower() in TRUE
    return t


def format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# AIConfigurator's gap-analysis runs (silicon_data_source names AIC_HARNESS; enrich_status other-harness)
# deploy the engine config AIConfigurator generates. Since its first public version its aggregated
# TRT-LLM config sets max_num_tokens = batch + ISL + 1500 ("assuming no chunked prefill",
# src/aiconfigurator/cli/backends/trtllm.py, 2025-08), as its generator still does for TRT-LLM and vLLM
# (generator/rule_plugin/{trtllm,vllm}.rule, since 2025-12: `agg max_num_tokens = max_batch_size +
# SlaConfig.isl + 1500`); its SGLang rule changed between versions, so SGLang rows keep the defaults.
AIC_HARNESS = "aic-auto-gap-analysis"
AIC_AGG_TOKEN_MARGIN = 1500
AIC_BUDGET_BACKENDS = ("trtllm", "vllm")


def harness_token_budget(raw: dict) -> int | None:
    """The token budget a run's harness launched its aggregated engine with when the table does not
    record one (AIConfigurator's rule above); None where the harness is not known to set one."""
    if AIC_HARNESS not in (raw.get("silicon_data_source") or "") or (raw.get("mode") or "agg").strip() != "agg":
        return None
    if (raw.get("backend") or "").strip() not in AIC_BUDGET_BACKENDS:
        return None
    try:
        return int(float(raw["batch_size"])) + int(float(raw["isl"])) + AIC_AGG_TOKEN_MARGIN
    except (KeyError, TypeError, ValueError):
        return None


def parse_flags(text: str | None) -> tuple[tuple[str, str], ...]:
    """`key=value;...` (engine_flags) as pairs; a part without `=` is skipped, `?` values are kept as read."""
    pairs = (p.split("=", 1) for p in (text or "").split(";") if "=" in p)
    return tuple((k.strip(), v.strip()) for k, v in pairs if k.strip())


def flatten_options(d: Mapping, prefix: str = "") -> dict[str, str]:
    """An engine config file's options (YAML / JSON, nested) as engine_flags keys: nested keys joined with
    `.`, booleans `true` / `false`, lists `[a,b]` (an srt-slurm recipe's role config, a plan's TRT-LLM
    LLM-API options)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten_options(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[f"{prefix}{k}"] = "[" + ",".join(str(x) for x in v) + "]"
        else:
            out[f"{prefix}{k}"] = "true" if v is True else "false" if v is False else str(v)
    return out


ROLE_PREFIXES = ("prefill", "decode")   # a disaggregated run's engine_flags prefixes, one per role


@dataclass(frozen=True)
class RoleFlags:
    """A run's launch flags per engine role, under the engine's own names, as (key, value) pairs.

    An aggregated run has one engine (`agg`). A disaggregated run has two, configured differently, and
    records them as `prefill.key=value;...;decode.key=value` (COLUMNS["engine_flags"]): `split` strips
    each role's prefix; a key without a role prefix applies to both roles, a role's own value winning.
    The simulator builds each pool's scheduler from its role's flags (estimator.sim.engine)."""

    agg: tuple[tuple[str, str], ...] = ()
    prefill: tuple[tuple[str, str], ...] = ()
    decode: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def split(pairs: tuple[tuple[str, str], ...], disagg: bool) -> "RoleFlags":
        """A row's recorded pairs (RunFacts.flags) per role: an aggregated row's all go to `agg`."""
        if not disagg:
            return RoleFlags(agg=tuple(pairs))
        shared = [(k, v) for k, v in pairs if k.split(".", 1)[0] not in ROLE_PREFIXES]
        roles = {}
        for role in ROLE_PREFIXES:
            own = {k[len(role) + 1:]: v for k, v in pairs if k.startswith(role + ".")}
            roles[role] = tuple(dict([*shared, *own.items()]).items())
        return RoleFlags(prefill=roles["prefill"], decode=roles["decode"])

    @staticmethod
    def same(flags: Mapping[str, str]) -> "RoleFlags":
        """The same flags on every role (one engine configuration for an agg replica or both pools)."""
        pairs = tuple(flags.items())
        return RoleFlags(agg=pairs, prefill=pairs, decode=pairs)

    @staticmethod
    def of_roles(flags: Mapping[str, Mapping[str, str]]) -> "RoleFlags":
        """From role ('agg', 'prefill', 'decode') -> that role's flags (a plan's launch flags)."""
        return RoleFlags(**{role: tuple((str(k), str(v)) for k, v in f.items()) for role, f in flags.items()})

    def of(self, role: str) -> dict[str, str]:
        """The flags of `role` ('agg', 'prefill' or 'decode') as key -> value."""
        if role not in ("agg", *ROLE_PREFIXES):
            raise ValueError(f"unknown role {role!r}; roles: agg, prefill, decode")
        return dict(getattr(self, role))


@dataclass(frozen=True)
class RoleFacts:
    """A disaggregated role's layout as the config states it; None = unknown (the table's columns stand)."""

    dp_attn: bool | None = None     # attention data-parallel across the worker's GPUs
    ep: int | None = None           # expert-parallel size
    max_batch: int | None = None    # max batch per attention rank (TRT-LLM max_batch_size; recipe batchN)
    max_num_tokens: int | None = None   # tokens per step as configured (the engine's own sense, see COLUMNS)
    mem_fraction: float | None = None
    cuda_graph_max_bs: int | None = None
    gpus: int | None = None         # GPUs of one stage as launched (over the table's tp, a placeholder there)

    @staticmethod
    def of(get, role: str) -> "RoleFacts":
        tokens = get(f"{role}_max_num_tokens")
        # SGLang's chunked-prefill-size -1 turns chunking off (sglang/srt/server_args.py, 0.5.x): no
        # per-step token limit is stated, so the engine's default budget stands (None)
        return RoleFacts(get(f"{role}_dp_attn"), get(f"{role}_ep"), get(f"{role}_max_batch"),
                         tokens if tokens is not None and tokens > 0 else None, get(f"{role}_mem_fraction"),
                         get(f"{role}_cuda_graph_max_bs"), get(f"{role}_gpus"))


def _member(enum, column: str, text: str | None):
    """`text` as a member of `enum` (its UNKNOWN when empty); a clear error naming the accepted values."""
    if not text:
        return enum.UNKNOWN
    try:
        return enum(text)
    except ValueError:
        raise ValueError(f"{column} {text!r}: expected one of {', '.join(m.value for m in enum)}") from None


@dataclass(frozen=True)
class RunFacts:
    """What a reader of the enrichment needs; None = unknown (the reader keeps its own rule)."""

    spec: SpecStatus = SpecStatus.UNKNOWN
    spec_tokens: int | None = None
    num_prompts: int | None = None
    num_warmups: int | None = None
    range_ratio: float | None = None
    prefill: RoleFacts = RoleFacts()
    decode: RoleFacts = RoleFacts()
    agg: RoleFacts = RoleFacts()          # an aggregated engine's attention DP and EP
    max_batch: int | None = None          # engine_max_batch_size
    max_num_tokens: int | None = None     # engine_max_num_tokens
    mem_fraction: float | None = None     # engine_mem_fraction
    flags: tuple[tuple[str, str], ...] = ()   # engine_flags as (key, value) pairs, in the table's order
    env: tuple[tuple[str, str], ...] = ()     # engine_env as (name, value) pairs
    frontends: int | None = None          # routers in front of the workers (estimator.deployment.run_router)
    configs: ConfigMatch = ConfigMatch.UNKNOWN   # enrich_status: what the enrichment found

    @staticmethod
    def from_row(raw: dict) -> "RunFacts":
        """From a CSV row (dict of strings); absent columns are unknown."""
        def get(name: str):
            return parse_cell(name, raw.get(name)) if name in raw else None

        return RunFacts(spec=_member(SpecStatus, "spec_decoding", get("spec_decoding")), spec_tokens=get("spec_tokens"),
                        num_prompts=get("client_num_prompts"), num_warmups=get("client_num_warmups"),
                        range_ratio=get("client_range_ratio"),
                        prefill=RoleFacts.of(get, "prefill"), decode=RoleFacts.of(get, "decode"),
                        agg=RoleFacts(get("agg_dp_attn"), get("agg_ep")),
                        max_batch=get("engine_max_batch_size"),
                        max_num_tokens=get("engine_max_num_tokens") or harness_token_budget(raw),
                        mem_fraction=get("engine_mem_fraction"), flags=parse_flags(get("engine_flags")),
                        env=parse_flags(get("engine_env")), frontends=get("frontends"),
                        configs=_member(ConfigMatch, "enrich_status", get("enrich_status")))

    def per_role(self, disagg: bool) -> RoleFlags:
        """engine_flags per engine role (RoleFlags.split)."""
        return RoleFlags.split(self.flags, disagg)

    def to_extra(self) -> str:
        """As `key=value;...` for a measured-run table's engine_extra (calibrate.runs.EngineSettings);
        "" when nothing is known."""
        vals = {"spec_decoding": None if self.spec is SpecStatus.UNKNOWN else self.spec.value,
                "spec_tokens": self.spec_tokens, "client_num_warmups": self.num_warmups,
                "client_range_ratio": self.range_ratio, "frontends": self.frontends,
                "enrich_status": None if self.configs is ConfigMatch.UNKNOWN else self.configs.value,
                **{f"{role}_{name}": getattr(getattr(self, role), name) for role in ("prefill", "decode")
                   for name in ("dp_attn", "ep", "max_batch", "max_num_tokens", "mem_fraction", "cuda_graph_max_bs",
                                "gpus")}}
        return ";".join(f"{k}={format_cell(v)}" for k, v in vals.items() if v is not None)

    @staticmethod
    def from_extra(extra: str, num_prompts: int | None = None) -> "RunFacts":
        """Inverse of to_extra (other keys in `extra` are ignored); `num_prompts` from the load."""
        kv = dict(p.split("=", 1) for p in (extra or "").split(";") if "=" in p)
        return RunFacts.from_row({**{k: v for k, v in kv.items() if k in COLUMNS},
                                  "client_num_prompts": "" if num_prompts is None else str(num_prompts)})

    def role_flags(self, role: str) -> dict[str, str]:
        """One engine's launch flags: an aggregated run's as recorded (`agg`); of a disaggregated run the
        `prefill.` or `decode.` entries with the prefix dropped (engine_flags writes a recipe's two engines
        that way), entries without a role prefix applying to both."""
        return self.per_role(disagg=role != "agg").of(role)

    def role_env(self, role: str) -> dict[str, str]:
        """One engine's environment (engine_env), split per role as role_flags: a disaggregated run's
        recipes give each role's server its own (`prefill.NAME=value`), a launch script's exports reach both."""
        return RoleFlags.split(self.env, disagg=role != "agg").of(role)

    def spec_draft_tokens(self) -> int | None:
        """Draft tokens the engine ran with: 0 when off, the depth when on and known, else None."""
        if self.spec is SpecStatus.OFF:
            return 0
        return self.spec_tokens if self.spec is SpecStatus.ON else None
