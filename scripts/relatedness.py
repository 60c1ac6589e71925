"""Snakemake adapter: the KING kinship table and plink2's --king-cutoff lists from every part's pairs."""
from cohortflow.scripting import run_step
from cohortflow.variants.relatedness import relatedness_gather

run_step(
    snakemake,
    relatedness_gather,
    fam=snakemake.input.fam,
    masks=snakemake.input.masks,
    parts=list(snakemake.input.parts),
    out_prefix=snakemake.output.kinship.removesuffix(".kinship.tsv"),
    cutoff=snakemake.params.qc["king_cutoff"],
)
