"""SGLang's own Triton kernels (sglang 0.5.23 wheel), timed without sgl-kernel or SGLang's server stack.

The kernel files live in `sglang.kernels.ops.*`, but `import sglang` runs `sglang.srt.utils`, which needs
orjson, psutil, requests, PIL, starlette, msgspec ... (the server's dependencies, absent on a bare GPU
node). When that import fails, `_bare_import` loads the kernel files by path: SGLang's package
`__init__`s are skipped (bare packages over the same directories) and the few server helpers the kernel
files import are answered by our own small stand-ins (`_STANDINS`: platform predicates from torch,
"no deterministic-inference config published", "no batch-invariant mode"), which is what those helpers
return in a server that was started without those options. The Triton kernels themselves are SGLang's,
unmodified. Layouts follow SGLang's triton attention backend: page size 1 (a token-slot pool), kv_indptr
/ kv_indices per request, `--triton-attention-num-kv-splits 8` (SGLang's default, server_args.py).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

from collectors.ops.common import device, kv_randn, randn, torch_dtype
from collectors.registry import DeviceCtx, Prepared, Unsupported
from perfdb.ops import AttentionDecodeCase, AttentionPrefillCase, MoeCase
from perfdb.types import Dtype

KERNELS = {  # kernel name -> module in the sglang 0.5.23 wheel
    "decode_attention": "sglang.kernels.ops.attention.decode_attention",
    "extend_attention": "sglang.kernels.ops.attention.extend_attention",
    "fused_moe": "sglang.kernels.ops.moe.fused_moe_triton_kernels",
    "moe_align": "sglang.kernels.ops.moe.moe_align",  # JIT-compiled CUDA: _align stands in
    "gdn_chunk": "sglang.kernels.ops.attention.fla.chunk",  # GDN: needs einops; no perfdb op kind times it yet
    "gdn_fused_recurrent": "sglang.kernels.ops.attention.fla.fused_recurrent",
    "dsa_indexer": "sglang.srt.layers.attention.dsa.dsa_indexer",
    "nsa_indexer": "sglang.srt.layers.attention.nsa.nsa_indexer",
}
MAX_KV_SPLITS = 8  # SGLang server_args.triton_attention_num_kv_splits default


def _torch():
    import torch

    return torch


def _cuda() -> bool:
    torch = _torch()
    return torch.cuda.is_available() and torch.version.cuda is not None


def _is_sm90() -> bool:
    return _cuda() and _torch().cuda.get_device_capability()[0] >= 9


def _core_count(device_id: int = 0) -> int:
    return _torch().cuda.get_device_properties(device_id).multi_processor_count if _cuda() else 0


def _no_exec_config():
    raise ValueError("no SGLang runtime config is published outside a server")


def _absent(name: str):
    def fn(*_args, **_kwargs):
        raise Unsupported(f"{name} is not loaded outside SGLang's server stack (only the bf16 path is timed)")
    return fn


_STANDINS: dict[str, dict[str, object]] = {
    "sglang.srt.utils": {
        "is_hip": lambda: _torch().version.hip is not None, "is_cuda": _cuda, "is_cpu": lambda: not _cuda(),
        "is_npu": lambda: False, "cpu_has_amx_support": lambda: False, "is_gfx95_supported": lambda: False,
        "is_gfx1250_supported": lambda: False, "is_sm90_supported": _is_sm90, "get_device_core_count": _core_count},
    "sglang.srt.runtime_context": {"get_exec": _no_exec_config},
    "sglang.srt.batch_invariant_ops": {"is_batch_invariant_mode_enabled": lambda: False},
    "sglang.srt.layers.moe.utils": {"get_moe_padding_size": lambda is_aiter_moe: 0},  # SGLANG_MOE_PADDING unset
    "sglang.kernels.jit.utils": {"is_arch_support_pdl": _is_sm90},
    "sglang.kernels.ops.quantization.fp8_kernel": {
        n: _absent(n) for n in ("per_token_group_quant_fp8", "scaled_fp8_quant", "sglang_per_token_group_quant_fp8")},
    "sglang.kernels.ops.quantization.int8_kernel": {
        n: _absent(n) for n in ("per_token_group_quant_int8", "per_token_quant_int8",
                                "sglang_per_token_group_quant_int8")},
}


class _BareFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """sglang.* packages without their __init__ (bare namespaces over the wheel's directories), stand-ins
    for the server helpers above; plain kernel modules load from their files as usual."""

    def __init__(self, root: str):
        self.root = root  # the directory holding the `sglang` package

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "sglang" and not fullname.startswith("sglang."):
            return None
        if fullname in _STANDINS or fullname == "sglang.srt.utils.common":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        folder = os.path.join(self.root, *fullname.split("."))
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            spec.submodule_search_locations = [folder]
            return spec
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__dict__.update(_STANDINS.get(module.__name__, {}))
        if module.__name__ == "sglang.srt.utils.common":  # the fla (GDN) kernels' torch-version check
            from packaging.version import parse

            module.torch_release = parse(_torch().__version__).release


def _bare_import(module: str):
    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'sglang'")
    root = os.path.dirname(list(spec.submodule_search_locations)[0])
    if not any(isinstance(f, _BareFinder) for f in sys.meta_path):
        for name in [m for m in sys.modules if m == "sglang" or m.startswith("sglang.")]:
            del sys.modules[name]  # half-imported leftovers of the failed full import
        sys.meta_path.insert(0, _BareFinder(root))
    return importlib.import_module(module)


_LOADED: dict[str, types.ModuleType | str] = {}


def load(kernel: str) -> types.ModuleType:
    """The kernel's module, or Unsupported naming the import error in one line."""
    if kernel not in _LOADED:
        try:
            try:
                _LOADED[kernel] = importlib.import_module(KERNELS[kernel])
            except ImportError:
                _LOADED[kernel] = _bare_import(KERNELS[kernel])
        except Exception as e:  # noqa: BLE001 - any failure of a foreign package's import is reported, not raised
            _LOADED[kernel] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    got = _LOADED[kernel]
    if isinstance(got, str):
        raise Unsupported(f"sglang {kernel} does not import: {got}")
    return got


def probe() -> dict[str, str]:
    """Per kernel: "ok", or why it does not import here."""
    out = {}
    for kernel in KERNELS:
        try:
            load(kernel)
            out[kernel] = "ok"
        except Unsupported as e:
            out[kernel] = str(e)
    return out


def _slot_pool(lens: list[int], kv_heads: int, dim: int, kv_dtype: Dtype, dtype: Dtype, ctx: DeviceCtx):
    """SGLang's token-slot KV pool (page size 1) with each request's slots scattered at random, and the
    kv_indptr / kv_indices that address them."""
    torch = _torch()
    total = sum(lens)
    k = kv_randn((total + 1, kv_heads, dim), kv_dtype, dtype, ctx)  # slot 0: SGLang's padding slot
    v = kv_randn((total + 1, kv_heads, dim), kv_dtype, dtype, ctx)
    indices = (torch.randperm(total) + 1).to(device(ctx), torch.int64)
    indptr = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device(ctx))
    return k, v, indptr, indices


def decode_inputs(case: AttentionDecodeCase, ctx: DeviceCtx):
    """q [batch, heads, dim], the K and V slot pools, kv_indptr, kv_indices (request i's tokens in order)."""
    b, kv = int(case.batch), int(case.kv_len)
    k, v, indptr, indices = _slot_pool([kv] * b, case.num_kv_heads, case.head_dim, case.kv_dtype, case.dtype, ctx)
    return randn((b, case.num_heads, case.head_dim), torch_dtype(case.dtype), ctx), k, v, indptr, indices


def build_decode(case: AttentionDecodeCase, ctx: DeviceCtx) -> Prepared:
    mod = load("decode_attention")
    if case.window > 0:
        raise Unsupported("sliding-window decode is not wired for SGLang's triton decode kernel here")
    torch = _torch()
    b, h, d = int(case.batch), case.num_heads, case.head_dim
    q, k, v, indptr, indices = decode_inputs(case, ctx)
    o = torch.empty_like(q)
    logits = torch.empty((b, h, MAX_KV_SPLITS, d), dtype=torch.float32, device=device(ctx))
    lse = torch.empty((b, h, MAX_KV_SPLITS), dtype=torch.float32, device=device(ctx))
    splits = torch.full((b,), MAX_KV_SPLITS, dtype=torch.int32, device=device(ctx))

    def fn():
        mod.decode_attention_fwd(q, k, v, o, indptr, indices, logits, lse, splits, MAX_KV_SPLITS, d ** -0.5,
                                 1.0, 1.0)
        return o

    suffix = "_fp8kv" if case.kv_dtype == Dtype.FP8 else ""
    return Prepared(fn, "sglang_triton_decode_attention" + suffix)


def build_extend(case: AttentionPrefillCase, ctx: DeviceCtx) -> Prepared:
    """Causal prefill of seq_len new tokens after prefix_len cached ones (SGLang's extend kernel: the new
    tokens' K/V are passed contiguous, the prefix is read from the pool)."""
    mod = load("extend_attention")
    if case.window > 0:
        raise Unsupported("sliding-window prefill is not wired for SGLang's triton extend kernel here")
    torch = _torch()
    b, s, p = int(case.batch), int(case.seq_len), int(case.prefix_len)
    h, kvh, d, dt = case.num_heads, case.num_kv_heads, case.head_dim, torch_dtype(case.dtype)
    k_buf, v_buf, kv_indptr, kv_indices = _slot_pool([p] * b, kvh, d, case.kv_dtype, case.dtype, ctx)
    q = randn((b * s, h, d), dt, ctx)
    k_ext, v_ext = randn((b * s, kvh, d), dt, ctx), randn((b * s, kvh, d), dt, ctx)
    o = torch.empty_like(q)
    qo_indptr = torch.arange(0, (b + 1) * s, s, dtype=torch.int32, device=device(ctx))

    def fn():
        mod.extend_attention_fwd(q, k_ext, v_ext, o, k_buf, v_buf, qo_indptr, kv_indptr, kv_indices, None, True,
                                 None, s, 1.0, 1.0, sm_scale=d ** -0.5)
        return o

    suffix = "_fp8kv" if case.kv_dtype == Dtype.FP8 else ""
    return Prepared(fn, "sglang_triton_extend_attention" + suffix)


def patch_triton_interpreter() -> None:
    """CPU rehearsal only (TRITON_INTERPRET=1): triton 3.6's interpreter turns a scalar into a Python int
    with int(1-element array), which numpy >= 2.4 refuses; SGLang's kernels loop over such bounds
    (`tl.range(split_kv_start, split_kv_end, BLOCK_N)`). Index through .item() instead; compiled GPU
    kernels never go through this."""
    from triton.runtime import interpreter

    if getattr(interpreter, "_servecast_index_patch", False):
        return
    original = interpreter._patch_lang_tensor

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    interpreter._patch_lang_tensor = patched
    interpreter._servecast_index_patch = True


def _moe_config(rows: int, local_experts: int) -> dict[str, int]:
    """SGLang's untuned bf16 default (fused_moe_triton_config.get_default_config, sglang 0.5.23): its tuned
    per-GPU JSON tables are not consulted here."""
    if rows <= local_experts:
        return {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 32, "BLOCK_SIZE_K": 64, "GROUP_SIZE_M": 1}
    return {"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32, "GROUP_SIZE_M": 8}


def _align(counts, block_m: int, ctx: DeviceCtx):
    """What SGLang's moe_align_block_size (a JIT CUDA kernel, not loadable here) returns for rows already
    grouped by expert: row ids padded per expert to block_m (pad id = rows), the expert of each block."""
    import numpy as np

    torch = _torch()
    rows = int(counts.sum())
    padded = -(-counts // block_m) * block_m
    sorted_ids = np.full(int(padded.sum()), rows, dtype=np.int32)
    row_start, pad_start = np.concatenate(([0], np.cumsum(counts))), np.concatenate(([0], np.cumsum(padded)))
    for e, c in enumerate(counts):
        sorted_ids[pad_start[e]:pad_start[e] + c] = np.arange(row_start[e], row_start[e] + c)
    expert_ids = np.repeat(np.arange(len(counts), dtype=np.int32), padded // block_m)
    dev = device(ctx)
    return (torch.from_numpy(sorted_ids).to(dev), torch.from_numpy(expert_ids).to(dev),
            torch.tensor([len(sorted_ids)], dtype=torch.int32, device=dev))


def build_moe(case: MoeCase, ctx: DeviceCtx) -> Prepared:
    """SGLang's fused_moe_kernel for the up (gate+up) and down GEMMs of the most-loaded EP rank, routing
    from collectors.ops.moe.local_counts (the same loads our torch MoE runs). Each routed (token, expert)
    pair is one row (top_k 1): the same GEMM work as SGLang's topk gather. The SiLU-and-mul between runs
    in torch (SGLang calls sgl_kernel's there, which does not travel)."""
    import numpy as np
    import triton.language as tl

    from collectors.ops.moe import local_counts

    mod = load("fused_moe")
    if case.num_experts % case.moe_ep or case.inter % case.moe_tp:
        raise Unsupported(f"{case.num_experts} experts / ep {case.moe_ep} and inter {case.inter} / tp {case.moe_tp} must divide")
    torch = _torch()
    dt = torch_dtype(case.dtype)
    counts = local_counts(case).astype(np.int64)
    local, inter, hidden, rows = len(counts), case.inter // case.moe_tp, case.hidden, max(int(counts.sum()), 1)
    if not counts.sum():
        counts[0] = 1
    cfg = _moe_config(rows, local)
    sorted_ids, expert_ids, post_padded = _align(counts, cfg["BLOCK_SIZE_M"], ctx)
    x = randn((rows, hidden), dt, ctx)
    w13, w2 = randn((local, 2 * inter, hidden), dt, ctx, scale=0.02), randn((local, hidden, inter), dt, ctx, scale=0.02)
    topk_ids = torch.from_numpy(np.repeat(np.arange(local), counts).astype(np.int32)).to(device(ctx))[:, None]
    topk_w = torch.ones((rows, 1), dtype=torch.float32, device=device(ctx))
    h1, out = torch.empty((rows, 2 * inter), dtype=dt, device=device(ctx)), torch.empty((rows, 1, hidden), dtype=dt, device=device(ctx))
    compute = tl.bfloat16 if dt == torch.bfloat16 else tl.float16 if dt == torch.float16 else tl.float32
    quant = {"use_fp8_w8a8": False, "use_int8_w8a8": False, "use_int8_w8a16": False, "use_int4_w4a16": False,
             "per_channel_quant": False}

    def gemm(a, w, c, routed: bool):
        mod.invoke_fused_moe_kernel(a, w, None, c, None, None, None, topk_w, topk_ids, sorted_ids, expert_ids,
                                    post_padded, routed, 1, cfg, compute_type=compute, **quant)

    def fn():
        gemm(x, w13, h1, False)
        act = torch.nn.functional.silu(h1[:, :inter]) * h1[:, inter:]
        gemm(act, w2, out, True)
        return out

    return Prepared(fn, "sglang_triton_fused_moe")
