"""Snakemake adapter: the regions the demo reads cover (BED), the alignment QC's targets."""
from cohortflow.demo.reads import parse_region, write_alignment_targets
from cohortflow.scripting import run_step

demo = snakemake.params.demo
reads = demo["reads"]
run_step(
    snakemake,
    write_alignment_targets,
    path=snakemake.output.bed,
    reference=snakemake.input.reference,
    haplotypes=snakemake.input.haplotypes,
    region=parse_region(reads["region"]),
    n_site_windows=reads["site_windows"],
    site_window_bp=reads["site_window_bp"],
    x_region=parse_region(reads["x_region"]),
    y_region=parse_region(reads["y_region"]),
    seed=demo["seed"],
)
