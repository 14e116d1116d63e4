"""StepModel: time of one engine iteration (prefill, decode, mixed) of one replica, in ms.

Built once per (model, system, parallel, engine, db view); every call then does one vectorised
lookup per op kind of the step (a few dozen), so the search can evaluate thousands of points at once.
All array arguments broadcast; results are float64 arrays in milliseconds.

Pipeline parallelism: a token crosses every stage in turn, so one forward of a batch takes the sum of
the stage times (the ops below count every layer) plus pp-1 activation hand-offs. Decode keeps pp
micro-batches in flight, so an iteration of `batch` requests runs micro-batches of batch/pp.
Attention data parallelism: requests are spread over attn_dp ranks; the busiest rank sets the pace.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as dc_replace

import numpy as np

from estimator.engine import EngineConfig, ResolvedEngine, kv_cache_dtype, resolve
from estimator.engines.profile import DpMoeExchange
from estimator.kv_layout import decode_read_bytes, kv_row
from estimator.layers import LayerComposer, OpUse
from estimator.memory import MemoryReport, memory_report
from estimator.models.spec import AttentionKind, ModelSpec
from estimator.parallel import ParallelConfig, placed_experts, validate_parallel
from perfdb import served
from perfdb.lookup import DbView, Latency
from perfdb.network import split
from perfdb.ops import CommCase, MoeCase, OpCase
from perfdb.roofline import intensity_ratio, link_bw_bytes_per_s
from perfdb.specs import SystemSpec
from perfdb.types import CommOp, Dtype, OpKind, Phase, Source, Transport


@dataclass(frozen=True)
class OpTime:
    name: str
    phase: Phase
    ms: np.ndarray       # per step, summed over the layers that run the op
    source: Source       # worst source over the op's lookups
    note: str = ""       # how the lookup adjusted the rows it read (perfdb.served), if it did


# the op that holds a step's host time outside kernels (the engine's per-iteration overhead plus the
# architecture's context-step cost where the step carries prompt tokens)
HOST_OP = "step_overhead"


@dataclass(frozen=True)
class StepResult:
    ms: np.ndarray
    ops: tuple[OpTime, ...]

    @property
    def source(self) -> Source:
        return max((o.source for o in self.ops if o.name != HOST_OP), key=lambda s: s.code,
                   default=Source.MEASURED)

    @property
    def host_ms(self) -> np.ndarray:
        """The step's host time outside kernels (its HOST_OP), paid once whatever the step holds."""
        return sum((o.ms for o in self.ops if o.name == HOST_OP), np.zeros(np.shape(self.ms)))


# ops outside the decoder layers: a draft pass's layer share leaves them out
_HEAD_OPS = frozenset({"embedding", "lm_head", "logits_gather", "spec_draft_eh_proj", "spec_draft_head"})


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


class StepModel:
    def __init__(self, model: ModelSpec, system: SystemSpec, parallel: ParallelConfig, engine: EngineConfig,
                 view: DbView):
        model = placed_experts(model, engine.expert_slots)
        validate_parallel(model, parallel, system)
        self.model, self.system, self.parallel, self.engine, self.view = model, system, parallel, engine, view
        self.kv_dtype: Dtype = kv_cache_dtype(engine, model, system)
        self.resolved: ResolvedEngine = resolve(engine, system, parallel, model.architecture)
        # the MoE kernel the engine's launch settings name (EngineConfig.moe_kernel): its own rows, where the tables hold some
        self.kernel_view: DbView | None = None
        if engine.moe_kernel is not None:
            self.kernel_view = view.db.view(system.name, view.backend, view.version, moe_kernel=engine.moe_kernel)
        # DeepEP's experts timed by the tables behind the all-to-all exchange that feeds them
        a2a_timed = (self.kernel_view is not None and self.kernel_view.moe_kernel.only_when_launched
                     and self.resolved.dp_moe_exchange is DpMoeExchange.ALL_TO_ALL
                     and self.kernel_view.family(OpKind.MOE) is not None)
        self.composer = LayerComposer(model, system, parallel, self.kv_dtype, self.resolved.fuses_allreduce_norm,
                                      self.resolved.spec_tokens, covers=view.covers,
                                      dp_exchange=self.resolved.dp_moe_exchange,
                                      kv_row_bytes=decode_read_bytes(model, self.kv_dtype, engine.backend, system.gpu.sm_version),
                                      a2a_experts_timed=a2a_timed)
        self.memory: MemoryReport = memory_report(model, system, parallel, self.resolved, self.kv_dtype)
        self._notes: dict[str, str] = {}   # op name -> how its lookups were adjusted (perfdb.served)

    @classmethod
    def build(cls, model: ModelSpec, system: SystemSpec, parallel: ParallelConfig, engine: EngineConfig,
              view: DbView) -> "StepModel":
        return cls(model, system, parallel, engine, view)

    # -- evaluation ---------------------------------------------------------------------------------
    def _lookup_all(self, uses: list[OpUse]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ms, source codes) of every use, flattened. Cases of one type with equal categoricals (all
        bf16 GEMMs of a step, say) are concatenated into one lookup: few calls, long arrays."""
        groups: dict[tuple, list[int]] = {}
        for i, u in enumerate(uses):
            key = (type(u.case), tuple(sorted(u.case.categoricals().items())), getattr(u.case, "kv_row_bytes", 0.0))
            groups.setdefault(key, []).append(i)
        out: list = [None] * len(uses)
        for idx in groups.values():
            cases = [uses[i].case for i in idx]
            if len(cases) == 1:  # nothing to concatenate: the case as it is (the ladder is elementwise)
                lat = self._latency(cases[0], [uses[idx[0]].name])
                out[idx[0]] = (self._served(cases[0], np.ravel(lat.ms), [uses[idx[0]].name]), np.ravel(lat.source))
                continue
            names = cases[0].NUMERIC
            # a 0-d case is one element; an empty one counts as one too (as before: `shape and prod or 1`)
            sizes = [getattr(c, names[0]).size or 1 for c in cases]
            numeric = {n: np.concatenate([np.ravel(getattr(c, n)) for c in cases]) for n in names}
            merged = dc_replace(cases[0], **numeric)
            lat = self._latency(merged, [uses[i].name for i in idx])
            ms, src = self._served(merged, np.ravel(lat.ms), [uses[i].name for i in idx]), np.ravel(lat.source)
            lo = 0
            for i, size in zip(idx, sizes, strict=True):
                out[i] = (ms[lo:lo + size], src[lo:lo + size])
                lo += size
        return out

    def _eval(self, pb, s, p, db, kv, stage_tokens) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Flat arrays in; per-point step ms (kernels only) and per-op (ms, source codes) out."""
        uses = self.composer.ops(pb, s, p, db, kv, stage_tokens)
        n = pb.size
        total = np.zeros(n)
        per_op: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for use, (ms, src) in zip(uses, self._lookup_all(uses), strict=True):
            if ms.shape != (n,):   # a case that did not depend on the step's arrays: one value for all
                ms, src = np.broadcast_to(ms, (n,)), np.broadcast_to(src, (n,))
            ms = ms * use.count
            if use.mask is not None:
                mask = np.ravel(use.mask)
                ms, src = np.where(mask, ms, 0.0), np.where(mask, src, -1)
            total = total + ms
            if use.name in per_op:
                old_ms, old_src = per_op[use.name]
                per_op[use.name] = (old_ms + ms, np.maximum(old_src, src))
            else:
                per_op[use.name] = (ms, src)
        if self.resolved.overlaps_shared_experts and "shared_gate_up" in per_op:
            # shared experts run on a second stream beside the routed experts: the shorter is hidden
            shared = per_op["shared_gate_up"][0] + per_op["shared_down"][0]
            hidden = -np.minimum(shared, per_op["moe_experts"][0])
            total = total + hidden
            per_op["shared_experts_overlap"] = (hidden, per_op["shared_gate_up"][1])
        return total, per_op

    def _latency(self, case: OpCase, ops: list[str]) -> Latency:
        """The ladder's price of `case`; for the experts of an engine whose launch settings name a MoE kernel
        (EngineConfig.moe_kernel) the tables hold rows of, that kernel's price (DbView.moe_kernel) in the steps
        where the experts are bound by the math (roofline intensity above the ridge) and it is the slower:
        there the kernel's own efficiency decides (TensorRT-LLM's CUTLASS nvfp4 MoE 1.3-1.7x trtllm-gen's time
        at prompt sizes on B200, both timed at the model's shape; vLLM's Marlin mxfp4 MoE ~2x the OAI Triton
        kernel's per FLOP on Hopper, timed at one other model's shape only and lent to this one as
        utilisation, labelled extrapolated). Steps bound by reading the weights keep the ladder's price
        (where several kernels time a shape, their fastest: perfdb.interp): each kernel streams the same
        4-bit weights there, and the training runs say the served kernels do it alike (the 30 B200 CUTLASS
        runs' TPOT at 0.98 of measured this way, 1.34 with the CUTLASS rows at decode sizes, whose collector
        tuned its tactics at the largest token count only; Marlin's transfer across expert counts is the
        weaker reading there). In-sample: docs/estimator.md. The ops it priced get a note, as do collectives
        the view composes across NVLink domains (perfdb.network)."""
        lat = self.view.latency(case)
        if self.view.composes(case):
            n, g = split(case.num_gpus, self.system.nvlink_domain_gpus)
            note = (f"across {n} NVLink domains of {g} GPUs: in-domain rows + each GPU's NIC share, NCCL's "
                    "latency model (perfdb.network)")
            self._notes.update((name, note) for name in ops)
        kv = self.kernel_view
        if kv is None or not isinstance(case, MoeCase) or not kv.covers(case):
            return lat
        alt = kv.latency(case)
        if kv.moe_kernel.only_when_launched:   # DeepEP's experts: what runs, priced by its own rows throughout
            self._notes.update((name, f"{kv.moe_kernel.value} kernel (launch settings): its rows") for name in ops)
            return alt
        compute_bound = np.reshape(intensity_ratio(case, self.system), np.shape(alt.ms)) > 0
        slower = (alt.ms > lat.ms) & compute_bound
        if slower.any():
            note = f"{kv.moe_kernel.value} kernel (launch settings): its rows where compute-bound and slower"
            self._notes.update((name, note) for name in ops)
        return Latency(ms=np.where(slower, alt.ms, lat.ms), source=np.where(slower, alt.source, lat.source))

    def _served(self, case: OpCase, ms: np.ndarray, ops: list[str]) -> np.ndarray:
        """`ms` less the per-call time its rows hold for work this model's engine skips (perfdb.served:
        the collector's dynamic FP8 activation quantization, where this model's scales are static); the
        ops it priced get a note saying so."""
        if getattr(case, "dtype", None) == Dtype.FP8 and self.model.fp8_dynamic_activations:
            return ms
        excess = self.view.flow_excess_ms(case)
        if not excess:
            return ms
        note = f"less {excess * 1e3:.1f} us/call: {served.rule_for(self.view.backend, case).why}"
        self._notes.update((name, note) for name in ops)
        return served.adjust(ms, case, excess, self.system)

    def _per_rank(self, x: np.ndarray) -> np.ndarray:
        dp = self.parallel.attn_dp
        return np.ceil(x / dp) if dp > 1 else x

    def steps(self, requests: list[tuple]) -> list[StepResult]:
        """Several steps in one pass: each request is (phase, prefill_batch, seq_len, prefix_len,
        decode_batch, kv_len) with broadcastable arrays. One lookup per op kind for all of them."""
        shapes, flat, prompts = [], [], []
        for phase, *args in requests:
            pb, s, p, db, kv = np.broadcast_arrays(*map(_arr, args))
            prompts.append(pb * s > 0)
            if phase == Phase.DECODE and self.parallel.pp > 1:   # pp micro-batches in flight
                db = np.maximum(np.ceil(db / self.parallel.pp), np.minimum(db, 1.0))
            shapes.append(pb.shape)
            flat.append([np.ravel(x) for x in (self._per_rank(pb), s, p, self._per_rank(db), kv, pb * s + db)])
        cols = [np.concatenate([f[i] for f in flat]) for i in range(6)]
        total, per_op = self._eval(*cols)
        results, lo = [], 0
        for (phase, *_), shape, prompt in zip(requests, shapes, prompts, strict=True):
            hi = lo + int(np.prod(shape, dtype=np.int64))
            ops = []
            for name, (ms, src) in per_op.items():
                worst = int(src[lo:hi].max()) if hi > lo else -1
                if worst >= 0:  # the op runs somewhere in this request
                    ops.append(OpTime(name, phase, ms[lo:hi].reshape(shape), Source.from_code(worst),
                                      self._notes.get(name, "")))
            kernels = total[lo:hi].reshape(shape)
            k = self.resolved.spec_tokens
            if k:   # the draft module's decoder layer (one MTP layer) priced as one layer of the target step
                # (its eh_proj and logits are ops of their own, LayerComposer._draft_head); decode: k
                # sequential passes; prefill: one pass over the prompt, whose last hidden states seed
                # the first draft (SGLang eagle_worker.py forward_draft_extend after the target extend;
                # TRT-LLM _torch/speculative/mtp.py runs the MTP layer over the context tokens)
                head = sum((ms[lo:hi] for name, (ms, _) in per_op.items() if name in _HEAD_OPS), np.zeros(hi - lo))
                layers = kernels - head.reshape(shape)
                draft = layers * (k if phase != Phase.PREFILL else 1) / self.model.num_layers
                ops.append(OpTime("spec_draft", phase, draft, max((o.source for o in ops), key=lambda s: s.code)))
                kernels = kernels + draft
            # host time outside kernels: every iteration's, plus the architecture's extra where the step
            # carries prompt tokens (EngineProfile.context_step_ms_by_arch)
            overhead = self.resolved.step_overhead_ms + np.where(prompt, self.resolved.context_step_ms, 0.0)
            ops.append(OpTime(HOST_OP, phase, overhead, Source.CALIBRATED))
            results.append(StepResult(kernels + overhead, tuple(ops)))
            lo = hi
        return results

    def step(self, phase: Phase, prefill_batch, seq_len, prefix_len, decode_batch, kv_len) -> StepResult:
        """One iteration with `prefill_batch` requests prefilling seq_len new tokens after prefix_len
        cached ones and `decode_batch` requests decoding with mean KV length kv_len (whole replica)."""
        return self.steps([(phase, prefill_batch, seq_len, prefix_len, decode_batch, kv_len)])[0]

    # -- the public API -----------------------------------------------------------------------------
    def prefill_ms(self, batch, seq_len, prefix_len=0) -> np.ndarray:
        return self.step(Phase.PREFILL, batch, seq_len, prefix_len, 0, 0).ms

    def decode_ms(self, batch, kv_len) -> np.ndarray:
        return self.step(Phase.DECODE, 0, 0, 0, batch, kv_len).ms

    def mixed_ms(self, prefill_tokens, decode_batch, kv_len, prefix_len=0) -> np.ndarray:
        """A chunked-prefill iteration: `prefill_tokens` new tokens (one request's chunk) plus
        `decode_batch` decoding requests. No prefill tokens: a plain decode step."""
        pt = _arr(prefill_tokens)
        return self.step(Phase.MIXED, (pt > 0).astype(np.float64), pt, prefix_len, decode_batch, kv_len).ms

    def kv_transfer_ms(self, tokens, decode_parallel: ParallelConfig, same_node: bool) -> np.ndarray:
        """KV cache of `tokens` tokens (one request) moved from a prefill worker to a decode worker.
        Every prefill GPU sends its shard in parallel; the slower of the two sides' links sets the pace.
        MLA's latent is replicated: one copy per pp stage moves, or, where each decode attention-TP rank
        pulls its own (`mla_copy_per_decode_rank`), a prefill rank sends decode tp / prefill tp copies
        (all of a decode TP8 worker's from one attention-DP prefill rank). Includes the engine's fixed
        per-request hand-off (`ResolvedEngine.kv_handoff_ms`)."""
        bytes_total = _arr(tokens) * self._kv_bytes_per_token_replica()
        senders = max(1, min(self.parallel.num_gpus, decode_parallel.num_gpus))
        if self.model.attention == AttentionKind.MLA:  # the latent is replicated: one copy per pp stage moves
            senders = max(1, min(self.parallel.pp, decode_parallel.pp))
            if self.resolved.mla_copy_per_decode_rank and decode_parallel.tp > self.parallel.tp:
                bytes_total = bytes_total * (decode_parallel.tp // self.parallel.tp)
        tr = Transport.NVLINK if same_node else Transport.NETWORK
        case = CommCase(op=CommOp.P2P, num_gpus=2, transport=tr, dtype=self.kv_dtype, msg_bytes=bytes_total / senders)
        lat = self.view.latency(case)
        floor = bytes_total / senders / link_bw_bytes_per_s(self.system, tr) * 1e3
        return np.maximum(lat.ms, floor) + self.resolved.kv_handoff_ms

    def _kv_bytes_per_token_replica(self) -> float:
        """KV bytes of one token over the whole model (all KV heads, no replication) as the engine's buffers
        hold them, which is what its hand-off sends (estimator.kv_layout wire_bytes): the layers whose cache
        grows with the context and the sliding-window layers (priced per token too, an upper bound), plus
        sparse layers' indexer keys; linear layers' fixed state is not per token."""
        m = self.model
        row = kv_row(m, self.kv_dtype, self.engine.backend, self.system.gpu.sm_version).wire_bytes
        return row * (m.growing_kv_layers() + m.num_window_layers) + m.index_bytes_per_token()

    def op_cases(self, phase: Phase, batch: int, seq_len: int, kv_len: int) -> list[OpCase]:
        """The per-GPU op cases of one step (collectors use these for model-driven shapes)."""
        if phase == Phase.PREFILL:
            uses = self.composer.ops(self._per_rank(_arr(batch)), seq_len, kv_len - seq_len if kv_len > seq_len else 0, 0, 0)
        elif phase == Phase.DECODE:
            uses = self.composer.ops(0, 0, 0, self._per_rank(_arr(batch)), kv_len)
        else:
            uses = self.composer.ops(1, seq_len, 0, self._per_rank(_arr(batch)), kv_len)
        return [u.case for u in uses if u.mask is None or np.any(u.mask)]
