"""GEMM collector: out[m, n] = act[m, k] @ weight[n, k]^T, as engines' linear layers run it.

bf16/fp16/fp32 through F.linear (cuBLAS on GPU); fp8 per-tensor through torch._scaled_mm; fp8
block-scaled (1x128 activation, 128x128 weight scales) and nvfp4 through torch._scaled_mm where this
GPU and torch build support them (else the case is recorded as unsupported); int8 through _int_mm.
"""
from __future__ import annotations

from collectors.cases import pow2, product
from collectors.ops.common import device, randn, source, torch_dtype
from collectors.registry import DeviceCtx, GridSize, OpCollector, Prepared, Unsupported, register
from perfdb.ops import GemmCase
from perfdb.types import Dtype, OpKind

_NK_FULL = [128, 256, 512, 1024, 1536, 2048, 3072, 4096, 5120, 6144, 7168, 8192, 12288, 16384]


def grid(size: GridSize, ctx: DeviceCtx | None = None) -> list[GemmCase]:
    if size == GridSize.TINY:
        # fp32 on CPU hosts: their bf16 GEMMs are emulated and slow; fp8/nvfp4 exercise the failure path
        return product(GemmCase, {"dtype": Dtype.FP32}, {"m": [1, 8, 32, 128], "n": [64, 256], "k": [64, 256]}) + \
            product(GemmCase, {"dtype": Dtype.FP8}, {"m": [16, 128], "n": [64], "k": [64]}) + \
            product(GemmCase, {"dtype": Dtype.NVFP4}, {"m": [16], "n": [64], "k": [64]})
    if size == GridSize.SMALL:
        axes = {"m": [1, 16, 128, 1024, 8192], "n": [1024, 4096, 8192], "k": [1024, 4096, 8192]}
        return [c for d in (Dtype.BF16, Dtype.FP8) for c in product(GemmCase, {"dtype": d}, axes)]
    axes = {"m": pow2(1, 16384), "n": _NK_FULL, "k": _NK_FULL}
    dtypes = (Dtype.BF16, Dtype.FP8, Dtype.FP8_BLOCK, Dtype.NVFP4)
    return [c for d in dtypes for c in product(GemmCase, {"dtype": d}, axes)]


def _fp8(shape, ctx):
    import torch

    return randn(shape, torch.float32, ctx, scale=0.5).to(torch.float8_e4m3fn)


def _build_fp8(m, n, k, ctx, block: bool) -> Prepared:
    import torch

    if k % 16 or n % 16:
        raise Unsupported(f"fp8 scaled_mm needs k and n divisible by 16, got n={n} k={k}")
    a, w = _fp8((m, k), ctx), _fp8((n, k), ctx)
    if block:
        if k % 128 or n % 128:
            raise Unsupported(f"fp8_block needs k and n divisible by 128, got n={n} k={k}")
        sa = torch.rand(m, k // 128, device=device(ctx)).t().contiguous().t()  # 1x128 blocks, m-major
        sb = torch.rand(n // 128, k // 128, device=device(ctx)).t()            # 128x128 blocks
    else:
        sa = torch.tensor(1.0, device=device(ctx))
        sb = torch.tensor(1.0, device=device(ctx))

    def fn():
        return torch._scaled_mm(a, w.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)

    try:
        fn()
    except (RuntimeError, NotImplementedError, ValueError) as exc:  # torch raises ValueError for unsupported scalings
        what = "block-scaled fp8" if block else "per-tensor fp8"
        raise Unsupported(f"torch._scaled_mm has no {what} kernel here: {str(exc).splitlines()[0]}") from None
    return Prepared(fn, source(ctx, "cublaslt_fp8_block" if block else "cublaslt_fp8", "torch_cpu_fp8"))


def _build_nvfp4(m, n, k, ctx) -> Prepared:
    import torch

    if ctx.device != "cuda" or ctx.sm_version < 100:
        raise Unsupported("nvfp4 GEMM needs Blackwell tensor cores (sm100+)")
    if k % 32 or n % 16:
        raise Unsupported(f"nvfp4 needs k divisible by 32 and n by 16, got n={n} k={k}")

    def packed(rows):
        return torch.randint(0, 255, (rows, k // 2), dtype=torch.uint8, device="cuda").view(torch.float4_e2m1fn_x2)

    def scales(rows):  # one e4m3 scale per 16 elements, in the 128x4 blocked layout cuBLAS expects
        padded_rows, padded_cols = -(-rows // 128) * 128, -(-(k // 16) // 4) * 4
        return torch.rand(padded_rows * padded_cols, device="cuda").to(torch.float8_e4m3fn)

    a, w, sa, sb = packed(m), packed(n), scales(m), scales(n)

    def fn():
        return torch._scaled_mm(a, w.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)

    try:
        fn()
    except (RuntimeError, NotImplementedError, ValueError) as exc:  # torch raises ValueError for unsupported scalings
        raise Unsupported(f"torch._scaled_mm has no nvfp4 kernel here: {str(exc).splitlines()[0]}") from None
    return Prepared(fn, "cublaslt_nvfp4")


def build(case: GemmCase, ctx: DeviceCtx) -> Prepared:
    import torch

    m, n, k = int(case.m), int(case.n), int(case.k)
    if case.dtype in (Dtype.FP8, Dtype.FP8_BLOCK):
        return _build_fp8(m, n, k, ctx, block=case.dtype == Dtype.FP8_BLOCK)
    if case.dtype == Dtype.NVFP4:
        return _build_nvfp4(m, n, k, ctx)
    if case.dtype == Dtype.INT8:
        if m <= 16 or k % 8 or n % 8:
            raise Unsupported(f"torch._int_mm needs m > 16 and k, n divisible by 8, got m={m} n={n} k={k}")
        a = torch.randint(-127, 127, (m, k), dtype=torch.int8, device=device(ctx))
        w = torch.randint(-127, 127, (n, k), dtype=torch.int8, device=device(ctx))
        return Prepared(lambda: torch._int_mm(a, w.t()), source(ctx, "cublas_int8", "torch_cpu_int8"))
    dt = torch_dtype(case.dtype)
    a, w = randn((m, k), dt, ctx), randn((n, k), dt, ctx, scale=0.02)
    return Prepared(lambda: torch.nn.functional.linear(a, w), source(ctx, "cublas", "torch_cpu"))


register(OpCollector(OpKind.GEMM, grid, build))
