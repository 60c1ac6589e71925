# Alignment-file QC per sample (cohortflow.alignment): samtools stats/flagstat, mosdepth coverage,
# sex from X/Y depth, contamination at common SNPs; then the cohort table with the sex and
# identity (swap) checks.


rule alignment_sites:
    # Common biallelic SNPs of the cohort's own QC'd genotypes (inside the targets, if any), with
    # their allele frequencies: the contamination and identity checks count bases at them.
    input:
        bed=res("{cohort}", "qc/qc.bed"),
        bim=res("{cohort}", "qc/qc.bim"),
        fam=res("{cohort}", "qc/qc.fam"),
        targets=alignment_targets,
    output:
        vcf=res("{cohort}", "alignment_qc/sites.vcf.gz"),
        tbi=res("{cohort}", "alignment_qc/sites.vcf.gz.tbi"),
    params:
        min_maf=config["alignment_qc"]["site_min_maf"],
    log:
        res("{cohort}", "logs/alignment_sites.log"),
    benchmark:
        res("{cohort}", "benchmarks/alignment_sites.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("alignment_sites"),
        runtime=job_runtime("alignment_sites"),
    conda:
        "../../envs/alignment.yaml"
    script:
        "../../scripts/alignment_sites.py"


rule alignment_qc:
    input:
        bam=alignment_bam,
        index=alignment_index,
        targets=alignment_targets,
        sites=alignment_site_list,
    output:
        stats=res("{cohort}", "alignment_qc/{sample}.stats"),
        flagstat=res("{cohort}", "alignment_qc/{sample}.flagstat"),
        metrics=res("{cohort}", "alignment_qc/{sample}.metrics.tsv"),
        coverage=res("{cohort}", "alignment_qc/{sample}.coverage.tsv"),
        mosdepth_summary=res("{cohort}", "alignment_qc/{sample}.mosdepth.summary.txt"),
        mosdepth_dist=res("{cohort}", "alignment_qc/{sample}.mosdepth.global.dist.txt"),
        site_counts=res("{cohort}", "alignment_qc/{sample}.sites.tsv.gz"),
    params:
        reference=lambda w: COHORTS[w.cohort].get("reference") or None,
        thresholds=config["alignment_qc"]["thresholds"],
    log:
        res("{cohort}", "logs/alignment_qc.{sample}.log"),
    benchmark:
        res("{cohort}", "benchmarks/alignment_qc.{sample}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("alignment_qc"),
        runtime=job_runtime("alignment_qc"),
    conda:
        "../../envs/alignment.yaml"
    script:
        "../../scripts/alignment_qc.py"


rule alignment_qc_summary:
    input:
        metrics=lambda w: expand(res(w.cohort, "alignment_qc/{sample}.metrics.tsv"), sample=sorted(ALIGNMENT[w.cohort])),
        site_counts=lambda w: expand(res(w.cohort, "alignment_qc/{sample}.sites.tsv.gz"), sample=sorted(ALIGNMENT[w.cohort])),
        genotypes=lambda w: [res(w.cohort, f"qc/qc.{ext}") for ext in ("bed", "bim", "fam")] if COHORTS[w.cohort].has_genotypes else [],
        sample_info=lambda w: COHORTS[w.cohort].get("sample_info") or [],
    output:
        # one row per sample (IDs, inferred and reported sex): in snakemake --report only where
        # the config lets reports show sample IDs (the HTML report pseudonymises them otherwise)
        summary=report(res("{cohort}", "alignment_qc/summary.tsv"), caption="../report/alignment_qc_summary.rst",
                       category="Alignment QC") if config["report"]["show_sample_ids"]
                else res("{cohort}", "alignment_qc/summary.tsv"),
        identity=res("{cohort}", "alignment_qc/identity.tsv"),
    params:
        identity=config["alignment_qc"]["identity"],
    log:
        res("{cohort}", "logs/alignment_qc_summary.log"),
    benchmark:
        res("{cohort}", "benchmarks/alignment_qc_summary.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("alignment_qc_summary"),
        runtime=job_runtime("alignment_qc_summary"),
    conda:
        "../../envs/alignment.yaml"
    script:
        "../../scripts/alignment_qc_summary.py"
