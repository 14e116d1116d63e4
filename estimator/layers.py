"""Op composition of one forward step on one GPU: the perfdb cases of every op, grouped by layer kind.

A step is described by per-attention-DP-rank token counts (arrays, broadcast together):
  pb, s, p  prefill requests, new tokens each, cached-prefix tokens each
  db, kv    decode requests, mean KV length
Identical layers are not looped over: each op appears once with the number of layers that run it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from estimator.engines.profile import DpMoeExchange
from estimator.layers_hybrid import (
    SparseModule,
    compressed_ops,
    linear_ops,
    mhc_module,
    mhc_ops,
    sparse_module,
    sparse_ops,
    v4_module,
    v4_projection_ops,
)
from estimator.models.spec import AttentionKind, ModelSpec
from estimator.parallel import ParallelConfig, moe_split
from perfdb.ops import (
    AttentionDecodeCase,
    AttentionPrefillCase,
    CommCase,
    ElementwiseCase,
    GemmCase,
    MlaDecodeCase,
    MlaPrefillCase,
    MoeCase,
    OpCase,
)
from perfdb.ops.base import act_bytes
from perfdb.ops.moe import DEFAULT_DISTRIBUTION, a2a_copies_per_token
from perfdb.specs import SystemSpec
from perfdb.types import CommOp, Dtype, ElementwiseOp, Transport

# Routing imbalance the MoE latency is looked up under (one definition, shared with the collectors).
MOE_DISTRIBUTION = DEFAULT_DISTRIBUTION
# an all-to-all rank's grouped GEMM: its received copies, each for one local expert (the balanced average)
A2A_DISTRIBUTION = "balanced"
ACT_BYTES = 2.0  # bf16 hidden states on the wire


@dataclass(frozen=True)
class OpUse:
    """One op of a step: its case, how many times it runs per step (layers), and a mask that zeroes it
    where it does not run (e.g. prefill attention in a decode-only step)."""

    name: str
    case: OpCase
    count: float
    mask: np.ndarray | None = None


def transport(system: SystemSpec, group: int) -> Transport:
    return Transport.NVLINK if group <= system.nvlink_domain_gpus else Transport.NETWORK


class LayerComposer:
    """Per-GPU shapes of one (model, parallel) precomputed once; `ops()` builds the cases of one step."""

    def __init__(self, model: ModelSpec, system: SystemSpec, parallel: ParallelConfig, kv_dtype: Dtype,
                 fuse_norm: bool = False, spec_tokens: int = 0, covers: Callable[[OpCase], bool] | None = None,
                 dp_exchange: DpMoeExchange = DpMoeExchange.GATHER_SCATTER, kv_row_bytes: float = 0.0,
                 a2a_experts_timed: bool = False):
        """covers: whether the database answers a case from its tables (perfdb.lookup.DbView.covers); the
        sparse (DSA / MSA) layers' attention block and mHC's pre / post are then priced from the module
        tables where they hold them. a2a_experts_timed: the tables time the experts an all-to-all
        exchange feeds (DeepEP's, MoeKernel.DEEPEP_*: the step model prices them from that kernel's rows),
        so their case is the model's own MoE shape over the EP group's tokens."""
        self.m, self.sys, self.p, self.kv_dtype = model, system, parallel, kv_dtype
        self.dp_exchange = dp_exchange
        self.a2a_experts_timed = a2a_experts_timed
        self.kv_row = kv_row_bytes   # the engine's stored KV row the decode attention reads (0: elements x bytes)
        # speculative decoding verifies 1 + k tokens per decoding request; each request's KV is read once
        self.q_per_decode = 1 + spec_tokens
        self.spec_tokens = spec_tokens
        # residual + RMSNorm fused into the TP all-reduce: only the final norm stays a kernel
        self.norms = 1 if fuse_norm and parallel.tp > 1 else 2 * model.num_layers + 1
        self.tp = parallel.tp
        self.heads = model.num_heads // parallel.tp
        self.kv_heads = max(1, model.num_kv_heads // parallel.tp)
        self.moe_tp, self.moe_ep = moe_split(parallel)
        pp = parallel.pp
        # layer counts per full pass (all stages: a token crosses every stage in turn)
        self.n_layers = model.num_layers
        self.n_attn = model.num_attn_layers   # softmax-attention layers (q/k/v projections)
        self.n_dense, self.n_moe = model.num_dense_layers, model.num_moe_layers
        self.n_full = model.num_full_layers
        self.tp_transport = transport(system, parallel.tp)
        self.stage_transport = transport(system, parallel.gpus_per_stage)
        self.pp_transport = Transport.NVLINK if parallel.num_gpus <= system.nvlink_domain_gpus else Transport.NETWORK
        self.pp = pp
        module = sparse_module(model, self.heads, self.kv_heads, kv_dtype) if covers is not None else None
        # the sparse layers' attention block from the module tables when both phases' tables answer it
        self.sparse_module: SparseModule | None = module if module and all(map(covers, module.probes())) else None
        v4 = v4_module(model, parallel.tp, self.heads, kv_dtype) if covers is not None else None
        self.v4_module: SparseModule | None = v4 if v4 and all(map(covers, v4.probes())) else None   # V4's HCA layers
        mhc = mhc_module(model) if covers is not None else None
        self.mhc_module = mhc if mhc and all(map(covers, mhc)) else None   # measured mHC pre / post modules

    # -- building blocks ------------------------------------------------------------------------
    def _gemm(self, name, dtype, m, n, k, count) -> OpUse:
        return OpUse(name, GemmCase(dtype=dtype, m=m, n=n, k=k), count)

    def _allreduce(self, name, tokens, group, count, tr) -> list[OpUse]:
        if group <= 1:
            return []
        case = CommCase(op=CommOp.ALL_REDUCE, num_gpus=group, transport=tr, dtype=Dtype.BF16,
                        msg_bytes=tokens * self.m.hidden * ACT_BYTES)
        return [OpUse(name, case, count)]

    def _norm(self, tokens, count) -> OpUse:
        return OpUse("norm", ElementwiseCase(op=ElementwiseOp.RMSNORM, dtype=Dtype.BF16, hidden=self.m.hidden,
                                             num_tokens=tokens), count)

    # -- attention ------------------------------------------------------------------------------
    def _gqa(self, t, pb, s, p, db, kv) -> list[OpUse]:
        m, hd, q = self.m, self.m.head_dim, self.m.attn_quant
        if self.n_attn == 0:
            return []
        q_heads = self.heads * (2 if m.attn_output_gate else 1)
        module, ops = self.sparse_module, []
        # with measured MSA modules the sparse layers' projections are inside the module
        projected = self.n_attn - (m.num_sparse_layers if module else 0)
        v4, n_hca = self.v4_module, m.num_compressed_layers if self.v4_module else 0
        if m.o_groups:
            ops += v4_projection_ops(m, self.tp, t, OpUse, hca_module=v4 is not None)
        elif projected:
            ops += [self._gemm("qkv_proj", q, t, (q_heads + m.kv_per_head * self.kv_heads) * hd, m.hidden, projected),
                    self._gemm("o_proj", q, t, m.hidden, self.heads * hd, projected)]
        common = dict(dtype=Dtype.BF16, kv_dtype=self.kv_dtype, num_heads=self.heads,
                      num_kv_heads=self.kv_heads, head_dim=hd)
        if module:
            ops += module.ops(m.num_sparse_layers, pb, s, p, db, kv, self.q_per_decode, OpUse)
        else:
            ops += sparse_ops(m, self.heads, self.kv_heads, self.kv_dtype, t, pb, s, p, db, kv, OpUse, self.kv_row)
        if v4:   # measured DeepSeek-V4 HCA modules: projections, compressor, attention and window of those layers
            ops += v4.ops(n_hca, pb, s, p, db, kv, self.q_per_decode, OpUse)
        else:
            ops += compressed_ops(m, common, pb, s, p, db, kv, OpUse)
        # sliding layers; DeepSeek-V4's CSA / HCA layers' window pairs too in prefill (their decode reads
        # the window inside the sparse / compressed op)
        for suffix, window, n_pre, n_dec in (("", 0, self.n_full, self.n_full),
                                             ("_sliding", m.sliding_window, m.num_window_layers - n_hca, m.num_sliding_layers)):
            if n_pre:
                ops.append(OpUse("attn_prefill" + suffix, AttentionPrefillCase(
                    window=window, batch=pb, seq_len=s, prefix_len=p, **common), n_pre, pb > 0))
            if n_dec:   # the 1 + k verified queries of a request fold into its query heads (as in _mla)
                ops.append(OpUse("attn_decode" + suffix, AttentionDecodeCase(
                    window=window, batch=db, kv_len=kv, **{**common, "num_heads": self.heads * self.q_per_decode}),
                    n_dec, db > 0))
        return ops

    def _mla(self, t, pb, s, p, db, kv) -> list[OpUse]:
        m, q, n, nf = self.m, self.m.attn_quant, self.n_attn, self.n_full
        h = self.heads
        if self.sparse_module is not None:   # measured DSA modules: every attention layer's whole block
            return self.sparse_module.ops(n, pb, s, p, db, kv, self.q_per_decode, OpUse)
        down = (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_head_dim
        ops = [self._gemm("mla_down_proj", q, t, down, m.hidden, n)]
        if m.q_lora_rank:
            ops.append(self._gemm("mla_q_up_proj", q, t, h * m.head_dim, m.q_lora_rank, n))
        else:
            ops.append(self._gemm("mla_q_proj", q, t, h * m.head_dim, m.hidden, n))
        # prefill expands the latent of every KV token (new + cached prefix) into per-head K, V
        mla = dict(dtype=Dtype.BF16, kv_dtype=self.kv_dtype, num_heads=h, kv_lora_rank=m.kv_lora_rank,
                   qk_rope_head_dim=m.qk_rope_head_dim, qk_nope_head_dim=m.qk_nope_head_dim, v_head_dim=m.v_head_dim)
        if nf:   # dense layers: prefill expands the latent of every KV token (new + cached prefix) into K, V
            ops.append(OpUse("mla_kv_up_proj", GemmCase(dtype=q, m=pb * (s + p), n=h * (m.qk_nope_head_dim + m.v_head_dim),
                                                       k=m.kv_lora_rank), nf, pb > 0))
            ops.append(OpUse("attn_prefill", MlaPrefillCase(batch=pb, seq_len=s, prefix_len=p, **mla), nf, pb > 0))
            # decode: the 1 + k verified queries of a request fold into its query heads against its one KV
            # (FlashMLA packs s_q x h_q query rows; the trtllm-gen MLA generation kernels likewise)
            ops.append(OpUse("attn_decode", MlaDecodeCase(batch=db, kv_len=kv, kv_row_bytes=self.kv_row,
                                                          **{**mla, "num_heads": h * self.q_per_decode}),
                             nf, db > 0))
        # the weight-absorbed form (decode everywhere; prefill too in sparse layers): per-head q_nope ->
        # latent and latent -> v BMMs
        dq = db * self.q_per_decode
        absorbed = dq + (pb * s if m.num_sparse_layers else 0.0)
        ops.append(OpUse("mla_absorb_bmm", GemmCase(dtype=Dtype.BF16, m=absorbed, n=h * m.kv_lora_rank, k=m.qk_nope_head_dim), n,
                         absorbed > 0))
        ops += sparse_ops(m, h, h, self.kv_dtype, t, pb, s, p, db, kv, OpUse, self.kv_row)
        ops.append(OpUse("mla_out_bmm", GemmCase(dtype=Dtype.BF16, m=absorbed, n=h * m.v_head_dim, k=m.kv_lora_rank), n,
                         absorbed > 0))
        ops.append(self._gemm("o_proj", q, t, m.hidden, h * m.v_head_dim, n))
        return ops

    # -- feed-forward ---------------------------------------------------------------------------
    def _dense_mlp(self, t) -> list[OpUse]:
        m, g, n = self.m, self.m.gemm_quant, self.n_dense
        if n == 0:
            return []
        inter = m.inter // self.tp
        return [
            self._gemm("mlp_gate_up", g, t, (m.mlp_mats - 1) * inter, m.hidden, n),
            OpUse("mlp_act", ElementwiseCase(op=ElementwiseOp.SILU_MUL, dtype=Dtype.BF16, hidden=inter, num_tokens=t), n),
            self._gemm("mlp_down", g, t, m.hidden, inter, n),
            *self._allreduce("tp_allreduce", t, self.tp, n, self.tp_transport),
        ]

    def _moe(self, t, t_group, extend) -> list[OpUse]:
        """t: tokens on the busiest attention rank; t_group: tokens entering the MoE across the stage
        (after the attention-DP gather); extend: where the step holds prompt tokens."""
        m, n, dp = self.m, self.n_moe, self.p.attn_dp
        if n == 0:
            return []
        # squared-ReLU experts (2 matrices) are priced as gated ones of 2/3 the width: same weights and flops
        inter = m.moe_inter if m.mlp_gated else m.moe_inter * 2 // 3
        eh = m.expert_hidden
        if dp > 1 and self.dp_exchange is DpMoeExchange.ALL_TO_ALL and not self.a2a_experts_timed:
            # a rank's experts receive only the copies routed to them (the stage's tokens x topk / ep on
            # average: t x topk when every rank is as busy, a 1/ep share of a lone prompt's) and run as one
            # grouped GEMM over its local experts: a kernel the usual MoE tables do not measure (theirs take
            # every gathered token; their time grows with all of them at any EP size), so priced as its own
            # case; where the tables time DeepEP's experts themselves (a2a_experts_timed), the else branch
            experts = MoeCase(dtype=m.moe_quant, hidden=eh, inter=inter, topk=1, num_experts=m.num_experts // self.moe_ep,
                              moe_tp=self.moe_tp, moe_ep=1, distribution=A2A_DISTRIBUTION,
                              num_tokens=t_group * m.topk / self.moe_ep)
        else:
            experts = MoeCase(dtype=m.moe_quant, hidden=eh, inter=inter, topk=m.topk, num_experts=m.num_experts,
                              moe_tp=self.moe_tp, moe_ep=self.moe_ep, distribution=MOE_DISTRIBUTION, num_tokens=t_group)
        ops = [self._gemm("router", Dtype.BF16, t, m.num_experts, m.hidden, n), OpUse("moe_experts", experts, n)]
        if m.moe_latent:   # latent MoE: tokens are projected down before dispatch and back up after combine
            ops += [self._gemm("moe_latent_down", m.gemm_quant, t, eh, m.hidden, n),
                    self._gemm("moe_latent_up", m.gemm_quant, t, m.hidden, eh, n)]
        if m.shared_inter:
            inter = m.shared_inter // self.tp
            ops += [self._gemm("shared_gate_up", m.gemm_quant, t, (m.mlp_mats - 1) * inter, m.hidden, n),
                    self._gemm("shared_down", m.gemm_quant, t, m.hidden, inter, n)]
        if dp == 1:
            return ops + self._allreduce("moe_allreduce", t, self.p.gpus_per_stage, n, self.stage_transport)
        return ops + self._dp_exchange(t, t_group, extend)

    def _dp_exchange(self, t, t_group, extend) -> list[OpUse]:
        """Attention DP: every rank's tokens reach the experts and the experts' output returns to the rank
        that owns the token (DpMoeExchange: the engine's collectives)."""
        m, n, group, tr = self.m, self.n_moe, self.p.gpus_per_stage, self.stage_transport

        def comm(name, op, dtype, msg, mask=None) -> OpUse:
            return OpUse(name, CommCase(op=op, num_gpus=group, transport=tr, dtype=dtype, msg_bytes=msg), n, mask)

        eh = m.expert_hidden
        if self.dp_exchange is DpMoeExchange.ALL_TO_ALL:
            # each of the rank's tokens goes to its routed experts' ranks and comes back (CommCase counts the
            # share that leaves the GPU; no rank padded to the busiest), as many copies a token as DeepEP's
            # low-latency kernels (decode steps) or normal ones (steps with prompt tokens) send
            copies = t * a2a_copies_per_token(self.moe_ep, m.topk, low_latency=np.logical_not(extend)) * eh
            return [comm("moe_dispatch", CommOp.ALL_TO_ALL, m.moe_quant, copies * act_bytes(m.moe_quant)),
                    comm("moe_combine", CommOp.ALL_TO_ALL, Dtype.BF16, copies * ACT_BYTES)]
        if self.dp_exchange is DpMoeExchange.GATHER_SCATTER:
            return [comm("moe_dispatch", CommOp.ALL_GATHER, m.moe_quant, t_group * eh * act_bytes(m.moe_quant)),
                    comm("moe_combine", CommOp.REDUCE_SCATTER, Dtype.BF16, t_group * eh * ACT_BYTES)]
        # SUM_LEN (any prompt tokens in the step): a bf16 all-reduce of the summed-length buffer before the
        # experts and one of their output after; MAX_LEN (decode only): every rank padded to the busiest
        summed = t_group * m.hidden * ACT_BYTES
        padded = t * self.p.attn_dp * m.hidden * ACT_BYTES
        decode = ~extend
        return [comm("moe_dispatch", CommOp.ALL_REDUCE, Dtype.BF16, summed, extend),
                comm("moe_combine", CommOp.ALL_REDUCE, Dtype.BF16, summed, extend),
                comm("moe_dispatch", CommOp.ALL_GATHER, Dtype.BF16, padded, decode),
                comm("moe_combine", CommOp.REDUCE_SCATTER, Dtype.BF16, padded, decode)]

    def _draft_head(self, pb, s, db) -> list[OpUse]:
        """What each draft pass adds beyond its decoder layer (priced in estimator.steps): the MTP
        module's eh_proj over [embedding; hidden] (a bf16 Linear(2h, h), replicated in SGLang:
        models/deepseek_nextn.py, TRT-LLM _torch/models/modeling_deepseekv3.py DeepseekV3MTP) and the
        shared head's logits for one row per request (each pass samples the next draft). Decode runs k
        passes (SGLang eagle_worker.py: k - 1 draft forwards + the draft extend after verify; TRT-LLM
        _torch/speculative/mtp.py: one pass per MTP depth); a prompt runs one, over all its tokens."""
        k, m = self.spec_tokens, self.m
        if not k:
            return []
        ops = []
        for rows, heads, passes, on in ((db, db, k, db > 0), (pb * s, pb, 1, pb > 0)):   # decode, prompt
            ops += [OpUse("spec_draft_eh_proj", GemmCase(dtype=Dtype.BF16, m=rows, n=m.hidden, k=2 * m.hidden), passes, on),
                    OpUse("spec_draft_head", GemmCase(dtype=Dtype.BF16, m=heads, n=m.vocab // self.tp, k=m.hidden),
                          passes, on)]
        return ops

    # -- one step -------------------------------------------------------------------------------
    def ops(self, pb, s, p, db, kv, stage_tokens=None) -> list[OpUse]:
        """Cases of one step; pb and db are per attention-DP rank (the busiest one). stage_tokens: new
        tokens of the whole replica (default: every rank as busy as the busiest)."""
        pb, s, p, db, kv = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (pb, s, p, db, kv)))
        t = pb * s + db * self.q_per_decode
        t_group = t * self.p.attn_dp if stage_tokens is None else np.minimum(np.ravel(stage_tokens), t * self.p.attn_dp)
        m = self.m
        attn = self._mla if m.attention == AttentionKind.MLA else self._gqa
        attn_ops = attn(t, pb, s, p, db, kv) + linear_ops(m, self.tp, self.kv_dtype, t, pb, s, db, self.q_per_decode, OpUse)
        attn_ops += mhc_ops(m, t, OpUse, self.mhc_module)
        mixers = self.n_attn + m.num_linear_layers
        attn_reduce = self._allreduce("tp_allreduce", t, self.tp, mixers, self.tp_transport)
        logits_rows = pb + db * self.q_per_decode
        ops = [
            OpUse("embedding", ElementwiseCase(op=ElementwiseOp.EMBEDDING, dtype=Dtype.BF16, hidden=m.hidden, num_tokens=t), 1),
            self._norm(t, self.norms),
            *attn_ops, *attn_reduce, *self._dense_mlp(t), *self._moe(t, t_group, pb > 0),
            self._gemm("lm_head", Dtype.BF16, logits_rows, m.vocab // self.tp, m.hidden, 1),
            *self._draft_head(pb, s, db),
        ]
        if self.tp > 1:
            ops.append(OpUse("logits_gather", CommCase(op=CommOp.ALL_GATHER, num_gpus=self.tp, transport=self.tp_transport,
                                                       dtype=Dtype.FP32, msg_bytes=logits_rows * m.vocab * 4.0), 1))
        if self.pp > 1:
            ops.append(OpUse("pp_send_recv", CommCase(op=CommOp.P2P, num_gpus=2, transport=self.pp_transport,
                                                      dtype=Dtype.BF16, msg_bytes=t * m.hidden * ACT_BYTES), self.pp - 1))
        return ops
