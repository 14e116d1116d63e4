"""The lookup ladder: db.view(system, backend, version).latency(case) -> Latency(ms, source).

Rungs, best first, decided per element of a vectorised case:
  measured      the exact shape is a stored row (its median latency, untouched);
  interpolated  inside the stored grid of the case's categorical combination, utilisation
                (sol_ms / latency_ms) interpolated over log axes (sqrt for the prefill sequence), see
                perfdb.interp;
  extrapolated  outside the grid (the boundary utilisation is held), or the combination is missing
                and the nearest stored one lends its utilisation (see perfdb.family);
  roofline      no usable row for the family / dtype: sol_ms / EfficiencyCurves.util (the database's
                efficiency.parquet, else the bundled database's curves).
Never a silent zero, never a fabricated exact hit.

Tables are read lazily, once per op family, and interpolators are built once per categorical
combination; a DbView is cheap to query thousands of times.

Versions: `view(version=None)` picks the newest version (PEP 440 order where the names parse). A
family missing from the chosen version is read from the newest older version that has it (AIC-style
databases store each family under the backend version it was collected with); `table_version(kind)`
says which version served a family. A version newer than the chosen one is never used.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from perfdb import network, served
from perfdb.efficiency import EfficiencyCurves
from perfdb.errors import NotFoundError
from perfdb.family import FamilyTable, case_combo, case_numeric
from perfdb.interp import GridInterp
from perfdb.ops import CommCase, OpCase
from perfdb.roofline import intensity_ratio, log_ratio, roofline_s, sol_ms
from perfdb.specs import SystemSpec, load_system
from perfdb.storage import MARKER, TableKey, read_meta, read_table, require_db
from perfdb.types import LAUNCHED_ONLY_KERNELS, Backend, MoeKernel, OpKind, Source, parse_enum

BUNDLED_ROOT = Path(__file__).resolve().parent / "bundled"
COMPLETIONS_DIR = Path(".cache") / "completions"   # memoised sparse-table fits (perfdb.completion_store)


@dataclass(frozen=True)
class Latency:
    ms: np.ndarray       # float64, the case's shape
    source: np.ndarray   # int8 codes of Source (Source.from_code), the case's shape

    def worst_source(self) -> Source:
        return Source.from_code(int(self.source.max())) if self.source.size else Source.MEASURED


def version_sort_key(version: str) -> tuple:
    """PEP 440 order (1.3.0rc20 < 1.3.0rc23 < 1.3.0) where it parses; others after, by name."""
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version), "")
    except InvalidVersion:
        return (1, Version("0"), version)


class DbView:
    """The tables of one (system, backend, version) and the ladder over them. With `moe_kernel`, its MoE
    family holds only that kernel's rows (kernel_source containing the kernel's name; None where the
    tables hold none): what an engine told to run that kernel costs, where the tables time it."""

    def __init__(self, db: "PerfDB", system: SystemSpec, backend: Backend, version: str | None,
                 moe_kernel: MoeKernel | None = None):
        self.db, self.system, self.backend, self.version = db, system, backend, version
        self.moe_kernel = moe_kernel
        self._families: dict[OpKind, FamilyTable | None] = {}
        self._excess: dict[tuple, float] = {}

    def family(self, kind: OpKind) -> FamilyTable | None:
        """The measured rows of one op family (read on first use), or None when there are none."""
        if kind not in self._families:
            self._families[kind] = self._load(kind)
        return self._families[kind]

    def table_version(self, kind: OpKind) -> str | None:
        fam = self.family(kind)
        return fam.version if fam is not None else None

    def _load(self, kind: OpKind) -> FamilyTable | None:
        if self.db.root is None or self.version is None:
            return None
        for version in self.db.versions(self.system.name, self.backend):
            if version_sort_key(version) > version_sort_key(self.version):
                continue
            key = TableKey(self.system.name, self.backend, version, kind)
            if key.dir(self.db.root).is_dir() and any(key.dir(self.db.root).glob("part-*.parquet")):
                from perfdb.prior import recorded_priors

                prior = recorded_priors(read_meta(self.db.root, self.system.name, self.backend, version), self.db.root)
                kernel = self.moe_kernel if kind is OpKind.MOE else None
                moe = kind is OpKind.MOE
                table = read_table(self.db.root, key, FamilyTable.columns(kind) + (["kernel_source"] if moe else []))
                if moe:
                    import pyarrow.compute as pc

                    if kernel:
                        table = table.filter(pc.match_substring(table["kernel_source"], kernel.value))
                        prior = ()   # the priors were fitted on every kernel's rows
                    else:            # rows of a kernel only an engine launched for it runs (DeepEP's experts)
                        launched = pc.match_substring_regex(table["kernel_source"], LAUNCHED_ONLY_KERNELS)
                        table = table.filter(pc.invert(pc.fill_null(launched, False)))   # unnamed rows stay
                    if not table.num_rows:
                        return None
                return FamilyTable(kind, table, self.system, version, prior,
                                   completions=None if self.db.bundled or kernel else self.db.root / COMPLETIONS_DIR)
        return None

    def covers(self, case: OpCase) -> bool:
        """Whether the table rungs can answer the case: its family has rows for its categorical
        combination, or a stored combination that may stand in for it (perfdb.family.nearest)."""
        fam = self.family(case.KIND)
        if fam is None:
            return False
        combo = case_combo(case)
        return fam.interp(combo) is not None or fam.nearest(combo) is not None

    def flow_excess_ms(self, case: OpCase) -> float:
        """Per-call time this backend's rows of `case`'s op hold for work its served engine may skip
        (perfdb.served; the estimator decides whether it does and applies `served.adjust`), 0 where no
        rule applies. Measured as the median, over the `served.probe` shapes, of this view's price less
        the first reference backend's that prices the op on this GPU (its own rows or a curve of its
        own); 0 when none does. Computed once per (kind, dtype)."""
        rule = served.rule_for(self.backend, case)
        if rule is None:
            return 0.0
        key = (rule.kind, rule.dtype)
        if key not in self._excess:
            self._excess[key] = self._measure_excess(rule) if self._rows_carry(rule) else 0.0
        return self._excess[key]

    def _rows_carry(self, rule: served.FlowRule) -> bool:
        """Whether this view prices the rule's op from rows of the rule's collector flow, or from the
        curves (no rows of its own)."""
        fam = self.family(rule.kind)
        if fam is None or self.db.root is None:
            return True
        cols = read_table(self.db.root, TableKey(self.system.name, self.backend, fam.version, rule.kind),
                          ["dtype", "kernel_source"]).to_pydict()
        sources = {k for d, k in zip(cols["dtype"], cols["kernel_source"], strict=True) if d == rule.dtype.value}
        return sources <= rule.kernel_sources

    def _measure_excess(self, rule: served.FlowRule) -> float:
        probe = served.probe(rule.dtype)
        for b in rule.references:
            ref = self.db.view(self.system.name, b)
            found = self.db.curves().curve(self.system.name, rule.kind, rule.dtype, b)
            if ref.covers(probe) or (found is not None and found[0][3] == b.value):
                gap = self.latency(probe).ms - ref.latency(probe).ms
                return max(float(np.median(gap)), 0.0)
        return 0.0

    def latency(self, case: OpCase) -> Latency:
        shape = case.shape
        if self.composes(case):
            return network.price(self, case)
        if isinstance(case, CommCase):
            sol, ratio = np.ravel(sol_ms(case, self.system)).astype(np.float64), None
        else:   # one roofline pass gives both the sol and the regime the curves need
            compute, memory = (np.ravel(x).astype(np.float64) for x in roofline_s(case, self.system))
            sol, ratio = np.maximum(compute, memory) * 1e3, log_ratio(compute, memory)
        ms, code = self._ladder(case, sol, ratio)
        return Latency(ms=ms.reshape(shape), source=code.reshape(shape))

    def composes(self, case: OpCase) -> bool:
        """Whether latency() prices `case` as a collective across NVLink domains (perfdb.network): one no
        table of its own combination times."""
        return (isinstance(case, CommCase) and network.spans_domains(case, self.system.nvlink_domain_gpus)
                and not self._times(case))

    def _times(self, case: OpCase) -> bool:
        """Whether the tables hold rows of the case's own categorical combination (not a stand-in)."""
        fam = self.family(case.KIND)
        gi = fam.interp(case_combo(case)) if fam is not None else None
        return gi is not None and gi.has_nodes()

    def _ladder(self, case: OpCase, sol: np.ndarray, ratio: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        code = np.full(sol.shape[0], Source.ROOFLINE.code, dtype=np.int8)
        if not sol.size:
            return np.full(0, np.nan), code
        fam = self.family(case.KIND)
        if fam is None:  # no table: every element is the roofline rung (one pass, no masks)
            return self.roofline_ms(case, sol, ratio), code
        ms, code = self.table_rungs(fam, case_combo(case), case_numeric(case), _table_sol(case, sol, self.system))
        rest = np.isnan(ms)
        if rest.any():
            ms[rest] = self.roofline_ms(case, sol[rest], None if ratio is None else ratio[rest])
            code[rest] = Source.ROOFLINE.code
        return ms, code

    def table_rungs(self, fam: FamilyTable, combo: tuple, raw: np.ndarray, sol: np.ndarray,
                    interp: GridInterp | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The measured / interpolated / extrapolated rungs; NaN where the table cannot answer.

        `interp` replaces the combination's own interpolator (leave-one-out passes one with a row
        removed); when it holds no measured node the nearest other combination answers.
        """
        n = sol.shape[0]
        ms, code = np.full(n, np.nan), np.full(n, Source.ROOFLINE.code, dtype=np.int8)
        gi = interp if interp is not None else fam.interp(combo)
        substitute = gi is None or not gi.has_nodes()
        if substitute:
            near = fam.nearest(combo, exclude=combo)
            gi = fam.interp(near) if near is not None else None
        if gi is None:
            return ms, code
        raw, moved = _split_within_grid(gi, raw)
        util, measured, c = gi.query(raw, exact_allowed=not substitute)
        if substitute or moved.any():
            c = np.where(moved | substitute, np.maximum(c, Source.EXTRAPOLATED.code), c).astype(np.int8)
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.where(np.isnan(measured), sol / util, measured)
        ok = np.isfinite(est) & (est > 0)
        ms[ok], code[ok] = est[ok], c[ok]
        return ms, code

    def roofline_ms(self, case: OpCase, sol: np.ndarray, ratio: np.ndarray | None = None) -> np.ndarray:
        """sol / curve utilisation; `ratio`: the elements' perfdb.roofline.log_ratio (None: the case's own)."""
        if ratio is None and not isinstance(case, CommCase):
            ratio = np.ravel(intensity_ratio(case, self.system))
        util = np.asarray(self.db.curves().util_for(self.system.name, case, sol, self.backend, ratio),
                          dtype=np.float64)
        return sol / np.clip(util, 1e-9, 1.0)   # the curves bound util themselves; this only guards a zero


def _table_sol(case: OpCase, sol: np.ndarray, system: SystemSpec) -> np.ndarray:
    """The case's sol as its family's tables price their rows: at elements x bytes per element. A case
    priced at an engine's own KV row (kv_row_bytes) reads a table measured at another layout through the
    utilisation that table's rows give at theirs, so a table answers with its kernel's time and the row
    size moves only the roofline rung."""
    if not getattr(case, "kv_row_bytes", 0.0):
        return sol
    compute, memory = roofline_s(replace(case, kv_row_bytes=0.0), system)
    return np.maximum(np.ravel(compute), np.ravel(memory)) * 1e3


def _split_within_grid(gi: GridInterp, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MoE: an expert tensor-parallel split wider than any the table measured is priced as expert
    parallelism over the same GPUs (moe_tp -> the widest measured, moe_ep scaled up to match). Both
    read the same expert weight bytes and do the same FLOPs per GPU, but holding the measured
    utilisation of whole experts for experts sliced 8 ways (what the grid edge does) priced
    TRT-LLM gpt-oss-120b tp8 decode at 2.6 ms/token where 6.5 ms was measured; the EP kernel of the
    same GPU count, reading a few whole experts, is the nearer measured kernel. Other kinds unchanged.
    Returns the query and which of its rows moved (labelled extrapolated)."""
    if "moe_tp" not in gi.axes or "moe_ep" not in gi.axes:
        return raw, np.zeros(raw.shape[0], dtype=bool)
    j, k = gi.axes.index("moe_tp"), gi.axes.index("moe_ep")
    widest = float(np.max(gi.raw_values[j]))
    moved = raw[:, j] > widest
    if moved.any():
        raw = raw.copy()
        raw[moved, k] *= raw[moved, j] / widest
        raw[moved, j] = widest
    return raw, moved


class PerfDB:
    """A database root (None = the bundled database shipped in perfdb/bundled/)."""

    def __init__(self, root: Path | None = None):
        if root is None:
            self.root = BUNDLED_ROOT if (BUNDLED_ROOT / MARKER).is_file() else None
            self.bundled = True
        else:
            self.root = require_db(Path(root))
            self.bundled = False
        self._views: dict[tuple, DbView] = {}
        self._curves: EfficiencyCurves | None = None

    def versions(self, system: str, backend: Backend) -> list[str]:
        """Versions stored for (system, backend), newest first."""
        load_system(system)  # an unknown system is a NotFoundError naming the known ones
        if self.root is None:
            return []
        backend = parse_enum(Backend, backend, "backend") if not isinstance(backend, Backend) else backend
        directory = self.root / system / backend.value
        names = [p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")] \
            if directory.is_dir() else []
        return sorted(names, key=version_sort_key, reverse=True)

    def view(self, system: str, backend: Backend, version: str | None = None,
             moe_kernel: MoeKernel | None = None) -> DbView:
        backend = parse_enum(Backend, backend, "backend") if not isinstance(backend, Backend) else backend
        key = (system, backend, version, moe_kernel)
        if key not in self._views:
            spec = load_system(system)
            available = self.versions(system, backend)
            if version is None:
                chosen = available[0] if available else None
            elif version in available:
                chosen = version
            else:
                where = "the bundled database" if self.bundled else str(self.root)
                hint = (", ".join(available) if available else
                        "none (no measured tables: import or collect some and pass --db, or drop --version)")
                raise NotFoundError(f"no version {version!r} of {system}/{backend.value} in {where}; available: {hint}")
            self._views[key] = DbView(self, spec, backend, chosen, moe_kernel)
        return self._views[key]

    def curves(self) -> EfficiencyCurves:
        """Efficiency curves of this database, else of the bundled one (the roofline rung)."""
        if self._curves is None:
            own = self.root is not None and (self.root / "efficiency.parquet").is_file()
            self._curves = EfficiencyCurves.load(self.root if own else BUNDLED_ROOT)
        return self._curves
