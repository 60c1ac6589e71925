"""Snakemake adapter: one GWAS shard (a chromosome or a chunk of one) of one trait, with and without ancestry PCs."""
from cohortflow.gwas.api import run_gwas_pair
from cohortflow.gwas.shards import shard_range
from cohortflow.scripting import run_step

run_step(
    snakemake,
    run_gwas_pair,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    pheno=snakemake.input.pheno,
    trait=snakemake.wildcards.trait,
    covar=snakemake.input.covar,
    covariates=list(snakemake.params.covariates),
    n_pcs=snakemake.params.n_pcs,
    out_with_pcs=snakemake.output.with_pcs,
    out_without_pcs=snakemake.output.without_pcs,
    firth=snakemake.params.firth,
    threads=snakemake.threads,
    variant_range=shard_range(snakemake.input.plan, snakemake.wildcards.shard),
)
