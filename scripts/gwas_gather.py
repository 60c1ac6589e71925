"""Snakemake adapter: gather a trait's GWAS shards into its GWAS-SSF files (byte for byte an unsharded run's)."""
from cohortflow.gwas.shards import gather_pair
from cohortflow.scripting import run_step

run_step(
    snakemake,
    gather_pair,
    shards=list(snakemake.input.shards),
    out_with_pcs=snakemake.output.with_pcs,
    out_without_pcs=snakemake.output.without_pcs,
)
