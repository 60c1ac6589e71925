# The embedded demo cohort, simulated deterministically from config["demo"]["seed"]
# (cohortflow.demo): genotypes, phenotypes, reference, annotation, reads, single-cell, spatial.
DEMO_DIR = DEMO["out_dir"]
DEMO_CHROMS = [str(i + 1) for i in range(DEMO["n_chromosomes"])]
DEMO_VCFS = expand(f"{DEMO_DIR}/genotypes/chr{{chrom}}.vcf.gz", chrom=DEMO_CHROMS)
# Each rule's params hold only the settings it reads, so changing the reads does not re-simulate
# the genotypes (and everything after them), nor a new sheet the BAMs.
DEMO_GENOME = {k: v for k, v in DEMO.items() if k != "reads"}
DEMO_READS = {"seed": DEMO["seed"], "reads": {k: v for k, v in DEMO["reads"].items() if k != "sheet"}}
DEMO_ALIGNMENT_TRUTH = {"reads": {k: DEMO["reads"][k] for k in ("contamination", "y_female_fraction")}}


rule demo_genotypes:
    output:
        reference=f"{DEMO_DIR}/reference.fa",
        fai=f"{DEMO_DIR}/reference.fa.fai",
        genes=f"{DEMO_DIR}/genes.gtf",
        vcfs=DEMO_VCFS,
        tbis=[f"{v}.tbi" for v in DEMO_VCFS],
        haplotypes=f"{DEMO_DIR}/genotypes/true_haplotypes.npz",
        samples=f"{DEMO_DIR}/samples.tsv",
        phenotypes=f"{DEMO_DIR}/phenotypes.tsv",
        covariates=f"{DEMO_DIR}/covariates.tsv",
        truth=f"{DEMO_DIR}/truth.json",
    params:
        demo=DEMO_GENOME,
    log:
        "logs/demo/demo_genotypes.log",
    benchmark:
        "logs/demo/demo_genotypes.benchmark.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("demo_genotypes"),
        runtime=job_runtime("demo_genotypes"),
    conda:
        "../../envs/demo.yaml"
    script:
        "../../scripts/demo_genotypes.py"


rule demo_reads:
    # Autosomal reads from the individual's haplotypes (one region + a SNP panel of windows), X and
    # Y depth by sex, and the planted contamination of config demo.reads.contamination.
    input:
        reference=f"{DEMO_DIR}/reference.fa",
        fai=f"{DEMO_DIR}/reference.fa.fai",
        haplotypes=f"{DEMO_DIR}/genotypes/true_haplotypes.npz",
        samples=f"{DEMO_DIR}/samples.tsv",
        vcfs=DEMO_VCFS,
    output:
        bam=f"{DEMO_DIR}/bam/{{sample}}.bam",
        bai=f"{DEMO_DIR}/bam/{{sample}}.bam.bai",
    params:
        demo=DEMO_READS,
    log:
        "logs/demo/demo_reads.{sample}.log",
    benchmark:
        "logs/demo/demo_reads.{sample}.benchmark.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("demo_reads"),
        runtime=job_runtime("demo_reads"),
    conda:
        "../../envs/demo.yaml"
    script:
        "../../scripts/demo_reads.py"


rule demo_alignment_targets:
    # The regions the demo reads cover (BED): the alignment QC's targets (cohort sheet column
    # alignment_targets).
    input:
        reference=f"{DEMO_DIR}/reference.fa",
        fai=f"{DEMO_DIR}/reference.fa.fai",
        haplotypes=f"{DEMO_DIR}/genotypes/true_haplotypes.npz",
    output:
        bed=f"{DEMO_DIR}/alignment_targets.bed",
    params:
        demo=DEMO_READS,
    log:
        "logs/demo/demo_alignment_targets.log",
    benchmark:
        "logs/demo/demo_alignment_targets.benchmark.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("demo_alignment_targets"),
        runtime=job_runtime("demo_alignment_targets"),
    conda:
        "../../envs/demo.yaml"
    script:
        "../../scripts/demo_alignment_targets.py"


rule demo_alignment_truth:
    # Known answers of the demo alignment sheet: each BAM's true individual and sex, the planted
    # swap (read from the sheet) and the contaminated sample.
    input:
        sheet=DEMO["reads"]["sheet"],
        samples=f"{DEMO_DIR}/samples.tsv",
    output:
        truth=f"{DEMO_DIR}/alignment_truth.json",
    params:
        demo=DEMO_ALIGNMENT_TRUTH,
    log:
        "logs/demo/demo_alignment_truth.log",
    benchmark:
        "logs/demo/demo_alignment_truth.benchmark.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("demo_alignment_truth"),
        runtime=job_runtime("demo_alignment_truth"),
    conda:
        "../../envs/demo.yaml"
    script:
        "../../scripts/demo_alignment_truth.py"


rule demo_expression:
    input:
        genes=f"{DEMO_DIR}/genes.gtf",
        truth=f"{DEMO_DIR}/truth.json",
        vcfs=DEMO_VCFS,
    output:
        singlecell=f"{DEMO_DIR}/singlecell.h5ad",
        spatial=f"{DEMO_DIR}/spatial.h5ad",
        markers=f"{DEMO_DIR}/markers.tsv",
        truth=f"{DEMO_DIR}/singlecell_truth.json",
        cell_truth=f"{DEMO_DIR}/singlecell_truth.tsv",
        spot_truth=f"{DEMO_DIR}/spatial_truth.tsv",
    params:
        demo=DEMO_GENOME,
    log:
        "logs/demo/demo_expression.log",
    benchmark:
        "logs/demo/demo_expression.benchmark.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("demo_expression"),
        runtime=job_runtime("demo_expression"),
    conda:
        "../../envs/demo.yaml"
    script:
        "../../scripts/demo_expression.py"


rule demo_pgs:
    # A "published" score of the planted quant_trait effects, written against the demo cohort's
    # QC'd variants so that its match counts (swapped, strand-flipped, ambiguous, missing rows)
    # are known answers.
    input:
        truth=f"{DEMO_DIR}/truth.json",
        bim=f"{RESULTS}/demo/qc/qc.bim",
    output:
        scores=f"{DEMO_DIR}/pgs/DEMO000001.txt.gz",
        expected=f"{DEMO_DIR}/pgs/DEMO000001.txt.gz.expected.json",
    log:
        "logs/demo/demo_pgs.log",
    benchmark:
        "logs/demo/demo_pgs.benchmark.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("demo_pgs"),
        runtime=job_runtime("demo_pgs"),
    conda:
        "../../envs/demo.yaml"
    script:
        "../../scripts/demo_pgs.py"
