"""Record real benchmark-client output for the calibration ingest tests.

Starts scripts/fake_openai_server.py on 127.0.0.1, builds a small WordLevel tokenizer locally (no
model hub: its vocabulary is the words of aiperf's bundled Shakespeare corpus plus the server's
output words), runs aiperf against the server with bounded request counts, and copies the files
aiperf writes into tests/fixtures/clients/aiperf/<run>/:
  profile_export_aiperf.json, profile_export_aiperf.csv, profile_export.jsonl
Two runs: closed loop (--concurrency 4) and open loop (--request-rate 20). Absolute paths inside
the files are replaced by <FIXTURE_DIR> / <TOKENIZER_DIR> so re-running gives comparable files.

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
    "concurrency4": ["--concurrency", "4", "--request-count", "24"],
    "rate20": ["--request-rate", "20", "--request-count", "24"],
}
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
           "--ui", "none", "--no-server-metrics", "--no-gpu-telemetry", *load]
    env = {**os.environ, "TMPDIR": str(out.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"aiperf failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def scrub(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return re.sub(r"/tmp/[^\"',\s]*", "<TMP>", text)


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
                dest = out_root / name
                if dest.exists():
                    shutil.rmtree(dest)
                dest.mkdir(parents=True)
                for fname in EXPORTS:
                    found = sorted(art.rglob(fname))
                    if not found:
                        raise RuntimeError(f"aiperf wrote no {fname} under {art}")
                    text = scrub(found[0].read_text(encoding="utf-8"),
                                 {str(art): "<FIXTURE_DIR>", str(tokenizer): "<TOKENIZER_DIR>",
                                  f"127.0.0.1:{port}": "127.0.0.1:<PORT>"})
                    (dest / fname).write_text(text, encoding="utf-8")
                    written.append(dest / fname)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE.parent / "tests" / "fixtures" / "clients" / "aiperf")
    p.add_argument("--aiperf", default=shutil.which("aiperf") or str(Path(sys.executable).parent / "aiperf"))
    args = p.parse_args()
    for path in record(args.aiperf, args.out):
        print(path)


if __name__ == "__main__":
    main()
