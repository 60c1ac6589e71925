"""Snakemake adapter: simulate the demo cohort's genotypes, phenotypes, reference and genes."""
from pathlib import Path

from cohortflow.demo.genome import simulate_genotypes
from cohortflow.scripting import run_step

demo = snakemake.params.demo
run_step(
    snakemake,
    simulate_genotypes,
    out_dir=Path(snakemake.output.truth).parent,
    n_individuals=demo["n_individuals"],
    n_populations=demo["n_populations"],
    n_chromosomes=demo["n_chromosomes"],
    chrom_length=demo["chrom_length"],
    missing_rate=demo["missing_rate"],
    seed=demo["seed"],
)
