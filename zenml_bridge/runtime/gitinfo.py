"""The git commit and dirty flag of the code a run uses, read without blocking the run.

The sha is read from ``.git`` files directly (no subprocess); the dirty flag comes from
``git status`` started in the background when the run starts and read when it ends.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=64)
def find_git_dir(folder: str) -> tuple[str, str] | None:
    """``(work tree, git dir)`` of the repository holding ``folder``, or None."""
    current = os.path.abspath(folder)
    while True:
        candidate = os.path.join(current, ".git")
        if os.path.isdir(candidate):
            return current, candidate
        if os.path.isfile(candidate):  # worktree or submodule: "gitdir: <path>"
            with open(candidate, encoding="utf-8") as handle:
                line = handle.read().strip()
            if line.startswith("gitdir:"):
                path = line.split(":", 1)[1].strip()
                return current, os.path.normpath(os.path.join(current, path))
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def head_sha(git_dir: str) -> str | None:
    head = _read(os.path.join(git_dir, "HEAD"))
    if head is None or not head.startswith("ref:"):
        return head
    ref = head.split(":", 1)[1].strip()
    common = _read(os.path.join(git_dir, "commondir"))
    roots = [git_dir] + ([os.path.normpath(os.path.join(git_dir, common))] if common else [])
    for root in roots:
        sha = _read(os.path.join(root, ref))
        if sha:
            return sha
        packed = _read(os.path.join(root, "packed-refs"))
        for line in (packed or "").splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None  # a new repository without commits


@dataclass
class GitInfo:
    sha: str | None
    _status: subprocess.Popen[bytes] | None = None

    def dirty(self) -> bool | None:
        """Whether tracked files differ from the commit (waits for ``git status``)."""
        if self._status is None:
            return None
        try:
            out, _ = self._status.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._status.kill()
            self._status.communicate()
            return None
        if self._status.returncode != 0:
            return None
        return bool(out.strip())


def git_info(folder: str) -> GitInfo:
    """Git facts of ``folder``; empty when it is not in a repository or git is missing."""
    found = find_git_dir(folder)
    if found is None:
        return GitInfo(None)
    work_tree, git_dir = found
    sha = head_sha(git_dir)
    try:
        status = subprocess.Popen(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=work_tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        status = None
    return GitInfo(sha, status)
