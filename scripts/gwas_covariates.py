"""Snakemake adapter: covariates for association tests = cohort covariates + ancestry PCs."""
from cohortflow.gwas.api import make_gwas_covariates
from cohortflow.scripting import run_step

run_step(
    snakemake,
    make_gwas_covariates,
    covar=snakemake.input.covar or None,
    pcs=snakemake.input.pcs,
    n_pcs=snakemake.params.n_pcs,
    out=snakemake.output.covar,
)
