"""Snakemake adapter: match the published scoring files to the cohort's variants (weights of every score)."""
from cohortflow.prs.pgs import match_pgs
from cohortflow.scripting import run_step

run_step(
    snakemake,
    match_pgs,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    scores=list(snakemake.input.scores),
    min_overlap=snakemake.params.pgs["min_overlap"],
    keep_ambiguous=snakemake.params.pgs["keep_ambiguous"],
    threads=snakemake.threads,
    out=snakemake.output.matched,
)
