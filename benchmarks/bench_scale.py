"""Scale benchmark: the workflow on a generated 50,000 x 500,000 PLINK cohort (QC -> GWAS -> PRS) and a
generated 5,000 x 500,000 VCF (ingestion), with wall time, peak memory per job and total CPU time.

    .venv/bin/python benchmarks/bench_scale.py                                  # full size (issue 9), 2 cores
    .venv/bin/python benchmarks/bench_scale.py --dir /tmp/scale_small --samples 2000 --variants 20000 \\
        --vcf-samples 500 --vcf-variants 20000                                  # small check, minutes
    .venv/bin/python benchmarks/bench_scale.py --skip-generate --only vcf       # rerun one part on the same inputs
    .venv/bin/python benchmarks/bench_scale.py --traits height,disease          # + the binary trait

Inputs (benchmarks/_scale_cohort.py, fixed ``--seed``; generated once under ``{dir}/inputs``,
regenerated when the sizes or seed change, never with ``--skip-generate``; generation is timed
apart and is not part of the workflow figures):

* ``inputs/plink/cohort.{bed,bim,fam}``: ``--samples`` x ``--variants`` over the 22 autosomes
  (GRCh37 lengths), 3 populations (Balding-Nichols), LD between neighbours, 0.15 % missing calls,
  50 related pairs; ``phenotypes.tsv`` (height: 1,000 causal variants, h2 0.5; disease: liability
  threshold, prevalence 0.2), ``covariates.tsv`` (sex, age), ``samples.tsv`` (population) and
  ``pgs/SCALE000001.txt.gz`` (height's true effects, PGS Catalog format);
* ``inputs/vcf/cohort.vcf.gz`` (+ .tbi): ``--vcf-samples`` x ``--vcf-variants``, the same model,
  one bgzipped multi-contig VCF, so the workflow ingests it as one job per chromosome.

Generation on 2 cores (extrapolated from 50,000 x 20,000/40,000 and 5,000 x 50,000): about 3-4 min
for the 50,000 x 500,000 .bed (6.25 GB; < 1 GB of memory) and 1.5-2 min for the 5,000 x 500,000
VCF (~1.2 GB bgzipped at level 1, + tabix). The full run needs ~20 GB free in ``--dir`` (the
.bed, the QC'd copy and its temporary per-chromosome parts, the VCF and two ingested .bed).

Each cohort runs as its own Snakemake invocation from the repository's Snakefile with
``--directory {dir}`` (so ``{dir}/.snakemake`` holds its state), the default workflow profile,
``--cores``, the repository's config/config.yaml with only ``cohorts`` and ``results`` changed
(``{dir}/config/``), and ``{dir}/results/{cohort}`` removed first (a fresh run):

* ``scale`` (PLINK prefix, phenotypes, covariates, traits, sample_info, pgs): targets
  ``qc/qc.bed``, ``qc/qc.pcs.tsv``, ``gwas/{trait}.summary.json``, ``prs/{trait}.evaluate.json``
  and ``prs/pgs.summary.json`` (QC with relatedness and PCA, per-chromosome GWAS, C+T, Bayesian
  and published scores; not the report or the export bundle);
* ``scale_vcf`` (the VCF only): target ``genotypes/raw.bed`` (ingest_shard per contig, merge_shards).

Figures: the invocation's wall time (time.monotonic around the snakemake command, start-up and DAG
included) and, from every Snakemake benchmark file under ``{results}/{cohort}/benchmarks/`` (the
rule of each file is read from the invocation's log), per rule: jobs, summed and largest job wall
time, largest peak RSS (Snakemake's max_rss, MB) and summed CPU time (cpu_time); totals: jobs,
summed job wall and CPU time, largest peak RSS. Printed, and written to ``{dir}/scale_summary.json``
and ``{dir}/scale_summary.md`` (tables for docs/benchmarks.md). Snakemake's output goes to
``{dir}/logs/snakemake.{cohort}.log``. With ``--only``, the other part's figures of the previous
summary in ``{dir}`` are kept in the files.

Peer (ingestion): ``plink2 --vcf cohort.vcf.gz --make-bed --threads {cores}`` on the same VCF; the
ratio printed is plink2 time / our workflow's wall time (above 1: we are faster), and plink2 time /
the summed wall time of its jobs (without Snakemake's start-up and scheduling); the two .bed files
are compared byte for byte. Skipped with a message when plink2 is missing (or --no-peer).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

import _scale_cohort as gen  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
PLINK_COHORT, VCF_COHORT = "scale", "scale_vcf"
SHEET_COLUMNS = ["id", "genotypes", "phenotypes", "covariates", "traits", "sample_info", "pgs"]
JOB_RE = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>[A-Za-z0-9_]+):\s*$")
BENCH_RE = re.compile(r"^\s+benchmark: (?P<path>.+?)\s*$")
SNAKEMAKE_LOG_RE = re.compile(r"^Complete log(?:\(s\))?: (?P<path>.+?)\s*$")


# --------------------------------------------------------------------------- inputs

def _stamp_matches(stamp: Path, params: dict) -> bool:
    try:
        return json.loads(stamp.read_text())["params"] == params
    except (OSError, ValueError, KeyError):
        return False


def generate_inputs(d: Path, args, parts: list[str]) -> dict:
    """Write (or keep) the generated inputs; returns per part the paths, the parameters and the
    generation seconds (null when the files were kept)."""
    out = {}
    if "plink" in parts:
        folder = d / "inputs" / "plink"
        params = {"n_samples": args.samples, "n_variants": args.variants, "seed": args.seed}
        stamp = folder / "generated.json"
        prefix = folder / "cohort"
        if args.skip_generate or _stamp_matches(stamp, params):
            if not stamp.exists():
                sys.exit(f"--skip-generate: {stamp} not found (generate the inputs first)")
            info = json.loads(stamp.read_text())
            print(f"PLINK cohort: kept {prefix} ({info['params']['n_samples']:,} x {info['params']['n_variants']:,})")
        else:
            print(f"PLINK cohort: generating {args.samples:,} samples x {args.variants:,} variants ...", flush=True)
            stamp.unlink(missing_ok=True)
            paths = gen.write_plink_cohort(prefix, verbose=True, **params)
            info = {"params": params, "paths": paths, "seconds": round(paths["seconds_total"], 1),
                    "seconds_genotypes": round(paths["seconds_genotypes"], 1),
                    "bed_mb": round(Path(f"{prefix}.bed").stat().st_size / 2**20, 1)}
            stamp.write_text(json.dumps(info, indent=1) + "\n")
            print(f"  written in {info['seconds']:.0f} s (.bed {info['bed_mb']:,.0f} MB in "
                  f"{info['seconds_genotypes']:.0f} s)")
        out["plink"] = info
    if "vcf" in parts:
        folder = d / "inputs" / "vcf"
        params = {"n_samples": args.vcf_samples, "n_variants": args.vcf_variants, "seed": args.seed}
        stamp = folder / "generated.json"
        vcf = folder / "cohort.vcf.gz"
        if args.skip_generate or _stamp_matches(stamp, params):
            if not stamp.exists():
                sys.exit(f"--skip-generate: {stamp} not found (generate the inputs first)")
            info = json.loads(stamp.read_text())
            print(f"VCF cohort: kept {vcf} ({info['params']['n_samples']:,} x {info['params']['n_variants']:,})")
        else:
            print(f"VCF cohort: generating {args.vcf_samples:,} samples x {args.vcf_variants:,} variants ...",
                  flush=True)
            stamp.unlink(missing_ok=True)
            paths = gen.write_vcf_cohort(vcf, threads=args.cores, verbose=True, **params)
            info = {"params": params, "paths": paths, "seconds": round(paths["seconds_total"], 1),
                    "vcf_mb": round(vcf.stat().st_size / 2**20, 1)}
            stamp.write_text(json.dumps(info, indent=1) + "\n")
            print(f"  written in {info['seconds']:.0f} s ({info['vcf_mb']:,.0f} MB bgzipped, indexed)")
        out["vcf"] = info
    return out


# --------------------------------------------------------------------------- workflow

def write_config(d: Path, cohort: str, row: dict, settings: list[str] = ()) -> Path:
    """The cohort sheet and the config (the repository's, cohorts and results changed, plus
    ``settings``: ``dotted.key=YAML value``) of one invocation; returns the config path."""
    cfg_dir = d / "config"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    sheet = cfg_dir / f"cohorts.{cohort}.tsv"
    pd.DataFrame([{c: row.get(c, "") for c in SHEET_COLUMNS}]).to_csv(sheet, sep="\t", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["cohorts"] = str(sheet)
    config["results"] = str(d / "results")
    for setting in settings:
        key, _, value = setting.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    path = cfg_dir / f"config.{cohort}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_workflow(d: Path, cohort: str, config: Path, targets: list[str], cores: int) -> dict:
    """One Snakemake invocation on a fresh results/{cohort}; returns wall time, exit status, logs."""
    results = d / "results" / cohort
    if results.exists():
        shutil.rmtree(results)
    log = d / "logs" / f"snakemake.{cohort}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(d),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"), "--configfile", str(config),
           "--cores", str(cores), *targets]
    print(f"\n[{cohort}] {' '.join(cmd[2:])}\n[{cohort}] log: {log}", flush=True)
    t0 = time.monotonic()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
    wall = time.monotonic() - t0
    text = log.read_text(errors="replace")
    smk_log = next((m["path"] for line in text.splitlines() if (m := SNAKEMAKE_LOG_RE.match(line))), None)
    print(f"[{cohort}] exit {rc}, wall {wall:.1f} s", flush=True)
    if rc != 0:
        print("\n".join(text.splitlines()[-60:]))
    return {"cohort": cohort, "command": cmd, "exit": rc, "wall_s": round(wall, 2), "log": str(log),
            "snakemake_log": smk_log}


def rules_of_benchmarks(log: Path, cwd: Path) -> tuple[dict[str, str], list[str]]:
    """From a Snakemake log: benchmark file (absolute path) -> rule, and the rules in the order
    their first job started."""
    mapping, order, rule = {}, [], None
    for line in log.read_text(errors="replace").splitlines():
        if (m := JOB_RE.match(line)):
            rule = m["rule"]
            if rule not in order:
                order.append(rule)
        elif rule and (m := BENCH_RE.match(line)):
            mapping[str((cwd / m["path"]).resolve())] = rule
        elif not line.startswith((" ", "\t")):
            rule = rule if line.strip() == "" else None
    return mapping, order


def read_job_benchmarks(d: Path, cohort: str, log: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per Snakemake benchmark file of the cohort: rule, file, s, max_rss, cpu_time..."""
    mapping, order = rules_of_benchmarks(log, d)
    rows = []
    for path in sorted((d / "results" / cohort / "benchmarks").glob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if table.empty:
            continue
        row = table.iloc[-1].to_dict()  # a repeated benchmark keeps its runs as rows: the last
        rule = mapping.get(str(path.resolve()))
        row["rule"] = rule or f"{path.name.split('.')[0]}?"  # not in the log: the file name's stem
        row["file"] = path.name
        rows.append(row)
    jobs = pd.DataFrame(rows)
    for col in ("s", "max_rss", "cpu_time"):
        jobs[col] = pd.to_numeric(jobs.get(col), errors="coerce") if len(jobs) else pd.Series(dtype=float)
    return jobs, order


def summarise(jobs: pd.DataFrame, order: list[str], run: dict, cores: int) -> dict:
    rules = []
    if len(jobs):
        rank = {r: i for i, r in enumerate(order)}
        for rule, g in sorted(jobs.groupby("rule"), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])):
            big = g.loc[g["max_rss"].idxmax()] if g["max_rss"].notna().any() else None
            rules.append({"rule": rule, "jobs": int(len(g)), "wall_s": round(float(g["s"].sum()), 2),
                          "max_job_wall_s": round(float(g["s"].max()), 2),
                          "max_rss_mb": None if big is None else round(float(big["max_rss"]), 1),
                          "max_rss_job": None if big is None else big["file"],
                          "cpu_s": round(float(g["cpu_time"].sum()), 2)})
    cpu = float(jobs["cpu_time"].sum()) if len(jobs) else 0.0
    top = max((r for r in rules if r["max_rss_mb"] is not None), key=lambda r: r["max_rss_mb"], default=None)
    totals = {"workflow_wall_s": run["wall_s"], "jobs": int(len(jobs)),
              "job_wall_s": round(float(jobs["s"].sum()), 2) if len(jobs) else 0.0, "cpu_s": round(cpu, 2),
              "cpu_utilisation": round(cpu / (run["wall_s"] * cores), 3) if run["wall_s"] else None,
              "max_rss_mb": top and top["max_rss_mb"], "max_rss_rule": top and top["rule"]}
    return {**run, "rules": rules, "totals": totals}


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 600:
        return f"{seconds:.1f}"
    return f"{seconds:.0f} ({seconds / 3600:.2f} h)" if seconds >= 3600 else f"{seconds:.0f} ({seconds / 60:.1f} min)"


def print_table(summary: dict) -> None:
    print(f"\n{summary['cohort']}: {summary['title']}")
    print(f"{'rule':22s} {'jobs':>5s} {'wall s (sum)':>13s} {'max job s':>10s} {'peak RSS MB':>12s} "
          f"{'CPU s (sum)':>12s}")
    for r in summary["rules"]:
        rss = "-" if r["max_rss_mb"] is None else f"{r['max_rss_mb']:.0f}"
        print(f"{r['rule']:22s} {r['jobs']:5d} {r['wall_s']:13.1f} {r['max_job_wall_s']:10.1f} {rss:>12s} "
              f"{r['cpu_s']:12.1f}")
    t = summary["totals"]
    print(f"{'total':22s} {t['jobs']:5d} {t['job_wall_s']:13.1f} {'':10s} "
          f"{'-' if t['max_rss_mb'] is None else format(t['max_rss_mb'], '.0f'):>12s} {t['cpu_s']:12.1f}")
    print(f"workflow wall time {fmt_s(t['workflow_wall_s'])} s (exit {summary['exit']}); job CPU time "
          f"{fmt_s(t['cpu_s'])} s = {t['cpu_utilisation'] or 0:.2f} of {summary['cores']} cores x wall; "
          f"largest peak RSS {t['max_rss_mb']} MB ({t['max_rss_rule']})")


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Scale benchmark (`benchmarks/bench_scale.py`), {m['cores_used']} cores of {m['cpu']} "
             f"({m['cpus']} CPUs), {m['mem_gb']} GB RAM, seed {result['seed']}.", ""]
    gen_info = result.get("generation", {})
    for part, info in gen_info.items():
        p = info["params"]
        took = f"generated in {info['seconds']:.0f} s" if "seconds" in info else "kept from an earlier run"
        lines.append(f"- input {part}: {p['n_samples']:,} samples x {p['n_variants']:,} variants ({took}, "
                     "not counted below)")
    for summary in result["cohorts"].values():
        t = summary["totals"]
        lines += ["", f"**{summary['cohort']}**: {summary['title']}. Workflow wall time "
                      f"**{fmt_s(t['workflow_wall_s'])} s**, {t['jobs']} jobs, job CPU time {fmt_s(t['cpu_s'])} s, "
                      f"largest peak RSS {t['max_rss_mb']} MB ({t['max_rss_rule']}); exit {summary['exit']}.", "",
                  "| rule | jobs | wall s (sum) | wall s (largest job) | peak RSS MB (largest job) | CPU s (sum) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in summary["rules"]:
            rss = "-" if r["max_rss_mb"] is None else f"{r['max_rss_mb']:.0f}"
            lines.append(f"| {r['rule']} | {r['jobs']} | {r['wall_s']:.1f} | {r['max_job_wall_s']:.1f} | {rss} | "
                         f"{r['cpu_s']:.1f} |")
        lines.append(f"| **total** | {t['jobs']} | {t['job_wall_s']:.1f} | | "
                     f"{'-' if t['max_rss_mb'] is None else format(t['max_rss_mb'], '.0f')} | {t['cpu_s']:.1f} |")
    peer = result.get("peer")
    if peer and "seconds" in peer:
        lines += ["", f"Ingestion peer: `plink2 --vcf --make-bed --threads {peer['threads']}` {peer['seconds']:.1f} s "
                      f"(peak RSS {peer['max_rss_mb']:.0f} MB) vs the workflow's {peer['ours_s']:.1f} s wall time "
                      f"({peer['ours_jobs_s']:.1f} s summed over its jobs): ratio {peer['ratio']:.2f}x "
                      f"({peer['ratio_jobs']:.2f}x against the jobs) (plink2 / ours); .bed identical: "
                      f"{peer['bed_identical']}."]
    elif peer:
        lines += ["", f"Ingestion peer: {peer.get('skipped')}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- peer

def run_plink2(d: Path, vcf: Path, cores: int, ours_s: float | None, ours_jobs_s: float | None,
               ours_bed: Path) -> dict:
    if shutil.which("plink2") is None:
        print("\nplink2 not found: peer timing skipped (apt-get install plink2)")
        return {"skipped": "plink2 not found"}
    out = d / "peer" / "plink2"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["plink2", "--vcf", str(vcf), "--make-bed", "--threads", str(cores), "--out", str(out)]
    t0 = time.monotonic()
    with open(f"{out}.stdout", "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        print(f"\nplink2 failed (exit {rc}): see {out}.log")
        return {"command": cmd, "exit": rc}
    identical = None
    if ours_bed.exists():
        identical = filecmp.cmp(f"{out}.bed", ours_bed, shallow=False)  # streamed, not read whole
    peer = {"command": cmd, "threads": cores, "seconds": round(wall, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1), "ours_s": ours_s,
            "ratio": round(wall / ours_s, 3) if ours_s else None, "ours_jobs_s": ours_jobs_s,
            "ratio_jobs": round(wall / ours_jobs_s, 3) if ours_jobs_s else None, "bed_identical": identical}
    print(f"\ningestion peer: {' '.join(cmd)}")
    print(f"{'':10s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MB':>12s}")
    print(f"{'plink2':10s} {wall:8.1f} {peer['cpu_s']:8.1f} {peer['max_rss_mb']:12.0f}")
    if ours_s:
        print(f"{'cohortflow':10s} {ours_s:8.1f}  (workflow wall time: {VCF_COHORT})")
        if ours_jobs_s:
            print(f"{'':10s} {ours_jobs_s:8.1f}  (its jobs' summed wall time: ingest_shard + merge_shards)")
        print(f"ratio (plink2 / ours): {peer['ratio']:.2f}x against the workflow's wall time"
              + (f", {peer['ratio_jobs']:.2f}x against its jobs' summed wall time" if ours_jobs_s else "")
              + f"; .bed identical to plink2's: {identical}")
    return peer


# --------------------------------------------------------------------------- main

def machine(cores: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cpu": cpu, "cpus": os.cpu_count(), "cores_used": cores, "mem_gb": mem_gb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cohortflow_scale"), help="work directory")
    ap.add_argument("--samples", type=int, default=50000)
    ap.add_argument("--variants", type=int, default=500000)
    ap.add_argument("--vcf-samples", type=int, default=5000)
    ap.add_argument("--vcf-variants", type=int, default=500000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--traits", default="height", help="comma-separated: height, disease")
    ap.add_argument("--only", choices=["plink", "vcf", "all"], default="all")
    ap.add_argument("--skip-generate", action="store_true", help="use the inputs already in --dir")
    ap.add_argument("--no-peer", action="store_true", help="skip the plink2 ingestion timing")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config setting for the workflow runs, e.g. qc.king_parts=2 (repeatable)")
    args = ap.parse_args()
    traits = [t for t in args.traits.split(",") if t]
    if not traits or any(t not in ("height", "disease") for t in traits):
        ap.error("--traits: height and/or disease")
    parts = ["plink", "vcf"] if args.only == "all" else [args.only]
    d = args.dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    summary_json, summary_md = d / "scale_summary.json", d / "scale_summary.md"
    result = {"seed": args.seed, "machine": machine(args.cores), "config_settings": list(args.set), "cohorts": {}}
    print(f"work dir {d}; {args.cores} cores of {result['machine']['cpus']}; {result['machine']['cpu']}")

    result["generation"] = generate_inputs(d, args, parts)
    try:  # --only: the other part's figures from the previous summary stay in the files
        previous = json.loads(summary_json.read_text())
    except (OSError, ValueError):
        previous = {}
    for part, cohort in (("plink", PLINK_COHORT), ("vcf", VCF_COHORT)):
        if part not in parts and cohort in previous.get("cohorts", {}):
            result["cohorts"][cohort] = previous["cohorts"][cohort]
            if part in previous.get("generation", {}):
                result["generation"][part] = previous["generation"][part]
            if part == "vcf" and "peer" in previous:
                result["peer"] = previous["peer"]
    result["generation"] = {k: result["generation"][k] for k in ("plink", "vcf") if k in result["generation"]}

    def save() -> None:
        summary_json.write_text(json.dumps(result, indent=1) + "\n")
        summary_md.write_text(markdown(result))

    failed = False
    if "plink" in parts:
        paths = result["generation"]["plink"]["paths"]
        p = result["generation"]["plink"]["params"]
        row = {"id": PLINK_COHORT, "genotypes": paths["prefix"], "phenotypes": paths["phenotypes"],
               "covariates": paths["covariates"], "traits": ",".join(traits), "sample_info": paths["sample_info"],
               "pgs": paths["pgs"]}
        res = d / "results" / PLINK_COHORT
        targets = [res / "qc/qc.bed", res / "qc/qc.pcs.tsv", res / "prs/pgs.summary.json"]
        for t in traits:
            targets += [res / f"gwas/{t}.summary.json", res / f"prs/{t}.evaluate.json"]
        run = run_workflow(d, PLINK_COHORT, write_config(d, PLINK_COHORT, row, args.set), [str(t) for t in targets],
                           args.cores)
        jobs, order = read_job_benchmarks(d, PLINK_COHORT, Path(run["log"]))
        summary = summarise(jobs, order, run, args.cores)
        summary.update(cores=args.cores, title=f"PLINK {p['n_samples']:,} x {p['n_variants']:,}, QC -> GWAS -> PRS "
                                                f"({', '.join(traits)}; published score SCALE000001)")
        result["cohorts"][PLINK_COHORT] = summary
        print_table(summary)
        save()
        failed |= run["exit"] != 0
    if "vcf" in parts:
        info = result["generation"]["vcf"]
        vcf = Path(info["paths"]["vcf"])
        p = info["params"]
        raw = d / "results" / VCF_COHORT / "genotypes" / "raw.bed"
        run = run_workflow(d, VCF_COHORT, write_config(d, VCF_COHORT, {"id": VCF_COHORT, "genotypes": str(vcf)}, args.set),
                           [str(raw)], args.cores)
        jobs, order = read_job_benchmarks(d, VCF_COHORT, Path(run["log"]))
        summary = summarise(jobs, order, run, args.cores)
        summary.update(cores=args.cores, title=f"VCF {p['n_samples']:,} x {p['n_variants']:,} "
                                                "(one bgzipped multi-contig file) -> raw.bed")
        result["cohorts"][VCF_COHORT] = summary
        print_table(summary)
        save()
        failed |= run["exit"] != 0
        if not args.no_peer and run["exit"] == 0:
            result["peer"] = run_plink2(d, vcf, args.cores, run["wall_s"], summary["totals"]["job_wall_s"], raw)
            save()
    print(f"\nsummary: {summary_json}\n         {summary_md}")
    if failed:
        sys.exit("a workflow invocation failed: see the logs above")


if __name__ == "__main__":
    main()
