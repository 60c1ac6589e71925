# Variant ingestion (VCF/BCF -> PLINK .bed, sharded per input file, or per contig of a single
# indexed file), genotype QC and ancestry PCA
# (cohortflow.variants).


rule ingest_shard:
    input:
        vcf=lambda w: COHORTS[w.cohort].shard_regions[w.shard][0],
    params:
        region=lambda w: COHORTS[w.cohort].shard_regions[w.shard][1],
    output:
        multiext(res("{cohort}", "genotypes/shards/{shard}"), ".bed", ".bim", ".fam", ".variants.parquet", ".ingest.log"),
    log:
        res("{cohort}", "logs/ingest.{shard}.log"),
    benchmark:
        res("{cohort}", "benchmarks/ingest.{shard}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("ingest_shard"),
        runtime=job_runtime("ingest_shard"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/ingest.py"


rule merge_shards:
    input:
        beds=lambda w: expand(res(w.cohort, "genotypes/shards/{shard}.bed"), shard=list(COHORTS[w.cohort].shards)),
    output:
        multiext(res("{cohort}", "genotypes/raw"), ".bed", ".bim", ".fam", ".variants.parquet"),
    log:
        res("{cohort}", "logs/merge_shards.log"),
    benchmark:
        res("{cohort}", "benchmarks/merge_shards.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("merge_shards"),
        runtime=job_runtime("merge_shards"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/merge_shards.py"


# Relatedness (cohortflow.variants.relatedness): the samples and variants KING uses, once; the
# related pairs per part of the pair triangle (qc.king_parts groups of samples: k (k + 1) / 2
# jobs); the gather writes the kinship table and plink2's --king-cutoff lists, the same bytes for
# any number of parts.
rule relatedness_masks:
    input:
        unpack(lambda w: plink_files(raw_genotypes_prefix(w))),
    output:
        masks=res("{cohort}", "qc/king/masks.npz"),
    params:
        qc=config["qc"],
    log:
        res("{cohort}", "logs/relatedness_masks.log"),
    benchmark:
        res("{cohort}", "benchmarks/relatedness_masks.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("relatedness_masks"),
        runtime=job_runtime("relatedness_masks"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/relatedness_masks.py"


rule relatedness_part:
    input:
        unpack(lambda w: plink_files(raw_genotypes_prefix(w))),
        masks=res("{cohort}", "qc/king/masks.npz"),
    output:
        part=res("{cohort}", "qc/king/part.{part}.npz"),
    params:
        qc=config["qc"],
    log:
        res("{cohort}", "logs/relatedness_part.{part}.log"),
    benchmark:
        res("{cohort}", "benchmarks/relatedness_part.{part}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("relatedness_part"),
        runtime=job_runtime("relatedness_part"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/relatedness_part.py"


rule relatedness:
    input:
        fam=lambda w: f"{raw_genotypes_prefix(w)}.fam",
        masks=res("{cohort}", "qc/king/masks.npz"),
        parts=king_part_files,
    output:
        kinship=res("{cohort}", "qc/qc.kinship.tsv"),
        keep=res("{cohort}", "qc/qc.king.cutoff.in.id"),
        removed=res("{cohort}", "qc/qc.king.cutoff.out.id"),
    params:
        qc=config["qc"],
    log:
        res("{cohort}", "logs/relatedness.log"),
    benchmark:
        res("{cohort}", "benchmarks/relatedness.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("relatedness"),
        runtime=job_runtime("relatedness"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/relatedness.py"


# Genotype QC in per-chromosome jobs (cohortflow.variants.qc): the statistics pass per shard,
# then per shard the variant filters on the samples kept (each job takes the sample decisions
# from all shards' statistics), then the gather; the same bytes as one genotype_qc call.
checkpoint raw_shards:
    input:
        bim=lambda w: f"{raw_genotypes_prefix(w)}.bim",
    output:
        plan=res("{cohort}", "qc/raw.shards.tsv"),
    params:
        max_variants=config["shard_variants"],
    log:
        res("{cohort}", "logs/raw_shards.log"),
    benchmark:
        res("{cohort}", "benchmarks/raw_shards.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("raw_shards"),
        runtime=job_runtime("raw_shards"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/genotype_shards.py"


rule qc_stats_shard:
    input:
        unpack(lambda w: plink_files(raw_genotypes_prefix(w))),
        plan=res("{cohort}", "qc/raw.shards.tsv"),
    output:
        # per-variant counts of the shard and its part of every sample's sums (individual-level)
        stats=temp(res("{cohort}", "qc/shards/{shard}.stats.npz")),
    wildcard_constraints:
        shard="chr[A-Za-z0-9_-]+",
    params:
        qc=config["qc"],
    log:
        res("{cohort}", "logs/qc_stats.{shard}.log"),
    benchmark:
        res("{cohort}", "benchmarks/qc_stats.{shard}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("qc_stats_shard"),
        runtime=job_runtime("qc_stats_shard"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/qc_stats_shard.py"


rule qc_filter_shard:
    input:
        unpack(lambda w: plink_files(raw_genotypes_prefix(w))),
        stats=qc_stats_files,
        plan=res("{cohort}", "qc/raw.shards.tsv"),
        removed=res("{cohort}", "qc/qc.king.cutoff.out.id"),
    output:
        filtered=temp(res("{cohort}", "qc/shards/{shard}.filtered.npz")),
        bed_part=temp(res("{cohort}", "qc/shards/{shard}.bed.part")),
    wildcard_constraints:
        shard="chr[A-Za-z0-9_-]+",
    params:
        qc=config["qc"],
    log:
        res("{cohort}", "logs/qc_filter.{shard}.log"),
    benchmark:
        res("{cohort}", "benchmarks/qc_filter.{shard}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("qc_filter_shard"),
        runtime=job_runtime("qc_filter_shard"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/qc_filter_shard.py"


rule genotype_qc:
    input:
        unpack(lambda w: plink_files(raw_genotypes_prefix(w))),
        stats=qc_stats_files,
        filtered=lambda w: qc_shard_files(w, "filtered.npz"),
        bed_parts=lambda w: qc_shard_files(w, "bed.part"),
        removed=res("{cohort}", "qc/qc.king.cutoff.out.id"),
    output:
        # named one by one (not multiext) so the QC figures can be flagged for the report; the
        # script writes every file from the prefix of the first (qc.bed)
        bed=res("{cohort}", "qc/qc.bed"),
        bim=res("{cohort}", "qc/qc.bim"),
        fam=res("{cohort}", "qc/qc.fam"),
        sample_qc=res("{cohort}", "qc/qc.sample_qc.tsv"),
        variant_qc=res("{cohort}", "qc/qc.variant_qc.tsv"),
        summary=report(res("{cohort}", "qc/qc.summary.json"), caption="../report/genotype_qc_summary.rst",
                       category="Genotype QC and ancestry"),
        sample_qc_png=report(res("{cohort}", "qc/qc.sample_qc.png"), caption="../report/sample_qc.rst",
                             category="Genotype QC and ancestry"),
        variant_qc_png=report(res("{cohort}", "qc/qc.variant_qc.png"), caption="../report/variant_qc.rst",
                              category="Genotype QC and ancestry"),
    params:
        qc=config["qc"],
    log:
        res("{cohort}", "logs/genotype_qc.log"),
    benchmark:
        res("{cohort}", "benchmarks/genotype_qc.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("genotype_qc"),
        runtime=job_runtime("genotype_qc"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/genotype_qc.py"


rule genotype_pca:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        sample_info=lambda w: COHORTS[w.cohort].get("sample_info") or [],
    output:
        pcs=res("{cohort}", "qc/qc.pcs.tsv"),
        eigenvalues=res("{cohort}", "qc/qc.eigenvalues.tsv"),
        prune_in=res("{cohort}", "qc/qc.prune.in"),
        png=report(res("{cohort}", "qc/qc.pca.png"), caption="../report/pca.rst", category="Genotype QC and ancestry"),
        loadings=res("{cohort}", "qc/qc.pca.loadings.tsv"),
        summary=res("{cohort}", "qc/qc.pca.json"),
    params:
        pca=config["pca"],
    log:
        res("{cohort}", "logs/genotype_pca.log"),
    benchmark:
        res("{cohort}", "benchmarks/genotype_pca.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("genotype_pca"),
        runtime=job_runtime("genotype_pca"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/genotype_pca.py"


# The shard plan of the QC'd genotypes (one shard per chromosome, chunks of big ones): the
# per-chromosome jobs of GWAS and score computation (cohortflow.gwas.shards).
checkpoint genotype_shards:
    input:
        bim=res("{cohort}", "qc/qc.bim"),
    output:
        plan=res("{cohort}", "qc/qc.shards.tsv"),
    params:
        max_variants=config["shard_variants"],
    log:
        res("{cohort}", "logs/genotype_shards.log"),
    benchmark:
        res("{cohort}", "benchmarks/genotype_shards.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("genotype_shards"),
        runtime=job_runtime("genotype_shards"),
    conda:
        "../../envs/variants.yaml"
    script:
        "../../scripts/genotype_shards.py"
