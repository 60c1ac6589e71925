"""Snakemake adapter: simulate one demo individual's paired-end reads (sorted, indexed BAM)."""
from pathlib import Path

from cohortflow.demo.reads import parse_region, simulate_reads
from cohortflow.scripting import run_step

demo = snakemake.params.demo
reads = demo["reads"]
run_step(
    snakemake,
    simulate_reads,
    out_dir=Path(snakemake.output.bam).parent.parent,
    reference=snakemake.input.reference,
    haplotypes=snakemake.input.haplotypes,
    samples=[snakemake.wildcards.sample],
    region=parse_region(reads["region"]),
    coverage=reads["coverage"],
    n_site_windows=reads["site_windows"],
    site_window_bp=reads["site_window_bp"],
    x_region=parse_region(reads["x_region"]),
    y_region=parse_region(reads["y_region"]),
    sample_info=snakemake.input.samples,
    y_female_fraction=reads["y_female_fraction"],
    contamination=reads["contamination"],
    seed=demo["seed"],
)
