"""Run the README's quickstart command the way a new user does (``tox -e quickstart``).

The command is read from README.md (the fenced block after "Run the quickstart"), so the README
and this check cannot drift. It runs in a copy of the checkout (the files git would clone plus
new untracked ones) in a temporary folder, with ``ZENML_BRIDGE_HOME`` in another temporary
folder, through ``bash`` in a virtualenv made fresh for every run (nothing in it but pip, so
nothing is pinned or pre-installed by us). Passes only when the command exits 0, installed
zenml-bridge from the copy, printed a completed run and wrote that run into
``ZENML_BRIDGE_HOME`` and printed where to look next (examples/quickstart/next_steps.py: the
compile commands for Airflow and Kubeflow, the dashboard).

Not collected by pytest (no ``test_`` prefix): it downloads and installs packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANCHOR = "Run the quickstart"


def readme_command(readme: str) -> str:
    """The one command line in the first fenced block after the quickstart sentence."""
    start = readme.find(ANCHOR)
    if start < 0:
        raise SystemExit(f"README.md has no sentence starting with {ANCHOR!r}")
    block = re.search(r"^```[a-z]*\n(.*?)^```", readme[start:], re.S | re.M)
    if block is None:
        raise SystemExit(f"README.md has no fenced code block after {ANCHOR!r}")
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    if len(lines) != 1:
        raise SystemExit(f"expected one command line after {ANCHOR!r}, found {lines!r}")
    command = lines[0].strip()
    # Guards against a check that passes on nothing: the line must install and run.
    for needed in ("pip install", "zenml-bridge run", "runs show"):
        if needed not in command:
            raise SystemExit(f"the quickstart command {command!r} lacks {needed!r}")
    return command


def checkout_files() -> list[str]:
    """What a clone holds, plus new files not yet committed (read-only git query)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def main() -> int:
    command = readme_command((ROOT / "README.md").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="zb-quickstart-") as tmp:
        work, home, venv = Path(tmp) / "zenml-bridge", Path(tmp) / "home", Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        for name in checkout_files():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_BRIDGE_")}
        env["ZENML_BRIDGE_HOME"] = str(home)
        # As after `source venv/bin/activate`.
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
        env.pop("PYTHONHOME", None)
        print(f"$ {command}\n  (in {work}, ZENML_BRIDGE_HOME={home})", flush=True)
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        print(done.stdout[-6000:], done.stderr[-6000:], sep="\n", flush=True)
        problems = []
        if done.returncode != 0:
            problems.append(f"the command exited {done.returncode}")
        if not re.search(r"\bStatus\s+completed\b", done.stdout):
            problems.append("`runs show latest` printed no 'Status  completed'")
        for hint in ("--target airflow", "--target kubeflow", "zenml-bridge dashboard"):
            if hint not in done.stdout:
                problems.append(f"the quickstart did not print where to look next ({hint!r})")
        if not (home / "metadata.db").is_file():
            problems.append(f"no run was recorded in ZENML_BRIDGE_HOME ({home}/metadata.db)")
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import zenml_bridge, pandas; print(zenml_bridge.__file__, pandas.__version__)",
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        where, _, pandas_version = probe.stdout.strip().rpartition(" ")
        if probe.returncode != 0 or not Path(where).is_relative_to(work):
            problems.append(f"zenml_bridge was not installed from the copy: {probe.stdout}")
        print(f"pandas resolved by the README command: {pandas_version or '?'}")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
