"""End to end on SLURM: the reduced demo as SLURM jobs on a one-node cluster started for the test.

The module starts munged, slurmctld and slurmd (Debian's ``munge`` and ``slurm-wlm``) on
localhost in a temporary directory, with settings that work in a container without systemd or
cgroups (process tracking by /proc, no task plugin, no accounting database), then runs the
workflow once with ``--workflow-profile workflow/profiles/slurm`` and checks, from that one run:

* every job ran as a SLURM job (a SLURM log named by its job id, COMPLETED in ``scontrol``, its
  comment naming the rule) and nothing ran outside SLURM;
* the results equal the local run's (``demo_run`` of conftest.py) byte for byte;
* fault tolerance: a job of ``KILL_RULE`` cancelled mid-run with ``scancel`` is resubmitted and
  the workflow finishes with the same results; a rule given a first-attempt memory request below
  its peak (config ``resources.mem_mb``) is killed by SLURM for memory and resubmitted with twice
  the memory.

The daemons are stopped by their PIDs when the module ends, also when a test fails. Needs root
(the daemons run as SlurmUser=root); skipped where the daemons or the executor plugin are missing.
"""

from __future__ import annotations

import html as htmllib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import snakemake_in, write_reduced_demo_config

pytestmark = pytest.mark.e2e

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")

# The job cancelled mid-run (a single job in the middle of the DAG that runs a few seconds).
KILL_RULE = "genotype_qc"
# The rule given too little memory on its first attempt: singlecell runs 20-50 s on the reduced
# demo; its job step (the job's own Snakemake, ~170 MB, + the script, max_rss 440-530 MB in its
# benchmark) peaks near 700 MB: SLURM kills it above MEM_FIRST_MB (seen at 534 MB) and it fits
# twice MEM_FIRST_MB.
MEM_RULE = "singlecell"
MEM_FIRST_MB = 450


def _which(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLURM_CONF = """\
# One-node test cluster (tests/test_e2e_slurm.py); works without systemd or cgroups.
ClusterName=cohortflow
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
# No slurmdbd: sacct cannot see jobs, hence slurm-status-command: squeue and slurm-no-account.
AccountingStorageType=accounting_storage/none
# Memory is sampled every second; a step above its job's --mem is killed (no cgroups here).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
# Finished jobs stay visible to squeue (the executor's status checks need ~2 minutes) and to
# scontrol, which the tests ask about every job after the run (20+ minutes on a loaded machine).
MinJobAge=7200
ReturnToService=2
MpiDefault=none
# The node is what this file says, whatever the machine has (a CI runner may differ).
SlurmdParameters=config_overrides
NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Cluster:
    root: Path
    env: dict
    procs: dict = field(default_factory=dict)  # daemon name -> Popen

    def run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def job(self, jobid: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (finished jobs stay for MinJobAge)."""
        out = self.run("scontrol", "show", "job", "--oneliner", jobid)
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted((self.root / "log").glob("*.log")))

    def stop(self) -> None:
        """Cancel what is left, stop slurmd, slurmctld and munged by their PIDs, and end any
        process that still carries this cluster's SLURM_CONF (a job's slurmstepd or snakemake)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--user", str(os.getuid()), check=False)
            deadline = time.time() + 30
            while time.time() < deadline and self.run("squeue", "-h", "-t", "R,CG,PD", check=False).strip():
                time.sleep(1)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pid in _pids_with_env("SLURM_CONF", self.env["SLURM_CONF"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pids_with_env(key: str, value: str) -> list[int]:
    wanted = f"{key}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _wait_for(predicate, timeout: float, what: str, cluster: Cluster) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{cluster.logs()}")


def start_cluster(root: Path) -> Cluster:
    """munged, slurmctld and slurmd in the foreground (their Popen PIDs are the daemons')."""
    host = socket.gethostname().split(".")[0]
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    munge_socket = root / "munge" / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(SLURM_CONF.format(
        host=host, root=root, munge_socket=munge_socket, ctld_port=_free_port(), slurmd_port=_free_port(),
        cpus=max(2, os.cpu_count() or 2),
        # Above every first request the rules make (cohortflow.resources); the memory actually
        # used is far less. A request above it would be rejected by sbatch, not left pending.
        mem_mb=20000,
    ))
    # snakemake-executor-plugin-slurm-jobstep (0.6) runs each rule with a nested `srun` from
    # which it strips every SLURM_* variable but the job's identity, SLURM_CONF included; on a
    # real cluster srun finds /etc/slurm/slurm.conf (or the configless cache), here an `srun`
    # first on PATH passes this cluster's file on.
    (root / "bin").mkdir(exist_ok=True)
    srun = root / "bin" / "srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{_which("srun")}" "$@"\n')
    srun.chmod(0o755)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": os.pathsep.join([str(root / "bin"), SBIN_PATH])}
    cluster = Cluster(root=root, env=env)
    log = open(root / "log" / "daemons.out", "ab")
    try:
        cluster.procs["munged"] = subprocess.Popen(
            [_which("munged"), "--foreground", "--force", f"--socket={munge_socket}", f"--key-file={key}",
             f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
             f"--seed-file={root / 'munge' / 'munged.seed'}"], env=env, stdout=log, stderr=log)
        _wait_for(munge_socket.exists, 20, "munged's socket", cluster)
        cluster.procs["slurmctld"] = subprocess.Popen([_which("slurmctld"), "-D", "-f", str(conf)],
                                                      env=env, stdout=log, stderr=log)
        _wait_for(lambda: cluster.run("scontrol", "ping", check=False).count("UP") > 0, 60, "slurmctld", cluster)
        cluster.procs["slurmd"] = subprocess.Popen([_which("slurmd"), "-D", "-f", str(conf)],
                                                   env=env, stdout=log, stderr=log)
        _wait_for(lambda: cluster.run("sinfo", "-h", "-N", "-o", "%t", check=False).strip() == "idle", 60,
                  "the node to be idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    finally:
        log.close()
    return cluster


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = [n for n in (*DAEMONS, *CLIENTS) if _which(n) is None]
    if missing:
        pytest.skip(f"SLURM test cluster: {', '.join(missing)} not installed "
                    "(apt-get install slurm-wlm munge; .ci/run does)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm not installed (pip install -e '.[cluster]')")
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster runs its daemons as root (SlurmUser=root)")
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()


# --------------------------------------------------------------------------- the SLURM run


class CancelFirstJob(threading.Thread):
    """Polls squeue during the run and scancels the first job of ``rule`` once it has run a few
    seconds (or its rule log appeared, i.e. the rule's script started)."""

    def __init__(self, cluster: Cluster, rule: str, started: Path, after_s: float = 4.0):
        super().__init__(daemon=True)
        self.cluster, self.rule, self.started, self.after_s = cluster, rule, started, after_s
        self.stop_event = threading.Event()
        self.cancelled: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        # the executor's comment: rule_<rule> or rule_<rule>_wildcards_<values>
        pattern = re.compile(rf"rule_{re.escape(self.rule)}(_wildcards_.*)?$")
        try:
            while not self.stop_event.wait(0.5):
                out = self.cluster.run("squeue", "-h", "-t", "R", "-o", "%i|%k|%M", check=False)
                for line in out.splitlines():
                    jobid, comment, elapsed = line.split("|")
                    seconds = sum(int(x) * 60 ** i for i, x in enumerate(reversed(elapsed.split(":"))))
                    if pattern.match(comment) and (seconds >= self.after_s or self.started.exists()):
                        self.cluster.run("scancel", jobid)
                        self.cancelled = jobid
                        return
        except Exception as err:  # reported by the test, not lost in the thread
            self.error = repr(err)


@dataclass
class SlurmRun:
    workdir: Path
    logdir: Path
    stdout: str
    cancelled: str | None
    cancel_error: str | None

    def jobs(self) -> dict[tuple[str, str], list[str]]:
        """(rule, wildcards) -> SLURM job ids in submission order. The executor writes each job's
        output to <logdir>/rule_<rule>/<wildcards>/<jobid>.log (kept: --slurm-keep-successful-logs)."""
        found: dict[tuple[str, str], list[str]] = {}
        for log in self.logdir.glob("rule_*/**/*.log"):
            rule_dir = log.relative_to(self.logdir).parts[0]
            wildcards = str(log.parent.relative_to(self.logdir / rule_dir))
            found.setdefault((rule_dir.removeprefix("rule_"), wildcards), []).append(log.stem)
        return {k: sorted(v, key=int) for k, v in found.items()}

    def jobs_of(self, rule: str) -> list[str]:
        return sorted((j for (r, _), ids in self.jobs().items() if r == rule for j in ids), key=int)

    def log(self, rule: str, jobid: str) -> str:
        return next(self.logdir.glob(f"rule_{rule}/**/{jobid}.log")).read_text(errors="replace")


def _mem_mb(job: dict[str, str]) -> int:
    """The job's --mem in MB from scontrol's MinMemoryNode (e.g. 450M, 2G)."""
    value, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([MGT]?)", job["MinMemoryNode"]).groups()
    return round(float(value) * {"": 1, "M": 1, "G": 1024, "T": 1024 ** 2}[unit])


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_e2e")
    write_reduced_demo_config(workdir)
    logdir = workdir / "slurm_logs"
    mem_config = workdir / "config" / "slurm_test.yaml"
    mem_config.write_text(yaml.safe_dump({"resources": {"mem_mb": {MEM_RULE: MEM_FIRST_MB}}}))
    killer = CancelFirstJob(slurm_cluster, KILL_RULE, workdir / "results" / "demo" / "logs" / f"{KILL_RULE}.log")
    killer.start()
    try:
        proc = snakemake_in(
            workdir,
            # test-only settings on top of the profile: logs kept inside the workdir, fast status
            # checks, no shared-file-system latency to wait for
            "--slurm-logdir", str(logdir), "--slurm-keep-successful-logs",
            "--slurm-init-seconds-before-status-checks", "2", "--jobs", "4", "--latency-wait", "5",
            # MEM_RULE's first attempt asks for less than it needs (config resources.mem_mb), in
            # a config file that extends config/config.yaml (--config would pass 450 as a string)
            f"--configfile={mem_config}",
            profile="slurm", env={k: slurm_cluster.env[k] for k in ("SLURM_CONF", "PATH")}, check=False,
            timeout=2700,  # 16-22 min on a loaded 2-core machine (~70 jobs, each starting Snakemake twice)
        )
    finally:
        killer.stop_event.set()
        killer.join(timeout=10)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake on SLURM failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n"
                             f"{proc.stderr[-10000:]}\n{slurm_cluster.logs()}")
    return SlurmRun(workdir, logdir, proc.stdout + proc.stderr, killer.cancelled, killer.error)


def test_every_job_ran_on_slurm(slurm_run, slurm_cluster):
    jobs = slurm_run.jobs()
    rules = {rule for rule, _ in jobs}
    assert {KILL_RULE, MEM_RULE, "demo_genotypes", "gwas_summary", "report"} <= rules, sorted(rules)
    # Snakemake announced each submission with its SLURM job id, and ran nothing itself but the
    # target rule `all` (a local job prints "localrule"; the jobs' own Snakemake writes to the
    # SLURM logs).
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", slurm_run.stdout))
    assert submitted == {j for ids in jobs.values() for j in ids}
    # (a failed job's logs, its own Snakemake's "localrule" lines included, are printed between
    # "Logfile ...:" and two lines of 80 "=": not the main process's doing)
    own = re.sub(r"^Logfile [^\n]*:\n={80}\n.*?^={80}$", "", slurm_run.stdout, flags=re.M | re.S)
    assert set(re.findall(r"^localrule (\w+):", own, flags=re.M)) <= {"all"}
    for (rule, wildcards), ids in jobs.items():
        states = [slurm_cluster.job(j) for j in ids]
        # the last attempt completed; earlier ones (the scancel and memory tests) did not
        assert states[-1]["JobState"] == "COMPLETED", (rule, wildcards, states[-1])
        assert all(s["JobState"] != "COMPLETED" for s in states[:-1]), (rule, wildcards)
        for jobid, state in zip(ids, states):
            assert state["Comment"].startswith(f"rule_{rule}"), state
            assert Path(state["WorkDir"]) == slurm_run.workdir
            assert Path(state["StdOut"]).name == f"{jobid}.log"
        # the job's own Snakemake ran the rule inside the SLURM job
        assert re.search(rf"(rule|checkpoint) {rule}:", slurm_run.log(rule, ids[-1])), (rule, ids[-1])
        assert "1 of 1 steps (100%) done" in slurm_run.log(rule, ids[-1])


def test_cancelled_job_is_resubmitted(slurm_run, slurm_cluster):
    assert slurm_run.cancel_error is None, slurm_run.cancel_error
    assert slurm_run.cancelled, f"no {KILL_RULE} job was seen running to cancel"
    ids = slurm_run.jobs_of(KILL_RULE)
    assert ids[0] == slurm_run.cancelled and len(ids) >= 2, ids
    assert slurm_cluster.job(ids[0])["JobState"] == "CANCELLED"
    assert slurm_cluster.job(ids[-1])["JobState"] == "COMPLETED"
    assert re.search(rf"SLURM-job '{ids[0]}' failed, SLURM status is: 'CANCELLED'", slurm_run.stdout)


def test_job_over_its_memory_is_resubmitted_with_more(slurm_run, slurm_cluster):
    ids = slurm_run.jobs_of(MEM_RULE)
    assert len(ids) >= 2, ids
    first, last = slurm_cluster.job(ids[0]), slurm_cluster.job(ids[-1])
    assert _mem_mb(first) == MEM_FIRST_MB
    assert first["JobState"] in ("FAILED", "OUT_OF_MEMORY"), first
    assert "exceeded memory limit" in slurm_run.log(MEM_RULE, ids[0])
    assert last["JobState"] == "COMPLETED", last
    assert _mem_mb(last) == MEM_FIRST_MB * 2 ** (len(ids) - 1)
    assert len(ids) == 2, "the doubled request should have been enough"


# --------------------------------------------------------------------------- same results as a local run

# Compared trees: the simulated demo inputs and every result of the cohort.
COMPARED = ("data/demo", "results/demo")
# Not compared, by reason:
# - logs/: each job's own log (timings, PIDs, and on SLURM the killed attempts' messages);
# - benchmarks/ and *.benchmark.tsv (export's, beside its bundle): each job's measured run time
#   and memory, never the same twice.
SKIPPED_DIRS = {"logs", "benchmarks"}


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*")
            if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(root).parts[:-1])
            and not p.name.endswith(".benchmark.tsv")}


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else b"" for m in tar.getmembers()}


def _bundle_manifest(data: bytes) -> dict:
    """The export bundle's manifest less its creation time and its report's checksum and size
    (the report differs as above)."""
    manifest = json.loads(data)
    manifest.pop("created")
    manifest["members"] = [m for m in manifest["members"] if m["path"] != "report.html"]
    return manifest


def _same(a: Path, b: Path) -> bool:
    """Equal bytes, or equal but for what legitimately differs: report.html (_same_report); a
    .tar.gz (the export bundle, which holds the report and a manifest of its members' checksums)
    member by member, its report and manifest as above."""
    if a.read_bytes() == b.read_bytes():
        return True
    if a.name == "report.html":
        return _same_report(a.read_bytes(), b.read_bytes())
    if a.name.endswith(".tar.gz"):
        ma, mb = _members(a), _members(b)
        if ma.keys() != mb.keys():
            return False
        for name in ma:
            if ma[name] == mb[name]:
                continue
            if name == "report.html" and _same_report(ma[name], mb[name]):
                continue
            if name == "manifest.json" and _bundle_manifest(ma[name]) == _bundle_manifest(mb[name]):
                continue
            return False
        return True
    return False


# report.html is compared with what legitimately differs between two runs masked:
REPORT_MASKS = [
    # when it was built (the bundle's copy: ISO time), and the checkout's commit (another commit
    # or "-dirty" while the tests run)
    (r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?( UTC|Z)", "<time>"),
    (r'(commit <span class="mono">)[^<]*', r"\1<commit>"),
    (r'(<th scope="row">Git commit</th><td>)[^<]*', r"\1<commit>"),
    # the command that started the run (another profile and options)
    (r'(<th scope="row">Command line</th><td>)[^<]*', r"\1<command>"),
    # the table of every job's measured run time and memory (Snakemake's benchmark files)
    (r'(?s)<table class="data" id="tbl-benchmarks".*?</table>', "<benchmarks>"),
    # the resolved configuration: compared as data (_same_config), not as text
    (r"(?s)(<summary>Resolved configuration \(YAML\)\.</summary>\s*<pre>).*?(</pre>)", r"\1<config>\2"),
]


def _mask_report(html: bytes) -> bytes:
    text = html.decode()
    for pattern, replacement in REPORT_MASKS:
        text = re.sub(pattern, replacement, text)
    return text.encode()


def _report_config(html: bytes) -> dict:
    """The report's resolved configuration, less resources.mem_mb (the SLURM run sets MEM_RULE's
    first request there). Its keys come in another order when a second config file extends
    config/config.yaml, hence compared as data."""
    pre = re.search(r"(?s)<summary>Resolved configuration \(YAML\)\.</summary>\s*<pre>(.*?)</pre>", html.decode())
    config = yaml.safe_load(htmllib.unescape(pre.group(1)))
    config["resources"].pop("mem_mb")
    return config


def _same_report(a: bytes, b: bytes) -> bool:
    return _mask_report(a) == _mask_report(b) and _report_config(a) == _report_config(b)


def test_results_equal_local_run(slurm_run, demo_run):
    differ, missing = [], []
    for tree in COMPARED:
        local, slurm = _files(demo_run / tree), _files(slurm_run.workdir / tree)
        missing += [f"{tree}/{name}" for name in sorted(set(local) ^ set(slurm))]
        for name in sorted(set(local) & set(slurm)):
            if not _same(local[name], slurm[name]):
                differ.append(f"{tree}/{name}")
    assert not missing, f"in one run only: {missing}"
    assert not differ, f"differ between the local and the SLURM run: {differ}"
