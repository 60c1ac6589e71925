"""LD-aware Bayesian polygenic score: the LDpred2-auto model fitted by Gibbs sampling.

Inputs: summary statistics aligned to a PLINK fileset (:func:`cohortflow.prs.base.align_sumstats`)
and LD in blocks from that fileset or from a reference panel (:mod:`cohortflow.prs.ld`). The sampler
(:mod:`cohortflow.prs.bayes_kernels`) learns the effects together with the SNP heritability h2 and
the fraction of causal variants p, so no validation set is needed to pick them.

Choices (and why):

- Marginal effects on the correlation scale: ``beta_hat = beta / sqrt(n se^2 + beta^2)``, exact
  for a linear regression on one variant and the scale LDpred2 uses. The posterior effects come
  back per copy of the .bim A1 allele, on the trait's scale, multiplied by the same
  ``sqrt(n se^2 + beta^2)`` (= sd(trait) / sd(genotype) in the GWAS sample): this needs no
  genotype standard deviation from another sample, and the weights are on the scale of the GWAS
  betas (comparable with clumping + thresholding weights).
- Several chains, one per initial p on a log grid (``p_init_range``, 1e-4 to 0.2 as in LDpred2's
  tutorial: a chain started at a larger p with the shared h2 has so small a slab variance that its
  first sweep shrinks every effect to almost 0 and it stays in that all-zero mode), all starting
  from the same h2: an LD-score-regression-like estimate with the intercept fixed at 1,
  ``h2_0 = M sum_j (chi2_j - 1) / sum_j n_j l_j`` (l_j: bias-corrected LD scores within the blocks),
  clipped to [0.01, 0.9]. It only starts the chains; they learn h2 themselves.
- Robustness settings recommended by LDpred2's authors for divergence: the LD matrix shrunk towards
  the identity (``shrink_corr`` 0.95) and no direct sign jumps (``allow_jump_sign`` False).
- Divergence (chains that run away, the usual complaint with LDpred2 and PRS-CS) is detected at
  three levels, and a diverged chain never contributes to the weights:
  1. h2 = beta' R beta above ``h2_bounds[1]`` (1: more variance than the trait has) on average
     over the sweeps after the burn-in (a single sweep above it is clamped for the next one: the
     sampled effects' posterior noise, about M_c / n, lifts a sweep's estimate now and then in a
     small GWAS); a runaway past ``H2_RUNAWAY`` x that bound, or a non-finite value, stops the
     chain in the sampler;
  2. LDpred2's rule on the chains that finished: the range of the implied marginal correlations
     (R beta averaged over the kept sweeps) below ``corr_range_fraction`` (0.95) x the 95%
     quantile of that range over the chains (chains stuck near zero effects: with a weak signal,
     small n or a very polygenic trait, h2 = beta' R beta can feed on itself down to the bound);
  3. an h2 estimate more than ``h2_outlier_ratio`` (2) times away from the median of the chains
     still kept (a chain in a different, unsupported mode).
  The final effects are the mean over the kept chains; if no chain is kept, CohortflowError.
- Deterministic: chain c is seeded from (``seed``, c) by numpy's SeedSequence; results do not depend
  on the thread count.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.gwas.api import read_gwas_meta
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.plink import Bed, open_bed
from cohortflow.prs import bayes_kernels
from cohortflow.prs.base import align_sumstats, read_base
from cohortflow.prs.ld import (DEFAULT_CUT_WINDOW, DEFAULT_MAX_BLOCK_BP, DEFAULT_MAX_BLOCK_VARIANTS,
                               MIN_LD_SAMPLES, LDBlocks, compute_ld_blocks)
from cohortflow.threads import thread_limit

log = logging.getLogger(__name__)

WEIGHT_COLUMNS = ["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "weight"]
DEFAULT_N_CHAINS = 8
DEFAULT_BURN_IN = 300
DEFAULT_N_ITER = 300
DEFAULT_P_INIT_RANGE = (1e-4, 0.2)
DEFAULT_P_BOUNDS = (1e-5, 1.0)
DEFAULT_H2_BOUNDS = (1e-4, 1.0)
DEFAULT_SHRINK_CORR = 0.95
CORR_RANGE_FRACTION = 0.95
H2_OUTLIER_RATIO = 2.0
H2_RUNAWAY = 20.0  # a chain whose h2 passes this multiple of the upper bound is stopped at once
H2_INIT_CLIP = (0.01, 0.9)
_STATUS_WORDS = {bayes_kernels.CHAIN_NON_FINITE: "non_finite", bayes_kernels.CHAIN_H2_ABOVE_MAX: "h2_above_max"}


@dataclass
class BayesResult:
    """Posterior of the LDpred2-auto model.

    ``variant_rows``: .bim rows (ascending) of the variants in the model; ``beta_std``: posterior
    mean effects on the standardised scale (mean over the kept chains); ``weight``: the same per
    copy of A1 on the trait's scale; ``postp``: posterior probability of a non-zero effect.
    ``h2``/``p``: estimates (mean over kept chains of the mean over kept sweeps) with their spread
    across kept chains; ``chains``: one dict per chain (kept or diverged, and why).
    """

    variant_rows: np.ndarray
    beta_std: np.ndarray
    weight: np.ndarray
    postp: np.ndarray
    h2: dict
    p: dict
    chains: list
    settings: dict
    ld: dict
    variants: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def n_kept(self) -> int:
        return sum(c["kept"] for c in self.chains)


def chain_seeds(seed: int, n_chains: int) -> np.ndarray:
    """One 32-bit seed per chain, derived from ``seed`` (independent streams)."""
    return np.random.SeedSequence(int(seed)).generate_state(n_chains, dtype=np.uint32).astype(np.int64)


def p_init_grid(n_chains: int, p_init_range=DEFAULT_P_INIT_RANGE) -> np.ndarray:
    lo, hi = float(p_init_range[0]), float(p_init_range[1])
    if not 0 < lo <= hi <= 1:
        raise CohortflowError(f"p_init_range must satisfy 0 < low <= high <= 1, not {p_init_range}")
    if n_chains == 1:
        return np.array([math.sqrt(lo * hi)])
    return np.geomspace(lo, hi, n_chains)


def ldsc_h2_init(beta_hat: np.ndarray, n_eff: np.ndarray, ld_scores: np.ndarray) -> float:
    """LD-score-regression-like h2 with the intercept fixed at 1 (see the module docstring), clipped."""
    chi2 = n_eff * beta_hat ** 2 / np.maximum(1.0 - beta_hat ** 2, 1e-12)
    denom = float(np.sum(n_eff * ld_scores))
    est = len(beta_hat) * float(np.sum(chi2 - 1.0)) / denom if denom > 0 else H2_INIT_CLIP[0]
    return float(np.clip(est, *H2_INIT_CLIP))


def _effective_n(aligned: pd.DataFrame, n: float | None) -> np.ndarray:
    n_col = aligned["n"].to_numpy(float) if "n" in aligned.columns else np.full(len(aligned), np.nan)
    if n is not None:
        if not n > 0:
            raise CohortflowError(f"the GWAS sample size n must be positive, not {n}")
        n_col = np.where(np.isfinite(n_col) & (n_col > 0), n_col, float(n))
    bad = ~(np.isfinite(n_col) & (n_col > 0))
    if bad.any():
        raise CohortflowError(f"{int(bad.sum())} of {len(n_col)} variants have no GWAS sample size: the summary "
                              "statistics need an n column, or give n (for a case-control GWAS the effective "
                              "n = 4 / (1/cases + 1/controls))")
    return n_col


def ldpred_auto(aligned: pd.DataFrame, bed: Bed, *, ld_bed: Bed | None = None, ld_samples=None,
                n: float | None = None, seed: int = 1, n_chains: int = DEFAULT_N_CHAINS,
                burn_in: int = DEFAULT_BURN_IN, n_iter: int = DEFAULT_N_ITER,
                p_init_range=DEFAULT_P_INIT_RANGE, h2_init: float | None = None,
                shrink_corr: float = DEFAULT_SHRINK_CORR, allow_jump_sign: bool = False,
                p_bounds=DEFAULT_P_BOUNDS, h2_bounds=DEFAULT_H2_BOUNDS,
                corr_range_fraction: float = CORR_RANGE_FRACTION, h2_outlier_ratio: float = H2_OUTLIER_RATIO,
                max_block_variants: int = DEFAULT_MAX_BLOCK_VARIANTS, max_block_bp: int = DEFAULT_MAX_BLOCK_BP,
                cut_window: int = DEFAULT_CUT_WINDOW, blocks_bed: str | Path | None = None,
                ld: LDBlocks | None = None, threads: int = 1) -> BayesResult:
    """Fit LDpred2-auto to ``aligned`` (rows of :func:`cohortflow.prs.base.align_sumstats` against
    ``bed``'s .bim). LD comes from ``ld_bed`` (default ``bed``) restricted to ``ld_samples``
    (.fam indices or IIDs), or a precomputed ``ld`` for ``aligned``'s rows. ``n`` fills a missing
    sample size. Raises CohortflowError when every chain diverges."""
    if n_chains < 1 or burn_in < 0 or n_iter < 1:
        raise CohortflowError(f"need n_chains >= 1, burn_in >= 0 and n_iter >= 1 (got {n_chains}, {burn_in}, {n_iter})")
    if not 0 < shrink_corr <= 1:
        raise CohortflowError(f"shrink_corr must be in (0, 1], not {shrink_corr}")
    p_min, p_max = float(p_bounds[0]), float(p_bounds[1])
    h2_min, h2_max = float(h2_bounds[0]), float(h2_bounds[1])
    if not (0 < p_min <= p_max <= 1 and 0 < h2_min < h2_max):
        raise CohortflowError(f"bad bounds: p {p_bounds}, h2 {h2_bounds}")
    if len(aligned) == 0:
        raise CohortflowError("no variants in the summary statistics match the genotypes")
    rows = aligned["bim_row"].to_numpy(np.int64)
    beta = aligned["beta"].to_numpy(float)
    se = aligned["standard_error"].to_numpy(float)
    n_eff = _effective_n(aligned, n)
    scale = np.sqrt(n_eff * se ** 2 + beta ** 2)
    beta_hat_all = beta / scale

    if ld is None:
        with thread_limit(threads):  # BLAS threads of the LD products (exact: any count gives the same bytes)
            ld = compute_ld_blocks(bed, rows, ld_bed=ld_bed, ld_samples=ld_samples,
                                   max_block_variants=max_block_variants, max_block_bp=max_block_bp,
                                   cut_window=cut_window, blocks_bed=blocks_bed)
    idx = ld.variant_index
    if idx.size == 0:
        raise CohortflowError("no variant of the summary statistics is usable with the LD panel "
                              f"(dropped: {ld.dropped})")
    beta_hat = np.ascontiguousarray(beta_hat_all[idx])
    n_used = np.ascontiguousarray(n_eff[idx])
    warnings = []
    if ld.n_samples < MIN_LD_SAMPLES:
        warnings.append(f"the LD panel has only {ld.n_samples} samples (fewer than {MIN_LD_SAMPLES}): its "
                        "correlations are noisy")
    if h2_init is None:
        h2_init = ldsc_h2_init(beta_hat, n_used, ld.ld_scores())
        h2_init_method = "ldsc_intercept1"
    else:
        h2_init_method = "given"
    p_init = p_init_grid(n_chains, p_init_range)
    seeds = chain_seeds(seed, n_chains)

    with thread_limit(threads):
        (avg_beta, avg_postp, _, avg_corr, p_path, h2_path, status,
         sweeps) = bayes_kernels.gibbs_auto(beta_hat, n_used, ld.block_start, ld.block_offset, ld.corr,
                                            p_init, float(h2_init), seeds, int(burn_in), int(n_iter),
                                            float(shrink_corr), bool(allow_jump_sign), True, p_min, p_max,
                                            h2_min, h2_max, H2_RUNAWAY * h2_max)

    chains = _judge_chains(avg_beta, avg_corr, p_path, h2_path, status, sweeps, burn_in=burn_in,
                           p_init=p_init, seeds=seeds, corr_range_fraction=corr_range_fraction,
                           h2_outlier_ratio=h2_outlier_ratio, h2_max=h2_max)
    kept = [c["chain"] for c in chains if c["kept"]]
    if not kept:
        kinds = pd.Series([c["reason"].split(" ")[0] for c in chains]).value_counts(sort=False)
        reasons = ", ".join(f"{k}: {v}" for k, v in kinds.items())
        raise CohortflowError(
            f"all {n_chains} LDpred2-auto chains diverged ({reasons}); the summary statistics do not fit the LD "
            "panel: check the GWAS sample size n, that the LD panel matches the GWAS ancestry and variants, "
            "or shrink the LD more (lower shrink_corr)")
    if 2 * len(kept) < n_chains:
        warnings.append(f"{n_chains - len(kept)} of {n_chains} chains were dropped: the summary statistics fit the "
                        "LD panel poorly (check n, allele coding and the panel's ancestry); the estimates rest on "
                        f"{len(kept)} chain(s)")
    beta_std = avg_beta[kept].mean(axis=0)
    postp = avg_postp[kept].mean(axis=0)
    if not (np.all(np.isfinite(beta_std)) and np.all(np.isfinite(postp))):  # cannot happen after _judge_chains
        raise CohortflowError("non-finite posterior effects from chains judged converged")
    h2_kept = np.array([chains[c]["h2"] for c in kept])
    p_kept = np.array([chains[c]["p"] for c in kept])
    if h2_kept.mean() < 10 * h2_min:
        warnings.append(f"h2 estimate {h2_kept.mean():.2g} is at its lower bound: the summary statistics carry "
                        "almost no signal the model can use (GWAS too small for a trait this polygenic?); the "
                        "weights are close to zero")
    settings = {
        "n_chains": int(n_chains), "burn_in": int(burn_in), "n_iter": int(n_iter), "seed": int(seed),
        "p_init": [float(x) for x in p_init], "h2_init": float(h2_init), "h2_init_method": h2_init_method,
        "shrink_corr": float(shrink_corr), "allow_jump_sign": bool(allow_jump_sign),
        "p_bounds": [p_min, p_max], "h2_bounds": [h2_min, h2_max],
        "corr_range_fraction": float(corr_range_fraction), "h2_outlier_ratio": float(h2_outlier_ratio),
        "max_block_variants": int(max_block_variants), "max_block_bp": int(max_block_bp),
        "cut_window": int(cut_window), "blocks_bed": None if blocks_bed is None else str(blocks_bed),
    }
    variants = {"aligned": int(len(aligned)), "used": int(idx.size), **{k: int(v) for k, v in ld.dropped.items()}}
    return BayesResult(
        variant_rows=rows[idx], beta_std=beta_std, weight=beta_std * scale[idx], postp=postp,
        h2=_spread(h2_kept), p=_spread(p_kept), chains=chains, settings=settings, ld=ld.summary(),
        variants=variants, warnings=warnings)


def _spread(values: np.ndarray) -> dict:
    return {"estimate": float(values.mean()), "sd_across_chains": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max())}


def _judge_chains(avg_beta, avg_corr, p_path, h2_path, status, sweeps, *, burn_in, p_init, seeds,
                  corr_range_fraction, h2_outlier_ratio, h2_max=DEFAULT_H2_BOUNDS[1]) -> list[dict]:
    """Per chain: estimates and whether it is kept (see the module docstring for the rules)."""
    chains = []
    for c in range(len(status)):
        info = {"chain": c, "seed": int(seeds[c]), "p_init": float(p_init[c]), "sweeps": int(sweeps[c]),
                "kept": False, "reason": None, "h2": None, "p": None, "corr_range": None}
        if status[c] != bayes_kernels.CHAIN_OK:
            last = h2_path[c, sweeps[c]]
            info["reason"] = (f"{_STATUS_WORDS[int(status[c])]} at sweep {int(sweeps[c]) + 1}"
                              + (f" (h2 = {last:.3g})" if np.isfinite(last) and last != 0 else ""))
        elif not (np.all(np.isfinite(avg_beta[c])) and np.all(np.isfinite(avg_corr[c]))):
            info["reason"] = "non_finite effects"
        else:
            info["h2"] = float(h2_path[c, burn_in:].mean())
            info["p"] = float(p_path[c, burn_in:].mean())
            info["corr_range"] = float(avg_corr[c].max() - avg_corr[c].min())
            if info["h2"] > h2_max:
                info["reason"] = f"h2_above_max after the burn-in (mean h2 = {info['h2']:.3g})"
            else:
                info["kept"] = True
        chains.append(info)
    ok = [c for c in chains if c["kept"]]
    if ok:
        ranges = np.array([c["corr_range"] for c in ok])
        limit = corr_range_fraction * float(np.quantile(ranges, 0.95))
        for c in ok:
            if c["corr_range"] < limit:
                c["kept"] = False
                c["reason"] = f"corr_range_low ({c['corr_range']:.3g} < {limit:.3g})"
    ok = [c for c in chains if c["kept"]]
    if ok:
        median = float(np.median([c["h2"] for c in ok]))
        for c in ok:
            if abs(math.log(c["h2"] / median)) > math.log(h2_outlier_ratio):
                c["kept"] = False
                c["reason"] = f"h2_outlier ({c['h2']:.3g} vs median {median:.3g})"
    for c in chains:
        c["diverged"] = not c["kept"]
    return chains


def _case_control_n(aligned: pd.DataFrame, sumstats: Path) -> dict:
    """A case-control GWAS of this package (its ``-meta.yaml`` sidecar gives n_cases and n_controls)
    informs as much as 4 / (1/cases + 1/controls) individuals, not cases + controls: each variant's
    n is scaled by that ratio in place (LDpred2's advice for binary traits). Returns how n was set."""
    meta = read_gwas_meta(sumstats)
    try:
        cases, controls = int(meta["n_cases"]), int(meta["n_controls"])
    except (KeyError, ValueError):
        return {"n": "as in the summary statistics (or the n option where they have none)"}
    if cases <= 0 or controls <= 0:
        return {"n": "as in the summary statistics"}
    factor = 4.0 / (1.0 / cases + 1.0 / controls) / (cases + controls)
    aligned["n"] = aligned["n"].to_numpy(float) * factor
    return {"n": "effective case-control n: each variant's n x 4 / (1/cases + 1/controls) / (cases + controls)",
            "n_cases": cases, "n_controls": controls, "factor": round(factor, 6)}


def prs_bayes(*, bfile: str | Path, sumstats: str | Path, out_prefix: str | Path, ld_bfile: str | Path | None = None,
              ld_samples=None, n: float | None = None, seed: int = 1, n_chains: int = DEFAULT_N_CHAINS,
              burn_in: int = DEFAULT_BURN_IN, n_iter: int = DEFAULT_N_ITER, shrink_corr: float = DEFAULT_SHRINK_CORR,
              allow_jump_sign: bool = False, max_block_variants: int = DEFAULT_MAX_BLOCK_VARIANTS,
              max_block_bp: int = DEFAULT_MAX_BLOCK_BP, blocks_bed: str | Path | None = None,
              keep_ambiguous: bool = False, threads: int = 1) -> dict:
    """LDpred2-auto weights for ``sumstats`` against the fileset ``bfile``, LD from ``ld_bfile``
    (default ``bfile``; ``ld_samples``: its samples to use, .fam indices or IIDs).

    Writes ``{out_prefix}.weights.tsv`` (variant_id chromosome base_pair_location effect_allele
    other_allele weight; .bim order; weight per copy of the .bim A1 allele on the trait's scale)
    and ``{out_prefix}.json`` (settings, variants used, h2 and p with their spread across
    kept chains, every chain with why it was dropped; aggregate figures only). Returns the JSON
    dict plus ``runtime_s`` (left out of the file so that same inputs give the same bytes).
    """
    t0 = time.perf_counter()
    sumstats = Path(sumstats)
    bed = open_bed(bfile)
    ld_bed = open_bed(ld_bfile) if ld_bfile is not None else None
    table, read_log = read_base(sumstats, bim=bed.bim, n=n)
    aligned = align_sumstats(table, bed.bim, keep_ambiguous=keep_ambiguous, source=str(sumstats))
    sample_size = _case_control_n(aligned, sumstats)
    result = ldpred_auto(aligned, bed, ld_bed=ld_bed, ld_samples=ld_samples, n=n, seed=seed, n_chains=n_chains,
                         burn_in=burn_in, n_iter=n_iter, shrink_corr=shrink_corr, allow_jump_sign=allow_jump_sign,
                         max_block_variants=max_block_variants, max_block_bp=max_block_bp, blocks_bed=blocks_bed,
                         threads=threads)
    bim = bed.bim
    r = result.variant_rows
    weights = pd.DataFrame({"variant_id": bim["id"].to_numpy()[r], "chromosome": bim["chrom"].to_numpy()[r],
                            "base_pair_location": bim["pos"].to_numpy()[r], "effect_allele": bim["a1"].to_numpy()[r],
                            "other_allele": bim["a2"].to_numpy()[r], "weight": result.weight}, columns=WEIGHT_COLUMNS)
    out_prefix = Path(str(out_prefix))
    summary = {
        "method": "LDpred2-auto model, Gibbs sampler (cohortflow.prs.bayes)",
        "sumstats": str(sumstats), "bfile": str(bfile), "ld_bfile": None if ld_bfile is None else str(ld_bfile),
        "sumstats_read": read_log, "match": aligned.attrs.get("match", {}), "sample_size": sample_size,
        "variants": result.variants,
        "ld": result.ld, "settings": result.settings, "h2": result.h2, "p": result.p,
        "n_chains_kept": result.n_kept, "n_chains_diverged": len(result.chains) - result.n_kept,
        "chains": result.chains, "warnings": result.warnings,
    }
    with atomic_open(f"{out_prefix}.weights.tsv") as fh:
        fh.write(weights.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))
    write_json_atomic(f"{out_prefix}.json", summary)
    for c in result.chains:
        if c["diverged"]:
            log.warning("LDpred2-auto chain %d (p_init %.3g) dropped: %s", c["chain"], c["p_init"], c["reason"])
    return {**summary, "runtime_s": time.perf_counter() - t0}
