#!/usr/bin/env bash
# Two scratch virtual environments in which `pytest -m engines` parses every launch command servecast
# writes with the engines' own parsers (tests/search/test_engine_parsers.py), without a GPU:
#   DIR/vllm    vLLM 0.34.0 on the CPU torch wheel: the wheel without its dependencies, then the pure
#               Python ones its argument parser imports (its CUDA kernels, flashinfer and torch 2.14
#               are left out: flashinfer-python 0.7.3 is not on PyPI, and the parser needs none of them)
#   DIR/sglang  SGLang 0.5.23, sglang-router 0.3.2 and vllm-router 0.1.17 as pip installs them
# Then (from the repository root):
#   VLLM_TARGET_DEVICE=cpu DIR/vllm/bin/python -m pytest -m engines tests/search/test_engine_parsers.py
#   DIR/sglang/bin/python -m pytest -m engines tests/search/test_engine_parsers.py
# Usage: bash scripts/engines_venvs.sh DIR [TORCH_CPU_WHEEL]   (~15 min and ~9 GB on 2 cores)
set -euo pipefail
dir="${1:?usage: engines_venvs.sh DIR [TORCH_CPU_WHEEL]}"
torch_wheel="${2:-torch==2.13.0}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$dir"

python3.11 -m venv "$dir/vllm"
"$dir/vllm/bin/pip" install -q "$torch_wheel"
"$dir/vllm/bin/pip" install -q --no-deps vllm==0.34.0 xgrammar==0.2.8 compressed-tensors==0.17.0 apache-tvm-ffi==0.1.11
# vLLM 0.34.0's requirements that its argument parser imports, minus torch and the CUDA kernels
"$dir/vllm/bin/pip" install -q regex cachetools psutil sentencepiece numpy "requests>=2.33.0" tqdm blake3 py-cpuinfo \
    "transformers<5.23.0,>=5.16.1" "huggingface_hub>=2.0.0" "tokenizers>=0.23.3" "safetensors>=0.6.2" \
    "fastapi[standard]<0.137.0,>=0.133.0" "aiohttp>=3.14.4" "openai>=2.25.0" "pydantic>=2.12.0" "orjson>=3.11.6" \
    "prometheus_client>=0.18.0" "pillow>=13.0.0" "prometheus-fastapi-instrumentator>=8.0.0" "tiktoken>=0.6.0" \
    partial-json-parser "jsonschema>=4.23.0" "pyzmq>=25.0.0" msgspec pyyaml einops cloudpickle watchfiles \
    python-json-logger ninja pybase64 cbor2 ijson setproctitle "llguidance<1.8.0,>=1.7.0" outlines_core==0.2.14 \
    lm-format-enforcer==0.11.3 "mistral_common[image]>=1.13.0" depyf==0.20.0 "anthropic>=0.71.0" \
    "mcp<3.0.0,>=2.2.0" "model-hosting-container-standards<1.0.0,>=0.1.14" "oss-harmony>=0.0.11" \
    "opentelemetry-sdk>=1.45.1" "opentelemetry-api>=1.45.1" "opentelemetry-exporter-otlp>=1.45.1" \
    "opentelemetry-semantic-conventions-ai>=0.4.1" "lark==1.2.2" "starlette>=1.0.1" "multidict>=6.9.1" \
    "filelock>=4.2.4" "typing_extensions>=4.10" certifi protobuf
"$dir/vllm/bin/pip" install -q -e "$repo" pytest

python3.11 -m venv "$dir/sglang"
"$dir/sglang/bin/pip" install -q sglang==0.5.23 sglang-router==0.3.2 vllm-router==0.1.17
"$dir/sglang/bin/pip" install -q -e "$repo" pytest
echo "engine venvs ready under $dir"
