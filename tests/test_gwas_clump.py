"""LD clumping against plink1.9 --clump (the peer): identical index variants, clump sizes and
significant-member counts, on real 1000 Genomes genotypes (with missing calls added) and on a
dense msprime region, at several r2/kb/p1 settings; plus the r2 kernel on known tables."""

from __future__ import annotations

import subprocess

import numba
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cohortflow.errors import CohortflowError
from cohortflow.gwas.clump import clump_loci, ld_with_lead
from cohortflow.gwas.clump_kernels import genotype_pair_counts, haplotype_r2
from cohortflow.io.plink import open_bed, write_bed
from conftest import require_shared, require_tool

P2 = 0.05


def _marginal_p(geno: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sided p of the simple regression of y on each variant's genotype (mean-imputed)."""
    g = geno.astype(float)
    g[g < 0] = np.nan
    g = np.where(np.isnan(g), np.nanmean(g, axis=1, keepdims=True), g)
    x = g - g.mean(1, keepdims=True)
    yc = y - y.mean()
    sxx = (x * x).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = (x @ yc) / sxx
        sigma2 = ((yc[None] - beta[:, None] * x) ** 2).sum(1) / (len(y) - 2)
        t = beta / np.sqrt(sigma2 / sxx)
    return 2 * stats.t.sf(np.abs(t), len(y) - 2)


def _trait_sumstats(geno: np.ndarray, bim: pd.DataFrame, rng: np.random.Generator, n_causal: int,
                    effect_sd: float) -> pd.DataFrame:
    """Sumstats of a simulated trait: LD spreads the causal signals to their neighbours. p-values
    are rounded to 6 significant digits, as written in the peer's input file."""
    g = geno.astype(float)
    g[g < 0] = np.nan
    g = np.where(np.isnan(g), np.nanmean(g, axis=1, keepdims=True), g)
    causal = rng.choice(len(g), n_causal, replace=False)
    y = rng.normal(0, effect_sd, n_causal) @ (g[causal] - g[causal].mean(1, keepdims=True))
    y = y + rng.normal(size=g.shape[1])
    p = _marginal_p(geno, y)
    ok = np.isfinite(p)
    text = np.array([f"{v:.6g}" for v in p[ok]])
    return pd.DataFrame({"variant_id": bim["id"].to_numpy()[ok], "p_text": text,
                         "p_value": text.astype(float), "errcode": ""})


def _plink_clump(tmp_path, prefix, ss: pd.DataFrame, *, p1, r2, kb, p2=P2, extra=()) -> pd.DataFrame:
    plink = require_tool("plink1.9")
    assoc = tmp_path / "assoc.tsv"
    # non-default field names, so --clump-snp-field/--clump-field are exercised
    ss[["variant_id", "p_text"]].rename(columns={"variant_id": "ID", "p_text": "PVAL"}).to_csv(
        assoc, sep="\t", index=False)
    out = tmp_path / "peer"
    subprocess.run([plink, "--bfile", str(prefix), "--clump", str(assoc), "--clump-p1", str(p1),
                    "--clump-p2", str(p2), "--clump-r2", str(r2), "--clump-kb", str(kb),
                    "--clump-snp-field", "ID", "--clump-field", "PVAL", "--allow-no-sex", *extra,
                    "--out", str(out)], check=True, capture_output=True)
    table = pd.read_csv(f"{out}.clumped", sep=r"\s+")
    table["n_p2"] = [0 if s == "NONE" else len(s.split(",")) for s in table["SP2"]]
    return table


def _compare(tmp_path, prefix, ss, settings, p2=P2) -> int:
    compared = 0
    for p1, r2, kb in settings:
        peer = _plink_clump(tmp_path, prefix, ss, p1=p1, r2=r2, kb=kb, p2=p2)
        ours = clump_loci(ss, prefix, p1=p1, p2=p2, r2=r2, kb=kb)
        assert set(ours["variant_id"]) == set(peer["SNP"]), (p1, r2, kb)
        # same order (p, then .bim order), same clump sizes and significant-member counts
        assert ours["variant_id"].tolist() == peer["SNP"].tolist(), (p1, r2, kb)
        assert ours["n_clumped"].tolist() == peer["TOTAL"].tolist(), (p1, r2, kb)
        assert ours["n_clumped_p2"].tolist() == peer["n_p2"].tolist(), (p1, r2, kb)
        compared += len(peer)
    return compared


def test_clump_matches_plink19_on_1000_genomes(tmp_path):
    src = open_bed(require_shared("gwas_1kg_phase3_subset", "plink", "1kg_phase3_subset.bed"))
    auto = src.bim["chrom"].isin([str(c) for c in range(1, 23)]).to_numpy()
    rng = np.random.default_rng(20261123)
    geno = src.read()[auto]
    bim = src.bim[auto].reset_index(drop=True)
    geno = np.where(rng.random(geno.shape) < 0.02, -1, geno).astype(np.int8)  # missing calls
    prefix = tmp_path / "kg"
    write_bed(prefix, geno, bim, src.fam)
    ss = _trait_sumstats(geno, bim, rng, n_causal=150, effect_sd=0.4)
    # a variant absent from the .bim must be ignored, as plink does (it warns)
    ss = pd.concat([ss, pd.DataFrame({"variant_id": ["not:in:bim"], "p_text": ["1e-30"],
                                      "p_value": [1e-30], "errcode": [""]})], ignore_index=True)
    n = _compare(tmp_path, prefix, ss, [(1e-4, 0.1, 250), (1e-4, 0.5, 50), (1e-2, 0.5, 250), (1e-2, 0.1, 50)])
    assert n > 3000
    leads = clump_loci(ss, prefix, p1=1e-4, p2=P2, r2=0.1, kb=250)
    assert leads.attrs["n_not_in_bim"] == 1 and leads.attrs["n_ld_samples"] == len(src.fam)


def test_clump_matches_plink19_on_dense_ld(tmp_path):
    msprime = pytest.importorskip("msprime")
    ts = msprime.sim_ancestry(samples=400, population_size=10_000, sequence_length=3_000_000,
                              recombination_rate=1e-8, random_seed=11)
    ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=12)
    hap = ts.genotype_matrix()
    keep = np.flatnonzero((hap.max(1) == 1) & (hap.sum(1) >= 8))  # biallelic, MAC >= 8
    hap = hap[keep]
    positions = np.floor(ts.tables.sites.position[keep]).astype(np.int64) + 1
    uniq = np.concatenate([[True], np.diff(positions) > 0])
    hap, positions = hap[uniq], positions[uniq]
    geno = (hap[:, 0::2] + hap[:, 1::2]).astype(np.int8)
    rng = np.random.default_rng(5)
    geno = np.where(rng.random(geno.shape) < 0.01, -1, geno).astype(np.int8)
    n_samples = geno.shape[1]
    bim = pd.DataFrame({"chrom": "1", "id": [f"1:{p}" for p in positions], "cm": 0.0, "pos": positions,
                        "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n_samples)], "iid": [f"s{i}" for i in range(n_samples)],
                        "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    prefix = tmp_path / "dense"
    write_bed(prefix, geno, bim, fam)
    ss = _trait_sumstats(geno, bim, rng, n_causal=20, effect_sd=0.3)
    assert len(geno) > 3000
    n = _compare(tmp_path, prefix, ss, [(1e-5, 0.1, 250), (1e-5, 0.5, 50), (1e-3, 0.5, 250), (1e-3, 0.1, 50)])
    assert n > 40


def test_window_is_less_than_kb_and_ties_go_in_bim_order(tmp_path):
    """Known answers checked with plink1.9: a perfect proxy exactly kb * 1000 bp away is not
    clumped, one 1 bp closer is; equal p-values are taken in .bim order."""
    rng = np.random.default_rng(1)
    g = rng.integers(0, 3, size=200).astype(np.int8)
    positions = [750_000, 750_001, 1_000_000, 1_249_999, 1_250_000]
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(5)], "cm": 0.0, "pos": positions,
                        "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(200)], "iid": [f"s{i}" for i in range(200)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "t", np.vstack([g] * 5), bim, fam)
    ss = pd.DataFrame({"variant_id": ["v0", "v1", "v2", "v3", "v4"],
                       "p_value": [1e-6, 1e-6, 1e-10, 1e-5, 1e-6], "errcode": ""})
    leads = clump_loci(ss, tmp_path / "t", p1=1e-4, p2=0.01, r2=0.5, kb=250)
    # v2 claims v1 (249,999 bp) and v3 (249,999 bp) but not v0 or v4 (250,000 bp); v0 and v4
    # tie at 1e-6 and v0 comes first in the .bim; v0 claims nothing left (v1 taken)
    assert leads["variant_id"].tolist() == ["v2", "v0", "v4"]
    assert leads["n_clumped"].tolist() == [2, 0, 0]
    assert leads["clump_start"].tolist() == [750_001, 750_000, 1_250_000]
    assert leads["clump_end"].tolist() == [1_249_999, 750_000, 1_250_000]


def test_haplotype_r2_known_tables():
    # all called pairs are hom/hom or double heterozygotes: the ML phase is coupling, r2 = 1
    assert haplotype_r2(np.array([1068, 0, 0, 0, 21, 0, 0, 0, 0])) == pytest.approx(1.0)
    # no double heterozygotes: haplotypes are known; identical genotypes give r2 = 1
    assert haplotype_r2(np.array([30, 0, 0, 0, 0, 0, 0, 0, 10])) == pytest.approx(1.0)
    # independent (product) table of genotype frequencies: D = 0
    pa = np.array([0.25, 0.5, 0.25])
    assert haplotype_r2(np.round(np.outer(pa, pa).ravel() * 1600).astype(np.int64)) == pytest.approx(0.0, abs=1e-12)
    # no data / monomorphic
    assert np.isnan(haplotype_r2(np.zeros(9, dtype=np.int64)))
    assert haplotype_r2(np.array([50, 10, 0, 0, 0, 0, 0, 0, 0])) == 0.0
    # missing calls drop out pairwise
    g1 = np.array([0, 1, 2, -1, 2], dtype=np.int8)
    g2 = np.array([0, 1, 2, 2, -1], dtype=np.int8)
    assert genotype_pair_counts(g1, g2).tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1]


def test_ld_with_lead_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    g = rng.integers(0, 3, size=(3, 100)).astype(np.int8)
    g[1] = g[0]
    bim = pd.DataFrame({"chrom": "1", "id": ["a", "b", "c"], "cm": 0.0, "pos": [10, 20, 30], "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(100)], "iid": [f"s{i}" for i in range(100)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "x", g, bim, fam)
    r2 = ld_with_lead(tmp_path / "x", "a", ["b", "c", "zz", "a"])
    assert r2[0] == pytest.approx(1.0) and r2[3] == pytest.approx(1.0) and np.isnan(r2[2]) and r2[1] < 0.2
    ss = pd.DataFrame({"variant_id": ["a", "a"], "p_value": [1e-9, 1e-8], "errcode": ""})
    with pytest.raises(CohortflowError, match="more than once"):
        clump_loci(ss, tmp_path / "x")


def test_no_index_candidates_and_sample_subset(tmp_path):
    rng = np.random.default_rng(4)
    g = rng.integers(0, 3, size=(2, 60)).astype(np.int8)
    g[1, :30] = g[0, :30]  # identical in the first 30 samples only
    bim = pd.DataFrame({"chrom": "1", "id": ["a", "b"], "cm": 0.0, "pos": [10, 20], "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(60)], "iid": [f"s{i}" for i in range(60)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "x", g, bim, fam)
    ss = pd.DataFrame({"variant_id": ["a", "b"], "p_value": [1e-3, 1e-2], "errcode": ""})
    none = clump_loci(ss, tmp_path / "x", p1=5e-8)
    assert len(none) == 0 and list(none.columns[-4:]) == ["n_clumped", "n_clumped_p2", "clump_start", "clump_end"]
    # LD from the first 30 samples only: b is a perfect proxy of a there
    subset = clump_loci(ss, tmp_path / "x", p1=0.05, r2=0.9, samples=[f"s{i}" for i in range(30)])
    assert subset["variant_id"].tolist() == ["a"] and subset.attrs["n_ld_samples"] == 30
    assert clump_loci(ss, tmp_path / "x", p1=0.05, r2=0.9)["variant_id"].tolist() == ["a", "b"]


# ------------------------------------------------------------------------------------------------
# the bit-plane kernels against the plain int8 ones
# ------------------------------------------------------------------------------------------------

def _ld_genotypes(rng: np.random.Generator, n_variants: int, n_samples: int, missing: float,
                  switch: float = 0.05) -> np.ndarray:
    """int8 genotypes (variants x samples) with LD decaying along the rows: each haplotype copies
    one of a few founder haplotypes and switches founder with probability ``switch`` a variant;
    a founder's allele changes from one variant to the next with probability 0.15."""
    n_hap = 2 * n_samples
    founders = np.empty((n_variants, 12), dtype=bool)
    founders[0] = rng.random(12) < 0.5
    for v in range(1, n_variants):
        founders[v] = founders[v - 1] ^ (rng.random(12) < 0.15)
    source = np.empty((n_variants, n_hap), dtype=np.int64)
    source[0] = rng.integers(0, 12, n_hap)
    for v in range(1, n_variants):
        moves = rng.random(n_hap) < switch
        source[v] = np.where(moves, rng.integers(0, 12, n_hap), source[v - 1])
    hap = np.take_along_axis(founders, source, axis=1).astype(np.int8)
    geno = hap[:, 0::2] + hap[:, 1::2]
    return np.where(rng.random(geno.shape) < missing, -1, geno).astype(np.int8)


def _planes(geno: np.ndarray, samples: np.ndarray | None = None):
    from cohortflow.gwas.clump_kernels import bed_rows_to_planes
    from cohortflow.io.plink import encode_bed_block
    from cohortflow.variants.pca_kernels import packed_to_planes_subset

    raw = encode_bed_block(geno)
    n = geno.shape[1] if samples is None else len(samples)
    words = (n + 63) // 64
    hom = np.zeros((len(geno), (words + 7) // 8 * 8), dtype=np.uint64)
    hi = np.zeros_like(hom)
    if samples is None:
        bed_rows_to_planes(raw, n, hom, hi)
    else:
        packed_to_planes_subset(raw, np.asarray(samples, dtype=np.int64), False, hom[:, :words], hi[:, :words])
    return hom, hi


@pytest.mark.parametrize("n_samples", [1, 63, 64, 65, 200, 333])
def test_plane_r2_equals_int8_r2(n_samples):
    """Pair tables counted on bit planes (every sample count around the 64-bit words, .bed tails
    of 1-3 samples) give bit-identical r2 to the int8 3x3 counts; a sample subset in another
    order through the subset path gives the subset's r2."""
    from cohortflow.gwas.clump_kernels import planes_r2

    rng = np.random.default_rng(n_samples)
    geno = _ld_genotypes(rng, 24, n_samples, missing=0.1)
    hom, hi = _planes(geno)
    for i in range(len(geno)):
        for j in range(len(geno)):
            want = haplotype_r2(genotype_pair_counts(geno[i], geno[j]))
            got = planes_r2(hom, hi, i, j)
            assert (np.isnan(want) and np.isnan(got)) or got == want, (i, j)
    subset = rng.permutation(n_samples)[: max(1, n_samples // 2)]
    hom_s, hi_s = _planes(geno, subset)
    sub = geno[:, subset]
    for i, j in [(0, 1), (3, 4), (10, 20), (5, 5)]:
        want = haplotype_r2(genotype_pair_counts(sub[i], sub[j]))
        got = planes_r2(hom_s, hi_s, i, j)
        assert (np.isnan(want) and np.isnan(got)) or got == want


def test_r2_bounds_settle_pairs_exactly():
    """The r2 upper bounds never decide a pair the other way from the exact r2, thresholds equal
    to the r2 itself (and one ulp below) included; the bounds do settle most unlinked pairs."""
    from cohortflow.gwas.clump_kernels import (
        N_CALLED, N_HET, N_HOM_A1, _haplotype_r2, index_planes, pair_linked, plane_totals, r2_exceeds,
        surely_unlinked)

    rng = np.random.default_rng(8)
    geno = _ld_genotypes(rng, 60, 300, missing=0.0, switch=0.1)
    geno[30:] = np.where(rng.random(geno[30:].shape) < 0.03, -1, geno[30:])  # rows 30+ with missing calls
    hom, hi = _planes(geno)
    totals = plane_totals(hom, hi)
    words = hom.shape[1]
    het_i, hom_i, called_i = (np.empty(words, dtype=np.uint64) for _ in range(3))
    settled = exact_above = 0
    for i in range(len(geno)):
        index_planes(hom, hi, i, het_i, hom_i, called_i)
        for j in range(len(geno)):
            c = genotype_pair_counts(geno[i], geno[j]).astype(float)
            k = (2 * c[8] + c[7] + c[5], 2 * c[6] + c[7] + c[3], 2 * c[2] + c[5] + c[1], 2 * c[0] + c[3] + c[1], c[4])
            r2 = _haplotype_r2(*k)
            if np.isnan(r2):
                continue
            thresholds = [r2, np.nextafter(r2, -1.0), np.nextafter(r2, 2.0), 0.1, 0.5, 0.0]
            for thr in thresholds:
                thr = float(min(max(thr, 0.0), 1.0))
                assert r2_exceeds(*k, thr) == (r2 > thr), (i, j, thr)
                assert pair_linked(hom, hi, totals, 300, i, j, het_i, hom_i, called_i, thr) == (r2 > thr), (i, j, thr)
            # interior counts exact whatever is missing (missing calls have no plane bits)
            hh, x, tt = int(c[4]), int(c[5] + c[7]), int(c[8])
            a1 = [int(totals[v, N_HET] + 2 * totals[v, N_HOM_A1]) for v in (i, j)]
            for thr in (r2, 0.1, 0.3):
                if surely_unlinked(hh, x, tt, int(totals[i, N_CALLED]), a1[0], int(totals[j, N_CALLED]), a1[1],
                                   300, float(thr)):
                    assert r2 <= thr, (i, j, thr)
                    settled += thr == 0.1
                elif thr == 0.1 and r2 > 0.1:
                    exact_above += 1
    assert settled > 300 and exact_above > 50


@numba.njit
def _clump_reference(geno: np.ndarray, pos: np.ndarray, p: np.ndarray, order: np.ndarray,
                 bp_radius: int, r2_threshold: float, p2: float):
    """Greedy LD clumping of the variants of one chromosome region (rows sorted by position), on
    int8 genotypes, one index variant at a time: the reference for ``clump_planes``.

    ``order``: rows allowed to be index variants, most significant first (ties in file order).
    Each in turn, unless already clumped, becomes an index variant and claims every not yet
    clumped row within ``bp_radius`` bp (inclusive) whose r2 with it exceeds ``r2_threshold``.

    Returns (is_index bool[m], clumped_to int64[m] (index row or -1), n_clumped int64[m] (rows
    claimed), n_clumped_p2 int64[m] (claimed with p < p2), start int64[m], end int64[m]
    (positions spanned by the index and its claimed rows with p < p2)); per-index arrays are
    filled at index rows only.
    """
    m = geno.shape[0]
    is_index = np.zeros(m, dtype=np.bool_)
    clumped_to = np.full(m, -1, dtype=np.int64)
    n_clumped = np.zeros(m, dtype=np.int64)
    n_clumped_p2 = np.zeros(m, dtype=np.int64)
    start = pos.copy()
    end = pos.copy()
    taken = np.zeros(m, dtype=np.bool_)
    for k in range(order.shape[0]):
        i = order[k]
        if taken[i]:
            continue
        is_index[i] = True
        taken[i] = True
        lo = np.searchsorted(pos, pos[i] - bp_radius, side="left")
        hi = np.searchsorted(pos, pos[i] + bp_radius, side="right")
        gi = geno[i]
        for j in range(lo, hi):
            if taken[j]:
                continue
            r2 = haplotype_r2(genotype_pair_counts(gi, geno[j]))
            if r2 > r2_threshold:
                taken[j] = True
                clumped_to[j] = i
                n_clumped[i] += 1
                if p[j] < p2:
                    n_clumped_p2[i] += 1
                    if pos[j] < start[i]:
                        start[i] = pos[j]
                    if pos[j] > end[i]:
                        end[i] = pos[j]
    return is_index, clumped_to, n_clumped, n_clumped_p2, start, end


@pytest.mark.parametrize("missing", [0.0, 0.02])
def test_clump_planes_equals_reference_loop(missing):
    """Batched, tiled, threaded clumping on planes = the one-at-a-time int8 loop, for every batch
    size, tile size and thread count (ties in p, strong and weak LD, with and without missing
    calls)."""

    from cohortflow.gwas.clump_kernels import PARALLEL_WORK, clump_planes
    from cohortflow.threads import thread_limit

    rng = np.random.default_rng(21)
    m, n = 900, 150
    geno = _ld_genotypes(rng, m, n, missing=missing, switch=0.02)
    pos = np.cumsum(rng.integers(1, 400, m)).astype(np.int64)
    p = np.round(rng.random(m), 2)  # many ties
    order = np.lexsort((np.arange(m), p)).astype(np.int64)
    order = order[p[order] <= 0.6]  # some rows only claimable
    hom, hi = _planes(geno)
    for r2 in (0.1, 0.6):
        radius = 20_000
        want = _clump_reference(geno, pos, p, order, radius, r2, 0.3)
        lo = np.searchsorted(pos, pos - radius, side="left").astype(np.int64)
        hi_row = np.searchsorted(pos, pos + radius, side="right").astype(np.int64)
        assert 20 < want[0].sum() < len(order) - 20
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            # batches through the parallel kernel whatever their size (0), only large ones (the
            # default with several threads), or never
            for max_batch, tile_rows, parallel_work in [(1, 64, 0), (7, 128, 0), (1024, 64, 0),
                                                        (1024, 64, PARALLEL_WORK), (64, 64, 1 << 62)]:
                with thread_limit(threads):
                    got = clump_planes(hom, hi, n, pos, p, order, lo, hi_row, r2, 0.3, max_batch, tile_rows,
                                       parallel_work)
                for k, name in enumerate(["is_index", "n_clumped", "n_clumped_p2", "start", "end"]):
                    ref = want[0] if k == 0 else want[k + 1]
                    assert np.array_equal(got[k][want[0]], ref[want[0]]), (r2, threads, max_batch, name)
                assert np.array_equal(got[0], want[0])


def test_clump_loci_threads_identical(tmp_path):
    rng = np.random.default_rng(31)
    geno = _ld_genotypes(rng, 1500, 120, missing=0.01, switch=0.03)
    pos = np.cumsum(rng.integers(1, 300, len(geno)))
    bim = pd.DataFrame({"chrom": np.where(np.arange(len(geno)) < 900, "1", "2"),
                        "id": [f"v{i}" for i in range(len(geno))], "cm": 0.0, "pos": pos, "a1": "A", "a2": "G"})
    bim.loc[bim["chrom"] == "2", "pos"] -= int(pos[899])
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(120)], "iid": [f"s{i}" for i in range(120)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    fam.loc[5, "father"] = "s1"  # a non-founder: LD from the founders only (subset path)
    write_bed(tmp_path / "t", geno, bim, fam)
    ss = pd.DataFrame({"variant_id": bim["id"], "p_value": rng.random(len(geno)), "errcode": ""})
    one = clump_loci(ss, tmp_path / "t", p1=0.5, p2=0.05, r2=0.2, kb=20, threads=1)
    two = clump_loci(ss, tmp_path / "t", p1=0.5, p2=0.05, r2=0.2, kb=20, threads=2)
    chrom2 = one["variant_id"].str[1:].astype(int) >= 900
    assert len(one) > 50 and 0 < chrom2.sum() < len(one)
    pd.testing.assert_frame_equal(one, two)
    assert one.attrs == two.attrs and one.attrs["n_ld_samples"] == 119


def test_clump_matches_plink19_on_dummy_genotypes_p1_1(tmp_path):
    """The benchmark's kind of input, small: plink2 --dummy genotypes (neighbours in some LD, 2%
    missing) over 3 Mb, uniform p-values, every variant an index candidate (p1 = 1; plink1.9
    wants p2 >= p1)."""
    plink2 = require_tool("plink2")
    prefix = tmp_path / "dummy"
    subprocess.run([plink2, "--dummy", "400", "6000", "0.02", "acgt", "--seed", "3", "--make-bed",
                    "--out", str(prefix)], check=True, capture_output=True)
    rng = np.random.default_rng(4)
    bim = pd.read_csv(f"{prefix}.bim", sep="\t", header=None, dtype=str)
    bim[3] = np.sort(rng.choice(np.arange(1, 3_000_001), size=len(bim), replace=False)).astype(str)
    bim.to_csv(f"{prefix}.bim", sep="\t", header=False, index=False)
    text = np.array([f"{v:.6g}" for v in rng.random(len(bim))])
    ss = pd.DataFrame({"variant_id": bim[1], "p_text": text, "p_value": text.astype(float), "errcode": ""})
    n = _compare(tmp_path, prefix, ss, [(1, 0.1, 250), (1, 0.5, 50)], p2=1)
    assert n > 3000
    # LD from a subset of the samples (plink1.9 --keep; ours samples=, the compressed planes)
    fam = pd.read_csv(f"{prefix}.fam", sep=r"\s+", header=None, dtype=str)
    kept = fam.iloc[np.sort(rng.choice(len(fam), 250, replace=False))]
    kept[[0, 1]].to_csv(tmp_path / "keep.txt", sep="\t", header=False, index=False)
    peer = _plink_clump(tmp_path, prefix, ss, p1=1, r2=0.2, kb=250, p2=1, extra=["--keep", str(tmp_path / "keep.txt")])
    ours = clump_loci(ss, prefix, p1=1, p2=1, r2=0.2, kb=250, samples=kept[1].tolist(), threads=2)
    assert ours.attrs["n_ld_samples"] == 250 and len(peer) > 2000
    assert ours["variant_id"].tolist() == peer["SNP"].tolist()
    assert ours["n_clumped"].tolist() == peer["TOTAL"].tolist()


def test_read_planes_in_runs(tmp_path, monkeypatch):
    """Planes read from the .bed in runs (gaps over 64 rows start a new read; a run stops at the
    read size) are those of the rows asked for, with the padding words zero (missing)."""
    from cohortflow.gwas import clump as clump_module

    rng = np.random.default_rng(41)
    geno = _ld_genotypes(rng, 400, 70, missing=0.05)
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(400)], "cm": 0.0, "pos": np.arange(400) + 1,
                        "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(70)], "iid": [f"s{i}" for i in range(70)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "r", geno, bim, fam)
    bed = open_bed(tmp_path / "r")
    rows = np.concatenate([np.arange(0, 10), np.arange(12, 60, 3), np.arange(200, 230), [399]]).astype(np.int64)
    want_hom, want_hi = _planes(geno[rows])
    assert want_hom.shape[1] == 8 and not want_hom[:, 2:].any()
    for read_bytes in (18 * 5, 18 * 1000):  # runs of 5 .bed rows at most, or whole
        monkeypatch.setattr(clump_module, "_READ_BYTES", read_bytes)
        hom, hi = clump_module._read_planes(bed, rows, np.arange(70))
        assert np.array_equal(hom, want_hom) and np.array_equal(hi, want_hi)
    # sample subsets (ascending, as the founders/ld_samples selection gives them): compressed
    # from all samples' planes, equal to decoding only those samples
    for subset in ([3, 10, 11, 40, 69], [69], [0, 64], list(range(1, 70)), list(range(0, 70, 2)), list(range(64, 70))):
        subset = np.array(subset, dtype=np.int64)
        hom, hi = clump_module._read_planes(bed, rows, subset)
        want_hom, want_hi = _planes(geno[rows], subset)
        assert np.array_equal(hom, want_hom) and np.array_equal(hi, want_hi), subset


@pytest.mark.parametrize("density", [0.02, 0.5, 0.97, 1.0])
def test_select_plane_samples_equals_bit_gather(density):
    from cohortflow.gwas.clump_kernels import COMPRESS_TABLE, select_plane_samples

    rng = np.random.default_rng(int(density * 100))
    n, rows = 1000, 5
    words = (n + 63) // 64
    hom = rng.integers(0, 2**63, size=(rows, words), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    hi = rng.integers(0, 2**63, size=(rows, words), dtype=np.uint64)
    keep = rng.random(words * 64) < density
    keep[n:] = False
    keep_words = np.packbits(keep.reshape(-1, 8)[:, ::-1]).view("<u8")
    kept = int(keep.sum())
    out_words = (kept + 63) // 64
    out_hom = np.zeros((rows, out_words), dtype=np.uint64)
    out_hi = np.zeros_like(out_hom)
    select_plane_samples(hom, hi, keep_words, COMPRESS_TABLE, out_hom, out_hi)

    def bits(a):  # little-endian bit order within each word
        return np.unpackbits(a.view(np.uint8), axis=1, bitorder="little")

    for plane, out in ((hom, out_hom), (hi, out_hi)):
        want = bits(plane)[:, keep]
        got = bits(out)
        assert np.array_equal(got[:, :kept], want) and not got[:, kept:].any()
