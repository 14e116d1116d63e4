"""DeepSeek-V4's manifold-constrained hyper-connections (mHC) as the engines run them: hc_mult residual
streams of `hidden` each per token, and around every sub-layer (attention, MLP) a `pre` and a `post`
kernel (DeepSeek-V4 inference model.py hc_pre / hc_post; vLLM / SGLang tilelang and TRT-LLM kernels).

pre: RMS-scale the flattened streams (hc_mult x hidden per token), project them with hc_fn (fp32,
(2 + hc_mult) x hc_mult rows) to the pre / post / residual-mix logits, Sinkhorn-normalise the hc x hc
residual mix (sinkhorn_iters row and column passes), and reduce the streams to the sub-layer input with
the pre weights. post: new streams = post weights x the sub-layer output + the hc x hc mix of the old
streams. Streams and the sub-layer input / output are in the activation dtype (bf16).

`sites` is the number of sub-layers one timing covers: the reference tool's mhc_module tables time a
layer's two calls together (its collector "folds both calls into the reported pre/post op":
num_sites 2), so a row is one layer's pre (or post) work; flops and bytes scale with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perfdb.ops.base import OpCase, act_bytes, register
from perfdb.types import Dtype, MhcStage, OpKind

_FN_BYTES = 4.0          # hc_fn is an fp32 parameter in every implementation (model.py, vLLM, SGLang)
_SINKHORN_FLOPS = 4.0    # per matrix element and iteration: a row sum, a division, a column sum, a division


def mix_width(hc: int) -> int:
    """Mixing logits per token: hc pre weights, hc post weights and the hc x hc residual mix."""
    return (2 + hc) * hc


@register
@dataclass(frozen=True)
class MhcModuleCase(OpCase):
    KIND: ClassVar = OpKind.MHC_MODULE
    NUMERIC: ClassVar = ("num_tokens",)
    stage: MhcStage
    dtype: Dtype         # the streams' (activation) format
    hc_mult: int
    hidden: int          # model hidden size (one stream)
    sinkhorn_iters: int
    sites: int           # sub-layers per timing
    num_tokens: np.ndarray

    def flops(self) -> np.ndarray:
        hc, width = self.hc_mult, self.hc_mult * self.hidden
        if self.stage == MhcStage.PRE:   # rms + projection + Sinkhorn + weighted reduction of the streams
            per_token = 2.0 * width + 2.0 * width * mix_width(hc) + _SINKHORN_FLOPS * self.sinkhorn_iters * hc * hc + 2.0 * width
        else:                            # post weight x output + hc x hc mix of the streams
            per_token = 2.0 * width + 2.0 * hc * width
        return self.sites * per_token * self.num_tokens

    def bytes(self) -> np.ndarray:
        a, hc, d = act_bytes(self.dtype), self.hc_mult, self.hidden
        if self.stage == MhcStage.PRE:   # read the streams, write the sub-layer input; hc_fn once per call
            per_token, fixed = (hc + 1) * d * a, mix_width(hc) * hc * d * _FN_BYTES
        else:                            # read the streams and the sub-layer output, write the streams
            per_token, fixed = (2 * hc + 1) * d * a, 0.0
        return self.sites * (per_token * self.num_tokens + fixed)
