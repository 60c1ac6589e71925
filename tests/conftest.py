import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not on PATH (install Debian's {name} to run this peer test)")
    return path


def require_shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data absent: {path} (it sits at ../shared beside the repo in CI)")
    return path


# Single-cell peers (scdrs 1.0.2, squidpy 1.8.2) live in a venv of their own, .ci/scpeers
# (.ci/run builds it; SCPEERS_PYTHON overrides): their dependency trees (spatialdata, dask, ...)
# are not ours to carry. Peer tests run them as a separate process on the same inputs.
SCPEERS_PYTHON = REPO / ".ci" / "scpeers" / "bin" / "python"


def require_scpeer(module: str) -> str:
    """Path of a Python that can import ``module`` (scdrs or squidpy), else skip the test."""
    import os
    import subprocess

    python = os.environ.get("SCPEERS_PYTHON") or str(SCPEERS_PYTHON)
    if not Path(python).exists():
        pytest.skip(f"{python} absent: build it with `python3 -m venv .ci/scpeers && "
                    ".ci/scpeers/bin/pip install scdrs==1.0.2 squidpy==1.8.2` (.ci/run does)")
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import {module}: {probe.stderr.strip().splitlines()[-1:]}")
    return python
