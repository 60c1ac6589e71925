"""Snakemake adapter: ingest one VCF/BCF shard into a PLINK fileset."""
from cohortflow.scripting import run_step
from cohortflow.variants.ingest import ingest_vcf

run_step(snakemake, ingest_vcf, vcf_paths=[snakemake.input.vcf], region=snakemake.params.region or None,
         threads=snakemake.threads, out_prefix=snakemake.output[0].removesuffix(".bed"))
