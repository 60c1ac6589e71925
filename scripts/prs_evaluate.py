"""Snakemake adapter: choose each score's threshold / hyper-parameters on the validation samples and
report its performance on the test samples (overall, by score decile and by ancestry group)."""
from cohortflow.prs.evaluate import ancestry_group_options, evaluate_scores
from cohortflow.scripting import run_step

prs = snakemake.params.prs
run_step(
    snakemake,
    evaluate_scores,
    scores=list(snakemake.input.scores),
    pheno=snakemake.input.pheno,
    trait=snakemake.wildcards.trait,
    split=snakemake.input.split,
    covar=snakemake.input.covar,
    covar_names=list(snakemake.params.covariates),
    **ancestry_group_options(sample_info=snakemake.input.groups or None, group_column=prs["group_column"],
                             pcs=snakemake.input.pcs, n_pcs_groups=prs["n_pcs_groups"]),
    n_boot=prs["n_boot"],
    seed=prs["seed"],
    min_cell_count=snakemake.params.min_cell_count,
    out_prefix=snakemake.output.summary.removesuffix(".evaluate.json"),
    threads=snakemake.threads,
)
