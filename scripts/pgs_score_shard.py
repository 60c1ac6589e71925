"""Snakemake adapter: every sample's published-score sums over one shard (chromosome or chunk) of the variants."""
from cohortflow.gwas.shards import shard_range
from cohortflow.prs.pgs import pgs_partial_sums
from cohortflow.scripting import run_step

run_step(
    snakemake,
    pgs_partial_sums,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    matched=snakemake.input.matched,
    variant_range=shard_range(snakemake.input.plan, snakemake.wildcards.shard),
    threads=snakemake.threads,
    out=snakemake.output.partial,
)
