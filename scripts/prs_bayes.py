"""Snakemake adapter: LD-aware Bayesian score (LDpred2-auto model) from the discovery GWAS."""
from cohortflow.prs.api import prs_bayes_scores
from cohortflow.scripting import run_step

bayes = snakemake.params.bayes
run_step(
    snakemake,
    prs_bayes_scores,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    sumstats=snakemake.input.sumstats,
    ld_split=snakemake.input.split,  # LD from the GWAS's own (discovery) samples
    seed=bayes["seed"],
    n_chains=bayes["n_chains"],
    burn_in=bayes["burn_in"],
    n_iter=bayes["n_iter"],
    keep_ambiguous=True,  # the cohort's own GWAS: alleles are the .bim's, strand is not in question
    out_prefix=snakemake.output.summary.removesuffix(".json"),
    threads=snakemake.threads,
)
