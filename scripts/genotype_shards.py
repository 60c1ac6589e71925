"""Snakemake adapter: the GWAS shard plan (per chromosome, chunks of big ones) of the QC'd .bim."""
from cohortflow.gwas.shards import write_shard_plan
from cohortflow.scripting import run_step

run_step(
    snakemake,
    write_shard_plan,
    bfile=snakemake.input.bim.removesuffix(".bim"),
    out=snakemake.output.plan,
    max_variants=snakemake.params.max_variants,
)
