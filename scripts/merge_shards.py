"""Snakemake adapter: concatenate ingestion shards into one PLINK fileset."""
from cohortflow.scripting import run_step
from cohortflow.variants.ingest import merge_bed_shards

run_step(
    snakemake,
    merge_bed_shards,
    prefixes=[bed.removesuffix(".bed") for bed in snakemake.input.beds],
    out_prefix=snakemake.output[0].removesuffix(".bed"),
)
