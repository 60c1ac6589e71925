# Cross-cohort meta-analysis (cohortflow.meta): every trait that at least two cohorts' GWAS share,
# alleles aligned across cohorts, fixed and random effects, heterogeneity, lead loci and plots.


rule meta_analysis:
    input:
        sumstats=lambda w: [res(c, f"gwas/{w.trait}.tsv.gz") for c in meta_cohorts(w.trait)],
        # the leads' nearest genes: the first of the cohorts' gene annotations, if any
        genes=lambda w: [g for g in (COHORTS[c].get("genes") for c in meta_cohorts(w.trait)) if g][:1],
    output:
        sumstats=f"{RESULTS}/meta/{{trait}}.tsv.gz",
        meta=f"{RESULTS}/meta/{{trait}}.tsv.gz-meta.yaml",
        leads=f"{RESULTS}/meta/{{trait}}.leads.tsv",
        summary=f"{RESULTS}/meta/{{trait}}.summary.json",
        manhattan=f"{RESULTS}/meta/{{trait}}.manhattan.png",
        qq=f"{RESULTS}/meta/{{trait}}.qq.png",
        forest=f"{RESULTS}/meta/{{trait}}.forest.png",
    params:
        names=lambda w: meta_cohorts(w.trait),
        p_threshold=config["gwas"]["p_threshold"],
        locus_window_kb=config["gwas"]["locus_window_kb"],
    log:
        f"{RESULTS}/logs/meta.{{trait}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/meta.{{trait}}.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("meta_analysis"),
        runtime=job_runtime("meta_analysis"),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../../scripts/meta_analysis.py"
