"""Snakemake adapter: KING kinship of one part of the sample pairs, related pairs only."""
from cohortflow.scripting import run_step
from cohortflow.variants.relatedness import king_part_file

qc = snakemake.params.qc
run_step(
    snakemake,
    king_part_file,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    masks=snakemake.input.masks,
    part=snakemake.wildcards.part,
    n_parts=qc["king_parts"],
    out=snakemake.output.part,
    cutoff=qc["king_cutoff"],
    threads=snakemake.threads,
)
