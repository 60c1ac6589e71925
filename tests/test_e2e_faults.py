"""End to end under faults: the reduced demo killed with SIGKILL at several random points, each
time resumed with ``--rerun-incomplete``, ends with the results of an uninterrupted run, byte for
byte; and two runs from scratch (this one and the session's ``demo_run``) give the same bytes.

What is compared: every file under ``results/demo`` and ``data/demo`` except what records the
run rather than the data: ``logs/`` and ``benchmarks/`` (times, PIDs, host load), and
``report.html`` (it embeds those runtimes, the command line and the build time), and ``export/``
(the export bundle holds a copy of the report, and its benchmark sits beside it); their content is
checked through the files they are built from. A SIGKILL leaves Snakemake's lock behind, so each
resume starts with ``snakemake --unlock``, as a user would.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE, snakemake_in, write_reduced_demo_config

pytestmark = pytest.mark.e2e

SEED = 20261203
N_KILLS = 3
# each interrupted attempt runs this long (s) before the kill: long enough to finish some jobs
# and be inside others (the reduced demo takes ~3-4 min on 2 cores)
KILL_AFTER_S = (12.0, 45.0)
# not data: what the run records about itself (export/: the bundle embeds the report)
RUN_RECORDS = ("logs", "benchmarks", "export")
EXCLUDED_FILES = ("report.html",)


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if rel.parts[0] in RUN_RECORDS or rel.name in EXCLUDED_FILES:
            continue
        out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _start(workdir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"), "--cores", "2",
           "--rerun-incomplete"]
    # a session of its own: the kill takes Snakemake and every job it started
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("faults")
    write_reduced_demo_config(workdir)
    rng = random.Random(SEED)
    kills = []
    for _ in range(N_KILLS):
        snakemake_in(workdir, "--unlock")
        proc = _start(workdir)
        delay = rng.uniform(*KILL_AFTER_S)
        try:
            proc.wait(timeout=delay)
            break  # finished before the kill: nothing left to interrupt
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills.append(round(delay, 1))
    snakemake_in(workdir, "--unlock")
    snakemake_in(workdir, "--rerun-incomplete")
    return workdir, kills


def test_killed_runs_resume_to_the_same_bytes(interrupted_run, demo_run):
    workdir, kills = interrupted_run
    assert len(kills) == N_KILLS, f"the workflow finished before kill {len(kills) + 1}"
    for sub in ("results/demo", "data/demo"):
        ours, reference = _digests(workdir / sub), _digests(demo_run / sub)
        assert ours.keys() == reference.keys(), (sub, sorted(ours.keys() ^ reference.keys())[:10])
        differing = sorted(name for name in ours if ours[name] != reference[name])
        assert not differing, (sub, differing[:10])


def test_no_partial_or_temporary_files_left(interrupted_run):
    workdir, _ = interrupted_run
    # (Snakemake marks a finished directory() output with its own .snakemake_timestamp)
    leftovers = [p for p in (workdir / "results").rglob("*") if p.name != ".snakemake_timestamp"
                 and (p.name.startswith(".") or p.name.endswith((".tmp", ".part")))]
    assert not leftovers, leftovers[:10]


def test_nothing_left_to_do_after_the_resume(interrupted_run):
    workdir, _ = interrupted_run
    proc = snakemake_in(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
