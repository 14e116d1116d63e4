"""A tiny OpenAI-compatible streaming server on loopback, for recording real benchmark-client output.

It serves /v1/models, /v1/chat/completions and /v1/completions with server-sent events, one
whitespace-separated word per chunk (one token of the WordLevel tokenizer that
scripts/make_client_fixtures.py builds), and exactly `max_tokens` / `max_completion_tokens` words.
Timing imitates a continuously batched engine, scaled down so fixtures record in seconds:
  first token after  prefill_ms_per_token * prompt_words + base_ttft_ms
  each next token after  tpot_ms * (1 + contention * (requests in flight - 1))
so TTFT grows with the prompt and TPOT with concurrency, as on a real server.
Each chunk goes out at once (TCP_NODELAY: without it the kernel holds small writes ~40 ms for the
client's delayed ACK, and clients read several tokens in one read). The final usage chunk
(`choices: []` + `usage`) is sent only when the request asks for it with
`stream_options.include_usage`, as OpenAI and vLLM do: clients that do not ask (SGLang's
bench_serving, genai-perf) index `choices[0]` of every chunk and would fail on it.
GET /metrics serves one fake GPU's DCGM-exporter gauges (Prometheus text), so a client's GPU
telemetry (aiperf --gpu-telemetry URL) records a real table.
Standard library only, so it runs under any Python.

Example: python scripts/fake_openai_server.py --port 8765 --model tiny-fake
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.in_flight = 0

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def step_s(self) -> float:
        with self.lock:
            n = max(self.in_flight, 1)
        return self.args.tpot_ms * (1.0 + self.args.contention * (n - 1)) / 1000.0


def _prompt_words(body: dict) -> int:
    if "messages" in body:
        text = " ".join(str(m.get("content", "")) if isinstance(m.get("content"), str)
                        else " ".join(p.get("text", "") for p in m.get("content", []) if isinstance(p, dict))
                        for m in body["messages"])
    else:
        prompt = body.get("prompt", "")
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    return len(text.split())


def _dcgm_metrics(in_flight: int) -> str:
    """DCGM exporter gauges of one fake GPU (names and labels as dcgm-exporter writes them)."""
    labels = 'gpu="0",UUID="GPU-00000000-fake-0000-0000-000000000000",device="nvidia0",modelName="Fake GPU",Hostname="localhost"'
    gauges = {"DCGM_FI_DEV_POWER_USAGE": 100.0 + 50.0 * in_flight, "DCGM_FI_DEV_GPU_UTIL": min(100, 20 * in_flight),
              "DCGM_FI_DEV_FB_USED": 1024 + 64 * in_flight, "DCGM_FI_DEV_GPU_TEMP": 40, "DCGM_FI_DEV_SM_CLOCK": 1980}
    return "".join(f"# TYPE {name} gauge\n{name}{{{labels}}} {value}\n" for name, value in gauges.items())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # each SSE chunk leaves when written, as from a real server
    state: _State

    def log_message(self, fmt: str, *args: object) -> None:  # quiet: the client's output is what matters
        return

    def _json(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = self.state.args.model
            self._json(200, {"object": "list", "data": [{"id": model, "object": "model", "root": model,
                                                         "owned_by": "servecast-fixtures", "created": 0}]})
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._json(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/metrics":
            with self.state.lock:
                data = _dcgm_metrics(self.state.in_flight).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": "body is not JSON"})
            return
        chat = self.path.endswith("/chat/completions")
        if not (chat or self.path.endswith("/completions")):
            self._json(404, {"error": f"no route {self.path}"})
            return
        self._stream(body, chat)

    def _chunk(self, payload: dict | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        raw = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _stream(self, body: dict, chat: bool) -> None:
        args = self.state.args
        n_out = int(body.get("max_completion_tokens") or body.get("max_tokens") or args.default_max_tokens)
        n_in = _prompt_words(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.state.enter()
        try:
            created = int(time.time())
            obj = "chat.completion.chunk" if chat else "text_completion"
            time.sleep((args.base_ttft_ms + args.prefill_ms_per_token * n_in) / 1000.0)
            for i in range(n_out):
                if i:
                    time.sleep(self.state.step_s())
                word = f"{args.words[i % len(args.words)]} "
                choice = {"index": 0, "delta": {"content": word}} if chat else {"index": 0, "text": word}
                if chat and i == 0:
                    choice["delta"]["role"] = "assistant"
                choice["finish_reason"] = "length" if i == n_out - 1 else None
                self._chunk({"id": "cmpl-fake", "object": obj, "created": created, "model": args.model,
                             "choices": [choice]})
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
                self._chunk({"id": "cmpl-fake", "object": obj, "created": created, "model": args.model,
                             "choices": [], "usage": usage})
            self._chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            self.state.leave()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--model", default="tiny-fake")
    p.add_argument("--base-ttft-ms", type=float, default=15.0)
    p.add_argument("--prefill-ms-per-token", type=float, default=0.05)
    p.add_argument("--tpot-ms", type=float, default=3.0)
    p.add_argument("--contention", type=float, default=0.15)
    p.add_argument("--default-max-tokens", type=int, default=16)
    p.add_argument("--words", default="alpha beta gamma delta epsilon zeta eta theta")
    args = p.parse_args()
    args.words = args.words.split()
    Handler.state = _State(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"fake OpenAI server on http://{args.host}:{args.port} model={args.model}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
