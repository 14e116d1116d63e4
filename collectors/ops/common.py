"""Torch helpers shared by the op modules (imported only when a collector runs)."""
from __future__ import annotations

from collectors.registry import DeviceCtx, Unsupported
from perfdb.types import Dtype


def torch_dtype(dtype: Dtype):
    """The torch dtype activations of this format are held in (16-bit for everything quantized)."""
    import torch

    table = {Dtype.FP32: torch.float32, Dtype.BF16: torch.bfloat16, Dtype.FP16: torch.float16}
    if dtype not in table:
        raise Unsupported(f"{dtype.value} has no torch activation dtype here; accepted: fp32, bf16, fp16")
    return table[dtype]


def kv_storage_dtype(kv_dtype: Dtype, math_dtype: Dtype):
    """The torch dtype a KV cache of `kv_dtype` is stored in, next to `math_dtype` activations: the same
    16/32-bit type, or fp8 e4m3 (the format vLLM's, SGLang's and TRT-LLM's fp8 KV caches use)."""
    import torch

    if kv_dtype == math_dtype:
        return torch_dtype(math_dtype)
    if kv_dtype == Dtype.FP8 and math_dtype in (Dtype.BF16, Dtype.FP16):
        return torch.float8_e4m3fn
    raise Unsupported(f"a {kv_dtype.value} KV cache with {math_dtype.value} math is not collected here; accepted: "
                      f"kv_dtype == dtype, or fp8 KV with bf16/fp16 math")


def kv_randn(shape, kv_dtype: Dtype, math_dtype: Dtype, ctx: DeviceCtx):
    """Random KV-cache contents stored in the cache's dtype (fp8 is drawn in fp32, then rounded)."""
    import torch

    store = kv_storage_dtype(kv_dtype, math_dtype)
    if store == torch.float8_e4m3fn:
        return randn(shape, torch.float32, ctx).to(store)
    return randn(shape, store, ctx)


def device(ctx: DeviceCtx):
    import torch

    return torch.device("cuda" if ctx.device == "cuda" else "cpu")


def randn(shape, dtype, ctx: DeviceCtx, scale: float = 1.0):
    """Random normal data (random data, not zeros: tensor cores draw less power on zeros)."""
    import torch

    return torch.randn(*shape, device=device(ctx), dtype=torch.float32).mul_(scale).to(dtype)


def source(ctx: DeviceCtx, gpu_name: str, cpu_name: str) -> str:
    return gpu_name if ctx.device == "cuda" else cpu_name


def prefix_causal_mask(seq: int, prefix: int, ctx: DeviceCtx):
    """Causal mask for `seq` new queries after `prefix` cached keys (query i sees prefix + i + 1 keys), or
    None when there is no prefix (use is_causal). On GPU the lower-right causal bias keeps flash/cuDNN
    kernels eligible; on CPU a boolean mask (importing torch.nn.attention.bias costs seconds there)."""
    if not prefix:
        return None
    import torch

    if ctx.device == "cuda":
        from torch.nn.attention.bias import causal_lower_right

        return causal_lower_right(seq, seq + prefix)
    return torch.ones(seq, seq + prefix, dtype=torch.bool).tril(diagonal=prefix)


def window_causal_mask(seq: int, prefix: int, window: int, ctx: DeviceCtx):
    """Boolean mask of sliding-window causal attention: query i (after `prefix` cached keys) sees keys
    prefix + i - window < j <= prefix + i, i.e. itself and the window - 1 before it."""
    import torch

    q = torch.arange(seq, device=device(ctx))[:, None] + prefix
    k = torch.arange(seq + prefix, device=device(ctx))[None, :]
    return (k <= q) & (k > q - window)
