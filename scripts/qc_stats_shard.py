"""Snakemake adapter: the QC statistics pass over one shard (chromosome or chunk) of the raw genotypes."""
from cohortflow.scripting import run_step
from cohortflow.variants.qc import qc_stats_shard_file

run_step(
    snakemake,
    qc_stats_shard_file,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    plan=snakemake.input.plan,
    shard=snakemake.wildcards.shard,
    maf=snakemake.params.qc["maf"],
    out=snakemake.output.stats,
    threads=snakemake.threads,
)
