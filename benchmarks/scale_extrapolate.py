"""Extrapolate the scale benchmark's per-job figures to a bigger cohort on a cluster.

    .venv/bin/python benchmarks/scale_extrapolate.py --dir /tmp/cohortflow_scale
    .venv/bin/python benchmarks/scale_extrapolate.py --dir /tmp/cohortflow_scale --samples 500000 \\
        --variants 10000000 --shard-variants 100000 --king-parts 14 --nodes 100 --cores-per-node 32

Input: the Snakemake benchmark files of a ``bench_scale.py`` run (``{dir}/results/scale`` and
``{dir}/results/scale_vcf``) and its ``scale_summary.json``. Every job's measured wall time, peak
RSS and CPU time is scaled by how its work and memory grow with samples (n) and variants (m),
rule by rule (``LAWS``), with the job counts the target cohort gets from ``shard_variants``,
``qc.king_parts`` and its number of VCF files. The laws are the algorithms' costs, not fits:

- per-variant streaming over all samples (ingestion, QC statistics and filters, GWAS, scoring,
  the gathers that copy genotypes): time ~ n x m of the job, memory ~ n (per-sample arrays and
  one block of rows) above the ~250 MB of Python, numpy and numba;
- KING pair counts: time ~ pairs of the job x KING variants (at most ``qc.king_max_variants``,
  100,000, at both sizes), memory ~ the job's samples x KING variants (bit planes);
- LD pruning (in ``genotype_pca``): time ~ n x m x variants per window, i.e. n x m^2 at a fixed
  genome length; the PCA itself ~ n x pruned variants x passes, with the pruned set taken to stay
  the measured size (pruning at r2 0.2 keeps about one variant per LD block, and the genome's
  blocks do not multiply with denser genotyping);
- tables over variants (plans, sumstats gathers, summaries, matching): ~ m; over samples
  (split, evaluation): ~ n.

Every job keeps a fixed start-up cost (``--startup``, 1.5 s: Python, imports, cached kernels;
the median of a near-empty job in the 2,000-sample run). Jobs run with the threads their rules
ask for (2 for the heavy ones); with ``--nodes`` x ``--cores-per-node`` cores every stage's jobs
run in one wave when they fit, so a stage lasts as long as its longest job. The critical path
follows the workflow's DAG (``CHAIN``). Assumptions stated in the output: cores as fast as this
machine's, a file system that feeds every job at the rate this machine's page cache fed one.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pandas as pd

from bench_scale import read_job_benchmarks  # benchmarks/ is on sys.path when run as a script

STARTUP_S = 1.5
BASE_MB = 250.0
# GRCh37 autosome lengths (Mb): variants spread in proportion, as the generator does
CHROM_MB = [249.3, 243.2, 198.0, 191.2, 180.9, 171.1, 159.1, 146.4, 141.2, 135.5, 135.0, 133.9, 115.2, 107.3,
            102.5, 90.4, 81.2, 78.1, 59.1, 63.0, 48.1, 51.3]

# rule -> (time law, memory law, job count law). Time laws: "nm" (n x m of the job), "king",
# "prune_pca" (split from the job's log), "m", "n", "fixed". Memory laws: "n", "m", "king", "fixed".
# Job count laws: "one", "shards" (QC/GWAS/score plan), "vcf" (input files), "king".
LAWS = {
    "ingest_shard": ("nm", "n", "vcf"),
    "merge_shards": ("nm", "m", "one"),
    "relatedness_masks": ("nm", "n", "one"),
    "relatedness_part": ("king", "king", "king"),
    "relatedness": ("n", "n", "one"),
    "raw_shards": ("m", "m", "one"),
    "qc_stats_shard": ("nm", "n", "shards"),
    "qc_filter_shard": ("nm", "n", "shards"),
    "genotype_qc": ("nm", "m", "one"),
    "genotype_pca": ("prune_pca", "n", "one"),
    "gwas_covariates": ("n", "n", "one"),
    "genotype_shards": ("m", "m", "one"),
    "gwas_shard": ("nm", "n", "shards"),
    "gwas": ("m", "fixed", "one"),
    "gwas_summary": ("m", "m", "one"),
    "pgs_match": ("m", "m", "one"),
    "pgs_score_shard": ("nm", "n", "shards"),
    "pgs_score": ("n", "n", "one"),
    "prs_split": ("n", "n", "one"),
    "prs_discovery_gwas": ("nm", "n", "one"),
    "prs_ct": ("nm", "m", "one"),
    "prs_bayes": ("nm", "m", "one"),
    "prs_evaluate": ("n", "n", "one"),
}
# the DAG's longest chain, stage by stage (a tuple: branches that run side by side)
CHAIN = [
    "ingest_shard", "merge_shards",
    (("relatedness_masks", "relatedness_part", "relatedness"), ("raw_shards", "qc_stats_shard")),
    "qc_filter_shard", "genotype_qc", "genotype_pca", "gwas_covariates",
    (("genotype_shards", "gwas_shard", "gwas", "gwas_summary"),
     ("prs_split", "prs_discovery_gwas", "prs_bayes", "prs_evaluate"),
     ("prs_split", "prs_discovery_gwas", "prs_ct", "prs_evaluate")),
]
PCA_LOG = re.compile(r"LD pruning: (\d+) of (\d+) candidate variants kept in ([0-9.]+) s|"
                     r"PCA \((\w+)\) of (\d+) samples x (\d+) variants in ([0-9.]+) s")


def shard_count(m: int, shard_variants: int) -> int:
    total = sum(CHROM_MB)
    return sum(max(1, math.ceil(m * c / total / shard_variants)) for c in CHROM_MB)


def job_stage(rule: str, trait: str | None) -> str:
    return rule if trait is None else f"{rule} ({trait})"


def load_jobs(d: Path, cohort: str) -> pd.DataFrame:
    log = d / "logs" / f"snakemake.{cohort}.log"
    jobs, _ = read_job_benchmarks(d, cohort, log)
    # per-trait rules: the trait is the file name's second field (rule.trait[.shard].tsv)
    traits = []
    for rule, name in zip(jobs["rule"], jobs["file"]):
        parts = name[:-4].split(".")
        per_trait = rule.startswith(("gwas", "prs_")) and rule not in ("gwas_covariates",) and len(parts) > 1
        traits.append(parts[1] if per_trait and not parts[1].startswith("chr") else None)
    jobs["trait"] = traits
    return jobs


def pca_split(d: Path) -> dict:
    text = (d / "results" / "scale" / "logs" / "genotype_pca.log").read_text()
    out = {}
    for m in PCA_LOG.finditer(text):
        if m.group(1):
            out.update(pruned=int(m.group(1)), candidates=int(m.group(2)), prune_s=float(m.group(3)))
        else:
            out.update(method=m.group(4), pca_s=float(m.group(7)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cohortflow_scale"))
    ap.add_argument("--samples", type=int, default=500_000)
    ap.add_argument("--variants", type=int, default=10_000_000)
    ap.add_argument("--shard-variants", type=int, default=100_000)
    ap.add_argument("--king-parts", type=int, default=14)
    ap.add_argument("--king-variants", type=int, default=100_000)
    ap.add_argument("--vcf-files", type=int, default=None, help="input VCF files (default: the shard count)")
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--cores-per-node", type=int, default=32)
    ap.add_argument("--startup", type=float, default=STARTUP_S)
    ap.add_argument("--markdown", type=Path, help="also write the tables here")
    args = ap.parse_args(argv)

    summary = json.loads((args.dir / "scale_summary.json").read_text())
    gen = summary["generation"]
    n0, m0 = gen["plink"]["params"]["n_samples"], gen["plink"]["params"]["n_variants"]
    nv0, mv0 = gen["vcf"]["params"]["n_samples"], gen["vcf"]["params"]["n_variants"]
    k0 = next((int(s.split("=")[1]) for s in summary.get("config_settings", []) if s.startswith("qc.king_parts=")), 1)
    n1, m1 = args.samples, args.variants
    shards1 = shard_count(m1, args.shard_variants)
    vcf1 = args.vcf_files or shards1
    king1 = args.king_parts * (args.king_parts + 1) // 2
    pca = pca_split(args.dir)

    jobs = pd.concat([load_jobs(args.dir, "scale"), load_jobs(args.dir, "scale_vcf")], ignore_index=True)
    rows = []
    for (rule, trait), g in jobs.groupby(["rule", jobs["trait"].fillna("")], sort=False):
        trait = trait or None
        time_law, mem_law, count_law = LAWS[rule]
        j0 = len(g)
        is_vcf = rule in ("ingest_shard", "merge_shards")
        n_a, m_a = (nv0, mv0) if is_vcf else (n0, m0)
        j1 = {"one": 1, "shards": shards1, "vcf": vcf1, "king": king1}[count_law]
        # work per job, old -> new
        if time_law == "nm":
            f_time = (n1 * m1 / j1) / (n_a * m_a / j0)
        elif time_law == "m":
            f_time = m1 / m_a
        elif time_law == "n":
            f_time = n1 / n_a
        elif time_law == "king":
            # the largest job: a cross part of two groups (n/k)^2 pairs; measured: the largest part
            f_time = (n1 / args.king_parts) ** 2 / (n0 / k0) ** 2
        else:
            f_time = 1.0
        if mem_law == "n":
            f_mem = n1 / n_a
        elif mem_law == "m":
            f_mem = m1 / m_a
        elif mem_law == "king":
            f_mem = (2 * n1 / args.king_parts) / (2 * n0 / k0)
        else:
            f_mem = 1.0
        wall0 = float(g["s"].max())
        if time_law == "prune_pca":
            # pruning ~ n m^2 (fixed genome length), PCA ~ n x pruned variants (pruned set as measured)
            prune1 = pca["prune_s"] * (n1 / n_a) * (m1 / m_a) ** 2
            pca1 = pca["pca_s"] * (n1 / n_a)
            rest = max(wall0 - pca["prune_s"] - pca["pca_s"] - args.startup, 0.0) * (n1 / n_a)
            wall1 = args.startup + prune1 + pca1 + rest
            f_time = (wall1 - args.startup) / max(wall0 - args.startup, 1e-9)
        else:
            wall1 = args.startup + max(wall0 - args.startup, 0.0) * f_time
        cpu0 = float(g["cpu_time"].sum())
        cpu1 = (max(cpu0 - j0 * args.startup, 0.0) / j0) * f_time * j1 + j1 * args.startup
        rss0 = float(g["max_rss"].max())
        rss1 = BASE_MB + max(rss0 - BASE_MB, 0.0) * f_mem
        rows.append({"stage": job_stage(rule, trait), "rule": rule, "trait": trait, "jobs_measured": j0,
                     "max_job_s_measured": wall0, "peak_rss_mb_measured": rss0, "cpu_s_measured": cpu0,
                     "jobs": j1, "max_job_s": wall1, "peak_rss_mb": rss1, "cpu_s": cpu1,
                     "law": f"{time_law} / mem {mem_law}"})
    table = pd.DataFrame(rows)

    def stage_s(rule: str) -> float:
        sel = table[table["rule"] == rule]
        return float(sel["max_job_s"].max()) if len(sel) else 0.0

    def chain_s(chain) -> float:
        total = 0.0
        for step in chain:
            total += max(chain_s(branch) for branch in step) if isinstance(step, tuple) else stage_s(step)
        return total

    slots = args.nodes * args.cores_per_node // 2  # 2 threads per heavy job
    widest = int(table["jobs"].max())
    critical = chain_s(CHAIN)
    cpu_h = float(table["cpu_s"].sum()) / 3600
    lines = [
        f"Measured: PLINK {n0:,} x {m0:,} (qc.king_parts={k0}) and VCF {nv0:,} x {mv0:,}, on "
        f"{summary['machine'].get('cores', 2)} cores. Target: {n1:,} samples x {m1:,} variants, "
        f"shard_variants {args.shard_variants:,} ({shards1} shards), {vcf1} VCF files, qc.king_parts "
        f"{args.king_parts} ({king1} KING jobs), KING on {args.king_variants:,} variants; "
        f"{args.nodes} nodes x {args.cores_per_node} cores = {slots} two-thread job slots.",
        "",
        "| stage | law (time / memory) | jobs | longest job | peak RSS | CPU | -> jobs | longest job | peak RSS | CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['law']} | {r['jobs_measured']} | {_dur(r['max_job_s_measured'])} | "
            f"{_mb(r['peak_rss_mb_measured'])} | {_dur(r['cpu_s_measured'])} | {r['jobs']} | {_dur(r['max_job_s'])} | "
            f"{_mb(r['peak_rss_mb'])} | {_dur(r['cpu_s'])} |")
    lines += [
        "",
        f"Largest stage: {widest} jobs (fits in one wave of {slots} slots: {widest <= slots}). "
        f"Total CPU {cpu_h:,.0f} core-hours ({cpu_h / (args.nodes * args.cores_per_node):.1f} h of the "
        f"whole cluster). Critical path (longest job of each stage along the DAG): {_dur(critical)}.",
        f"LD pruning measured {pca['prune_s']:.0f} s ({pca['pruned']:,} of {pca['candidates']:,} candidates kept), "
        f"PCA ({pca['method']}) {pca['pca_s']:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    with open(args.dir / "scale_extrapolation.json", "w") as fh:
        json.dump({"rows": rows, "critical_path_s": critical, "cpu_core_hours": cpu_h, "slots": slots}, fh, indent=1)
    return 0


def _dur(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _mb(mb: float) -> str:
    return f"{mb:,.0f} MB" if mb < 10240 else f"{mb / 1024:,.1f} GB"


if __name__ == "__main__":
    raise SystemExit(main())
