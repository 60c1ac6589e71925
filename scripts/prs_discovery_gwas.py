"""Snakemake adapter: GWAS of a trait on the discovery samples (base of the cohort's own scores)."""
from cohortflow.prs.split import discovery_gwas
from cohortflow.scripting import run_step

run_step(
    snakemake,
    discovery_gwas,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    pheno=snakemake.input.pheno,
    trait=snakemake.wildcards.trait,
    split=snakemake.input.split,
    covar=snakemake.input.covar,
    covar_names=list(snakemake.params.covariates),
    firth=snakemake.params.firth,
    out=snakemake.output.sumstats,
    threads=snakemake.threads,
)
