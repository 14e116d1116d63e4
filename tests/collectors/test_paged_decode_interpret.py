"""The Triton paged-decode kernel itself, run on CPU by Triton's interpreter (the GPU path's code, not a
copy): ragged lengths, empty splits, GQA groups, an fp8 KV cache and a sliding window against the torch reference.

Runs in a subprocess because TRITON_INTERPRET is read when the kernel is decorated. The interpreter
mis-handles bf16 dot products on CPU (numpy has no bf16), so the math here is fp16; bf16 is checked on
GPU by test_gpu.py."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="the Triton interpreter needs triton installed (pip install triton)")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import torch
from collectors.ops.attention_decode import make_inputs, reference
from collectors.ops.paged_decode_triton import paged_decode
from collectors.registry import DeviceCtx
from perfdb.types import Dtype

ctx = DeviceCtx("cpu", 0)
for batch, kv, heads, kv_heads, dim, kv_dtype, split, window in [(3, 100, 8, 2, 32, Dtype.FP16, 2, 0),
                                                                 (2, 37, 4, 4, 16, Dtype.FP16, 16, 0),
                                                                 (3, 100, 8, 1, 32, Dtype.FP8, 2, 0),
                                                                 (3, 100, 8, 2, 32, Dtype.FP16, 1, 24)]:
    q, kc, vc, table, lens = make_inputs(batch, kv, heads, kv_heads, dim, Dtype.FP16, ctx, seed=batch + kv,
                                         kv_dtype=kv_dtype)
    lens = lens.clone()
    lens[0] = 7  # ragged: request 0 leaves most splits empty
    out = paged_decode(q, kc, vc, table, lens, max_kv_len=kv, pages_per_split=split, window=window)
    ref = reference(q, kc, vc, table, lens, window=window)
    assert not torch.isnan(out).any()
    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    assert err < 3e-3, (batch, kv, kv_dtype, err)
    print("ok", kv_dtype.value, f"{err:.1e}")
"""


def test_triton_paged_decode_matches_reference_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600,
                         cwd=ROOT, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("ok") == 4, res.stdout
