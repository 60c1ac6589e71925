"""Snakemake adapter: score published polygenic scores (PGS Catalog files) on the cohort."""
from cohortflow.prs.pgs import score_pgs
from cohortflow.scripting import run_step

run_step(
    snakemake,
    score_pgs,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    scores=list(snakemake.input.scores),
    min_overlap=snakemake.params.pgs["min_overlap"],
    keep_ambiguous=snakemake.params.pgs["keep_ambiguous"],
    pheno=snakemake.input.pheno or None,
    traits=list(snakemake.params.traits) or None,
    out_prefix=snakemake.output.summary.removesuffix(".summary.json"),
    threads=snakemake.threads,
)
