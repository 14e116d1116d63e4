"""Time SGLang's own Triton kernels (a carried sglang wheel, no sgl-kernel) beside ours, case by case.

    python scripts/gpu_sglang_kernels.py --wheel-dir .whl --out $OUT/sglang_kernels.jsonl --seconds 90
    TRITON_INTERPRET=1 python scripts/gpu_sglang_kernels.py --device cpu --tiny --wheel-dir .whl \
        --out /tmp/sgl.jsonl --seconds 300           # CPU rehearsal: Triton interpreter, fp16 math

Writes one JSON line per case as it goes (so a timeout keeps what was measured): first a header (versions,
GPU, which SGLang kernels import and why not), then per case its fields, sglang_ms, ours_ms,
kernel_source / ours_source or the error; a last line says whether the time budget stopped it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS_ATTN = {"Llama-3.1-8B": (32, 8, 128), "Qwen3-32B": (64, 8, 128)}  # q heads, kv heads, head dim (HF configs)
MODELS_MOE = {  # hidden, moe_intermediate, experts, top-k, (moe_tp, moe_ep) (HF configs)
    "Qwen3-30B-A3B": (2048, 768, 128, 8, (1, 1)),
    "DeepSeek-V3": (7168, 2048, 256, 8, (1, 8)),
}


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel-dir", required=True, type=Path,
                   help="folder holding sglang-*.whl (and pure-Python wheels it needs, e.g. einops for GDN)")
    p.add_argument("--out", required=True, type=Path, help="JSON-lines file to write")
    p.add_argument("--seconds", type=float, default=120.0, help="time budget; cases left then are skipped")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU rehearsal)")
    return p.parse_args(argv)


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _pick_wheel(folder: Path) -> Path:
    wheels = sorted(folder.glob("sglang-*.whl")) if folder.is_dir() else []
    if not wheels:
        _fail(f"no sglang-*.whl in {folder}; accepted: a folder holding the sglang wheel")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    # the Triton kernels are pure Python: any wheel serves, the interpreter's own tag is preferred
    return next((w for w in wheels if f"-{tag}-" in w.name or "-py3-none-any" in w.name), wheels[0])


def _cases(tiny: bool, dtype):
    from perfdb.ops import AttentionDecodeCase, AttentionPrefillCase, MoeCase
    from perfdb.ops.moe import DEFAULT_DISTRIBUTION
    from perfdb.types import Dtype

    kvs = [dtype, Dtype.FP8]
    if tiny:
        heads, batches, lens, pre = {"tiny": (4, 2, 64)}, [1, 2], [40], [(1, 16, 0), (1, 16, 8)]
        moe, tokens = {"tiny": (64, 64, 8, 2, (1, 1))}, [4, 16]
    else:
        heads = {f"{m} TP{tp}": (h // tp, max(kv // tp, 1), d) for m, (h, kv, d) in MODELS_ATTN.items() for tp in (1, 8)}
        batches, lens = [1, 8, 64], [1024, 4096]
        pre = [(b, s, p) for b in (1, 8) for s in (1024, 4096) for p in (0, 1024)]
        moe, tokens = MODELS_MOE, [1, 64, 1024, 4096]
    out = []
    for name, (h, kvh, d) in heads.items():
        base = {"dtype": dtype, "num_heads": h, "num_kv_heads": kvh, "head_dim": d, "window": 0}
        out += [(name, AttentionDecodeCase(kv_dtype=kv, batch=b, kv_len=n, **base))
                for kv in kvs for b in batches for n in lens]
        out += [(name, AttentionPrefillCase(kv_dtype=dtype, batch=b, seq_len=s, prefix_len=p, **base)) for b, s, p in pre]
    for name, (hid, inter, e, k, (tp, ep)) in moe.items():
        out += [(name, MoeCase(dtype=dtype, hidden=hid, inter=inter, topk=k, num_experts=e, moe_tp=tp, moe_ep=ep,
                               distribution=DEFAULT_DISTRIBUTION, num_tokens=t)) for t in tokens]
    return out


def _timed(build, case, ctx, cfg) -> tuple[float, str]:
    from collectors.timer import time_op

    prepared = build(case, ctx)
    return time_op(prepared.fn, ctx.device, cfg).median_ms, prepared.kernel_source


def _run_case(model, case, ctx, cfg, ours_build, sglang_builders) -> dict:
    from collectors.registry import Unsupported

    row = {"model": model, "kind": case.KIND.value}
    row.update({k: (v.value if hasattr(v, "value") else int(v) if hasattr(v, "item") else v)
                for k, v in vars(case).items()})
    for label, build in (("sglang", sglang_builders[case.KIND]), ("ours", ours_build(case.KIND))):
        try:
            ms, source = _timed(build, case, ctx, cfg)
            row[f"{label}_ms"], row[f"{label}_source"] = round(ms, 5), source
        except Unsupported as e:
            row[f"{label}_error"] = f"unsupported: {e}"
        except Exception as e:  # noqa: BLE001 - a kernel failing on this GPU is a result line, never a crash
            row[f"{label}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]
    row["kernel_source"] = row.get("sglang_source", "")
    return row


def _header(ctx, wheel: Path, probe: dict) -> dict:
    import torch
    import triton

    gpu = torch.cuda.get_device_name(0) if ctx.device == "cuda" else "cpu"
    return {"header": True, "wheel": wheel.name, "torch": torch.__version__, "triton": triton.__version__,
            "cuda": torch.version.cuda, "device": gpu, "python": sys.version.split()[0], "probe": probe}


def main(argv=None) -> int:
    a = _args(argv)
    if not a.seconds > 0:
        _fail(f"--seconds {a.seconds} must be > 0; accepted: the time budget in seconds")
    if a.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            _fail("--device cuda but no CUDA GPU is visible; accepted: cuda on a GPU node, cpu")
    wheel = _pick_wheel(a.wheel_dir)
    start = time.monotonic()
    unpacked = tempfile.mkdtemp(prefix="sglang_wheel_")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked, [n for n in z.namelist() if n.startswith("sglang/") and not n.endswith(".so")])
    for extra in sorted(a.wheel_dir.glob("*-py3-none-any.whl")):  # pure-Python helpers carried beside (einops)
        if not extra.name.startswith("sglang-"):
            zipfile.ZipFile(extra).extractall(unpacked)
    sys.path.insert(0, unpacked)
    return _sweep(a, wheel, start)


def _sweep(a, wheel: Path, start: float) -> int:
    from collectors.backends import sglang_triton as sgl
    from collectors.registry import DeviceCtx, load_all
    from collectors.timer import TimerConfig
    from perfdb.types import Dtype, OpKind

    if os.environ.get("TRITON_INTERPRET") == "1":
        sgl.patch_triton_interpreter()
    ctx = DeviceCtx(a.device)
    cfg = TimerConfig(budget_s=0.1) if a.device == "cuda" else TimerConfig(
        budget_s=0.01, warmup_s=0.0, min_reps=1, max_reps=2, flush_bytes=0, use_graph=False)
    builders = {OpKind.ATTENTION_DECODE: sgl.build_decode, OpKind.ATTENTION_PREFILL: sgl.build_extend,
                OpKind.MOE: sgl.build_moe}
    ours = load_all()
    cases = _cases(a.tiny, Dtype.BF16 if a.device == "cuda" else Dtype.FP16)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("w") as f:
        f.write(json.dumps(_header(ctx, wheel, sgl.probe())) + "\n")
        for i, (model, case) in enumerate(cases):
            if time.monotonic() - start > a.seconds:
                f.write(json.dumps({"stopped": "time budget", "cases_left": len(cases) - i}) + "\n")
                return 0
            f.write(json.dumps(_run_case(model, case, ctx, cfg, lambda k: ours[k].build, builders)) + "\n")
            f.flush()
            if a.device == "cuda":
                import torch

                torch.cuda.empty_cache()
        f.write(json.dumps({"stopped": "done", "cases": len(cases)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
