"""On-disk memo of CompletionInterp fits, so a sparse table is completed once, not in every process.

A table collected adaptively (perfdb.scatter.CompletionInterp; with a prior, perfdb.prior builds
several of them) costs seconds per categorical combination to complete: a 10% GEMM slice with one
prior took 20 s of a 23 s `servecast estimate`, paid again by every `plan` and `estimate` process.
Inside `stored_completions(directory)` each fit is looked up by a hash of everything it reads (the
rows, the level grid's speed-of-light times, the configuration, a format tag) and, when absent,
written there after fitting. Content-keyed, so a grown table, another system spec or another
configuration never reads a stale fit; the directory (`<db>/.cache/completions/`) can be deleted at
any time. It is a cache: an unwritable directory (a read-only database) or an unreadable entry only
means fitting again.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

FORMAT = "servecast-completion-v1"
_STORE: ContextVar[Path | None] = ContextVar("servecast_completion_store", default=None)


@contextmanager
def stored_completions(directory: Path | None):
    """CompletionInterp fits inside this block are memoised under `directory` (None: not memoised)."""
    token = _STORE.set(None if directory is None else Path(directory))
    try:
        yield
    finally:
        _STORE.reset(token)


def active() -> Path | None:
    return _STORE.get()


def fit_key(*parts: object) -> str:
    """sha256 over the parts: arrays by dtype, shape and bytes; anything else by its repr."""
    h = hashlib.sha256(FORMAT.encode())
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(f"{p.dtype}{p.shape}".encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(repr(p).encode())
        h.update(b"\x00")
    return h.hexdigest()[:32]


def load(directory: Path, key: str) -> dict[str, np.ndarray] | None:
    path = directory / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:   # data, never code: no pickle
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile):     # truncated or foreign file: refit
        return None


def save(directory: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    tmp = directory / f".tmp-{key}-{os.getpid()}.npz"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, directory / f"{key}.npz")
    except OSError:   # read-only, full or not a directory: the fit stands, only the memo is lost
        if tmp.exists():
            tmp.unlink()
