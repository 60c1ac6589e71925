"""Snakemake adapter: the sample decisions (all shards' statistics), then one shard's variant filters and kept rows."""
from pathlib import Path

from cohortflow.scripting import run_step
from cohortflow.variants.qc import qc_filter_shard_file, read_id_list

qc = snakemake.params.qc
stats = list(snakemake.input.stats)
run_step(
    snakemake,
    qc_filter_shard_file,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    stats_parts=stats,
    shard_index=[Path(p).name for p in stats].index(f"{snakemake.wildcards.shard}.stats.npz"),
    remove_samples=read_id_list(snakemake.input.removed),
    geno=qc["geno"],
    mind=qc["mind"],
    maf=qc["maf"],
    hwe=qc["hwe"],
    remove_sex_problems=qc["remove_sex_problems"],
    out_filtered=snakemake.output.filtered,
    out_bed_part=snakemake.output.bed_part,
    threads=snakemake.threads,
)
