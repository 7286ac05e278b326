"""The process table as ``ps`` shows it, for tests that must leave no server behind.

Read with ``ps`` (not with the code under test) so that a check cannot share its bugs.
"""

from __future__ import annotations

import subprocess


def group_processes(pgid: int) -> list[str]:
    """Live (non-zombie) processes of process group ``pgid``: ``"PID PGID STAT ARGS"`` each."""
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [" ".join(r) for r in rows if len(r) >= 3 and r[1] == str(pgid) and r[2][0] != "Z"]


def live_pids(pids: list[int] | set[int]) -> list[int]:
    """Those of ``pids`` that ``ps`` still shows as live (non-zombie) processes."""
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,stat="], capture_output=True, text=True, check=True
    ).stdout
    live = {int(p) for p, stat in (line.split() for line in out.splitlines()) if stat[0] != "Z"}
    return sorted(set(pids) & live)


def processes_matching(*needles: str) -> list[tuple[int, int, str]]:
    """Live (non-zombie) processes whose full command line holds every one of ``needles``:
    ``(pid, pgid, args)`` each. Finds a server whose group id a test never learned (a deploy
    that failed half-way)."""
    out = subprocess.run(
        ["ps", "-e", "-ww", "-o", "pid=,pgid=,stat=,args="],  # -ww: never cut the command line
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2][0] != "Z" and all(n in parts[3] for n in needles):
            found.append((int(parts[0]), int(parts[1]), parts[3]))
    return found
