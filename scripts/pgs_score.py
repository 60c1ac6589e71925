"""Snakemake adapter: add the shards' published-score sums; write the scores, match table and summary."""
from cohortflow.prs.pgs import gather_pgs
from cohortflow.scripting import run_step

run_step(
    snakemake,
    gather_pgs,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    matched=snakemake.input.matched,
    partials=list(snakemake.input.partials),
    pheno=snakemake.input.pheno or None,
    traits=list(snakemake.params.traits) or None,
    out_prefix=snakemake.output.summary.removesuffix(".summary.json"),
)
