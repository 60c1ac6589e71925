"""`cohortflow` command line: one subcommand per stage, calling the same library functions as the
workflow's rules. A user error prints one line (`cohortflow: error: ...`) and exits 1."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from cohortflow import __version__
from cohortflow.errors import CohortflowError


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def _cmd_simulate_demo(a):
    from cohortflow.demo.genome import simulate_genotypes
    from cohortflow.demo.reads import parse_region, simulate_reads, write_alignment_targets
    from cohortflow.demo.singlecell import simulate_expression
    from pathlib import Path

    out = Path(a.out_dir)
    simulate_genotypes(out, n_individuals=a.n_individuals, n_populations=a.n_populations,
                       n_chromosomes=a.n_chromosomes, chrom_length=a.chrom_length, seed=a.seed)
    # the same reads as the workflow's demo (config demo.reads defaults): SNP windows, X/Y by sex
    # and, with --contaminate SAMPLE:SOURCE:FRACTION, a planted contamination
    haplotypes = out / "genotypes" / "true_haplotypes.npz"
    region, x_region, y_region = parse_region(a.region), parse_region("X:150001-250000"), parse_region("Y:50001-150000")
    contamination = None
    if a.contaminate:
        sample, source, fraction = a.contaminate.split(":")
        contamination = {"sample": sample, "source": source, "fraction": float(fraction)}
    simulate_reads(out, reference=out / "reference.fa", haplotypes=haplotypes, samples=a.bam_samples.split(","),
                   region=region, coverage=a.coverage, n_site_windows=a.site_windows, x_region=x_region,
                   y_region=y_region, sample_info=out / "samples.tsv", contamination=contamination, seed=a.seed)
    write_alignment_targets(out / "alignment_targets.bed", reference=out / "reference.fa", haplotypes=haplotypes,
                            region=region, n_site_windows=a.site_windows, x_region=x_region, y_region=y_region,
                            seed=a.seed)
    vcfs = sorted(str(p) for p in (out / "genotypes").glob("chr*.vcf.gz"))
    simulate_expression(out, genes_gtf=out / "genes.gtf", truth_json=out / "truth.json", vcf_paths=vcfs,
                        n_cells=a.n_cells, n_donors=a.n_donors, n_spots=a.n_spots, seed=a.seed)


def _cmd_alignment_qc(a):
    from cohortflow.alignment.api import alignment_qc

    alignment_qc(a.bam, out_prefix=a.out, reference=a.reference, regions=a.regions, sites=a.sites,
                 sample=a.sample, threads=a.threads, per_base=a.per_base)


def _cmd_alignment_summary(a):
    from cohortflow.alignment.api import summarize_alignment_qc

    prefixes = a.prefixes
    summarize_alignment_qc([f"{p}.metrics.tsv" for p in prefixes], out=a.out,
                           site_counts=[f"{p}.sites.tsv.gz" for p in prefixes] if a.genotypes else None,
                           genotypes=a.genotypes, sample_info=a.sample_info, identity_out=a.identity_out)


def _cmd_alignment_sites(a):
    from cohortflow.alignment.sites import sites_from_plink

    sites_from_plink(a.bfile, out=a.out, min_maf=a.min_maf, regions=a.regions)


def _cmd_depth(a):
    from cohortflow.alignment.api import depth

    depth(a.bam, out_prefix=a.out, reference=a.reference, regions=a.regions, per_base=not a.no_per_base,
          threads=a.threads, exclude_flags=a.flag, min_mapq=a.mapq, count_overlaps=a.count_overlaps)


def _cmd_ingest(a):
    from cohortflow.variants.ingest import ingest_vcf

    ingest_vcf(a.vcf, out_prefix=a.out, region=a.region, half_call=a.half_call, threads=a.threads)


def _cmd_merge(a):
    from cohortflow.variants.ingest import merge_bed_shards

    merge_bed_shards(a.bfiles, out_prefix=a.out)


def _cmd_qc(a):
    from cohortflow.variants.pipeline import quality_control

    quality_control(a.bfile, out_prefix=a.out, geno=a.geno, mind=a.mind, maf=a.maf, hwe=a.hwe,
                    king_cutoff=None if a.king_cutoff < 0 else a.king_cutoff,
                    king_max_variants=a.king_max_variants or None, remove_sex_problems=a.remove_sex_problems, n_pcs=a.n_pcs, sample_info=a.sample_info,
                    threads=a.threads)


def _cmd_pca(a):
    from cohortflow.variants.pca import genotype_pca

    genotype_pca(a.bfile, out_prefix=a.out, n_pcs=a.n_pcs, maf=a.maf, prune_window_kb=a.prune_window_kb,
                 prune_r2=a.prune_r2, sample_info=a.sample_info)


def _cmd_project_pcs(a):
    from cohortflow.variants.pca import project_pcs

    project_pcs(a.bfile, loadings=a.loadings, out=a.out)


def _cmd_gwas(a):
    from cohortflow.gwas.api import run_gwas

    run_gwas(bfile=a.bfile, pheno=a.pheno, pheno_names=a.pheno_name, covar=a.covar, covar_names=a.covar_name,
             model=a.model, firth=a.firth, sex_covariate=a.sex, x_sex=not a.no_x_sex, out_prefix=a.out,
             threads=a.threads)


def _cmd_gwas_summary(a):
    from cohortflow.gwas.summary import summarize_gwas

    summarize_gwas(a.sumstats, genes_gtf=a.genes, nopcs_sumstats=a.nopcs, trait=a.trait,
                   out_leads=f"{a.out}.leads.tsv", out_summary=f"{a.out}.summary.json",
                   out_manhattan=f"{a.out}.manhattan.png", out_qq=f"{a.out}.qq.png",
                   p_threshold=a.p_threshold, locus_window_kb=a.locus_window_kb, bfile=a.bfile,
                   clump_r2=a.clump_r2, clump_kb=a.clump_kb, clump_p2=a.clump_p2,
                   out_regional_dir=(a.regional_dir or f"{a.out}.regional") if a.bfile else None,
                   max_regional_plots=a.regional_max, threads=a.threads)


def _thresholds(values: list[str]) -> tuple[float, ...]:
    """``--p-thresholds 5e-8 1e-4`` or ``--p-thresholds 5e-8,1e-4``."""
    return tuple(float(x) for v in values for x in v.split(",") if x)


def _cmd_prs_split(a):
    from cohortflow.prs.split import split_samples

    split_samples(bfile=a.bfile, pheno=a.pheno, trait=a.trait, covar=a.covar, covar_names=a.covar_name,
                  fractions=_floats(a.fractions), seed=a.seed, out=a.out)


def _cmd_prs_discovery_gwas(a):
    from cohortflow.prs.split import discovery_gwas

    discovery_gwas(bfile=a.bfile, pheno=a.pheno, trait=a.trait, split=a.split, covar=a.covar,
                   covar_names=a.covar_name, out=a.out, threads=a.threads)


def _cmd_prs_ct(a):
    from cohortflow.prs.ct import DEFAULT_P_THRESHOLDS, prs_ct

    prs_ct(bfile=a.bfile, sumstats=a.sumstats, out_prefix=a.out, clump_p1=a.clump_p1, clump_p2=a.clump_p2,
           clump_r2=a.clump_r2, clump_kb=a.clump_kb,
           p_thresholds=_thresholds(a.p_thresholds) if a.p_thresholds else DEFAULT_P_THRESHOLDS,
           ld_samples=_read_ids(a.ld_keep), keep_ambiguous=a.keep_ambiguous, n=a.n, threads=a.threads)


def _cmd_prs_bayes(a):
    from cohortflow.prs.api import prs_bayes_scores

    chain_options = {k: v for k, v in (("n_chains", a.chains), ("burn_in", a.burn_in), ("n_iter", a.iter))
                     if v is not None}  # unset: the library's defaults
    prs_bayes_scores(bfile=a.bfile, sumstats=a.sumstats, out_prefix=a.out, ld_bfile=a.ld_bfile,
                     ld_samples=_read_ids(a.ld_keep), n=a.n, seed=a.seed, blocks_bed=a.blocks,
                     keep_ambiguous=a.keep_ambiguous, threads=a.threads, **chain_options)


def _cmd_prs_evaluate(a):
    from cohortflow.prs.evaluate import evaluate_scores

    evaluate_scores(scores=a.scores, pheno=a.pheno, trait=a.trait, split=a.split, covar=a.covar,
                    covar_names=a.covar_name, groups=a.groups, group_column=a.group_column,
                    n_pcs_groups=a.n_pcs_groups, n_boot=a.n_boot, seed=a.seed, min_cell_count=a.min_cell_count,
                    trait_type=a.trait_type, out_prefix=a.out, threads=a.threads)


def _cmd_sumstats(a):
    from cohortflow.io.sumstats_formats import harmonise_sumstats

    harmonise_sumstats(a.input, a.out, bim=a.bim, n=a.n, build=a.build, study=a.study,
                       effect_allele_column=a.effect_allele_column)


def _cmd_meta(a):
    from cohortflow.meta.api import meta_analyse, meta_analyse_bundles

    options = dict(names=a.names, p_threshold=a.p_threshold, locus_window_kb=a.locus_window_kb,
                   palindromic_margin=a.palindromic_margin, keep_palindromic=a.keep_palindromic,
                   genes_gtf=a.genes, threads=a.threads)
    if a.bundles:
        meta_analyse_bundles(bundles=a.bundles, out=a.out, trait=a.trait, **options)
    else:
        meta_analyse(sumstats=a.sumstats, out=a.out, trait=a.trait, **options)


def _read_ids(path: str | None) -> list[str] | None:
    """IIDs from a plink-style keep file (``IID`` or ``FID IID`` per line; a header line starting
    with ``#`` or ``IID`` is skipped)."""
    if path is None:
        return None
    from pathlib import Path

    try:
        lines = Path(path).read_text().split("\n")
    except OSError as exc:
        raise CohortflowError(f"cannot read ({exc.strerror})", path=path) from None
    ids = []
    for line in lines:
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[-1] == "IID":
            continue
        ids.append(fields[1] if len(fields) > 1 else fields[0])
    if not ids:
        raise CohortflowError("no sample IDs", path=path)
    return ids


def _cmd_pgs_score(a):
    from cohortflow.prs.pgs import score_pgs

    score_pgs(bfile=a.bfile, scores=a.scores, min_overlap=a.min_overlap, keep_ambiguous=a.keep_ambiguous,
              pheno=a.pheno, traits=a.trait, out_prefix=a.out, threads=a.threads)


def _cmd_sc(a):
    from pathlib import Path

    from cohortflow.singlecell.pipeline import run_singlecell

    out = Path(a.out)
    stem = out.with_suffix("")  # OUT.h5ad -> OUT.summary.json, OUT.umap.png, OUT.markers.png, OUT.qc.png
    run_singlecell(a.h5ad, markers=a.markers, out_h5ad=out, out_summary=f"{stem}.summary.json",
                   out_umap_png=f"{stem}.umap.png", out_markers_png=f"{stem}.markers.png", out_qc_png=f"{stem}.qc.png",
                   truth=a.truth, min_genes=a.min_genes, min_cells=a.min_cells, max_pct_mito=a.max_pct_mito,
                   remove_doublets=not a.keep_doublets, doublet_batch_key=a.doublet_batch_key, n_hvg=a.n_hvg,
                   n_pcs=a.n_pcs, n_neighbors=a.n_neighbors, leiden_resolution=a.leiden_resolution, seed=a.seed,
                   threads=a.threads)


def _cmd_spatial(a):
    from pathlib import Path

    from cohortflow.singlecell.spatial import run_spatial

    out = Path(a.out)
    run_spatial(a.h5ad, out_h5ad=out, out_summary=out.with_suffix(".summary.json"), out_png=out.with_suffix(".png"),
                out_table=out.with_suffix(".autocorr.tsv"), out_nhood_png=out.with_suffix(".nhood.png"),
                graph=a.graph, n_neighbors=a.n_neighbors,
                radius=a.radius, n_perms=a.n_perms, nhood_perms=a.nhood_perms, cell_type_key=a.cell_type_key,
                max_genes=a.max_genes, seed=a.seed, label_reference=a.label_reference,
                label_reference_key=a.label_reference_key, threads=a.threads)


def _cmd_spatial_import(a):
    from cohortflow.io.atomic import atomic_path
    from cohortflow.io.spatial_formats import read_spatial

    kwargs = {"coordinates": a.coordinates, "labels": a.labels} if a.format == "seqfish" else {}
    if a.format == "visium":
        kwargs["in_tissue_only"] = not a.all_spots
    adata = read_spatial(a.format, a.path, **kwargs)
    with atomic_path(a.out) as tmp:
        adata.write_h5ad(tmp)
    print(f"{a.out}: {adata.n_obs} cells/spots x {adata.n_vars} genes ({a.format}; "
          f"{adata.uns['spatial_import']['dropped_features']} control features dropped)")


def _cmd_gene_scores(a):
    from cohortflow.singlecell.integration import gene_scores

    gene_scores(bfile=a.bfile, sumstats=a.sumstats, genes_gtf=a.genes, window_kb=a.window_kb, out=a.out)


def _cmd_disease_score(a):
    from cohortflow.singlecell.scdrs import disease_score_files

    disease_score_files(h5ad=a.h5ad, gene_scores=a.gene_scores, gene_set=a.gene_set, trait=a.trait,
                        n_genes=a.n_genes, fdr=a.fdr, fwer=a.fwer, n_min=a.n_min, n_ctrl=a.n_ctrl,
                        covariates=a.covariates, seed=a.seed, group_key=a.group_key, write_h5ad=not a.no_h5ad, n_perms=a.n_perms, out=a.out)


def _cmd_cell_eqtl(a):
    from pathlib import Path

    from cohortflow.singlecell.eqtl import run_cell_eqtl

    out = Path(a.out)
    stem = out.name.removesuffix(".tsv")
    run_cell_eqtl(a.h5ad, bfile=a.bfile, variants=a.variants, variant_ids=a.variant_id, out_tsv=out,
                  out_summary=out.with_name(stem + ".summary.json"), out_png=out.with_name(stem + ".png"),
                  genes_gtf=a.genes, covariates=a.covariates, covariate_names=a.covariate_names, pcs=a.pcs,
                  n_pcs=a.n_pcs, cell_type_key=a.cell_type_key, donor_key=a.donor_key, layer=a.layer,
                  window_kb=a.window_kb, min_cells=a.min_cells, min_donors=a.min_donors,
                  min_donor_fraction=a.min_donor_fraction, fdr=a.fdr, max_plots=a.max_plots)


def _cmd_report(a):
    import yaml

    from cohortflow.provenance import git_commit
    from cohortflow.report.api import build_report

    config = yaml.safe_load(open(a.config)) if a.config else {}
    build_report(results_dir=a.results_dir, cohort=a.cohort, out_html=a.out, config=config,
                 command_line=" ".join(sys.argv), git_commit=git_commit())


def _cmd_report_index(a):
    from cohortflow.report.index import build_index

    build_index(results_root=a.results, cohorts=a.cohorts, out_html=a.out, min_cell_count=a.min_cell_count)


def _cmd_check_truth(a):
    from cohortflow.demo.validate import check_truth

    result = check_truth(truth_json=a.truth, results_dir=a.results_dir, out=a.out)
    for c in result["checks"]:
        print(f"{'PASS' if c['passed'] else 'FAIL'}\t{c['stage']}\t{c['check']}\t{c['observed']}")


def _cmd_export(a):
    import yaml

    from cohortflow.export.bundle import DEFAULT_MIN_MAC, export_bundle
    from cohortflow.provenance import git_commit

    config = {}
    if a.config:
        try:
            with open(a.config, encoding="utf-8") as fh:
                config = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CohortflowError(f"cannot read the config ({str(exc).splitlines()[0]})", path=a.config) from None
    min_mac = a.min_mac if a.min_mac is not None else (config.get("export") or {}).get("min_mac", DEFAULT_MIN_MAC)
    min_cells = (a.min_cell_count if a.min_cell_count is not None
                 else (config.get("privacy") or {}).get("min_cell_count", 5))
    manifest = export_bundle(cohort_results=a.cohort_results, out=a.out, cohort=a.cohort, min_mac=min_mac,
                             min_cell_count=min_cells, config=config, created=a.created, git_commit=git_commit())
    removed = ", ".join(f"{t}: {s['variants_in'] - s['variants_out']} of {s['variants_in']} variants removed"
                        for t, s in manifest["filters"]["gwas"].items())
    print(f"{a.out}: {len(manifest['members']) + 1} members, disclosure check passed ({removed})")


def _cmd_check_bundle(a):
    from cohortflow.export.bundle import cohort_sample_ids
    from cohortflow.export.disclosure import DisclosureError, check_bundle

    ids, counts = cohort_sample_ids(a.cohort_results) if a.cohort_results else (set(), set())
    for path in a.sample_ids or []:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                rows = [line.split() for line in fh if line.strip()]
        except OSError as exc:
            raise CohortflowError(f"cannot read ({exc.strerror})", path=path) from None
        ids.update(r[1] if path.endswith(".fam") and len(r) > 1 else r[0] for r in rows)  # .fam: IIDs
    findings = check_bundle(a.bundle, min_cell_count=a.min_cell_count, sample_ids=ids or None, n_samples=counts)
    for finding in findings:
        print(f"{finding.rule}\t{finding}")
    if findings:
        raise DisclosureError(a.bundle, findings)
    print(f"{a.bundle}: disclosure check passed" + ("" if ids else " (no sample IDs given: ID rules skipped)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cohortflow", description="cohortflow stages as commands (the workflow's rules call the same functions).")
    parser.add_argument("--version", action="version", version=f"cohortflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("simulate-demo", _cmd_simulate_demo, "simulate the demo cohort (genotypes, phenotypes, reads, single-cell, spatial)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n-individuals", type=int, default=2000)
    p.add_argument("--n-populations", type=int, default=3)
    p.add_argument("--n-chromosomes", type=int, default=3)
    p.add_argument("--chrom-length", type=int, default=4_000_000)
    p.add_argument("--region", default="1:1000001-1200000", help="region of the simulated reads")
    p.add_argument("--coverage", type=float, default=15)
    p.add_argument("--bam-samples", default="S00001,S00002,S00003,S00004,S00005,S00006")
    p.add_argument("--site-windows", type=int, default=1000, help="1 kb read windows around common SNPs")
    p.add_argument("--contaminate", default="S00005:S00008:0.10", help="SAMPLE:SOURCE:FRACTION ('' for none)")
    p.add_argument("--n-cells", type=int, default=6000)
    p.add_argument("--n-donors", type=int, default=40)
    p.add_argument("--n-spots", type=int, default=2500)

    p = add("alignment-qc", _cmd_alignment_qc,
            "QC of one BAM/CRAM/SAM in one pass: samtools stats/flagstat, mosdepth coverage, sex, metrics row")
    p.add_argument("--bam", required=True, help="BAM, CRAM or SAM")
    p.add_argument("--reference", help="reference FASTA (required for CRAM)")
    p.add_argument("--regions", help="BED of target regions (the file must be sorted and indexed)")
    p.add_argument("--sites", help="VCF/BCF of common SNPs with INFO/AF: contamination estimate and "
                                   "PREFIX.sites.tsv.gz (the file must be sorted and indexed)")
    p.add_argument("--sample")
    p.add_argument("--per-base", action="store_true", help="also write PREFIX.per-base.bed.gz")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix")

    p = add("alignment-summary", _cmd_alignment_summary,
            "cohort table of alignment-qc results: sex check vs reported sex, identity (swap) check vs genotypes")
    p.add_argument("prefixes", nargs="+", help="alignment-qc output prefixes (PREFIX.metrics.tsv, PREFIX.sites.tsv.gz)")
    p.add_argument("--genotypes", help="PLINK prefix of the cohort's genotype calls (identity check)")
    p.add_argument("--sample-info", help="TSV with IID and sex (1/M, 2/F) columns (sex check)")
    p.add_argument("--identity-out", help="per-BAM identity table (needs --genotypes)")
    p.add_argument("--out", required=True, help="summary TSV")

    p = add("alignment-sites", _cmd_alignment_sites, "sites VCF (common SNPs with AF) from PLINK genotypes")
    p.add_argument("--bfile", required=True, help="PLINK prefix")
    p.add_argument("--regions", help="BED: keep sites inside")
    p.add_argument("--min-maf", type=float, default=0.05)
    p.add_argument("--out", required=True, help="output .vcf.gz (+ .tbi)")

    p = add("depth", _cmd_depth, "per-base depth of one BAM/CRAM, mosdepth's outputs (+ coverage.tsv)")
    p.add_argument("--bam", required=True, help="BAM, CRAM or SAM (coordinate-sorted)")
    p.add_argument("--reference", help="reference FASTA (required for CRAM)")
    p.add_argument("--regions", help="BED of regions (the file must be indexed)")
    p.add_argument("--no-per-base", action="store_true", help="skip PREFIX.per-base.bed.gz")
    p.add_argument("--flag", type=int, default=1796, help="skip reads with any of these flag bits [1796]")
    p.add_argument("--mapq", type=int, default=0, help="skip reads with MAPQ below this [0]")
    p.add_argument("--count-overlaps", action="store_true",
                   help="count both mates where they overlap (samtools depth), not once (mosdepth)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix")

    p = add("ingest", _cmd_ingest, "VCF/BCF -> PLINK .bed/.bim/.fam + variant table")
    p.add_argument("--vcf", nargs="+", required=True)
    p.add_argument("--region", help="CHR[:START-END]")
    p.add_argument("--half-call", choices=["haploid", "missing"], default="haploid")
    p.add_argument("--threads", type=int, default=1, help="threads for decompression-overlapped parsing")
    p.add_argument("--out", required=True, help="output prefix")

    p = add("merge", _cmd_merge, "concatenate per-chromosome PLINK shards")
    p.add_argument("--bfiles", nargs="+", required=True)
    p.add_argument("--out", required=True)

    p = add("qc", _cmd_qc, "genotype QC (as plink2): relatedness (KING), call rates, sex check, MAF, HWE; then PCA")
    p.add_argument("--bfile", required=True)
    p.add_argument("--geno", type=float, default=0.05)
    p.add_argument("--mind", type=float, default=0.05)
    p.add_argument("--maf", type=float, default=0.01)
    p.add_argument("--hwe", type=float, default=1e-6)
    p.add_argument("--king-cutoff", type=float, default=0.0884,
                   help="remove relatives above this KING kinship (plink2 --king-cutoff); negative: keep all")
    p.add_argument("--king-max-variants", type=int, default=100_000,
                   help="KING kinship on at most this many QC-passing variants, evenly spaced; 0: all")
    p.add_argument("--remove-sex-problems", action="store_true", help="remove samples failing the sex check")
    p.add_argument("--n-pcs", type=int, default=10)
    p.add_argument("--sample-info", help="TSV with IID and population (colours the PCA plot)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)

    p = add("pca", _cmd_pca, "ancestry PCA on LD-pruned common variants")
    p.add_argument("--bfile", required=True)
    p.add_argument("--n-pcs", type=int, default=10)
    p.add_argument("--maf", type=float, default=0.05)
    p.add_argument("--prune-window-kb", type=float, default=500)
    p.add_argument("--prune-r2", type=float, default=0.2)
    p.add_argument("--sample-info", help="TSV with IID and population (colours the plot)")
    p.add_argument("--out", required=True)

    p = add("project-pcs", _cmd_project_pcs, "project samples onto existing PCs (from a .pca.loadings.tsv)")
    p.add_argument("--bfile", required=True)
    p.add_argument("--loadings", required=True, help="{prefix}.pca.loadings.tsv of the reference PCA")
    p.add_argument("--out", required=True, help="output prefix: {out}.pcs.tsv, {out}.projection.json")

    p = add("gwas", _cmd_gwas, "association tests (linear/logistic with covariates), GWAS-SSF output")
    p.add_argument("--bfile", required=True)
    p.add_argument("--pheno", required=True)
    p.add_argument("--pheno-name", nargs="+")
    p.add_argument("--covar")
    p.add_argument("--covar-name", nargs="+")
    p.add_argument("--model", choices=["auto", "linear", "logistic"], default="auto",
                   help="auto: logistic for 1/2 or 0/1 traits, else linear")
    firth = p.add_mutually_exclusive_group()
    firth.add_argument("--firth-fallback", dest="firth", action="store_const", const="fallback",
                       help="refit logistic regressions that fail (separation, no convergence) by Firth (default)")
    firth.add_argument("--firth", dest="firth", action="store_const", const="always",
                       help="Firth-penalised logistic regression for every variant")
    firth.add_argument("--no-firth", dest="firth", action="store_const", const="never",
                       help="no Firth: failed fits get an errcode")
    p.set_defaults(firth="fallback")
    p.add_argument("--covar-variance-standardize", action="store_true",
                   help="accepted for plink2 compatibility: covariates are always standardised internally")
    p.add_argument("--sex", action="store_true", help="the .fam sex as a covariate on every chromosome")
    p.add_argument("--no-x-sex", action="store_true",
                   help="do not add the .fam sex as a covariate on chromosome X (added by default, as plink2)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix: OUT.{pheno}.tsv.gz (+ -meta.yaml)")

    p = add("gwas-summary", _cmd_gwas_summary, "lambda GC, lead loci, Manhattan and QQ plots")
    p.add_argument("--sumstats", required=True)
    p.add_argument("--nopcs", help="the same GWAS without PC covariates (QQ comparison)")
    p.add_argument("--genes", help="GTF for nearest genes")
    p.add_argument("--trait", required=True)
    p.add_argument("--p-threshold", type=float, default=5e-8)
    p.add_argument("--locus-window-kb", type=float, default=250)
    p.add_argument("--bfile", help="the cohort's PLINK prefix: lead loci by LD clumping (as plink1.9 --clump) "
                   "and regional plots; without it, by distance")
    p.add_argument("--clump-r2", type=float, default=0.1)
    p.add_argument("--clump-kb", type=float, default=250)
    p.add_argument("--clump-p2", type=float, default=0.01)
    p.add_argument("--regional-dir", help="directory for regional plots (default OUT.regional)")
    p.add_argument("--regional-max", type=int, default=20, help="regional plots for at most this many loci")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix")

    p = add("sumstats", _cmd_sumstats, "harmonise GWAS summary statistics (GWAS-SSF, GWAS-VCF, OpenGWAS, PRS-CS, "
            "SSGAC and similar tables) to GWAS-SSF with a log of what was dropped")
    p.add_argument("--in", dest="input", required=True, help="summary statistics (plain, gzip or bgzip; VCF/BCF)")
    p.add_argument("--bim", help="PLINK prefix or .bim giving positions to rsID-only files")
    p.add_argument("--n", type=float, help="sample size where the file has none")
    p.add_argument("--build", choices=["GRCh37", "GRCh38"], help="expected genome build (checked where the file says)")
    p.add_argument("--study", help="sample column of a multi-study GWAS-VCF")
    p.add_argument("--effect-allele-column", help="column holding the effect allele (overrides the layout's rule)")
    p.add_argument("--out", required=True, help="OUT.tsv.gz (GWAS-SSF); the log goes to OUT.harmonise.json")

    p = add("meta", _cmd_meta, "meta-analysis of several cohorts' GWAS: allele alignment, fixed and random effects, "
            "heterogeneity, lead loci, Manhattan/QQ/forest plots")
    inputs = p.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--bundles", nargs="+", help="export bundles (BUNDLE.tar.gz with gwas/<trait>.tsv.gz): "
                        "each trait in every bundle, or --trait")
    inputs.add_argument("--sumstats", nargs="+", help="GWAS-SSF files, one per cohort (alleles aligned to the first)")
    p.add_argument("--names", nargs="+", help="cohort names, in input order (default: file names; bundles: "
                   "their manifest's cohort)")
    p.add_argument("--trait", help="the trait to meta-analyse from the bundles (default: every common trait, "
                   "written to OUT.<trait>.*); the trait's name with --sumstats")
    p.add_argument("--p-threshold", type=float, default=5e-8)
    p.add_argument("--locus-window-kb", type=float, default=250, help="lead loci: no other lead within this distance")
    p.add_argument("--palindromic-margin", type=float, default=0.1,
                   help="A/T and C/G SNPs kept only when |eaf - 0.5| exceeds this in the cohort and the reference")
    p.add_argument("--keep-palindromic", action="store_true", help="align A/T and C/G SNPs by their labels")
    p.add_argument("--genes", help="GTF for the leads' nearest genes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix: OUT.tsv.gz (+ -meta.yaml), OUT.leads.tsv, "
                   "OUT.summary.json, OUT.manhattan.png, OUT.qq.png, OUT.forest.png")

    prs = sub.add_parser("prs", help="polygenic risk scores: split, discovery-gwas, ct, bayes, score, evaluate",
                         description="polygenic risk scores")
    prs_sub = prs.add_subparsers(dest="prs_command", required=True, metavar="METHOD")

    def add_prs(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = prs_sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add_prs("split", _cmd_prs_split, "split the samples analysable for a trait into discovery, validation "
                "and test sets (stratified by case status)")
    p.add_argument("--bfile", required=True)
    p.add_argument("--pheno", required=True)
    p.add_argument("--trait", required=True)
    p.add_argument("--covar")
    p.add_argument("--covar-name", nargs="+")
    p.add_argument("--fractions", default="0.6,0.2,0.2", help="discovery,validation,test (default 0.6,0.2,0.2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="split file (#FID IID split)")
    p = add_prs("discovery-gwas", _cmd_prs_discovery_gwas, "GWAS of a trait on the discovery samples of a split")
    p.add_argument("--bfile", required=True)
    p.add_argument("--pheno", required=True)
    p.add_argument("--trait", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--covar")
    p.add_argument("--covar-name", nargs="+")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="OUT.tsv.gz (GWAS-SSF)")
    p = add_prs("ct", _cmd_prs_ct, "clumping + thresholding scores from summary statistics (clumping as plink1.9 "
                "--clump), one score column per p-value threshold")
    p.add_argument("--bfile", required=True)
    p.add_argument("--sumstats", required=True, help="GWAS-SSF or another layout `cohortflow sumstats` reads")
    p.add_argument("--clump-p1", type=float, default=1.0)
    p.add_argument("--clump-p2", type=float, help="significant clump members (default --clump-p1)")
    p.add_argument("--clump-r2", type=float, default=0.1)
    p.add_argument("--clump-kb", type=float, default=250)
    p.add_argument("--p-thresholds", nargs="+",
                   help="p-value thresholds, one score each (default 5e-8 1e-6 1e-4 1e-3 1e-2 0.05 0.1 0.5 1)")
    p.add_argument("--ld-keep", help="samples whose genotypes give the LD (FID IID per line; default all founders)")
    p.add_argument("--keep-ambiguous", action="store_true", help="keep A/T and C/G SNPs")
    p.add_argument("--n", type=float, help="sample size where the summary statistics have none")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix")
    p = add_prs("bayes", _cmd_prs_bayes, "LD-aware Bayesian score (LDpred2-auto model, Gibbs chains, divergence "
                "checks) from summary statistics, LD in blocks from the cohort or a reference panel")
    p.add_argument("--bfile", required=True)
    p.add_argument("--sumstats", required=True, help="GWAS-SSF or another layout `cohortflow sumstats` reads")
    p.add_argument("--ld-bfile", help="LD reference panel (default --bfile)")
    p.add_argument("--ld-keep", help="samples of the LD panel to use (FID IID per line)")
    p.add_argument("--blocks", help="BED file of LD blocks (default: cut where LD is weakest)")
    p.add_argument("--n", type=float, help="GWAS sample size where the summary statistics have none")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--chains", type=int, help="Gibbs chains, one per starting p (default 8)")
    p.add_argument("--burn-in", type=int, help="sweeps discarded per chain")
    p.add_argument("--iter", type=int, help="sweeps averaged per chain after the burn-in")
    p.add_argument("--keep-ambiguous", action="store_true", help="keep A/T and C/G SNPs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix")
    p = add_prs("evaluate", _cmd_prs_evaluate, "choose each score's threshold / hyper-parameters on the validation "
                "split, report it on the test split with bootstrap CIs, by decile and by ancestry group")
    p.add_argument("--scores", nargs="+", required=True, help="score files (IID + columns named method_label)")
    p.add_argument("--pheno", required=True)
    p.add_argument("--trait", required=True)
    p.add_argument("--split", required=True, help="#FID IID split (discovery / validation / test)")
    p.add_argument("--covar")
    p.add_argument("--covar-name", nargs="+")
    p.add_argument("--groups", help="ancestry groups: a table with IID and --group-column, or PCs (#FID IID PC1..) "
                   "with --n-pcs-groups")
    p.add_argument("--group-column")
    p.add_argument("--n-pcs-groups", type=int)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-cell-count", type=int, default=5)
    p.add_argument("--trait-type", choices=["auto", "quantitative", "binary"], default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix")
    p = prs_sub.add_parser("score", help="score PGS Catalog scoring files (allele matching report, SUM and AVG)",
                           description="score PGS Catalog scoring files (allele matching report, SUM and AVG)")
    p.set_defaults(func=_cmd_pgs_score)
    p.add_argument("--bfile", required=True)
    p.add_argument("--scores", nargs="+", required=True, help="PGS Catalog scoring files or weight tables")
    p.add_argument("--min-overlap", type=float, default=0.75)
    p.add_argument("--keep-ambiguous", action="store_true", help="keep A/T and C/G SNPs")
    p.add_argument("--pheno", help="phenotype file: report r / AUC of each score with --trait")
    p.add_argument("--trait", nargs="+")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="output prefix")

    p = add("sc", _cmd_sc, "scanpy chain and marker-based cell-type annotation")
    p.add_argument("--h5ad", required=True, help="raw counts (X, layers['counts'] or raw), or processed data")
    p.add_argument("--markers", help="TSV cell_type, gene (default: the PBMC table shipped with cohortflow)")
    p.add_argument("--out", required=True, help="OUT.h5ad (also OUT.summary.json, OUT.umap/markers/qc.png)")
    p.add_argument("--truth", help="TSV barcode, true_cell_type[, artefact]: adds the ARI to the summary")
    p.add_argument("--min-genes", type=int, default=200)
    p.add_argument("--min-cells", type=int, default=3)
    p.add_argument("--max-pct-mito", type=float, default=20.0)
    p.add_argument("--keep-doublets", action="store_true", help="score doublets but keep them")
    p.add_argument("--doublet-batch-key", default="donor",
                   help="obs column: Scrublet per batch when every batch has >= 2,000 cells (default donor)")
    p.add_argument("--n-hvg", type=int, default=2000)
    p.add_argument("--n-pcs", type=int, default=30)
    p.add_argument("--n-neighbors", type=int, default=15)
    p.add_argument("--leiden-resolution", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)

    p = add("spatial", _cmd_spatial, "spatial neighbour graph, Moran's I and Geary's C")
    p.add_argument("--h5ad", required=True)
    p.add_argument("--graph", choices=["knn", "radius", "delaunay"], default="knn")
    p.add_argument("--n-neighbors", type=int, default=6, help="knn: neighbours per cell (squidpy n_neighs)")
    p.add_argument("--radius", type=float, default=None,
                   help="radius graph: distance cut-off (default 1.2 x median nearest-neighbour distance)")
    p.add_argument("--n-perms", type=int, default=199, help="permutations for Moran's I / Geary's C (0: none)")
    p.add_argument("--nhood-perms", type=int, default=1000, help="permutations for neighbourhood enrichment")
    p.add_argument("--cell-type-key", default="cell_type", help="obs column for neighbourhood enrichment")
    p.add_argument("--max-genes", type=int, default=2000)
    p.add_argument("--label-reference", default=None,
                   help="annotated reference .h5ad: its labels are transferred to the cells (obs['transferred_label'])")
    p.add_argument("--label-reference-key", default="cell_type", help="obs column of the reference's labels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True,
                   help="OUT.h5ad (also OUT.summary.json, OUT.png, OUT.autocorr.tsv, OUT.nhood.png with cell types)")

    p = add("spatial-import", _cmd_spatial_import,
            "vendor spatial output (Xenium, Visium, seqFISH, CosMx, MERSCOPE) -> .h5ad for `spatial`")
    p.add_argument("--format", required=True, choices=["xenium", "visium", "seqfish", "cosmx", "merscope"])
    p.add_argument("--path", required=True,
                   help="xenium: folder with cell_feature_matrix.h5 + cells.csv.gz; visium: Space Ranger outs/; "
                        "cosmx: folder with *exprMat_file.csv + *metadata_file.csv; merscope: folder with "
                        "*cell_by_gene.csv + *cell_metadata.csv; seqfish: the genes x cells expression file")
    p.add_argument("--coordinates", help="seqfish: cell_id field_of_view x y file")
    p.add_argument("--labels", help="seqfish (optional): cell_id cluster cell_type ... file -> obs['cell_type']")
    p.add_argument("--all-spots", action="store_true", help="visium: keep spots not under tissue")
    p.add_argument("--out", required=True, help="OUT.h5ad")

    p = add("gene-scores", _cmd_gene_scores, "gene-level association from GWAS summary statistics (MAGMA-style SNP-wise mean)")
    p.add_argument("--bfile", required=True, help="genotypes for LD")
    p.add_argument("--sumstats", required=True)
    p.add_argument("--genes", required=True, help="GTF")
    p.add_argument("--window-kb", type=float, default=10)
    p.add_argument("--out", required=True, help="OUT.tsv")

    p = add("disease-score", _cmd_disease_score,
            "scDRS per-cell disease scores (scDRS 1.0.2's method) and cell-type association/heterogeneity")
    p.add_argument("--h5ad", required=True, help="cells: counts (normalised + log1p here) or log-normalised X")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--gene-scores", help="gene-score TSV (gene, z): top --n-genes as scdrs munge-gs --weight zscore")
    src.add_argument("--gene-set", help="scDRS .gs file (every trait in it)")
    p.add_argument("--trait", help="trait name for --gene-scores (default: the file name)")
    p.add_argument("--n-genes", type=int, default=1000, help="most genes per set (scdrs munge-gs --n-max)")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--fdr", type=float, help="--gene-scores: genes with BH FDR below this (munge-gs --fdr)")
    rule.add_argument("--fwer", type=float, help="--gene-scores: genes with Bonferroni FWER below this (munge-gs --fwer)")
    p.add_argument("--n-min", type=int, default=100, help="fewest genes with --fdr/--fwer (munge-gs --n-min)")
    p.add_argument("--n-ctrl", type=int, default=1000)
    p.add_argument("--covariates", help="scDRS .cov file: cell, covariates (tab-separated)")
    p.add_argument("--group-key", default="cell_type", help="obs column for the group analysis")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-h5ad", action="store_true", help="do not write OUT.h5ad")
    p.add_argument("--n-perms", type=int, default=999,
                   help="permutations for the spatial autocorrelation of the score (slides with obsm['spatial'])")
    p.add_argument("--out", required=True,
                   help="prefix: OUT.<trait>.score.tsv.gz, OUT.<trait>.scdrs_group.<key>.tsv, OUT.gene_stats.tsv, OUT.h5ad")

    p = add("cell-eqtl", _cmd_cell_eqtl, "pseudobulk cell-type eQTL of given variants and the genes near them")
    p.add_argument("--h5ad", required=True, help="annotated .h5ad: raw counts (layers['counts'] or X), obs cell type and donor")
    p.add_argument("--bfile", required=True, help="PLINK prefix; donors matched to .fam IIDs; dosage of A1 (ALT)")
    p.add_argument("--variants", nargs="*", default=[], metavar="LIST",
                   help="variant ID files: table with a variant_id column (e.g. gwas leads), JSON, or one ID per line")
    p.add_argument("--variant-id", nargs="*", default=[], help="further variant IDs")
    p.add_argument("--genes", help="GTF of gene positions (else var columns chrom, start[, end, strand])")
    p.add_argument("--covariates", help="plink2-style covariate file (IID + numeric columns, e.g. sex age)")
    p.add_argument("--covariate-names", nargs="*", help="columns of --covariates to use (default: all)")
    p.add_argument("--pcs", help="genotype PCs, plink2 .eigenvec layout")
    p.add_argument("--n-pcs", type=int, default=4)
    p.add_argument("--cell-type-key", default="cell_type")
    p.add_argument("--donor-key", default="donor")
    p.add_argument("--layer", help="raw-count layer (default: 'counts' when present, else X)")
    p.add_argument("--window-kb", type=float, default=1000, help="gene TSS within this distance of the variant")
    p.add_argument("--min-cells", type=int, default=5, help="cells per donor and cell type for a pseudobulk")
    p.add_argument("--min-donors", type=int, default=10, help="donors per cell type for its tests")
    p.add_argument("--min-donor-fraction", type=float, default=0.1, help="gene expressed in more than this share of donors")
    p.add_argument("--fdr", type=float, default=0.05)
    p.add_argument("--max-plots", type=int, default=4, help="eQTL rows in the box-plot PNG")
    p.add_argument("--out", required=True, help="OUT.tsv (+ OUT.summary.json, OUT.png)")

    p = add("report", _cmd_report, "the self-contained HTML report of one cohort's results")
    p.add_argument("--results-dir", required=True)
    p.add_argument("--cohort", required=True)
    p.add_argument("--config", help="the workflow config (YAML) to record")
    p.add_argument("--out", required=True)

    p = add("report-index", _cmd_report_index, "the cross-cohort index page linking each cohort's report")
    p.add_argument("--results", required=True, help="the results root (cohorts in RESULTS/<cohort>/)")
    p.add_argument("--cohorts", nargs="+", required=True)
    p.add_argument("--min-cell-count", type=int, default=5)
    p.add_argument("--out", required=True, help="e.g. RESULTS/index.html (links are relative to it)")

    p = add("check-truth", _cmd_check_truth, "compare results with the demo's planted answers")
    p.add_argument("--truth", required=True)
    p.add_argument("--results-dir", required=True)
    p.add_argument("--out", required=True)

    p = add("export", _cmd_export, "the cohort's export bundle (.tar.gz): aggregate results only, rare variants "
            "and small counts removed, a manifest with SHA-256, refused when the disclosure check finds anything")
    p.add_argument("--cohort-results", required=True, help="the cohort's results folder, RESULTS/<cohort>")
    p.add_argument("--out", required=True, help="BUNDLE.tar.gz")
    p.add_argument("--cohort", help="cohort id (default: the folder name)")
    p.add_argument("--min-mac", type=int, help="remove variants with a smaller minor allele count "
                   "(default: config export.min_mac, else 20)")
    p.add_argument("--min-cell-count", type=int, help="smallest count of individuals or cells shown "
                   "(default: config privacy.min_cell_count, else 5)")
    p.add_argument("--config", help="the workflow config (YAML): recorded in the report, and the defaults above")
    p.add_argument("--created", help="date recorded in the bundle (default: newest modification time of its sources)")

    p = add("check-bundle", _cmd_check_bundle, "disclosure check of an export bundle: sample IDs, per-sample "
            "tables, genotype matrices, small counts")
    p.add_argument("bundle", help="BUNDLE.tar.gz or a folder of the same layout")
    p.add_argument("--cohort-results", help="take the sample IDs and counts from this results folder (.fam files)")
    p.add_argument("--sample-ids", nargs="+", help="files of sample IDs: .fam (IIDs) or one ID per line")
    p.add_argument("--min-cell-count", type=int, default=5)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CohortflowError as err:
        print(f"cohortflow: error: {err}", file=sys.stderr)
        return 1
    return 0


def run() -> None:  # pragma: no cover - the console entry point
    """``cohortflow``: :func:`main`, then exit without the interpreter's teardown. Unloading
    numba, pandas and Arrow takes ~0.5 s and has nothing left to do: every output is written,
    closed and renamed by then (an unexpected exception still exits the usual way)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
