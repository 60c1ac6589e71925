"""Polygenic scores by clumping + thresholding, trained on a split and evaluated on held-out samples.

Procedure (all deterministic from ``seed``):
1. the analysable samples (genotyped, trait and covariates present) are split at random into
   train (``train_fraction``) and test;
2. the p-value threshold is chosen on an inner validation split of the training samples: a GWAS on
   the discovery part (train minus validation), clumping on discovery genotypes, each threshold's
   score evaluated on the validation part (partial R^2 over covariates for quantitative traits, AUC
   for binary ones); the test samples are never used for the choice;
3. the final weights come from a GWAS on all training samples, clumped on training genotypes, at
   the chosen threshold; the score is evaluated on the test samples.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from cohortflow.errors import CohortflowError
from cohortflow.gwas.api import _prepare, covariate_design, run_gwas
from cohortflow.gwas.plots import save_figure
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.pheno import read_pheno_table, to_binary01
from cohortflow.io.plink import open_bed
from cohortflow.io.sumstats import read_sumstats
from cohortflow.prs import kernels
from cohortflow.variants.kernels import standardize_rows

WEIGHT_COLUMNS = ["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "weight"]
DEFAULT_P_THRESHOLDS = (5e-8, 1e-6, 1e-4, 1e-3, 1e-2)
VALIDATION_FRACTION = 0.25



def score_genotypes(geno: np.ndarray, weights: np.ndarray, effect_allele_freq: np.ndarray) -> np.ndarray:
    """Sum of weight x effect-allele count per sample; missing calls mean-imputed (2 x frequency),
    as plink2 --score's SCORE1_SUM does with the same frequencies."""
    return kernels.score_block(np.ascontiguousarray(geno, dtype=np.int8), np.asarray(weights, dtype=float),
                               2.0 * np.asarray(effect_allele_freq, dtype=float))


def clump_sumstats(bed, sumstats: pd.DataFrame, sample_idx: np.ndarray, *, p_max: float, clump_r2: float,
                   clump_kb: float) -> pd.DataFrame:
    """Index variants (p < p_max) after greedy LD clumping on the genotypes of ``sample_idx``.

    Returns the index rows of ``sumstats`` (which must be in .bim order) with a ``row`` column
    (the .bim row) and ``sample_freq`` (effect allele frequency in ``sample_idx``)."""
    ss = sumstats.reset_index(drop=True)
    cand = ss[(ss["errcode"] == "") & (ss["neg_log10_p"] > -math.log10(p_max))].copy()
    cand["row"] = cand.index.to_numpy()
    if cand.empty:
        return cand
    geno = bed.read_rows(cand["row"].to_numpy(), sample_idx)
    called = geno >= 0
    # exact effect allele frequency in these samples (for mean imputation when scoring)
    cand["sample_freq"] = np.where(called, geno, 0).sum(axis=1) / np.maximum(2 * called.sum(axis=1), 1)
    z, _ = standardize_rows(geno)
    order = np.lexsort((np.arange(len(cand)), -cand["neg_log10_p"].to_numpy()))
    chrom_codes = pd.factorize(cand["chromosome"].astype(str))[0].astype(np.int64)
    keep = kernels.clump(order.astype(np.int64), chrom_codes, cand["base_pair_location"].to_numpy(np.float64), z,
                         float(clump_r2), float(clump_kb) * 1000.0)
    return cand[keep]


def _residualize(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return y - x @ coef


def auc(score: np.ndarray, case: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    ranks = stats.rankdata(score)
    n1 = case.sum()
    n0 = len(case) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[case == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _fit_metrics(score: np.ndarray, y: np.ndarray, cov: np.ndarray, binary: bool) -> dict:
    """Quantitative: r, r2, partial_r2 (over covariates). Binary: auc, or_per_sd (logistic on the
    standardised score plus covariates)."""
    if np.std(score) == 0:
        return {"auc": float("nan"), "or_per_sd": float("nan")} if binary else \
            {"r": float("nan"), "r2": float("nan"), "partial_r2": float("nan")}
    if binary:
        import statsmodels.api as sm

        zs = (score - score.mean()) / score.std()
        try:
            fit = sm.Logit(y, np.column_stack([cov, zs])).fit(disp=0, maxiter=100)
            or_sd = float(math.exp(fit.params[-1]))
        except (np.linalg.LinAlgError, ValueError):
            or_sd = float("nan")
        return {"auc": auc(score, y.astype(int)), "or_per_sd": or_sd}
    r = float(np.corrcoef(score, y)[0, 1])
    ry = _residualize(y, cov)
    rs = _residualize(score, cov)
    partial = float(np.corrcoef(rs, ry)[0, 1] ** 2) if np.std(rs) > 0 else float("nan")
    return {"r": r, "r2": r * r, "partial_r2": partial}



def prs_clump_threshold(*, bfile: str | Path, pheno: str | Path, trait: str, covar: str | Path | None = None,
                        covar_names: list[str] | None = None, train_fraction: float = 0.8, seed: int = 1,
                        p_thresholds=DEFAULT_P_THRESHOLDS, clump_r2: float = 0.1, clump_kb: float = 250,
                        out_prefix: str | Path, threads: int = 1) -> dict:
    """Clumping + thresholding PRS for ``trait`` (see the module docstring for the procedure).

    Writes:
    - ``{out_prefix}.weights.tsv``: variant_id, chromosome, base_pair_location, effect_allele,
      other_allele, weight (beta, or log OR, from the training GWAS), .bim order;
    - ``{out_prefix}.scores.tsv.gz``: IID, split (train/test), score (sum of weight x effect
      allele count, missing calls imputed at 2 x training frequency);
    - ``{out_prefix}.performance.json``: trait, type (quantitative/binary), model, n_train, n_test,
      n_variants, p_threshold, selection, seed, train_fraction, clump_r2, clump_kb, test metrics
      (quantitative: r, r2, partial_r2; binary: auc, or_per_sd), thresholds (per threshold:
      p_threshold, n_variants_validation, validation metrics, n_variants, test metrics);
    - ``{out_prefix}.png``: trait against score in the test set and by score decile.
    Returns the performance dict.
    """
    if not 0 < train_fraction < 1:
        raise CohortflowError(f"train_fraction must be between 0 and 1, not {train_fraction}")
    thresholds = sorted(float(t) for t in p_thresholds)
    bed = open_bed(bfile)
    pm = _prepare(bed, Path(pheno), [trait], covar, covar_names, "auto", None)[0]
    binary = pm.model == "logistic"
    iids = bed.fam["iid"].to_numpy()
    analysable = pm.sample_idx
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(analysable))
    n_train = int(round(train_fraction * len(analysable)))
    train_idx = np.sort(analysable[perm[:n_train]])
    test_idx = np.sort(analysable[perm[n_train:]])
    n_val = int(round(VALIDATION_FRACTION * n_train))
    val_idx = np.sort(analysable[perm[:n_val]])
    disc_idx = np.sort(analysable[perm[n_val:n_train]])
    if min(len(test_idx), len(val_idx), len(disc_idx)) < 10:
        raise CohortflowError(f"too few samples ({len(analysable)}) to split for the PRS of {trait!r}")

    # the trait on its own scale (0/1 for binary traits), .fam order
    trait_values = read_pheno_table(pheno, columns=[trait], require_numeric=True)[trait]
    if binary:
        trait_values = to_binary01(trait_values)
    y_all = pd.Series(trait_values.reindex(iids).to_numpy(float), index=np.arange(len(iids)))
    cov_all = np.ones((len(iids), 1))
    if covar is not None:
        design = covariate_design(read_pheno_table(covar, columns=covar_names)).reindex(iids)
        cov_all = np.column_stack([cov_all, design.to_numpy(float)])

    out_prefix = Path(str(out_prefix))
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_prefix.parent, prefix=f".{out_prefix.name}.") as tmp:
        def gwas(samples_idx, tag):
            paths = run_gwas(bfile=bfile, pheno=pheno, pheno_names=[trait], covar=covar, covar_names=covar_names,
                             samples=list(iids[samples_idx]), out_prefix=Path(tmp) / tag, threads=threads)
            return read_sumstats(paths[trait])

        def threshold_scores(ss, clump_idx, score_idx):
            index = clump_sumstats(bed, ss, clump_idx, p_max=thresholds[-1], clump_r2=clump_r2, clump_kb=clump_kb)
            geno = bed.read_rows(index["row"].to_numpy(), score_idx) if len(index) else None
            out = []
            for t in thresholds:
                sel = (index["neg_log10_p"] > -math.log10(t)).to_numpy()
                if sel.sum() == 0:
                    out.append((t, 0, np.zeros(len(score_idx)), index[sel]))
                    continue
                s = score_genotypes(geno[sel], index["beta"].to_numpy()[sel],
                                    index["sample_freq"].to_numpy()[sel])
                out.append((t, int(sel.sum()), s, index[sel]))
            return out

        disc_ss = gwas(disc_idx, "discovery")
        val_y = y_all[val_idx].to_numpy()
        metric = "auc" if binary else "partial_r2"
        table = []
        for t, nv, s, _ in threshold_scores(disc_ss, disc_idx, val_idx):
            m = _fit_metrics(s, val_y, cov_all[val_idx], binary)
            table.append({"p_threshold": t, "n_variants_validation": nv,
                          **{f"validation_{k}": v for k, v in m.items()}})
        valid = [row for row in table if row["n_variants_validation"] > 0 and
                 row[f"validation_{metric}"] == row[f"validation_{metric}"]]
        # best validation fit; ties go to the stricter threshold (thresholds ascend)
        best = max(valid, key=lambda row: row[f"validation_{metric}"]) if valid else table[-1]
        chosen = best["p_threshold"]

        train_ss = gwas(train_idx, "train")
        all_idx = np.sort(np.concatenate([train_idx, test_idx]))
        test_pos = np.searchsorted(all_idx, test_idx)
        final = threshold_scores(train_ss, train_idx, all_idx)
    test_y = y_all[test_idx].to_numpy()
    for row, (t, nv, s, _) in zip(table, final):
        m = _fit_metrics(s[test_pos], test_y, cov_all[test_idx], binary)
        row.update({"n_variants": nv, **{f"test_{k}": v for k, v in m.items()}})
    _, n_variants, score, chosen_rows = next(item for item in final if item[0] == chosen)

    weights = pd.DataFrame({
        "variant_id": chosen_rows["variant_id"].to_numpy(), "chromosome": chosen_rows["chromosome"].to_numpy(),
        "base_pair_location": chosen_rows["base_pair_location"].to_numpy(),
        "effect_allele": chosen_rows["effect_allele"].to_numpy(),
        "other_allele": chosen_rows["other_allele"].to_numpy(), "weight": chosen_rows["beta"].to_numpy(),
    }, columns=WEIGHT_COLUMNS)
    with atomic_open(f"{out_prefix}.weights.tsv") as fh:
        fh.write(weights.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))
    split = np.where(np.isin(all_idx, test_idx), "test", "train")
    scores = pd.DataFrame({"IID": iids[all_idx], "split": split, "score": score})
    with atomic_open(f"{out_prefix}.scores.tsv.gz", "wb") as fh:
        fh.write(scores.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.8g").encode())

    test_metrics = _fit_metrics(score[test_pos], test_y, cov_all[test_idx], binary)
    perf = {
        "trait": trait, "type": "binary" if binary else "quantitative", "model": pm.model,
        "n_train": int(len(train_idx)), "n_test": int(len(test_idx)), "n_variants": int(n_variants),
        "p_threshold": chosen, "selection": f"inner validation split ({VALIDATION_FRACTION:g} of train), "
                                             f"best validation {metric}",
        "seed": seed, "train_fraction": train_fraction, "clump_r2": clump_r2, "clump_kb": clump_kb,
        **test_metrics, "thresholds": table,
    }
    write_json_atomic(f"{out_prefix}.performance.json", perf)
    _plot(score[test_pos], test_y, binary, trait, f"{out_prefix}.png")
    return perf


def _plot(score: np.ndarray, y: np.ndarray, binary: bool, trait: str, out: str) -> None:
    fig = Figure(figsize=(9, 4))
    ax1, ax2 = fig.subplots(1, 2)
    deciles = np.clip((stats.rankdata(score, method="ordinal") - 1) * 10 // len(score), 0, 9).astype(int)
    means = [float(y[deciles == d].mean()) if (deciles == d).any() else np.nan for d in range(10)]
    if binary:
        for val, colour, label in ((0, "#7fa7d1", "control"), (1, "#c0392b", "case")):
            ax1.hist(score[y == val], bins=30, alpha=0.6, color=colour, label=label)
        ax1.set_xlabel("polygenic score")
        ax1.set_ylabel("test samples")
        ax1.legend(fontsize=8)
        ax2.set_ylabel("prevalence")
    else:
        ax1.scatter(score, y, s=5, c="#1f4e79", linewidths=0, rasterized=True)
        ax1.set_xlabel("polygenic score")
        ax1.set_ylabel(trait)
        ax2.set_ylabel(f"mean {trait}")
    ax2.plot(np.arange(1, 11), means, marker="o", color="#1f4e79")
    ax2.set_xlabel("score decile (test set)")
    ax2.set_xticks(np.arange(1, 11))
    fig.suptitle(f"{trait}: polygenic score in held-out samples")
    fig.tight_layout()
    save_figure(fig, out)
