"""Polygenic scores, the chain the workflow runs per trait (each step is also a ``cohortflow prs``
command):

1. :func:`cohortflow.prs.split.split_samples`: discovery / validation / test samples;
2. :func:`cohortflow.prs.split.discovery_gwas`: the GWAS on the discovery samples only;
3. :func:`cohortflow.prs.ct.prs_ct` (clumping + thresholding, one score per p-value threshold) and
   :func:`prs_bayes_scores` (LDpred2-auto model, :mod:`cohortflow.prs.bayes`) from that GWAS;
   published scores by :func:`cohortflow.prs.pgs.score_pgs`;
4. :func:`cohortflow.prs.evaluate.evaluate_scores`: thresholds and hyper-parameters chosen on the
   validation samples, performance reported on the test samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import Bed, open_bed
from cohortflow.prs.base import write_scores
from cohortflow.prs.bayes import prs_bayes
from cohortflow.prs.scoring import score_bed
from cohortflow.prs.split import read_split

BAYES_COLUMN = "bayes_auto"


def score_weight_table(bed: Bed, weights_path: str | Path, *, column: str, out: str | Path, threads: int = 1) -> None:
    """Score a weight table this package wrote (``variant_id`` = .bim ID, ``weight`` per copy of the
    .bim A1 allele) on every sample of ``bed``; write ``out`` (:func:`cohortflow.prs.base.write_scores`)
    with one score column named ``column``."""
    weights = pd.read_csv(weights_path, sep="\t", dtype={"variant_id": str})
    rows = pd.Index(bed.bim["id"].astype(str)).get_indexer(weights["variant_id"])
    if (rows < 0).any():
        missing = weights["variant_id"].to_numpy()[rows < 0][0]
        raise CohortflowError(f"variant {missing!r} is not in {bed.prefix}.bim", path=weights_path)
    order = np.argsort(rows, kind="stable")
    sums = score_bed(bed, rows[order], weights["weight"].to_numpy(float)[order][:, None], threads=threads) \
        if len(rows) else np.zeros((bed.n_samples, 1))
    write_scores(out, bed.fam, {column: sums[:, 0]})


def prs_bayes_scores(*, bfile: str | Path, sumstats: str | Path, out_prefix: str | Path, threads: int = 1,
                     ld_split: str | Path | None = None, **options) -> dict:
    """:func:`cohortflow.prs.bayes.prs_bayes` (``OUT.weights.tsv``, ``OUT.json``), then the score of
    every sample of ``bfile`` in ``OUT.scores.tsv.gz`` (column :data:`BAYES_COLUMN`; missing calls
    mean-imputed as plink2 --score does). With ``ld_split`` (a split file of
    :func:`cohortflow.prs.split.split_samples`), LD comes from its discovery samples: the samples
    of the GWAS itself, whose LD the summary statistics reflect."""
    if ld_split is not None:
        if options.get("ld_samples") is not None:
            raise CohortflowError("give LD samples or a split, not both")
        table = read_split(ld_split)
        options["ld_samples"] = table.loc[table["split"] == "discovery", "IID"].tolist()
    summary = prs_bayes(bfile=bfile, sumstats=sumstats, out_prefix=out_prefix, threads=threads, **options)
    score_weight_table(open_bed(bfile), f"{out_prefix}.weights.tsv", column=BAYES_COLUMN,
                       out=f"{out_prefix}.scores.tsv.gz", threads=threads)
    return summary
