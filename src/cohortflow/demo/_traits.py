"""Planted trait architecture of the demo cohort: causal-variant choice and phenotype models.

Pure functions on numpy arrays; :mod:`cohortflow.demo.genome` does the file writing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cohortflow.errors import ConfigError


@dataclass(frozen=True)
class ChromosomeVariants:
    """True genotypes of one simulated chromosome (individuals in IID order)."""

    chrom: str
    positions: np.ndarray  # 1-based, increasing, int64
    ref: np.ndarray  # base codes 0..3
    alt: np.ndarray  # base codes 0..3, != ref
    haplotypes: np.ndarray  # (n_sites, 2 * n_individuals) uint8 ALT indicators; cols 2i, 2i+1 = IID i

    def variant_ids(self, index: np.ndarray | None = None) -> list[str]:
        idx = np.arange(len(self.positions)) if index is None else np.atleast_1d(index)
        return [f"{self.chrom}:{self.positions[i]}:{'ACGT'[self.ref[i]]}:{'ACGT'[self.alt[i]]}" for i in idx]

    def dosage(self, index: int) -> np.ndarray:
        h = self.haplotypes[index]
        return (h[0::2] + h[1::2]).astype(np.float64)


@dataclass(frozen=True)
class Gene:
    chrom: str
    start: int  # 1-based inclusive
    end: int
    strand: str
    name: str


def locus_slots(chroms: list[str], n_quant: int, n_disease: int) -> tuple[list[tuple[str, int]], int]:
    """(chromosome, slot) for each causal locus, quantitative-trait loci first; and slots per chromosome.

    Each chromosome is cut into equal slots; quantitative loci take the even slots (so two of them on
    one chromosome are at least one slot apart), disease loci the rest.
    """
    n_loci = n_quant + n_disease
    n_slots = max(1, math.ceil(n_loci / len(chroms)))
    order = [s for s in range(n_slots) if s % 2 == 0] + [s for s in range(n_slots) if s % 2 == 1]
    pairs = [(c, s) for s in order for c in chroms]
    if len(pairs) < n_loci:
        raise ConfigError(f"cannot place {n_loci} causal loci on {len(chroms)} chromosomes")
    return pairs[:n_loci], n_slots


def choose_causal_variant(
    chrom: ChromosomeVariants,
    genes: list[Gene],
    used_genes: set[str],
    *,
    slot: int,
    n_slots: int,
    chrom_length: int,
    population: np.ndarray,
    n_populations: int,
    min_maf: float,
    max_population_diff: float,
    rng: np.random.Generator,
) -> tuple[int, Gene]:
    """Index of a common SNV inside an unused gene of the slot, with similar frequency in every population.

    Tries the middle half of the slot first, then the whole slot, then a looser population-frequency
    limit; raises ConfigError when nothing qualifies (genome too small for the requested loci).
    """
    width = chrom_length / n_slots
    # Statistics only for variants of this slot (the whole chromosome would be wasted work).
    first, last = np.searchsorted(chrom.positions, [slot * width, (slot + 1) * width])
    positions = chrom.positions[first:last]
    hap = chrom.haplotypes[first:last]
    alt_count = hap[:, 0::2].astype(np.int16) + hap[:, 1::2]
    freq = alt_count.mean(axis=1) / 2
    maf = np.minimum(freq, 1 - freq)
    pop_freq = np.stack([alt_count[:, population == k].mean(axis=1) / 2 for k in range(n_populations)], axis=1)
    pop_diff = np.abs(pop_freq - freq[:, None]).max(axis=1)
    gene_of = np.full(len(positions), -1)
    for g_index, gene in enumerate(genes):
        if gene.name in used_genes:
            continue
        lo, hi = np.searchsorted(positions, [gene.start, gene.end + 1])
        gene_of[lo:hi] = g_index
    attempts = [(0.25, max_population_diff), (0.0, max_population_diff), (0.0, 2 * max_population_diff)]
    for margin, diff_limit in attempts:
        lo = slot * width + margin * width
        hi = (slot + 1) * width - margin * width
        ok = (
            (positions >= lo)
            & (positions < hi)
            & (gene_of >= 0)
            & (maf >= min_maf)
            & (pop_diff <= diff_limit)
        )
        candidates = np.flatnonzero(ok)
        if len(candidates):
            index = int(candidates[rng.integers(len(candidates))])
            return first + index, genes[gene_of[index]]
    raise ConfigError(
        f"no common variant with MAF >= {min_maf} inside a gene in chromosome {chrom.chrom} slot {slot}; "
        "increase chrom_length or n_individuals, or plant fewer loci"
    )


def choose_secondary_variants(
    chrom: ChromosomeVariants,
    primary: int,
    *,
    n: int,
    window_bp: int,
    min_maf: float,
    r2_range: tuple[float, float],
    exclude: set[int],
    rng: np.random.Generator,
) -> list[tuple[int, float]]:
    """Up to ``n`` (index, r with the primary) of common SNVs within ``window_bp`` of the ``primary``
    variant whose r^2 with it (true dosages) lies strictly inside ``r2_range``: further causal
    variants of the same locus (allelic heterogeneity), in partial LD with the first."""
    pos = chrom.positions
    lo, hi = np.searchsorted(pos, [pos[primary] - window_bp, pos[primary] + window_bp + 1])
    x = chrom.dosage(primary)
    candidates = []
    for j in range(lo, hi):
        if j == primary or j in exclude:
            continue
        d = chrom.dosage(j)
        eaf = d.mean() / 2
        if min(eaf, 1 - eaf) < min_maf:
            continue
        r = float(np.corrcoef(x, d)[0, 1])
        if r2_range[0] < r * r < r2_range[1]:
            candidates.append((j, r))
    if not candidates:
        return []
    pick = np.sort(rng.choice(len(candidates), size=min(n, len(candidates)), replace=False))
    return [candidates[k] for k in pick]


def simulate_quantitative(
    dosages: np.ndarray,
    *,
    variance_explained: float | np.ndarray,
    sex: np.ndarray,
    age: np.ndarray,
    population: np.ndarray,
    population_shift: np.ndarray,
    sex_effect: float,
    age_effect: float,
    age_centre: float,
    rng: np.random.Generator,
    signs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Quantitative trait on a ~unit-variance scale: genetic + sex + age + population shift + noise.

    ``dosages`` is (individuals, variants) ALT counts. Each variant explains its
    ``variance_explained`` (one value for all, or one per variant) of the total variance (HWE
    expectation, ignoring LD between variants); ``signs`` of the effects are random unless given.
    Returns (trait, betas, noise_sd).
    """
    freq = dosages.mean(axis=0) / 2
    if signs is None:
        signs = rng.choice(np.array([-1.0, 1.0]), size=dosages.shape[1])
    variance = np.broadcast_to(np.asarray(variance_explained, dtype=float), (dosages.shape[1],))
    betas = signs * np.sqrt(variance / (2 * freq * (1 - freq)))
    genetic = (dosages - 2 * freq) @ betas
    male = (sex == 1).astype(np.float64)
    covariate = sex_effect * (male - 0.5) + age_effect * (age - age_centre)
    shift = population_shift[population]
    # genetic variance: HWE variance of each variant plus the covariances of variants in LD
    k = dosages.shape[1]
    cov = np.cov(dosages, rowvar=False).reshape(k, k) if k else np.zeros((0, 0))
    np.fill_diagonal(cov, 2 * freq * (1 - freq))
    genetic_variance = float(betas @ cov @ betas)
    expected_other = (
        genetic_variance
        + sex_effect**2 / 4
        + age_effect**2 * np.var(age)
        + np.var(population_shift[population])
    )
    if expected_other >= 0.95:
        raise ConfigError(f"planted quantitative effects explain {expected_other:.2f} of the variance (must be < 0.95)")
    noise_sd = math.sqrt(1 - expected_other)
    trait = genetic + covariate + shift + rng.normal(0.0, noise_sd, size=len(sex))
    return trait, betas, noise_sd


def simulate_binary(
    dosages: np.ndarray,
    *,
    log_odds_ratio: float,
    prevalence: float,
    sex: np.ndarray,
    age: np.ndarray,
    population: np.ndarray,
    population_shift: np.ndarray,
    sex_log_or: float,
    age_log_or: float,
    age_centre: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Logistic disease model; the intercept is solved so the expected prevalence is ``prevalence``.

    Returns (is_case bool array, per-locus log-ORs of the ALT allele, intercept).
    """
    freq = dosages.mean(axis=0) / 2
    signs = rng.choice(np.array([-1.0, 1.0]), size=dosages.shape[1])
    log_ors = signs * log_odds_ratio
    linear = (
        (dosages - 2 * freq) @ log_ors
        + sex_log_or * (sex == 1)
        + age_log_or * (age - age_centre)
        + population_shift[population]
    )
    lo, hi = -20.0, 20.0
    for _ in range(100):  # bisection: mean risk is increasing in the intercept
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(mid + linear)))) < prevalence:
            lo = mid
        else:
            hi = mid
    intercept = (lo + hi) / 2
    risk = 1 / (1 + np.exp(-(intercept + linear)))
    return rng.random(len(risk)) < risk, log_ors, intercept
