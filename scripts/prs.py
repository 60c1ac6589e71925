"""Snakemake adapter: clumping + thresholding PRS trained on a split, scored on held-out samples."""
from cohortflow.prs.api import prs_clump_threshold
from cohortflow.scripting import run_step

prs = snakemake.params.prs
run_step(
    snakemake,
    prs_clump_threshold,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    pheno=snakemake.input.pheno,
    trait=snakemake.wildcards.trait,
    covar=snakemake.input.covar,
    covar_names=list(snakemake.params.covariates) + [f"PC{i + 1}" for i in range(snakemake.params.n_pcs)],
    train_fraction=prs["train_fraction"],
    seed=prs["seed"],
    p_thresholds=tuple(prs["p_thresholds"]),
    clump_r2=prs["clump_r2"],
    clump_kb=prs["clump_kb"],
    out_prefix=snakemake.output.performance.removesuffix(".performance.json"),
)
