"""Where a result came from: code version, git commit, the command line that ran the workflow."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

COMMAND_LINE_ENV = "COHORTFLOW_COMMAND_LINE"


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the checkout holding ``path`` (default: this package), or None."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10)
    return f"{commit}-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else commit


def command_line() -> str:
    """The workflow's command line, recorded by the Snakefile in the environment of its jobs."""
    return os.environ.get(COMMAND_LINE_ENV, "")
