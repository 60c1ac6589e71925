# Alignment-file QC per sample (cohortflow.alignment): samtools-stats-compatible metrics.


rule alignment_qc:
    input:
        bam=alignment_bam,
        index=alignment_index,
    output:
        stats=res("{cohort}", "alignment_qc/{sample}.stats"),
        flagstat=res("{cohort}", "alignment_qc/{sample}.flagstat"),
        metrics=res("{cohort}", "alignment_qc/{sample}.metrics.tsv"),
    params:
        reference=lambda w: COHORTS[w.cohort].get("reference") or None,
        thresholds=config["alignment_qc"]["thresholds"],
    log:
        res("{cohort}", "logs/alignment_qc.{sample}.log"),
    benchmark:
        res("{cohort}", "benchmarks/alignment_qc.{sample}.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    conda:
        "../../envs/alignment.yaml"
    script:
        "../../scripts/alignment_qc.py"


rule alignment_qc_summary:
    input:
        metrics=lambda w: expand(res(w.cohort, "alignment_qc/{sample}.metrics.tsv"), sample=sorted(ALIGNMENT[w.cohort])),
    output:
        summary=res("{cohort}", "alignment_qc/summary.tsv"),
    log:
        res("{cohort}", "logs/alignment_qc_summary.log"),
    benchmark:
        res("{cohort}", "benchmarks/alignment_qc_summary.tsv")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/alignment.yaml"
    script:
        "../../scripts/alignment_qc_summary.py"
