"""Snakemake adapter: the sample decisions (all shards' statistics), then one shard's variant filters and kept rows."""
from cohortflow.scripting import run_step
from cohortflow.variants.qc import qc_filter_shard_file, read_id_list

qc = snakemake.params.qc
run_step(
    snakemake,
    qc_filter_shard_file,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    stats_parts=list(snakemake.input.stats),
    shard=snakemake.wildcards.shard,
    plan=snakemake.input.plan,
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
