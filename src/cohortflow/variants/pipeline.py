"""Genotype QC end to end, as ``cohortflow qc`` runs it: relatedness, filters, then ancestry PCA.

The workflow runs the same three library calls as separate rules (``variants.smk``:
``relatedness``, ``genotype_qc``, ``genotype_pca``) so Snakemake can schedule and cache them.
"""

from __future__ import annotations

from cohortflow.variants.pca import genotype_pca
from cohortflow.variants.qc import genotype_qc
from cohortflow.variants.relatedness import KING_CUTOFF_DEFAULT, KING_MAX_VARIANTS, relatedness_qc


def quality_control(bfile, *, out_prefix, geno: float = 0.05, mind: float = 0.05, maf: float = 0.01,
                    hwe: float = 1e-6, king_cutoff: float | None = KING_CUTOFF_DEFAULT,
                    king_max_variants: int | None = KING_MAX_VARIANTS,
                    remove_sex_problems: bool = False, n_pcs: int = 10, pca_maf: float = 0.05,
                    sample_info=None, threads: int = 1) -> dict:
    """QC of a PLINK fileset: KING relatedness (:func:`relatedness_qc`: pairs to
    ``{out_prefix}.kinship.tsv``, plink2 ``--king-cutoff`` removals to ``.king.cutoff.out.id``;
    ``king_cutoff`` None keeps relatives; at most ``king_max_variants`` variants), then :func:`genotype_qc` (mind, sex check, the
    relatives, geno, hwe, maf: ``{out_prefix}.bed/.bim/.fam``, ``.sample_qc.tsv``,
    ``.variant_qc.tsv``, ``.summary.json`` with the funnel, QC figures), then :func:`genotype_pca`
    on the QC'd fileset (``.pcs.tsv``, ``.eigenvalues.tsv``, ...). Returns the QC summary with
    ``relatedness`` and ``pca`` entries (counts only, no IDs)."""
    related = relatedness_qc(bfile, out_prefix=out_prefix, cutoff=king_cutoff, mind=mind, geno=geno, maf=maf,
                             hwe=hwe, max_variants=king_max_variants, threads=threads)
    summary = genotype_qc(bfile, out_prefix=out_prefix, geno=geno, mind=mind, maf=maf, hwe=hwe,
                          remove_sex_problems=remove_sex_problems, remove_samples=related["removed"],
                          king_cutoff=king_cutoff, threads=threads)
    pca = genotype_pca(out_prefix, out_prefix=out_prefix, n_pcs=n_pcs, maf=pca_maf, sample_info=sample_info)
    summary["relatedness"] = {k: v for k, v in related.items() if k != "removed"} | {
        "n_removed": len(related["removed"])}
    summary["pca"] = {"n_pcs": pca.get("n_pcs"), "n_variants_used": pca.get("n_variants_used")}
    return summary
