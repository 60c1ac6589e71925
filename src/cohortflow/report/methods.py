"""Methods text for the stages that ran, with numbered citations (DOIs as plain text, no links)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cohortflow.report.model import Citations, Paragraph, Section, fmt_num, fmt_p, to_float
from cohortflow.report.sections import cfg

REFERENCES = {
    "snakemake": "Mölder F, Jablonski KP, Letcher B, et al. Sustainable data analysis with Snakemake. "
    "F1000Research 10:33 (2021). doi:10.12688/f1000research.29032.2",
    "samtools": "Danecek P, Bonfield JK, Liddle J, et al. Twelve years of SAMtools and BCFtools. "
    "GigaScience 10(2):giab008 (2021). doi:10.1093/gigascience/giab008",
    "mosdepth": "Pedersen BS, Quinlan AR. Mosdepth: quick coverage calculation for genomes and exomes. "
    "Bioinformatics 34(5):867-868 (2018). doi:10.1093/bioinformatics/btx699",
    "verifybamid": "Jun G, Flickinger M, Hetrick KN, et al. Detecting and estimating contamination of human DNA "
    "samples in sequencing and array-based genotype data. Am J Hum Genet 91(5):839-848 (2012). "
    "doi:10.1016/j.ajhg.2012.09.004",
    "plink2": "Chang CC, Chow CC, Tellier LCAM, Vattikuti S, Purcell SM, Lee JJ. Second-generation PLINK: "
    "rising to the challenge of larger and richer datasets. GigaScience 4:7 (2015). doi:10.1186/s13742-015-0047-8",
    "hwe": "Wigginton JE, Cutler DJ, Abecasis GR. A note on exact tests of Hardy-Weinberg equilibrium. "
    "Am J Hum Genet 76(5):887-893 (2005). doi:10.1086/429864",
    "pca": "Price AL, Patterson NJ, Plenge RM, Weinblatt ME, Shadick NA, Reich D. Principal components analysis "
    "corrects for stratification in genome-wide association studies. Nat Genet 38(8):904-909 (2006). doi:10.1038/ng1847",
    "gc": "Devlin B, Roeder K. Genomic control for association studies. Biometrics 55(4):997-1004 (1999). "
    "doi:10.1111/j.0006-341x.1999.00997.x",
    "gwasssf": "Hayhurst J, Buniello A, Harris L, et al. A community driven GWAS summary statistics standard. "
    "bioRxiv (2022). doi:10.1101/2022.07.15.500230",
    "prs": "Choi SW, Mak TS, O'Reilly PF. Tutorial: a guide to performing polygenic risk score analyses. "
    "Nat Protoc 15(9):2759-2772 (2020). doi:10.1038/s41596-020-0353-1",
    "ldpred2": "Privé F, Arbel J, Vilhjálmsson BJ. LDpred2: better, faster, stronger. Bioinformatics "
    "36(22-23):5424-5431 (2020). doi:10.1093/bioinformatics/btaa1029",
    "plink19": "Chang CC, Chow CC, Tellier LCAM, Vattikuti S, Purcell SM, Lee JJ. Second-generation PLINK: "
    "rising to the challenge of larger and richer datasets (plink1.9 --clump). GigaScience 4:7 (2015). "
    "doi:10.1186/s13742-015-0047-8",
    "bootstrap": "Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall/CRC (1993). "
    "doi:10.1201/9780429246593",
    "pgscatalog": "Lambert SA, Gil L, Jupp S, et al. The Polygenic Score Catalog as an open database for "
    "reproducibility and systematic evaluation. Nat Genet 53(4):420-425 (2021). doi:10.1038/s41588-021-00783-5",
    "scanpy": "Wolf FA, Angerer P, Theis FJ. SCANPY: large-scale single-cell gene expression data analysis. "
    "Genome Biol 19:15 (2018). doi:10.1186/s13059-017-1382-0",
    "leiden": "Traag VA, Waltman L, van Eck NJ. From Louvain to Leiden: guaranteeing well-connected communities. "
    "Sci Rep 9:5233 (2019). doi:10.1038/s41598-019-41695-z",
    "umap": "McInnes L, Healy J, Melville J. UMAP: Uniform Manifold Approximation and Projection for dimension "
    "reduction. arXiv:1802.03426 (2018). doi:10.48550/arXiv.1802.03426",
    "magma": "de Leeuw CA, Mooij JM, Heskes T, Posthuma D. MAGMA: generalized gene-set analysis of GWAS data. "
    "PLoS Comput Biol 11(4):e1004219 (2015). doi:10.1371/journal.pcbi.1004219",
    "scdrs": "Zhang MJ, Hou K, Dey KK, et al. Polygenic enrichment distinguishes disease associations of "
    "individual cells in single-cell RNA-seq data. Nat Genet 54(10):1572-1580 (2022). doi:10.1038/s41588-022-01167-z",
    "squidpy": "Palla G, Spitzer H, Klein M, et al. Squidpy: a scalable framework for spatial omics analysis. "
    "Nat Methods 19(2):171-178 (2022). doi:10.1038/s41592-021-01358-2",
    "moran": "Moran PAP. Notes on continuous stochastic phenomena. Biometrika 37(1/2):17-23 (1950). doi:10.2307/2332142",
    "msprime": "Baumdicker F, Bisschop G, Goldstein D, et al. Efficient ancestry and mutation simulation with "
    "msprime 1.0. Genetics 220(3):iyab229 (2022). doi:10.1093/genetics/iyab229",
}

_CITE = re.compile(r"\[@([a-z0-9]+)\]")


def _v(config: Mapping[str, Any], *keys: str) -> str | None:
    value = cfg(config, *keys)
    if value is None or isinstance(value, (Mapping, list)):
        return None
    x = to_float(value)
    if x is not None and (abs(x) < 1e-3 and x != 0):
        return fmt_p(x)
    return fmt_num(value) if x is not None else str(value)


def _join(parts: list[str]) -> str:
    return "; ".join(p for p in parts if p)


def methods_section(present: set[str], config: Mapping[str, Any]) -> Section:
    """Methods paragraphs for the section ids in ``present`` and the references they cite.

    Parameters quoted in the text are read from the resolved ``config`` when set there; the full
    configuration is in the provenance section.
    """
    paragraphs: list[str] = []
    if "known-answers" in present:
        paragraphs.append(
            "Demo data. Genotypes of individuals from several populations were simulated with msprime [@msprime] "
            "(coalescent ancestry with mutations); phenotypes, reads, single-cell and spatial counts were "
            "simulated from planted causal variants, genes and cell types, and the planted answers were "
            "compared with the results."
        )
    if "alignment-qc" in present:
        paragraphs.append(
            "Alignment QC. Per-sample read metrics (mapped, properly paired and duplicate reads, MAPQ, insert "
            "size, mismatch error rate) were computed with the definitions of samtools stats and written in its "
            "format [@samtools]; depth and breadth of coverage as mosdepth computes them [@mosdepth] (duplicate, "
            "secondary and QC-failed reads skipped, overlapping mates counted once), over the target regions "
            "when given. Sex was inferred from the mean depth on X and on Y relative to the autosomes (about 1 "
            "and 0 for XX, 0.5 and 0.5 for XY) and checked against the reported sex. With a panel of common "
            "SNPs, contamination was estimated from the allele balance at them as VerifyBamID's freemix "
            "[@verifybamid], and each file's identity checked by the concordance of genotypes called from its "
            "reads with every sample's genotype calls (a swap when the reads match another sample better than "
            "the one named)."
        )
    if "genotype-qc" in present:
        thresholds = _join(
            [
                f"variant missingness > {_v(config, 'qc', 'geno')}" if _v(config, "qc", "geno") else "",
                f"sample missingness > {_v(config, 'qc', 'mind')}" if _v(config, "qc", "mind") else "",
                f"minor allele frequency < {_v(config, 'qc', 'maf')}" if _v(config, "qc", "maf") else "",
                f"Hardy-Weinberg exact test p < {_v(config, 'qc', 'hwe')}" if _v(config, "qc", "hwe") else "",
            ]
        )
        paragraphs.append(
            "Genotype QC and ancestry. Variants and samples were filtered on call rate, allele frequency and "
            "Hardy-Weinberg equilibrium (exact test [@hwe]) following the conventions of plink2 [@plink2]"
            + (f" ({thresholds})" if thresholds else "")
            + ". Principal components of LD-pruned genotypes summarise ancestry [@pca]"
            + (f"; {_v(config, 'pca', 'n_pcs')} PCs were computed" if _v(config, "pca", "n_pcs") else "")
            + "."
        )
    if "gwas" in present:
        n_pcs = _v(config, "gwas", "n_pcs")
        thr = _v(config, "gwas", "p_threshold")
        paragraphs.append(
            "Genome-wide association. Each variant's additive effect was tested by regression (linear for "
            "quantitative, logistic for binary traits; the model is given per trait), as in plink2 --glm [@plink2], "
            "adjusting for the configured covariates"
            + (f" and the first {n_pcs} genotype PCs" if n_pcs else " and genotype PCs")
            + " [@pca]. The test was repeated without PCs to show the stratification they remove; inflation is "
            "summarised by the genomic-control lambda [@gc]. Summary statistics are written in GWAS-SSF "
            "format [@gwasssf]. Lead variants of loci"
            + (f" reaching p < {thr}" if thr else "")
            + " are annotated with the nearest gene."
        )
    if "prs" in present:
        split = cfg(config, "prs", "split")
        fractions = (" ({:.0f}/{:.0f}/{:.0f}% of the analysable samples)".format(*(100 * float(f) for f in split))
                     if isinstance(split, (list, tuple)) and len(split) == 3 else "")
        paragraphs.append(
            "Polygenic risk scores. The samples analysable for each trait were split at random (within cases "
            "and controls for binary traits) into discovery, validation and test sets" + fractions + ". A GWAS "
            "on the discovery samples gave the base summary statistics. Two scores were built from them: "
            "clumping and thresholding [@prs] (index variants identical to plink1.9 --clump [@plink19], one score "
            "per p-value threshold) and a Bayesian LD-aware score under the LDpred2-auto model [@ldpred2] "
            "(Gibbs chains from a grid of starting values, LD in blocks from the cohort's genotypes, diverging "
            "chains detected and dropped). Scores sum weight × allele dosage with missing calls set to twice "
            "the cohort's allele frequency, as plink2 --score does [@plink2]. The p-value threshold was chosen "
            "on the validation samples; every reported figure comes from the test samples, with 95% "
            "percentile bootstrap intervals [@bootstrap], overall, by score decile and by ancestry group."
        )
    if "pgs" in present:
        keep = cfg(config, "pgs", "keep_ambiguous")
        paragraphs.append(
            "Published polygenic scores. Scoring files in the PGS Catalog format [@pgscatalog] were matched to "
            "the genotypes by chromosome, position and alleles (allele swaps and strand flips resolved; "
            + ("ambiguous A/T and C/G SNPs kept" if keep else "ambiguous A/T and C/G SNPs dropped")
            + "), and each score summed over matched variants with missing calls set to twice the cohort's "
            "effect allele frequency, as plink2 --score does [@plink2]."
        )
    if "single-cell" in present:
        resolution = _v(config, "singlecell", "leiden_resolution")
        paragraphs.append(
            "Single-cell expression. Counts were processed with Scanpy [@scanpy]: cell and gene QC, "
            "normalisation, highly variable genes, PCA, a k-nearest-neighbour graph, Leiden clustering "
            "[@leiden]"
            + (f" (resolution {resolution})" if resolution else "")
            + " and a UMAP embedding [@umap]; clusters were annotated from marker genes."
        )
    if "spatial" in present:
        paragraphs.append(
            "Spatial expression. A spatial neighbour graph of the spots was built and spatial "
            "autocorrelation measured with Moran's I [@moran], following the conventions of squidpy "
            "(row-normalised weights, permutation p-values) [@squidpy]."
        )
    if "integration" in present:
        paragraphs.append(
            "Genetics integration. Variant associations were aggregated into gene-level scores in the manner "
            "of MAGMA [@magma] (SNP-wise statistics within a gene window, accounting for LD from the cohort's "
            "genotypes); the top genes define a disease gene set whose per-cell scores, compared with matched "
            "control gene sets as in scDRS [@scdrs], are aggregated per cell type and mapped onto the tissue "
            "with Moran's I [@moran]."
        )
    paragraphs.append(
        "Workflow. All steps ran as a Snakemake workflow [@snakemake] calling the cohortflow library; "
        "versions, configuration and input checksums are listed under Provenance."
    )

    order: list[str] = []

    def number(match: re.Match) -> str:
        key = match.group(1)
        if key not in order:
            order.append(key)
        return f"[{order.index(key) + 1}]"

    section = Section("methods", "Methods")
    for text in paragraphs:
        title, _, body = text.partition(". ")
        section.blocks.append(Paragraph(_CITE.sub(number, body), cls="method", lead=title))
    section.blocks.append(Citations([(str(i + 1), REFERENCES[key]) for i, key in enumerate(order)]))
    return section
