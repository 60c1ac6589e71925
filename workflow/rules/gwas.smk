# Association testing per trait (cohortflow.gwas): numba linear/logistic regression with
# covariates and ancestry PCs, GWAS-SSF output, lead loci, Manhattan and QQ plots.


rule gwas_covariates:
    input:
        pcs=res("{cohort}", "qc/qc.pcs.tsv"),
        covar=lambda w: COHORTS[w.cohort].get("covariates") or [],
    output:
        covar=res("{cohort}", "gwas/covariates.tsv"),
    params:
        n_pcs=config["gwas"]["n_pcs"],
    log:
        res("{cohort}", "logs/gwas_covariates.log"),
    benchmark:
        res("{cohort}", "benchmarks/gwas_covariates.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("gwas_covariates"),
        runtime=job_runtime("gwas_covariates"),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../../scripts/gwas_covariates.py"


rule gwas_shard:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        pheno=lambda w: COHORTS[w.cohort].get("phenotypes"),
        covar=res("{cohort}", "gwas/covariates.tsv"),
        plan=res("{cohort}", "qc/qc.shards.tsv"),
    output:
        # one chromosome (or chunk) of the trait's GWAS; gathered by rule gwas, then removed
        with_pcs=temp(res("{cohort}", "gwas/shards/{trait}/{shard}.tsv.gz")),
        without_pcs=temp(res("{cohort}", "gwas/shards/{trait}/{shard}.nopcs.tsv.gz")),
        meta=temp(res("{cohort}", "gwas/shards/{trait}/{shard}.tsv.gz-meta.yaml")),
        meta_nopcs=temp(res("{cohort}", "gwas/shards/{trait}/{shard}.nopcs.tsv.gz-meta.yaml")),
    wildcard_constraints:
        shard="chr[A-Za-z0-9_-]+",
    params:
        covariates=config["gwas"]["covariates"],
        n_pcs=config["gwas"]["n_pcs"],
        firth=config["gwas"]["firth"],
    log:
        res("{cohort}", "logs/gwas.{trait}.{shard}.log"),
    benchmark:
        res("{cohort}", "benchmarks/gwas.{trait}.{shard}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("gwas_shard"),
        runtime=job_runtime("gwas_shard"),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../../scripts/gwas_shard.py"


rule gwas:
    input:
        shards=gwas_shard_files,
    output:
        with_pcs=res("{cohort}", "gwas/{trait}.tsv.gz"),
        without_pcs=res("{cohort}", "gwas/{trait}.nopcs.tsv.gz"),
        # GWAS-SSF metadata sidecars (model, sample size, Firth count)
        meta=res("{cohort}", "gwas/{trait}.tsv.gz-meta.yaml"),
        meta_nopcs=res("{cohort}", "gwas/{trait}.nopcs.tsv.gz-meta.yaml"),
    log:
        res("{cohort}", "logs/gwas.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/gwas.{trait}.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("gwas"),
        runtime=job_runtime("gwas"),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../../scripts/gwas_gather.py"


rule gwas_summary:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        sumstats=res("{cohort}", "gwas/{trait}.tsv.gz"),
        nopcs=res("{cohort}", "gwas/{trait}.nopcs.tsv.gz"),
        genes=lambda w: COHORTS[w.cohort].get("genes") or [],
    output:
        leads=report(res("{cohort}", "gwas/{trait}.leads.tsv"), caption="../report/gwas_leads.rst", category="GWAS",
                     subcategory="{trait}"),
        summary=res("{cohort}", "gwas/{trait}.summary.json"),
        manhattan=report(res("{cohort}", "gwas/{trait}.manhattan.png"), caption="../report/manhattan.rst", category="GWAS",
                         subcategory="{trait}"),
        qq=report(res("{cohort}", "gwas/{trait}.qq.png"), caption="../report/qq.rst", category="GWAS",
                  subcategory="{trait}"),
        # one LocusZoom-style plot per lead locus + index.tsv (how many is known only after clumping)
        regional=report(
            directory(res("{cohort}", "gwas/{trait}.regional")),
            patterns=["{name}.png"],
            caption="../report/regional.rst",
            category="GWAS",
            subcategory="{trait}",
        ),
    params:
        p_threshold=config["gwas"]["p_threshold"],
        locus_window_kb=config["gwas"]["locus_window_kb"],
        clump_r2=config["gwas"]["clump_r2"],
        clump_kb=config["gwas"]["clump_kb"],
        clump_p2=config["gwas"]["clump_p2"],
        regional_plots_max=config["gwas"]["regional_plots_max"],
    log:
        res("{cohort}", "logs/gwas_summary.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/gwas_summary.{trait}.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("gwas_summary"),
        runtime=job_runtime("gwas_summary"),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../../scripts/gwas_summary.py"
