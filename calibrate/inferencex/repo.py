"""Read files of an InferenceX repository as they were at a given time.

DIR may be a bare git directory (what `git clone --bare` or the `fetch` tool writes), a checkout with
its `.git`, or a plain directory of files (no history: one snapshot, used for every run whatever its
date, and said so in the provenance as commit `worktree`). History is read with the `git` command
(subprocess: `rev-list --first-parent --before`, `show COMMIT:PATH`, `ls-tree`), so only the main
line counts: a run measured at time T used the configs of the last commit merged before T.
"""
from __future__ import annotations

import subprocess
from functools import wraps
from pathlib import Path

from perfdb.errors import InputError

WORKTREE = "worktree"   # the pseudo-commit of a plain directory
# files whose presence says "this is an InferenceX repository" (one of them, at the newest commit)
_MARKERS = (".github/configs/nvidia-master.yaml", ".github/workflows/benchmark-tmpl.yml")


def _memo(method):
    """Per-instance cache of a method's results (git answers do not change while we read)."""
    @wraps(method)
    def cached(self, *args):
        key = (method.__name__, *args)
        if key not in self._memo:
            self._memo[key] = method(self, *args)
        return self._memo[key]

    return cached


class Repo:
    """Files of one InferenceX repository by (commit, path); `commit_at(iso)` picks the commit."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._memo: dict[tuple, object] = {}
        if not self.path.is_dir():
            raise InputError(f"--inferencex {path}: no such directory; give a clone (bare or checkout) "
                             "of github.com/SemiAnalysisAI/InferenceX")
        self.git = self._git_dir()
        head = self.head()
        if not any(self.read(head, m) is not None for m in _MARKERS):
            raise InputError(f"--inferencex {path}: not an InferenceX repository (none of "
                             f"{', '.join(_MARKERS)} at {head}); give a clone of SemiAnalysisAI/InferenceX")

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
            raise InputError(f"--inferencex {self.path}: cannot run git ({exc.strerror})") from None
        return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else None

    def head(self) -> str:
        if self.git is None:
            return WORKTREE
        rev = self._run("rev-parse", "HEAD")
        if not rev:
            raise InputError(f"--inferencex {self.path}: a git directory without commits")
        return rev.strip()

    @_memo
    def commit_at(self, iso_time: str) -> str | None:
        """The main-line commit in effect at `iso_time` (the last first-parent commit before it);
        None when the repository's history starts later."""
        if self.git is None:
            return WORKTREE
        rev = self._run("rev-list", "-1", "--first-parent", f"--before={iso_time}", "HEAD")
        return rev.strip() or None if rev is not None else None

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
