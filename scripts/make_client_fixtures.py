"""Record real benchmark-client output for the calibration ingest tests.

Starts scripts/fake_openai_server.py on 127.0.0.1, builds a small WordLevel tokenizer locally (no
model hub: its vocabulary is the words of aiperf's bundled Shakespeare corpus plus the server's
output words), runs aiperf against the server with bounded request counts, warm-up on and GPU telemetry read from
the server's fake DCGM /metrics, and copies the artifact directory aiperf writes, as written (phase
manifest, phases/, the CSV with its telemetry table, ...; only logs/ left out), into
tests/fixtures/clients/aiperf/<run>/. Two runs: closed loop (--concurrency 4) and open loop
(--request-rate 20). Absolute paths inside the files are replaced by <FIXTURE_DIR> / <TOKENIZER_DIR>
so re-running gives comparable files.

--sglang PYTHON records SGLang's `python -m sglang.bench_serving` (run by that Python, e.g. a scratch venv
with `pip install sglang`) at --max-concurrency 4 into --out/sglang_bench_serving.jsonl, as the client
appends it.

--vllm VLLM records `vllm bench serve --save-result` (that console script) at --max-concurrency 4 into
--out/vllm_bench_serve.json.

--loop DIR records the closed loop instead (tests/calibrate/test_loop.py): `servecast plan` (LOOP_PLAN),
then each top configuration's own aiperf.sh against the server with aiperf's defaults (telemetry on,
nothing at localhost:9400), the plan's deployment.yaml beside the artifact directory it wrote.

Run it with the Python that has aiperf installed (aiperf also brings `tokenizers`):
  /tmp/aiperf-venv/bin/python scripts/make_client_fixtures.py --out tests/fixtures/clients/aiperf

Example: /tmp/aiperf-venv/bin/python scripts/make_client_fixtures.py --out /tmp/fixtures --aiperf /tmp/aiperf-venv/bin/aiperf
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE / "fake_openai_server.py"
MODEL = "tiny-fake"
OUTPUT_WORDS = "alpha beta gamma delta epsilon zeta eta theta"
EXPORTS = ("profile_export_aiperf.json", "profile_export_aiperf.csv", "profile_export.jsonl")
# name -> aiperf load flags; small and bounded so a run takes a few seconds.
RUNS = {
    "concurrency4": ["--concurrency", "4", "--request-count", "24", "--warmup-request-count", "4"],
    "rate20": ["--request-rate", "20", "--request-count", "24", "--warmup-request-count", "4"],
}
# The plan of the loop fixture: three aggregated deployments (a 3-fold fit needs them) at small concurrencies,
# benchmarked with fixed lengths (`--range-ratio 0`: the recorded runs' aiperf.sh asked for stddev 0).
LOOP_PLAN = ["plan", "--model", "Qwen/Qwen3-0.6B", "--system", "h200_sxm", "--backend", "vllm", "--total-gpus", "2",
             "--isl", "64", "--osl", "16", "--ttft", "200", "--tpot", "2.2", "--mode", "agg", "--top-n", "3",
             "--no-simulate", "--calibration", "none", "--range-ratio", "0"]
# Left out of the copies: aiperf's own log, and (loop) the per-request files of runs of hundreds of requests,
# which the ingest of a directory with a phase manifest never reads.
SKIP = ("logs",)
LOOP_SKIP = ("logs", "profile_export.jsonl", "inputs.json")
ISL, OSL = 64, 16


def build_tokenizer(directory: Path) -> Path:
    """A WordLevel tokenizer saved as a local Hugging Face tokenizer directory."""
    import aiperf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    corpus = Path(aiperf.__file__).parent / "dataset" / "generator" / "assets" / "shakespeare.txt"
    words = sorted(set(corpus.read_text(encoding="utf-8").split()) | set(OUTPUT_WORDS.split()))
    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "bos_token": "<s>",
              "eos_token": "</s>", "model_max_length": 1 << 20, "clean_up_tokenization_spaces": False}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(json.dumps(
        {"unk_token": "[UNK]", "bos_token": "<s>", "eos_token": "</s>"}, indent=2))
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), "--model", MODEL,
                             "--words", OUTPUT_WORDS], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"fake server did not start on port {port}: {proc.stderr.read().decode()[-500:]}")


def run_aiperf(aiperf: str, port: int, tokenizer: Path, out: Path, load: list[str]) -> None:
    """One bounded aiperf run; its scratch files (TMPDIR) stay inside the run's temporary directory."""
    cmd = [aiperf, "profile", "--model", MODEL, "--url", f"http://127.0.0.1:{port}", "--endpoint-type", "chat",
           "--streaming", "--tokenizer", str(tokenizer), "--prompt-input-tokens-mean", str(ISL),
           "--prompt-input-tokens-stddev", "0", "--prompt-output-tokens-mean", str(OSL),
           "--prompt-output-tokens-stddev", "0", "--random-seed", "7", "--output-artifact-dir", str(out),
           "--ui", "none", "--gpu-telemetry", f"http://127.0.0.1:{port}/metrics", *load]
    env = {**os.environ, "TMPDIR": str(out.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"aiperf failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def scrub(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return re.sub(r"/tmp/[^\"',\s]*", "<TMP>", text)


def copy_artifacts(art: Path, dest: Path, replacements: dict[str, str], skip: tuple[str, ...]) -> list[Path]:
    """The artifact directory as aiperf wrote it (paths scrubbed), without the `skip` names."""
    if dest.exists():
        shutil.rmtree(dest)
    written = []
    for src in sorted(art.rglob("*")):
        rel = src.relative_to(art)
        if not src.is_file() or rel.parts[0] in skip:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(scrub(src.read_text(encoding="utf-8"), replacements), encoding="utf-8")
        written.append(target)
    for fname in EXPORTS:
        if fname not in skip and not (dest / fname).is_file():
            raise RuntimeError(f"aiperf wrote no {fname} under {art}")
    return written


def record(aiperf: str, out_root: Path) -> list[Path]:
    written = []
    with tempfile.TemporaryDirectory(prefix="servecast-fixtures-") as tmp:
        tmp_path = Path(tmp)
        tokenizer = build_tokenizer(tmp_path / "tokenizer")
        port = free_port()
        server = start_server(port)
        try:
            for name, load in RUNS.items():
                art = tmp_path / name
                run_aiperf(aiperf, port, tokenizer, art, load)
                written += copy_artifacts(art, out_root / name, {str(art): "<FIXTURE_DIR>", str(tokenizer): "<TOKENIZER_DIR>",
                                                                  f"127.0.0.1:{port}": "127.0.0.1:<PORT>"}, SKIP)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return written


def _record_client(name: str, out_root: Path, command) -> list[Path]:
    """Run `command(port, tokenizer, out)` (a client writing one result file `name`) against the fake server
    and copy what it wrote, paths scrubbed."""
    with tempfile.TemporaryDirectory(prefix="servecast-client-") as tmp:
        tmp_path = Path(tmp)
        tokenizer = build_tokenizer(tmp_path / "tokenizer")
        port = free_port()
        server = start_server(port)
        out = tmp_path / name
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        try:
            proc = subprocess.run(command(port, tokenizer, out), capture_output=True, text=True, timeout=600, env=env,
                                  cwd=tmp_path)
        finally:
            server.terminate()
            server.wait(timeout=10)
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: the client failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        out_root.mkdir(parents=True, exist_ok=True)
        dest = out_root / name
        dest.write_text(scrub(out.read_text(encoding="utf-8"), {str(tokenizer): "<TOKENIZER_DIR>",
                                                                f"127.0.0.1:{port}": "127.0.0.1:<PORT>"}))
    return [dest]


def record_sglang(python: str, out_root: Path) -> list[Path]:
    """One SGLang bench_serving run (random token ids: no dataset download), at most 4 requests in flight."""
    return _record_client("sglang_bench_serving.jsonl", out_root, lambda port, tok, out: [
        python, "-m", "sglang.bench_serving", "--backend", "vllm", "--base-url", f"http://127.0.0.1:{port}",
        "--model", MODEL, "--tokenizer", str(tok), "--dataset-name", "random-ids", "--random-input-len", str(ISL),
        "--random-output-len", str(OSL), "--random-range-ratio", "1.0", "--num-prompts", "24", "--max-concurrency",
        "4", "--request-rate", "inf", "--seed", "7", "--output-file", str(out)])


def record_vllm(vllm: str, out_root: Path) -> list[Path]:
    """One `vllm bench serve` run on the chat endpoint, at most 4 requests in flight."""
    return _record_client("vllm_bench_serve.json", out_root, lambda port, tok, out: [
        vllm, "bench", "serve", "--backend", "openai-chat", "--base-url", f"http://127.0.0.1:{port}", "--endpoint",
        "/v1/chat/completions", "--model", MODEL, "--tokenizer", str(tok), "--dataset-name", "random",
        "--random-input-len", str(ISL), "--random-output-len", str(OSL), "--num-prompts", "24", "--max-concurrency",
        "4", "--request-rate", "inf", "--seed", "7", "--save-result", "--result-dir", str(out.parent),
        "--result-filename", out.name])


def record_loop(aiperf: str, servecast: str, out_root: Path) -> list[Path]:
    """plan -> each top configuration's aiperf.sh, run as written (AIPERF_URL at the fake server, an offline
    tokenizer as its extra argument) -> the artifact directories and deployment.yaml files."""
    written = []
    with tempfile.TemporaryDirectory(prefix="servecast-loop-") as tmp:
        tmp_path = Path(tmp)
        tokenizer = build_tokenizer(tmp_path / "tokenizer")
        plan = subprocess.run([servecast, *LOOP_PLAN, "--save-dir", str(tmp_path / "plan")], capture_output=True,
                              text=True, timeout=300)
        if plan.returncode != 0:
            raise RuntimeError(f"servecast plan failed: {plan.stdout[-1500:]}{plan.stderr[-1500:]}")
        port = free_port()
        server = start_server(port)
        env = {**os.environ, "AIPERF_URL": f"http://127.0.0.1:{port}", "TMPDIR": str(tmp_path),
               "PATH": f"{Path(aiperf).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        try:
            for top in sorted((tmp_path / "plan" / "top").iterdir()):
                proc = subprocess.run(["bash", str(top / "aiperf.sh"), "--tokenizer", str(tokenizer), "--ui", "none"],
                                      cwd=top, env=env, capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    raise RuntimeError(f"{top}/aiperf.sh failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
                art = next(top.glob("aiperf-*"))
                dest = out_root / top.name
                written += copy_artifacts(art, dest / art.name, {str(top): "<FIXTURE_DIR>", str(tokenizer): "<TOKENIZER_DIR>",
                                                                 f"127.0.0.1:{port}": "127.0.0.1:<PORT>"}, LOOP_SKIP)
                for name in ("deployment.yaml", "aiperf.sh"):
                    shutil.copy(top / name, dest / name)
                    written.append(dest / name)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE.parent / "tests" / "fixtures" / "clients" / "aiperf")
    p.add_argument("--aiperf", default=shutil.which("aiperf") or str(Path(sys.executable).parent / "aiperf"))
    p.add_argument("--loop", type=Path, default=None, help="record the plan -> aiperf.sh loop into this directory")
    p.add_argument("--servecast", default=shutil.which("servecast") or "servecast", help="servecast console script")
    p.add_argument("--sglang", default=None, help="record SGLang bench_serving with this Python instead")
    p.add_argument("--vllm", default=None, help="record `vllm bench serve` with this vllm console script instead")
    args = p.parse_args()
    if args.sglang:
        paths = record_sglang(args.sglang, args.out)
    elif args.vllm:
        paths = record_vllm(args.vllm, args.out)
    elif args.loop:
        paths = record_loop(args.aiperf, args.servecast, args.loop)
    else:
        paths = record(args.aiperf, args.out)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
