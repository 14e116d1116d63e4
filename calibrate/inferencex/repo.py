"""Read files of an InferenceX repository as they were at a given time.

DIR may be a bare git directory (what `git clone --bare` or the `fetch` tool writes), a checkout with
its `.git`, or a plain directory of files (no history: one snapshot, used for every run whatever its
date, and said so in the provenance as commit `worktree`). History is read with the `git` command
(subprocess: `rev-list --first-parent --before`, `show COMMIT:PATH`, `ls-tree`), so only the main
line counts: a run measured at time T used the configs of the last commit merged before T.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from perfdb.errors import InputError

WORKTREE = "worktree"   # the pseudo-commit of a plain directory


@dataclass(frozen=True)
class Kind:
    """Which repository a Repo reads: the option that named it, files whose presence (one of them, at the
    newest commit) says it is that repository, and what to give instead."""

    option: str
    name: str
    markers: tuple[str, ...]
    source: str


INFERENCEX = Kind("--inferencex", "InferenceX", (".github/configs/nvidia-master.yaml",
                                                 ".github/workflows/benchmark-tmpl.yml"),
                  "github.com/SemiAnalysisAI/InferenceX")


def _memo(method):
    """Per-instance cache of a method's results (git answers do not change while we read)."""
    @wraps(method)
    def cached(self, *args):
        return self.remember((method.__name__, *args), lambda: method(self, *args))

    return cached


class Repo:
    """Files of one repository (InferenceX unless `kind` says otherwise) by (commit, path); `commit_at(iso)`
    picks the commit."""

    def __init__(self, path: Path, kind: Kind = INFERENCEX):
        self.path = Path(path)
        self.kind = kind
        self._memo: dict[tuple, object] = {}
        if not self.path.is_dir():
            raise InputError(f"{kind.option} {path}: no such directory; give a clone (bare or checkout) "
                             f"of {kind.source}")
        self.git = self._git_dir()
        head = self.head()
        if not any(self.read(head, m) is not None for m in kind.markers):
            raise InputError(f"{kind.option} {path}: not an {kind.name} repository (none of "
                             f"{', '.join(kind.markers)} at {head[:10]}); give a clone of {kind.source}")

    def _git_dir(self) -> Path | None:
        for cand in (self.path / ".git", self.path):
            if (cand / "HEAD").is_file() and (cand / "objects").is_dir():
                return cand
        return None

    def _run(self, *args: str) -> str | None:
        """stdout of `git --git-dir=... args`, or None when git says the object/path does not exist."""
        try:
            out = subprocess.run(["git", f"--git-dir={self.git}", *args], capture_output=True, check=False)
        except OSError as exc:
            raise InputError(f"{self.kind.option} {self.path}: cannot run git ({exc.strerror})") from None
        return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else None

    def head(self) -> str:
        if self.git is None:
            return WORKTREE
        rev = self._run("rev-parse", "HEAD")
        if not rev:
            raise InputError(f"{self.kind.option} {self.path}: a git directory without commits")
        return rev.strip()

    @_memo
    def commit_at(self, iso_time: str, tip: str = "HEAD") -> str | None:
        """The commit in effect at `iso_time` on the first-parent line of `tip` (the last one before it);
        None when that history starts later."""
        if self.git is None:
            return WORKTREE
        rev = self._run("rev-list", "-1", "--first-parent", f"--before={iso_time}", tip)
        return rev.strip() or None if rev is not None else None

    @_memo
    def rev(self, ref: str) -> str | None:
        """The commit `ref` (a commit id, branch, or a clone's origin/<branch>) names here; None when this
        clone does not have it."""
        if self.git is None:
            return None
        for name in (ref, f"origin/{ref}"):
            out = self._run("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
            if out and out.strip():
                return out.strip()
        return None

    @_memo
    def first_parent(self) -> tuple[str, ...]:
        """Main-line commits, oldest first."""
        if self.git is None:
            return (WORKTREE,)
        out = self._run("rev-list", "--first-parent", "--reverse", "HEAD") or ""
        return tuple(out.split())

    @_memo
    def changes(self, path: str) -> tuple[str, ...]:
        """Main-line commits that changed `path`, oldest first (one `git log` for the whole history)."""
        if self.git is None:
            return (WORKTREE,)
        out = self._run("log", "--first-parent", "--reverse", "--format=%H", "HEAD", "--", path) or ""
        return tuple(out.split())

    def later_changes(self, commit: str, path: str, n: int) -> list[str]:
        """Up to n main-line commits after `commit` that changed `path` (runs on a branch merged later)."""
        pos = self._positions()
        if commit not in pos:
            return []
        return [c for c in self.changes(path) if pos.get(c, -1) > pos[commit]][:n]

    def remember(self, key: tuple, compute):
        """`compute()` once per `key` for this repository (what is derived from its files, e.g. a parsed
        recipe, is as fixed as the git answers it is read from)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def earlier_changes(self, commit: str, path: str) -> list[str]:
        """Main-line commits up to and including `commit` that changed `path`, newest first."""
        pos = self._positions()
        return [c for c in reversed(self.changes(path)) if pos.get(c, len(pos)) <= pos.get(commit, -1)]

    @_memo
    def naming(self, text: str) -> tuple[str, ...]:
        """Main-line commits whose message contains `text` (e.g. the merges of a branch), oldest first."""
        if self.git is None:
            return ()
        out = self._run("log", "--first-parent", "--reverse", "--format=%H", "--fixed-strings", f"--grep={text}",
                        "HEAD") or ""
        return tuple(out.split())

    def after(self, commits: tuple[str, ...], commit: str) -> str | None:
        """The first of main-line `commits` after `commit`."""
        pos = self._positions()
        return next((c for c in commits if pos.get(c, -1) > pos.get(commit, len(pos))), None)

    @_memo
    def _positions(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.first_parent())}

    def commit_time(self, commit: str) -> str:
        if self.git is None:
            return ""
        return (self._run("show", "-s", "--format=%cI", commit) or "").strip()

    @_memo
    def read(self, commit: str, path: str) -> str | None:
        """Text of `path` at `commit`; None when it does not exist there."""
        if self.git is None:
            f = self.path / path
            return f.read_text(encoding="utf-8", errors="replace") if f.is_file() else None
        return self._run("show", f"{commit}:{path}")

    @_memo
    def listdir(self, commit: str, folder: str) -> tuple[str, ...]:
        """File names directly inside `folder` at `commit`."""
        if self.git is None:
            d = self.path / folder
            return tuple(sorted(p.name for p in d.iterdir() if p.is_file())) if d.is_dir() else ()
        out = self._run("ls-tree", "--name-only", f"{commit}:{folder}") or ""
        return tuple(out.split())

    @_memo
    def blob(self, commit: str, path: str) -> str:
        """Identity of `path`'s content at `commit` (the same file at many commits is read once)."""
        if self.git is None:
            return WORKTREE
        return (self._run("rev-parse", f"{commit}:{path}") or "").strip() or commit
