"""A large simulated cohort for the scale benchmark (benchmarks/bench_scale.py): PLINK 1 genotypes
with phenotypes, covariates, ancestry labels and a PGS Catalog scoring file, and a bgzipped,
tabix-indexed multi-contig VCF.

    .venv/bin/python benchmarks/_scale_cohort.py plink /tmp/scale/plink/cohort --samples 50000 --variants 500000
    .venv/bin/python benchmarks/_scale_cohort.py vcf /tmp/scale/vcf/cohort.vcf.gz --samples 5000 --variants 500000

Model (both writers; cheap enough for 50,000 x 500,000 on two cores):

* variants on the 22 autosomes in proportion to their GRCh37 lengths, increasing positions, IDs
  ``chr:pos:ref:alt``, non-ambiguous SNP alleles (no A/T or C/G pair, so PGS matching keeps
  them); the ALT allele is the .bim A1 (the allele counted, as the workflow's ingestion writes);
* population structure (Balding-Nichols): ancestral frequency ~ Uniform(0.05, 0.95), population
  frequency ~ Beta(p(1-F)/F, (1-p)(1-F)/F), samples drawn into ``n_populations`` populations of
  unequal size (weights K, K-1, .., 1). F is 0.01 by default, not 0.02: the QC's HWE test pools
  all founders, and at 50,000 samples the Wahlund effect of F = 0.02 fails ~15-20 % of the
  variants at p < 1e-6 (F = 0.01: ~2-3 %), which would shrink the run and the PGS overlap;
* LD between neighbouring variants: each haplotype carries a latent uniform u; at each variant it
  keeps u with probability ``ld_keep`` (0.85), else draws a new one (and always at a chromosome's
  first variant); the allele is ALT when u < the variant's population frequency. Frequencies are
  exactly the population's, and the correlation of neighbours decays as ld_keep^distance, so LD
  pruning (r2 0.2) keeps about a third of the variants and clumping merges neighbours;
* missing calls at ``missing_rate`` (0.0015), independently per genotype;
* ``n_related_pairs`` (50) related pairs (A, B) in the same population: half duplicates (B's two
  haplotypes are A's, missing calls independent: KING kinship ~0.5), half parent-offspring (B's
  first haplotype is A's first: kinship ~0.25);
* randomness from a counter-based hash (splitmix64 of seed, sample, variant), so the output does
  not depend on the thread count or the block size. The .bed is written in blocks of variants by
  one numba kernel (parallel over samples; the latent state of every haplotype carries over
  between blocks); memory is one block (~64 MB) plus the per-variant tables.

Phenotypes (read back from the .bed: the causal variants' genotypes, missing calls at the mean):

* ``height``: ``n_causal`` (1,000) causal variants, standardised effects ~ N(0, 1) scaled to
  genetic variance ``h2`` (0.5) on a unit-variance scale (noise variance 1 - h2), plus population
  shifts 0.2 x (k - (K-1)/2), male +0.8 and age +0.03 per year from 55;
* ``disease``: liability threshold (prevalence 0.2) on ``n_disease_causal`` (500) other causal
  variants (liability h2 0.3), population shifts 0.3 x (k - (K-1)/2), male +0.3, age +0.02/year;
  coded 1 = control, 2 = case (the demo's coding; plink2's);
* 0.2 % of each phenotype NA.

Files beside the PLINK prefix (the demo's formats, cohortflow.demo.genome and .pgs):
``phenotypes.tsv`` (``#FID IID height disease``), ``covariates.tsv`` (``#FID IID sex age``; sex
1 = male, 2 = female, also in the .fam), ``samples.tsv`` (``IID population sex``),
``pgs/SCALE000001.txt.gz`` (PGS Catalog format 2.0, GRCh37, the true per-ALT-allele effects of
``height``) and ``truth.json`` (parameters, related pairs, causal variants count).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd
from numba import njit, prange

# GRCh37 autosome lengths (chr1..chr22)
GRCH37_LENGTHS = np.array([
    249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663, 146364022, 141213431,
    135534747, 135006516, 133851895, 115169878, 107349540, 102531392, 90354753, 81195210, 78077248,
    59128983, 63025520, 48129895, 51304566], dtype=np.int64)
# REF/ALT pairs without A/T and C/G (strand-ambiguous) SNPs
PAIRS = (("A", "G"), ("A", "C"), ("G", "T"), ("C", "T"), ("G", "A"), ("C", "A"), ("T", "G"), ("T", "C"))
PGS_ID = "SCALE000001"
_MAX_SAMPLES = 1 << 30  # hash keys pack sample << 33 | variant << 1 | stream
_MAX_VARIANTS = 1 << 32
_U16 = 65536


# --------------------------------------------------------------------------- layout (numpy, seeded)

def variant_layout(n_variants: int, *, seed: int, n_populations: int = 3, fst: float = 0.01) -> dict:
    """Per-variant tables: chrom (1..22), pos, ref, alt, id, chromosome starts, ancestral and
    population ALT frequencies, and the 16-bit thresholds the kernels compare latent u with."""
    if not 22 <= n_variants < _MAX_VARIANTS:
        raise ValueError(f"n_variants must be between 22 and {_MAX_VARIANTS - 1}")
    rng = np.random.default_rng([seed, 0])
    exact = n_variants * GRCH37_LENGTHS / GRCH37_LENGTHS.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n_variants - counts.sum()]] += 1
    chrom = np.repeat(np.arange(1, 23, dtype=np.int64), counts)
    pos = np.empty(n_variants, dtype=np.int64)
    start = 0
    for length, k in zip(GRCH37_LENGTHS, counts):
        step = length / k
        if step < 10:
            raise ValueError(f"{n_variants} variants do not fit the genome at >= 10 bp spacing")
        pos[start:start + k] = np.floor((np.arange(k) + rng.uniform(0.05, 0.95, k)) * step).astype(np.int64) + 1
        start += k
    pair = rng.integers(0, len(PAIRS), n_variants)
    ref = np.array([p[0] for p in PAIRS])[pair]
    alt = np.array([p[1] for p in PAIRS])[pair]
    chrom_start = np.zeros(n_variants, dtype=np.bool_)
    chrom_start[np.concatenate([[0], np.cumsum(counts)[:-1]])] = True
    p_anc = rng.uniform(0.05, 0.95, n_variants)
    a, b = p_anc * (1 - fst) / fst, (1 - p_anc) * (1 - fst) / fst
    freq = np.stack([rng.beta(a, b) for _ in range(n_populations)])  # populations x variants
    thr = np.clip(np.rint(freq * _U16), 0, _U16).astype(np.uint32)
    ids = (pd.Series(chrom.astype(str)).str.cat([pd.Series(pos.astype(str)), pd.Series(ref), pd.Series(alt)],
                                                sep=":")).to_numpy(dtype=object)
    return {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "id": ids, "chrom_start": chrom_start,
            "p_anc": p_anc, "freq": freq, "thr": thr, "counts": counts}


def sample_layout(n_samples: int, *, seed: int, n_populations: int = 3, n_related_pairs: int = 50) -> dict:
    """Per-sample tables: IDs, population, sex (1 male, 2 female), age, and the source haplotype
    of every haplotype (itself, or the related partner's for the second of a related pair)."""
    if not 4 <= n_samples < _MAX_SAMPLES:
        raise ValueError(f"n_samples must be between 4 and {_MAX_SAMPLES - 1}")
    rng = np.random.default_rng([seed, 1])
    weights = np.arange(n_populations, 0, -1, dtype=float)
    population = rng.choice(n_populations, size=n_samples, p=weights / weights.sum()).astype(np.int64)
    sex = np.where(rng.random(n_samples) < 0.5, 1, 2).astype(np.int64)
    age = rng.integers(40, 71, size=n_samples)
    n_pairs = min(n_related_pairs, n_samples // 4)
    picked = rng.permutation(n_samples)[: 2 * n_pairs]
    first, second = np.sort(picked[:n_pairs]), picked[n_pairs:]
    population[second] = population[first]
    src_hap = np.arange(2 * n_samples, dtype=np.int64)
    n_dup = n_pairs // 2
    kind = np.array(["duplicate"] * n_dup + ["parent-offspring"] * (n_pairs - n_dup))
    src_hap[2 * second[:n_dup]] = 2 * first[:n_dup]
    src_hap[2 * second[:n_dup] + 1] = 2 * first[:n_dup] + 1
    src_hap[2 * second[n_dup:]] = 2 * first[n_dup:]
    width = max(5, len(str(n_samples)))
    iid = np.array([f"S{i + 1:0{width}d}" for i in range(n_samples)])
    pairs = [{"a": str(iid[x]), "b": str(iid[y]), "kind": str(k)} for x, y, k in zip(first, second, kind)]
    return {"iid": iid, "population": population, "sex": sex, "age": age, "src_hap": src_hap, "pairs": pairs}


def _seed_key(seed: int) -> np.uint64:
    return np.uint64(_splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF)) | np.uint64(1))


# --------------------------------------------------------------------------- numba kernels

@njit(inline="always")
def _splitmix64(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(inline="always")
def _hash(key, sample, variant, stream):
    return _splitmix64(key + ((np.uint64(sample) << np.uint64(33)) | (np.uint64(variant) << np.uint64(1))
                              | np.uint64(stream)))


@njit(inline="always")
def _next_allele(state, h, slot, fresh, keep_thr, thr):
    """Advance one haplotype's latent u (16 bits in state) with its hash bits; returns the allele."""
    shift = np.uint64(32 * slot)
    keep = np.uint32((h >> shift) & np.uint64(0xFFFF))
    if fresh or keep >= keep_thr:
        state = np.uint16((h >> (shift + np.uint64(16))) & np.uint64(0xFFFF))
    return state, np.uint32(state) < thr


@njit(inline="always")
def _sample_alleles(s, v, key, src_hap, state, pop, thr, fresh, keep_thr):
    """Alleles (0/1 each) of sample s at variant v; updates the latent state of the sample's two
    haplotypes."""
    t = thr[pop[s], v]
    h0s = src_hap[2 * s]
    h1s = src_hap[2 * s + 1]
    ha = _hash(key, h0s >> 1, v, 0)
    hb = ha if (h1s >> 1) == (h0s >> 1) else _hash(key, h1s >> 1, v, 0)
    st0, a0 = _next_allele(state[2 * s], ha, h0s & 1, fresh, keep_thr, t)
    st1, a1 = _next_allele(state[2 * s + 1], hb, h1s & 1, fresh, keep_thr, t)
    state[2 * s] = st0
    state[2 * s + 1] = st1
    return a0, a1


@njit(inline="always")
def _missing(hm, slot, miss_thr):
    """Whether the call of the sample in ``slot`` (0..3) of its group of four is missing, from the
    group's hash ``hm`` (_hash(key, s >> 2, v, 1): one hash per four samples)."""
    return np.uint32((hm >> np.uint64(16 * slot)) & np.uint64(0xFFFF)) < miss_thr


@njit(parallel=True, cache=True)
def bed_block(v0, v1, key, src_hap, state, pop, thr, chrom_start, keep_thr, miss_thr, out):
    """Packed .bed rows of variants v0:v1 into out ((v1-v0) x ceil(n/4) uint8); codes 00 hom A1
    (ALT/ALT), 01 missing, 10 het, 11 hom A2 (REF/REF), low bits first, padding 0."""
    n = pop.size
    nbytes = out.shape[1]
    n_chunks = min(nbytes, 512)
    for c in prange(n_chunks):
        j0 = c * nbytes // n_chunks
        j1 = (c + 1) * nbytes // n_chunks
        for v in range(v0, v1):
            fresh = chrom_start[v]
            for j in range(j0, j1):
                byte = 0
                hm = _hash(key, j, v, 1)
                for k in range(4):
                    s = 4 * j + k
                    if s < n:
                        a0, a1 = _sample_alleles(s, v, key, src_hap, state, pop, thr, fresh, keep_thr)
                        if _missing(hm, k, miss_thr):
                            code = 1
                        else:
                            g = int(a0) + int(a1)
                            code = 3 if g == 0 else (2 if g == 1 else 0)
                        byte |= code << (2 * k)
                out[v - v0, j] = np.uint8(byte)


@njit(parallel=True, cache=True)
def vcf_block(v0, v1, key, src_hap, state, pop, thr, chrom_start, keep_thr, miss_thr, buf, gt_start):
    """GT text of variants v0:v1: for line i, sample s writes 4 bytes at buf[gt_start[i] + 4 s]
    (``a|b`` or ``./.``, then a tab, or a newline after the last sample)."""
    n = pop.size
    n_chunks = min(n, 512)
    for c in prange(n_chunks):
        s0 = c * n // n_chunks
        s1 = (c + 1) * n // n_chunks
        for v in range(v0, v1):
            fresh = chrom_start[v]
            base = gt_start[v - v0]
            for s in range(s0, s1):
                a0, a1 = _sample_alleles(s, v, key, src_hap, state, pop, thr, fresh, keep_thr)
                o = base + 4 * s
                if _missing(_hash(key, s >> 2, v, 1), s & 3, miss_thr):
                    buf[o] = 46  # .
                    buf[o + 1] = 47  # /
                    buf[o + 2] = 46
                else:
                    buf[o] = 48 + a0
                    buf[o + 1] = 124  # |
                    buf[o + 2] = 48 + a1
                buf[o + 3] = 10 if s == n - 1 else 9


@njit(parallel=True, cache=True)
def _copy_prefixes(buf, line_start, prefix, prefix_start):
    for i in prange(line_start.size):
        p0 = prefix_start[i]
        length = prefix_start[i + 1] - p0
        o = line_start[i]
        for k in range(length):
            buf[o + k] = prefix[p0 + k]


# --------------------------------------------------------------------------- PLINK cohort

def _thresholds(keep: float, missing_rate: float) -> tuple[np.uint32, np.uint32]:
    return np.uint32(round(keep * _U16)), np.uint32(round(missing_rate * _U16))


def _write_table(path: Path, table: pd.DataFrame) -> None:
    table.to_csv(path, sep="\t", index=False, lineterminator="\n")


def write_plink_cohort(prefix, *, n_samples: int, n_variants: int, seed: int, n_populations: int = 3,
                       fst: float = 0.01, ld_keep: float = 0.85, missing_rate: float = 0.0015,
                       n_related_pairs: int = 50, n_causal: int = 1000, h2: float = 0.5,
                       n_disease_causal: int = 500, disease_h2: float = 0.3, prevalence: float = 0.2,
                       phenotype_missing_rate: float = 0.002, block_mb: int = 64, verbose: bool = False) -> dict:
    """Write ``prefix.bed/.bim/.fam`` and, in its folder, phenotypes.tsv, covariates.tsv,
    samples.tsv, pgs/SCALE000001.txt.gz and truth.json (module docstring). Returns the paths and
    the seconds spent on genotypes and on the rest."""
    prefix = Path(prefix)
    folder = prefix.parent
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    var = variant_layout(n_variants, seed=seed, n_populations=n_populations, fst=fst)
    smp = sample_layout(n_samples, seed=seed, n_populations=n_populations, n_related_pairs=n_related_pairs)
    keep_thr, miss_thr = _thresholds(ld_keep, missing_rate)
    key = _seed_key(seed)
    state = np.zeros(2 * n_samples, dtype=np.uint16)
    nbytes = (n_samples + 3) // 4
    block = max(1, (block_mb << 20) // nbytes)
    out = np.empty((block, nbytes), dtype=np.uint8)
    bed_tmp = Path(f"{prefix}.bed.tmp")
    with open(bed_tmp, "wb") as fh:
        fh.write(bytes([0x6C, 0x1B, 0x01]))
        for v0 in range(0, n_variants, block):
            v1 = min(n_variants, v0 + block)
            rows = out[: v1 - v0]
            bed_block(v0, v1, key, smp["src_hap"], state, smp["population"], var["thr"], var["chrom_start"],
                      keep_thr, miss_thr, rows)
            fh.write(rows.data)
            if verbose and (v0 // block) % 20 == 0:
                print(f"  .bed: {v1:,}/{n_variants:,} variants, {time.monotonic() - t0:.0f} s", flush=True)
    bed_tmp.replace(f"{prefix}.bed")
    bim = pd.DataFrame({"chrom": var["chrom"], "id": var["id"], "cm": 0, "pos": var["pos"], "a1": var["alt"],
                        "a2": var["ref"]})
    _write_table_noheader(Path(f"{prefix}.bim"), bim)
    fam = pd.DataFrame({"fid": smp["iid"], "iid": smp["iid"], "father": 0, "mother": 0, "sex": smp["sex"],
                        "pheno": -9})
    _write_table_noheader(Path(f"{prefix}.fam"), fam)
    t_geno = time.monotonic() - t0
    paths = write_phenotypes(prefix, var, smp, seed=seed, n_populations=n_populations, n_causal=n_causal, h2=h2,
                             n_disease_causal=n_disease_causal, disease_h2=disease_h2, prevalence=prevalence,
                             phenotype_missing_rate=phenotype_missing_rate)
    truth = {"n_samples": n_samples, "n_variants": n_variants, "seed": seed, "n_populations": n_populations,
             "fst": fst, "ld_keep": ld_keep, "missing_rate": missing_rate, "n_causal": paths.pop("n_causal"),
             "n_disease_causal": paths.pop("n_disease_causal"), "h2": h2, "disease_h2": disease_h2,
             "prevalence": prevalence, "related_pairs": smp["pairs"],
             "variants_per_chromosome": var["counts"].tolist()}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return {"prefix": str(prefix), **paths, "truth": str(folder / "truth.json"),
            "seconds_genotypes": t_geno, "seconds_total": time.monotonic() - t0}


def _write_table_noheader(path: Path, table: pd.DataFrame) -> None:
    tmp = Path(f"{path}.tmp")
    table.to_csv(tmp, sep="\t", index=False, header=False, lineterminator="\n")
    tmp.replace(path)


def _genetic_value(geno: np.ndarray, rng: np.random.Generator, h2: float, chunk: int = 256):
    """Per-ALT-allele effects (standardised effects ~ N(0,1), scaled to genetic variance h2) and
    the genetic values; missing calls (-1) count as the mean."""
    n, m = geno.shape
    freq = np.empty(m)
    for c in range(0, m, chunk):
        g = geno[:, c:c + chunk]
        called = g >= 0
        freq[c:c + chunk] = np.where(called, g, 0).sum(0) / np.maximum(2 * called.sum(0), 1)
    sd = np.sqrt(np.maximum(2 * freq * (1 - freq), 1e-6))
    beta = rng.normal(size=m) / sd
    value = np.zeros(n)
    for c in range(0, m, chunk):
        g = geno[:, c:c + chunk].astype(np.float64)
        g[g < 0] = np.broadcast_to(2 * freq[c:c + chunk], g.shape)[g < 0]
        value += (g - 2 * freq[c:c + chunk]) @ beta[c:c + chunk]
    scale = np.sqrt(h2 / value.var()) if value.var() > 0 else 0.0
    return beta * scale, value * scale


def write_phenotypes(prefix, var: dict, smp: dict, *, seed: int, n_populations: int, n_causal: int, h2: float,
                     n_disease_causal: int, disease_h2: float, prevalence: float,
                     phenotype_missing_rate: float) -> dict:
    """Phenotypes from the causal variants' genotypes read back from the .bed (module docstring);
    writes phenotypes.tsv, covariates.tsv, samples.tsv and the PGS scoring file."""
    from cohortflow.io.plink import open_bed

    prefix = Path(prefix)
    folder = prefix.parent
    m = len(var["pos"])
    n = len(smp["iid"])
    rng = np.random.default_rng([seed, 2])
    n_causal = min(n_causal, m // 10)
    n_disease_causal = min(n_disease_causal, m // 10)
    picked = rng.choice(m, size=n_causal + n_disease_causal, replace=False)
    causal, disease_causal = np.sort(picked[:n_causal]), np.sort(picked[n_causal:])
    rows = np.sort(picked)
    geno = open_bed(prefix).read_rows(rows)  # n_rows x samples, int8
    where = {int(r): i for i, r in enumerate(rows)}
    population, sex, age = smp["population"], smp["sex"], smp["age"]
    centred = population - (n_populations - 1) / 2
    male = (sex == 1).astype(float)

    g_h = np.ascontiguousarray(geno[[where[int(r)] for r in causal]].T)
    beta, value = _genetic_value(g_h, rng, h2)
    height = value + rng.normal(0, np.sqrt(1 - h2), n) + 0.2 * centred + 0.8 * male + 0.03 * (age - 55)
    del g_h
    g_d = np.ascontiguousarray(geno[[where[int(r)] for r in disease_causal]].T)
    _, liability = _genetic_value(g_d, rng, disease_h2)
    del g_d, geno
    liability = liability + rng.normal(0, np.sqrt(1 - disease_h2), n) + 0.3 * centred + 0.3 * male \
        + 0.02 * (age - 55)
    case = liability > np.quantile(liability, 1 - prevalence)
    height_na = rng.random(n) < phenotype_missing_rate
    disease_na = rng.random(n) < phenotype_missing_rate
    iid = smp["iid"]
    pop_names = np.array([f"POP{k + 1}" for k in range(n_populations)])
    paths = {"phenotypes": str(folder / "phenotypes.tsv"), "covariates": str(folder / "covariates.tsv"),
             "sample_info": str(folder / "samples.tsv"), "pgs": str(folder / "pgs" / f"{PGS_ID}.txt.gz")}
    _write_table(Path(paths["sample_info"]), pd.DataFrame({"IID": iid, "population": pop_names[population],
                                                           "sex": sex}))
    _write_table(Path(paths["phenotypes"]), pd.DataFrame({
        "#FID": iid, "IID": iid, "height": np.where(height_na, "NA", np.char.mod("%.4f", height)),
        "disease": np.where(disease_na, "NA", np.where(case, "2", "1"))}))
    _write_table(Path(paths["covariates"]), pd.DataFrame({"#FID": iid, "IID": iid, "sex": sex, "age": age}))
    write_scoring_file(paths["pgs"], chrom=var["chrom"][causal], pos=var["pos"][causal],
                       effect_allele=var["alt"][causal], other_allele=var["ref"][causal], weight=beta)
    return {**paths, "n_causal": int(n_causal), "n_disease_causal": int(n_disease_causal)}


def write_scoring_file(path, *, chrom, pos, effect_allele, other_allele, weight, trait: str = "height") -> None:
    """A PGS Catalog format 2.0 scoring file (the demo's header layout, GRCh37), gzip, mtime 0."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring for additional "
        "information",
        "#format_version=2.0",
        "##POLYGENIC SCORE (PGS) INFORMATION",
        f"#pgs_id={PGS_ID}",
        f"#pgs_name=cohortflow_scale_{trait}",
        f"#trait_reported={trait} (simulated)",
        "#genome_build=GRCh37",
        f"#variants_number={len(pos)}",
        "#weight_type=beta",
        "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight",
    ]
    body = [f"{c}\t{p}\t{ea}\t{oa}\t{w!r}" for c, p, ea, oa, w in
            zip(np.asarray(chrom).tolist(), np.asarray(pos).tolist(), effect_allele, other_allele,
                np.asarray(weight, dtype=float).tolist())]
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(("\n".join(header + body) + "\n").encode())


# --------------------------------------------------------------------------- VCF cohort

def _vcf_header(samples) -> bytes:
    lines = ["##fileformat=VCFv4.2", "##source=cohortflow benchmarks/_scale_cohort.py"]
    lines += [f"##contig=<ID={k + 1},length={length},assembly=GRCh37>" for k, length in enumerate(GRCH37_LENGTHS)]
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]))
    return ("\n".join(lines) + "\n").encode()


def write_vcf_cohort(path, *, n_samples: int, n_variants: int, seed: int, n_populations: int = 3,
                     fst: float = 0.01, ld_keep: float = 0.85, missing_rate: float = 0.0015,
                     n_related_pairs: int = 50, block_mb: int = 32, threads: int = 2, level: int = 1,
                     verbose: bool = False) -> dict:
    """Write one bgzipped VCF 4.2 (GT only, phased calls, ``./.`` missing) over the 22 autosomes
    and its tabix index; the same genotype model as :func:`write_plink_cohort`. Compression:
    ``bgzip -@ threads -l level`` fed through a pipe. Returns the path and timings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    var = variant_layout(n_variants, seed=seed, n_populations=n_populations, fst=fst)
    smp = sample_layout(n_samples, seed=seed, n_populations=n_populations, n_related_pairs=n_related_pairs)
    keep_thr, miss_thr = _thresholds(ld_keep, missing_rate)
    key = _seed_key(seed)
    state = np.zeros(2 * n_samples, dtype=np.uint16)
    gt_bytes = 4 * n_samples
    block = max(1, (block_mb << 20) // (gt_bytes + 64))
    tmp = Path(f"{path}.tmp")
    with open(tmp, "wb") as fh:
        proc = subprocess.Popen(["bgzip", "-c", "-@", str(threads), "-l", str(level)], stdin=subprocess.PIPE,
                                stdout=fh)
        try:
            proc.stdin.write(_vcf_header(smp["iid"]))
            for v0 in range(0, n_variants, block):
                v1 = min(n_variants, v0 + block)
                lines = [f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t.\tGT\t" for c, p, i, r, a in zip(
                    var["chrom"][v0:v1].tolist(), var["pos"][v0:v1].tolist(), var["id"][v0:v1],
                    var["ref"][v0:v1], var["alt"][v0:v1])]
                prefix = np.frombuffer("".join(lines).encode(), dtype=np.uint8)
                lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))  # ASCII: chars = bytes
                prefix_start = np.concatenate([[0], np.cumsum(lengths)])
                line_start = prefix_start[:-1] + np.arange(v1 - v0, dtype=np.int64) * gt_bytes
                buf = np.empty(prefix_start[-1] + (v1 - v0) * gt_bytes, dtype=np.uint8)
                _copy_prefixes(buf, line_start, prefix, prefix_start)
                vcf_block(v0, v1, key, smp["src_hap"], state, smp["population"], var["thr"], var["chrom_start"],
                          keep_thr, miss_thr, buf, line_start + lengths)
                proc.stdin.write(buf.data)
                if verbose and (v0 // block) % 20 == 0:
                    print(f"  .vcf.gz: {v1:,}/{n_variants:,} variants, {time.monotonic() - t0:.0f} s", flush=True)
        finally:
            proc.stdin.close()
            rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"bgzip failed (exit {rc})")
    tmp.replace(path)
    t_write = time.monotonic() - t0
    Path(f"{path}.tbi").unlink(missing_ok=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    return {"vcf": str(path), "index": f"{path}.tbi", "seconds_write": t_write,
            "seconds_total": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["plink", "vcf"])
    ap.add_argument("out", help="PLINK prefix, or the .vcf.gz path")
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--variants", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"numba threads: {numba.get_num_threads()}")
    if args.kind == "plink":
        info = write_plink_cohort(args.out, n_samples=args.samples, n_variants=args.variants, seed=args.seed,
                                  verbose=True)
    else:
        info = write_vcf_cohort(args.out, n_samples=args.samples, n_variants=args.variants, seed=args.seed,
                                verbose=True)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
