"""`servecast calibrate enrich`: a run table (the e2e_train_silicon.csv layout) + an InferenceX repository
-> the same table with the deployment and benchmark facts the public configs state.

Per row (calibrate.inferencex.match finds the config points): the table's empty `prefill_num_workers` /
`decode_num_workers` are filled when every matching point agrees, and the columns of
estimator.run_facts.COLUMNS are added: speculative decoding (on / off / ambiguous / unknown) and its
depth, attention-DP and expert-parallel sizes per role, engine flags from the launch script, the client
protocol, and provenance (commit, config key, script, client files). A row that matches nothing keeps
its columns empty and says why in `enrich_reason`. With an srt-slurm clone, the multi-node rows also get
what their recipes and benchmark client state (calibrate.enrich_recipes). The output is written whole or
not at all. Rows that record one measured run twice get the facts they agree on (calibrate.twins).
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from calibrate import enrich_dynamo, enrich_recipes
from calibrate.agree import agree, agree_flags
from calibrate.inferencex.configs import ConfigPoint
from calibrate.inferencex.dynamo import DYNAMO
from calibrate.inferencex.match import Match, Row, match, records_deployment
from calibrate.inferencex.repo import Repo
from calibrate.inferencex.scripts import read_script, workflow_range_ratio
from calibrate.inferencex.srtslurm import SRT_SLURM
from calibrate.twins import reconcile
from estimator.run_facts import COLUMNS, ConfigMatch, SpecStatus, format_cell
from perfdb.errors import DataError

REQUIRED = ("id", "silicon_data_source", "model_path", "system", "backend", "precision", "mode", "isl", "osl",
            "tp_size", "moe_ep_size", "prefill_tp_size", "prefill_moe_ep_size", "decode_tp_size",
            "prefill_num_workers", "decode_num_workers")
FILLED = ("prefill_num_workers", "decode_num_workers")
# the committed facts of ../shared/data/e2e_train_silicon.csv (regenerated with `calibrate enrich --columns-only`)
TRAINING_FACTS = Path(__file__).resolve().parent / "data" / "e2e_train_enrichment.csv.gz"
_MTP_DEPTH = re.compile(r"mtp(\d+)")
_BATCH = re.compile(r"batch(\d+)")


@dataclass
class Report:
    """Rows that got each field, overall and per source file; statuses; spec decoding outcomes."""

    rows: Counter = field(default_factory=Counter)                 # source file -> rows
    fields: dict[str, Counter] = field(default_factory=dict)       # field -> source file -> rows with a value
    status: Counter = field(default_factory=Counter)
    spec: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    twins: int = 0      # rows whose facts were made their twins' (calibrate.twins: one measurement, one deployment)

    def add(self, source: str, out: dict[str, str], filled: set[str]) -> None:
        self.rows[source] += 1
        for name in (*FILLED, *COLUMNS):
            has = name in filled if name in FILLED else out.get(name) not in ("", None, SpecStatus.UNKNOWN.value)
            if has:
                self.fields.setdefault(name, Counter())[source] += 1
        self.status[out["enrich_status"]] += 1
        self.spec[out["spec_decoding"]] += 1
        if out.get("enrich_reason"):
            self.reasons[out["enrich_reason"].split(":")[0][:70]] += 1


def _num(raw: dict, key: str) -> int | None:
    t = (raw.get(key) or "").strip()
    if not t or t.lower() == "nan":
        return None
    try:
        v = float(t)
    except ValueError:
        raise DataError(f"run {raw.get('id')}: {key}={t!r} is not a number") from None
    return None if v == 0 else int(round(v))


def source_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in (text or "").split(";")) if _}


def to_row(raw: dict) -> Row:
    src = source_fields(raw["silicon_data_source"])
    return Row(id=raw["id"], source_file=Path(src.get("source_file", "")).name if src.get("source_file", "")
               .endswith(".csv") and "/" not in src.get("source_file", "") else src.get("source_file", ""),
               measured=src.get("measured", ""), image=src.get("image", "").replace("#", "/"),
               model=raw["model_path"].strip(), system=raw["system"].strip(), backend=raw["backend"].strip(),
               precision=raw["precision"].strip(), mode=raw["mode"].strip(), isl=_num(raw, "isl") or 0,
               osl=_num(raw, "osl") or 0,
               conc=int(src["silicon_concurrency"]) if src.get("silicon_concurrency", "").isdigit() else None,
               tp=_num(raw, "tp_size"), ep=_num(raw, "moe_ep_size"), prefill_tp=_num(raw, "prefill_tp_size"),
               prefill_ep=_num(raw, "prefill_moe_ep_size"), decode_tp=_num(raw, "decode_tp_size"))


def _recipe_int(p: ConfigPoint, pattern: re.Pattern) -> int | None:
    settings = " ".join(p.decode.settings + p.prefill.settings) if p.decode else ""
    m = pattern.findall(settings.rsplit("/", 1)[-1])
    return int(m[-1]) if m else None


def _spec(points: tuple[ConfigPoint, ...]) -> SpecStatus:
    on = {p.spec.lower() not in ("none", "") for p in points}
    return SpecStatus.AMBIGUOUS if len(on) > 1 else (SpecStatus.ON if on.pop() else SpecStatus.OFF)


def _roles(points: tuple[ConfigPoint, ...], r: Row, out: dict) -> None:
    """Each role's attention DP and EP as the configs state them; a role's GPUs where the row's tp columns
    hold the whole deployment's (match.records_deployment) rather than a worker's."""
    for role in ("agg", "prefill", "decode"):
        cfgs = [getattr(p, role) for p in points]
        if all(c is not None for c in cfgs):
            out[f"{role}_dp_attn"] = agree(c.dp_attn for c in cfgs)
            out[f"{role}_ep"] = agree(c.ep for c in cfgs)
    if r.mode == "disagg" and all(records_deployment(p, r) for p in points):
        for role in ("prefill", "decode"):
            out[f"{role}_gpus"] = agree(getattr(p, role).tp for p in points)
    if points[0].decode is not None:
        out["decode_max_batch"] = agree(_recipe_int(p, _BATCH) for p in points)


def facts(repo: Repo, r: Row, m: Match, srt: Repo | None = None,
          dyn: Repo | None = None) -> tuple[dict, dict, list[str]]:
    """(enrichment columns, fills of the table's own columns, notes for enrich_reason) for one matched
    row; with `srt` (an srt-slurm clone) a multi-node row's recipes narrow its config points and add
    what they state (calibrate.enrich_recipes); a Dynamo-era one gets its config's engine settings and,
    with `dyn` (a Dynamo clone), its launch files' (calibrate.enrich_dynamo)."""
    got = enrich_recipes.read(repo, srt, r, m) if srt is not None else None
    pts = got.points if got is not None else m.points
    out: dict = {"enrich_commit": m.commit, "enrich_config_key": ",".join(sorted({p.key for p in pts}))}
    status = _spec(pts)
    out["spec_decoding"] = status.value
    if status is SpecStatus.ON:
        out["spec_method"] = agree(p.spec for p in pts)
    _roles(pts, r, out)
    fills = {}
    if r.mode == "disagg":
        for role, col in (("prefill", "prefill_num_workers"), ("decode", "decode_num_workers")):
            n = agree(getattr(p, role).workers for p in pts)
            if n is not None:
                fills[col] = n
    multinode = pts[0].decode is not None
    ratio, wf = workflow_range_ratio(repo, m.commit, multinode)
    ratio = ratio if ratio is not None else agree(p.range_ratio for p in pts)
    scripts = [read_script(repo, m.commit, p, r.conc, ratio) for p in pts]
    found = [s for s in scripts if s is not None]
    if found and len(found) == len(scripts):
        out["enrich_script"] = ",".join(sorted({s.path for s in found}))
        for col in ("engine_max_batch_size", "engine_max_num_tokens", "engine_kv_dtype", "engine_mem_fraction",
                    "engine_cuda_graph_max_bs"):
            out[col] = agree(s.known.get(col) for s in found)
        out["engine_flags"] = agree_flags(s.flags for s in found)
        out["engine_env"] = agree_flags(s.env or {} for s in found)
        for col in ("client_range_ratio", "client_num_prompts", "client_num_warmups"):
            out[col] = agree(s.client.get(col) for s in found)
        out["client_warmup"] = agree(s.warmup for s in found)
        out["enrich_client"] = ",".join(sorted({f for s in found for f in s.client_files}))
    if status is SpecStatus.ON:
        depth = agree(_recipe_int(p, _MTP_DEPTH) for p in pts) if multinode else \
            agree(s.known.get("spec_tokens") for s in found) if found else None
        out["spec_tokens"] = depth
    if out.get("client_range_ratio") is None and ratio is not None:
        out["client_range_ratio"] = ratio
        out["enrich_client"] = ",".join(filter(None, (out.get("enrich_client"), wf)))
    notes = _launch_facts(repo, (srt, dyn), got, r, (m.commit, pts), out, fills)
    if out.get("client_range_ratio") is not None:
        out["client_length_dist"] = "fixed" if out["client_range_ratio"] == 1 else "uniform"
    return out, fills, notes


def _launch_facts(repo: Repo, clones: tuple[Repo | None, Repo | None], got: enrich_recipes.Recipes | None, r: Row,
                  where: tuple[str, tuple[ConfigPoint, ...]], out: dict, fills: dict) -> list[str]:
    """A multi-node row's srt-slurm recipes where they were read, else (the Dynamo-era rows) what the
    config's Dynamo settings and, with a Dynamo clone, Dynamo's launch files state (`clones`: srt-slurm,
    Dynamo; `where`: the InferenceX commit and the row's config points); returns the notes."""
    (srt, dyn), (commit, pts) = clones, where
    notes = list(got.notes) if got is not None else []
    if got is not None and got.recipes:
        _recipe_facts(srt, got, r, out, fills)
        return notes
    dyn_out, dyn_notes = enrich_dynamo.read(repo, dyn, r, commit, pts)
    _over(out, dyn_out)
    return notes + dyn_notes


def _over(out: dict, launched: dict) -> None:
    """What the launch files state stands over the config's (a depth only where spec decoding is on)."""
    for col, v in launched.items():
        if v is not None and (col != "spec_tokens" or out["spec_decoding"] == SpecStatus.ON.value):
            out[col] = v


def _recipe_facts(srt: Repo, got: enrich_recipes.Recipes, r: Row, out: dict, fills: dict) -> None:
    """The recipes' facts over the configs': what srtctl launched (workers, per-role engine) and the
    client that measured (sa-bench) stand where the recipes agree; the config's stay otherwise."""
    rec_out, rec_fills = enrich_recipes.facts(srt, got, r.conc)
    if r.mode == "disagg":
        for col, n in rec_fills.items():
            fills[col] = n
    _over(out, rec_out)


def enrich_row(repo: Repo, raw: dict, srt: Repo | None = None,
               dyn: Repo | None = None) -> tuple[dict[str, str], set[str]]:
    """The row's enrichment columns (as CSV text) and the names of its own columns it filled in `raw`."""
    r = to_row(raw)
    m = match(repo, r)
    by_recipe = None
    if not m.points and srt is not None and r.mode == "disagg" and r.inferencex and r.measured:
        by_recipe = match(repo, r, enrich_recipes.recipe_concs(repo, srt, r))
        m = by_recipe if by_recipe.points else m
    if not m.points:
        status = ConfigMatch.OTHER_HARNESS if not r.inferencex else ConfigMatch.UNMATCHED
        out = {"enrich_status": status.value, "enrich_reason": m.reason,
               "spec_decoding": SpecStatus.UNKNOWN.value}
        return {k: format_cell(out.get(k)) for k in COLUMNS}, set()
    out, fills, notes = facts(repo, r, m, srt, dyn)
    filled = set()
    for col, n in fills.items():
        if _num(raw, col) is None:
            raw[col] = str(n)
            filled.add(col)
    reasons = []
    if r.mode == "disagg" and not all(_num(raw, c) for c in FILLED):
        reasons.append("matching config points disagree on worker counts")
    if out["spec_decoding"] == SpecStatus.AMBIGUOUS.value:
        reasons.append("the configs list this point with and without speculative decoding")
    out["enrich_status"] = (ConfigMatch.AMBIGUOUS if reasons else ConfigMatch.MATCHED).value
    if not m.image_checked and r.image:
        reasons.append(f"no config entry with image {r.image}; matched on the rest")
    if by_recipe is m:
        reasons.append("matched on its srt-slurm recipe's concurrencies (the config lists others)")
    if m.commit != repo.commit_at(r.measured):
        reasons.append("matched in a config change merged after measured= (the run's branch)")
    out["enrich_reason"] = "; ".join(reasons + notes)
    return {k: format_cell(out.get(k)) for k in COLUMNS}, filled


def read_table(path: Path) -> tuple[list[str], list[dict]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read run table ({exc.strerror or exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"{path}: not a run table in the e2e_train_silicon.csv layout: missing column(s) "
                        f"{', '.join(missing)}")
    rows = list(reader)
    if not rows or any(None in r or None in r.values() for r in rows):
        raise DataError(f"{path}: no rows, or a row with fewer fields than the header (truncated file?)")
    return header, rows


def read_facts(path: Path) -> dict[str, dict]:
    """A `--columns-only` file (CSV, or .csv.gz) by run id."""
    import gzip

    try:
        raw = gzip.decompress(Path(path).read_bytes()) if str(path).endswith(".gz") else Path(path).read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read enrichment facts ({exc})") from None
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    missing = [c for c in ("id", *FILLED, *COLUMNS) if c not in (reader.fieldnames or ())]
    if missing:
        raise DataError(f"{path}: not an enrichment file from `calibrate enrich --columns-only`: missing "
                        f"{', '.join(missing[:5])}")
    return {r["id"]: r for r in reader}


def _from_facts(facts: dict[str, dict], raw: dict) -> tuple[dict[str, str], set[str]]:
    got = facts.get(raw["id"])
    if got is None:
        out = {"enrich_status": ConfigMatch.UNMATCHED.value, "enrich_reason": "run id not in the enrichment file",
               "spec_decoding": SpecStatus.UNKNOWN.value}
        return {k: format_cell(out.get(k)) for k in COLUMNS}, set()
    filled = {c for c in FILLED if got[c] and _num(raw, c) is None}
    for c in filled:
        raw[c] = got[c]
    return {k: got[k] for k in COLUMNS}, filled


def enrich(runs: Path, inferencex: Path | None = None, columns_only: bool = False,
           facts: Path | None = None, srt_slurm: Path | None = None,
           dynamo: Path | None = None) -> tuple[str, Report]:
    """The enriched table as CSV text (columns of the input, then COLUMNS) and the match report.
    From the repository at `inferencex` (and, for the multi-node runs, the srt-slurm clone at
    `srt_slurm` and the Dynamo clone at `dynamo`), or from `facts` (a committed `--columns-only` file).
    `columns_only`: just `id`, the filled worker columns and COLUMNS (the derived facts, to commit)."""
    header, rows = read_table(runs)
    known = read_facts(facts) if facts is not None else None
    repo = Repo(inferencex) if known is None else None
    srt = Repo(srt_slurm, SRT_SLURM) if srt_slurm is not None and known is None else None
    dyn = Repo(dynamo, DYNAMO) if dynamo is not None and known is None else None
    report = Report()
    if columns_only:
        header = ["id", *FILLED]
    cols = [c for c in header if c not in COLUMNS] + list(COLUMNS)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    done = [enrich_row(repo, raw, srt, dyn) if repo is not None else _from_facts(known, raw) for raw in rows]
    parsed = [to_row(raw) for raw in rows]
    report.twins = reconcile(rows, [extra for extra, _ in done], [r.conc for r in parsed])
    for raw, r, (extra, filled) in zip(rows, parsed, done, strict=True):
        report.add(r.source_file, extra, filled)
        w.writerow({**{c: raw.get(c, "") for c in header}, **extra})
    return buf.getvalue(), report


def write(text: str, out: Path) -> None:
    """Whole or not at all: a temporary file beside `out`, then renamed; gzip-compressed for `.gz`."""
    import gzip

    from perfdb.storage import atomic_write_bytes

    data = text.encode("utf-8")
    atomic_write_bytes(Path(out), gzip.compress(data, mtime=0) if str(out).endswith(".gz") else data)


def enriched_copy(runs: Path, facts: Path, into: Path) -> Path:
    """`runs` with the committed `facts` applied, written as into/<runs.name>: the same file name, so the
    runs read from it keep their source (what a calibration records as fitted on). The shipped
    calibrations and their drift test read the training table this way: the facts are what lets the
    estimator and the simulator replay each run as it was deployed (worker counts, attention DP, the
    client protocol), so a calibration fitted without them corrects deployments nobody ran."""
    text, _ = enrich(runs, facts=facts)
    out = Path(into) / Path(runs).name
    write(text, out)
    return out
