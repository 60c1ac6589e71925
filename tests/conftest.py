import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


# --------------------------------------------------------------------------- end-to-end runs

SNAKEMAKE = [sys.executable, "-m", "snakemake"]

REDUCED_DEMO = {
    "out_dir": "data/demo",
    "seed": 42,
    "n_individuals": 1000,
    "n_populations": 3,
    "n_chromosomes": 3,
    "chrom_length": 3000000,
    "missing_rate": 0.002,
    "reads": {"region": "1:1000001-1100000", "coverage": 12},
    "n_cells": 3000,
    "n_donors": 40,  # the planted cell-type eQTL needs ~40 donors for FDR < 0.05
    "n_spots": 900,
}


def snakemake_in(workdir: Path, *args: str, check: bool = True, env: dict | None = None,
                 profile: str = "default", timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run the workflow's Snakefile in ``workdir`` (workflow/profiles/``profile``, 2 cores); ``env``: extra variables."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / profile), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}")
    return proc


def write_reduced_demo_config(workdir: Path) -> None:
    """Write the repository's config with the reduced demo (and its sheets) into ``workdir``/config."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"] = REDUCED_DEMO
    config["cohorts"] = "config/cohorts.tsv"
    (workdir / "config" / "demo").mkdir(parents=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "config" / "cohorts.tsv").write_text((REPO / "config" / "cohorts.tsv").read_text())
    (workdir / "config" / "demo" / "alignment.tsv").write_text((REPO / "config" / "demo" / "alignment.tsv").read_text())


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A working directory where the whole workflow ran on the reduced demo (once per session)."""
    workdir = tmp_path_factory.mktemp("e2e")
    write_reduced_demo_config(workdir)
    snakemake_in(workdir)
    return workdir
