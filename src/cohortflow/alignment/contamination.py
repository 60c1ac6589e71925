"""Cross-sample contamination (VerifyBamID's model) and sample identity from base counts at SNPs.

Inputs are per-site read counts of the reference and alternate allele (from
:class:`cohortflow.alignment.sites.SiteCounter`) and the sites' alternate-allele frequencies;
reads showing a third base are left out of both models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import gammaln, logsumexp, xlog1py, xlogy

from cohortflow.errors import CohortflowError

ALPHA_MAX = 0.5  # beyond one half "sample" and "contaminant" swap roles
_GRID = np.linspace(0.0, ALPHA_MAX, 51)


def _as_counts(ref_counts, alt_counts) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref_counts, dtype=np.float64).ravel()
    alt = np.asarray(alt_counts, dtype=np.float64).ravel()
    if ref.shape != alt.shape:
        raise CohortflowError(f"ref_counts ({ref.size}) and alt_counts ({alt.size}) differ in length")
    if np.any(ref < 0) or np.any(alt < 0):
        raise CohortflowError("negative read counts")
    return ref, alt


def _hwe_log_prior(af: np.ndarray) -> np.ndarray:
    """log P(genotype = 0, 1, 2 alt alleles) under Hardy-Weinberg, shape (3, n_sites)."""
    with np.errstate(divide="ignore"):
        return np.log(np.stack([(1 - af) ** 2, 2 * af * (1 - af), af ** 2]))


def _read_alt_prob(q: np.ndarray | float, error: float):
    """P(a read shows alt) when a fraction ``q`` of the molecules carry alt, with a symmetric
    base error (alt read as ref and ref read as alt, each with probability ``error``)."""
    return error + q * (1.0 - 2.0 * error)


def _site_loglik(alpha: float, ref: np.ndarray, alt: np.ndarray, log_prior_h: np.ndarray,
                 log_prior_g: np.ndarray | None, genotypes: np.ndarray | None, error: float) -> np.ndarray:
    """log P(alt reads | depth, alpha) at each site, summed over the unknown genotypes."""
    h = np.arange(3, dtype=np.float64)[:, None]  # contaminant genotype
    if genotypes is None:
        # q depends only on (g, h): 9 combinations, broadcast over sites
        g = np.arange(3, dtype=np.float64)[:, None, None]
        p = _read_alt_prob((1 - alpha) * g / 2 + alpha * h[None] / 2, error)  # (3, 3, 1)
        terms = (log_prior_g[:, None, :] + log_prior_h[None, :, :]
                 + xlogy(alt, p) + xlog1py(ref, -p))
        return logsumexp(terms.reshape(9, -1), axis=0)
    p = _read_alt_prob((1 - alpha) * genotypes[None, :] / 2 + alpha * h / 2, error)  # (3, n)
    return logsumexp(log_prior_h + xlogy(alt, p) + xlog1py(ref, -p), axis=0)


ERROR_RANGE = (1e-4, 0.05)  # base error rates searched when the error is estimated


def estimate_contamination(ref_counts, alt_counts, af, *, genotypes=None, error: float | None = None) -> dict:
    """Maximum-likelihood contamination fraction alpha in [0, 0.5], VerifyBamID's model.

    Each read at a site comes from the sample with probability 1 - alpha and from one unrelated
    contaminant with probability alpha. The sample's genotype g and the contaminant's h (alt-allele
    counts 0, 1, 2) have Hardy-Weinberg priors from ``af``; when the sample's ``genotypes`` are given
    (int alt-allele dosage per site, -1 missing: VerifyBamID's "chipmix") g is known and sites with
    a missing genotype are left out, else g is summed over too ("freemix"). A read shows alt with
    probability q = (1 - alpha) g/2 + alpha h/2, then a symmetric base ``error``; the alt count at a
    site is binomial given its ref + alt depth. The log-likelihood summed over sites is maximised
    over a grid of alpha (step 0.01, to avoid local optima) and then refined with bounded Brent
    around the best grid point.

    ``error=None`` (default) estimates the base error rate jointly (profile likelihood over
    ``ERROR_RANGE``, log scale): errors show at every site alike, contamination in proportion to
    the contaminant's allele frequency, so the two separate. A fixed error set too high explains
    the contaminant's reads away (0.01 where the true rate at Q>=20 bases is ~0.002 turns 10%
    contamination into ~7%).

    Returns alpha, method ('freemix' / 'chipmix'), n_sites (sites with depth >= 1 used), mean_depth
    (mean ref + alt reads over all sites given), loglik (at alpha), loglik_alpha0 (at 0), error.
    """
    ref, alt = _as_counts(ref_counts, alt_counts)
    af = np.asarray(af, dtype=np.float64).ravel()
    if af.shape != ref.shape:
        raise CohortflowError(f"af ({af.size}) and the counts ({ref.size}) differ in length")
    if error is not None and not 0.0 <= error < 0.5:
        raise CohortflowError(f"error must lie in [0, 0.5), got {error}")
    depth = ref + alt
    use = (depth >= 1) & np.isfinite(af) & (af > 0) & (af < 1)
    method = "freemix"
    if genotypes is not None:
        genotypes = np.asarray(genotypes).ravel()
        if genotypes.shape != ref.shape:
            raise CohortflowError(f"genotypes ({genotypes.size}) and the counts ({ref.size}) differ in length")
        use &= (genotypes >= 0) & (genotypes <= 2)
        method = "chipmix"
    mean_depth = float(depth.mean()) if depth.size else float("nan")
    result = {"alpha": float("nan"), "method": method, "n_sites": int(np.count_nonzero(use)),
              "mean_depth": mean_depth, "loglik": float("nan"), "loglik_alpha0": float("nan"),
              "error": float("nan") if error is None else float(error)}
    if not use.any():
        return result
    ref, alt, af = ref[use], alt[use], af[use]
    log_prior = _hwe_log_prior(af)
    g = None if genotypes is None else genotypes[use].astype(np.float64)
    log_binom = float(np.sum(gammaln(ref + alt + 1) - gammaln(ref + 1) - gammaln(alt + 1)))

    def fit(err: float) -> tuple[float, float, float]:
        """(alpha, log-likelihood at alpha, at alpha 0) for a given error rate."""
        def loglik(alpha: float) -> float:
            return float(np.sum(_site_loglik(alpha, ref, alt, log_prior, log_prior, g, err))) + log_binom

        grid_ll = np.array([loglik(a) for a in _GRID])
        best = int(np.argmax(grid_ll))
        best_alpha, best_ll = float(_GRID[best]), float(grid_ll[best])
        lo, hi = _GRID[max(best - 1, 0)], _GRID[min(best + 1, _GRID.size - 1)]
        opt = minimize_scalar(lambda a: -loglik(a), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
        if opt.success and -opt.fun > best_ll:
            best_alpha, best_ll = float(opt.x), float(-opt.fun)
        return best_alpha, best_ll, float(grid_ll[0])

    if error is None:
        grid = np.geomspace(*ERROR_RANGE, 9)
        fits = [fit(float(e)) for e in grid]
        k = int(np.argmax([f[1] for f in fits]))
        lo, hi = np.log10(grid[max(k - 1, 0)]), np.log10(grid[min(k + 1, grid.size - 1)])
        opt = minimize_scalar(lambda x: -fit(10.0 ** x)[1], bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-3})
        error = float(10.0 ** opt.x) if opt.success and -opt.fun > fits[k][1] else float(grid[k])
    best_alpha, best_ll, ll0 = fit(float(error))
    result.update(alpha=best_alpha, loglik=best_ll, loglik_alpha0=ll0, error=float(error))
    return result


def call_genotypes(ref_counts, alt_counts, *, min_depth: int = 8, error: float = 0.01) -> np.ndarray:
    """Maximum-likelihood genotype (alt-allele count 0/1/2, int8) at each site with ref + alt depth
    >= ``min_depth``, else -1. A read shows alt with probability g/2 then a symmetric base
    ``error`` (the model of :func:`estimate_contamination` with alpha 0); no population prior, so
    the call does not lean towards common genotypes of the panel."""
    ref, alt = _as_counts(ref_counts, alt_counts)
    p = _read_alt_prob(np.arange(3, dtype=np.float64)[:, None] / 2, error)
    ll = xlogy(alt, p) + xlog1py(ref, -p)  # (3, n)
    calls = np.argmax(ll, axis=0).astype(np.int8)
    calls[(ref + alt) < min_depth] = -1
    return calls


def genotype_concordance(ref_counts, alt_counts, genotypes, *, min_depth: int = 8, error: float = 0.01) -> dict:
    """How well the genotypes called from the reads match each sample of a genotype matrix.

    The reads' genotypes come from :func:`call_genotypes` (sites with depth >= ``min_depth``;
    8 reads give a heterozygote all-one-allele with probability 2/256). ``genotypes`` is
    (n_sites, n_samples) int8 alt-allele dosage with -1 missing (a 1-D array is one sample).
    Returns calls (the read-based calls), n_called, and per sample: concordance (matching calls /
    sites called in both, NaN when none) and n_compared (sites called in both).
    """
    calls = call_genotypes(ref_counts, alt_counts, min_depth=min_depth, error=error)
    geno = np.asarray(genotypes)
    if geno.ndim == 1:
        geno = geno[:, None]
    if geno.shape[0] != calls.size:
        raise CohortflowError(f"genotypes have {geno.shape[0]} sites, the counts {calls.size}")
    both = (calls >= 0)[:, None] & (geno >= 0) & (geno <= 2)
    n_compared = both.sum(axis=0).astype(np.int64)
    n_match = (both & (geno == calls[:, None])).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        concordance = np.where(n_compared > 0, n_match / np.maximum(n_compared, 1), np.nan)
    return {"calls": calls, "n_called": int(np.count_nonzero(calls >= 0)),
            "concordance": concordance, "n_compared": n_compared}


def concordance_rows(bam: str, claimed_sample: str, sample_names: Sequence[str], result: dict) -> pd.DataFrame:
    """One BAM's :func:`genotype_concordance` result as rows of the table :func:`swap_check` reads."""
    n = len(sample_names)
    return pd.DataFrame({"bam": [bam] * n, "claimed_sample": [claimed_sample] * n,
                         "genotype_sample": list(sample_names),
                         "concordance": np.asarray(result["concordance"], dtype=np.float64),
                         "n_compared": np.asarray(result["n_compared"], dtype=np.int64)})


SWAP_COLUMNS = ["bam", "claimed_sample", "self_concordance", "self_sites", "best_other_sample",
                "best_other_concordance", "best_other_sites", "status"]


def swap_check(concordance_table: pd.DataFrame, *, min_sites: int = 20, self_min: float = 0.8,
               match_min: float = 0.9) -> pd.DataFrame:
    """Whether each BAM holds the sample it claims to, from a long concordance table.

    ``concordance_table`` has columns bam, claimed_sample, genotype_sample, concordance,
    n_compared (see :func:`concordance_rows`). Per BAM: the claimed sample's concordance and sites
    (self), the other genotyped sample with the highest concordance over at least ``min_sites``
    sites, and a status:

    - ``no_genotypes``: the claimed sample is not in the genotype file (best other still shown);
    - ``too_few_sites``: fewer than ``min_sites`` sites compared with the claimed sample;
    - ``swap``: self < ``self_min`` and another sample reaches >= ``match_min`` (the reads belong to
      that sample; unrelated people agree at common SNPs about 40-60% of the time, first-degree
      relatives about 70%, the same person > 95% at depth >= 8);
    - ``mismatch``: self < ``self_min`` and no sample reaches ``match_min``;
    - ``ok``: self >= ``self_min`` (another sample matching too, e.g. a duplicate in the genotype
      file, does not change that).
    """
    missing = {"bam", "claimed_sample", "genotype_sample", "concordance", "n_compared"} - set(concordance_table.columns)
    if missing:
        raise CohortflowError(f"concordance table lacks columns {sorted(missing)}")
    rows = []
    for bam, table in concordance_table.groupby("bam", sort=True):
        claimed = str(table["claimed_sample"].iloc[0])
        is_self = table["genotype_sample"].astype(str) == claimed
        self_rows = table[is_self]
        others = table[~is_self & (table["n_compared"] >= min_sites) & table["concordance"].notna()]
        if len(others):
            # highest concordance; ties broken by sample name, so the output does not depend on row order
            others = others.sort_values(["concordance", "genotype_sample"], ascending=[False, True], kind="stable")
            best = others.iloc[0]
            best_sample, best_conc, best_sites = str(best["genotype_sample"]), float(best["concordance"]), int(best["n_compared"])
        else:
            best_sample, best_conc, best_sites = "", float("nan"), 0
        if self_rows.empty:
            self_conc, self_sites, status = float("nan"), 0, "no_genotypes"
        else:
            self_conc = float(self_rows["concordance"].iloc[0])
            self_sites = int(self_rows["n_compared"].iloc[0])
            if self_sites < min_sites:
                status = "too_few_sites"
            elif self_conc >= self_min:
                status = "ok"
            elif best_sites and best_conc >= match_min:
                status = "swap"
            else:
                status = "mismatch"
        rows.append([bam, claimed, self_conc, self_sites, best_sample, best_conc, best_sites, status])
    return pd.DataFrame(rows, columns=SWAP_COLUMNS)
