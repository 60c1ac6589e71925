"""Snakemake adapter: discovery / validation / test split of the samples analysable for a trait."""
from cohortflow.prs.split import split_samples
from cohortflow.scripting import run_step

prs = snakemake.params.prs
run_step(
    snakemake,
    split_samples,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    pheno=snakemake.input.pheno,
    trait=snakemake.wildcards.trait,
    covar=snakemake.input.covar,
    covar_names=list(snakemake.params.covariates),
    fractions=tuple(prs["split"]),
    seed=prs["seed"],
    out=snakemake.output.split,
)
