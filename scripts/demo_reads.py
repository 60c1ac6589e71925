"""Snakemake adapter: simulate one demo individual's paired-end reads (sorted, indexed BAM)."""
from pathlib import Path

from cohortflow.demo.reads import simulate_reads
from cohortflow.scripting import run_step

demo = snakemake.params.demo
chrom, span = demo["reads"]["region"].split(":")
start, end = (int(x) for x in span.split("-"))
run_step(
    snakemake,
    simulate_reads,
    out_dir=Path(snakemake.output.bam).parent.parent,
    reference=snakemake.input.reference,
    haplotypes=snakemake.input.haplotypes,
    samples=[snakemake.wildcards.sample],
    region=(chrom, start, end),
    coverage=demo["reads"]["coverage"],
    seed=demo["seed"],
)
