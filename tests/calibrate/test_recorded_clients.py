"""Outputs recorded by the clients themselves (scripts/make_client_fixtures.py --sglang / --vllm, against
scripts/fake_openai_server.py): read with the configured concurrency cap, not the measured average."""
from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from calibrate.parsers import Format, detect, parse_file

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize("name, fmt, client", [
    ("sglang_bench_serving.jsonl", Format.SGLANG, "sglang-bench-serving"),
    ("vllm_bench_serve.json", Format.VLLM, "vllm-bench-serve"),
])
def test_recorded_client_output_keeps_its_concurrency(fixtures, name, fmt, client):
    path = fixtures / "recorded" / name
    raw = json.loads(path.read_text().splitlines()[0])
    assert raw["max_concurrency"] == 4 and raw["completed"] == 24, "every request of the recorded run completed"
    assert detect(path) is fmt
    res = parse_file(path)[0]
    assert res.client.value == client
    assert res.load.concurrency == 4.0 and res.load.request_rate is None
    assert (res.load.isl, res.load.osl) == (64.0, 16.0)
    assert res.metrics.ttft.mean > 0 and res.metrics.tpot.mean > 0
    if fmt is Format.SGLANG:   # its `concurrency` is the measured average in flight, kept beside the cap
        assert res.load.measured_concurrency == pytest.approx(raw["concurrency"]) and raw["concurrency"] < 4


def _stream(port: int, body: dict) -> list[dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        events = [ln[6:] for ln in resp.read().decode().splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_fake_server_sends_the_usage_chunk_only_when_asked():
    sys.path.insert(0, str(SCRIPTS))
    try:
        from make_client_fixtures import free_port, start_server
    finally:
        sys.path.remove(str(SCRIPTS))
    port = free_port()
    server = start_server(port)
    try:
        body = {"model": "tiny-fake", "messages": [{"role": "user", "content": "a b c"}], "max_tokens": 3,
                "stream": True}
        plain = _stream(port, body)
        assert len(plain) == 3 and all(chunk["choices"] for chunk in plain), "every chunk has choices[0]"
        usage = _stream(port, {**body, "stream_options": {"include_usage": True}})
        assert usage[-1]["choices"] == [] and usage[-1]["usage"]["completion_tokens"] == 3
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert "DCGM_FI_DEV_POWER_USAGE{" in resp.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=10)
