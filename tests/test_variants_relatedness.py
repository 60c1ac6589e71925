"""KING-robust kinship and --king-cutoff against Debian plink2, on real and simulated cohorts.

plink2 quirk accounted for here (read from plink2_matrix_calc.cc, CalcKingSparseThread, and
confirmed on the HapMap3 set): for a "sparse" variant (all but at most n // 33 samples share one
homozygous genotype; n // 30 in builds without AVX2) plink2 counts a pair of (rare-homozygote,
missing call) as a jointly called SNP, so its NSNP is one higher per such variant; the kinship is
not affected. ``plink2_nsnp_excess`` below recomputes that excess independently from the decoded
genotypes, and the tests require plink2's NSNP == ours + excess, with ours the true count.
"""

from __future__ import annotations

import subprocess
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.variants.relatedness import (
    CHUNK_BYTES, KingResult, format_g6, king_counts, king_cutoff, king_kinship, king_masks_file, king_part_file,
    king_part_names, king_parts, king_related, king_variant_mask, merge_king_results, relatedness_gather,
    relatedness_qc, thin_variants, write_king_cutoff_ids, write_king_table,
)
from cohortflow.variants.relatedness_kernels import kinship_prune
from conftest import require_shared, require_tool

KIN_TOL = 1e-6


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def run_plink2(*args: str) -> None:
    plink2 = require_tool("plink2")
    subprocess.run([plink2, *args], check=True, capture_output=True, timeout=300)


def plink2_sparse_divisor() -> int:
    plink2 = require_tool("plink2")
    version = subprocess.run([plink2, "--version"], capture_output=True, text=True).stdout
    return 33 if "AVX2" in version else 30


def plink2_nsnp_excess(geno: np.ndarray) -> np.ndarray:
    """plink2's NSNP excess per pair (lower-triangle order) for int8 genotypes (variants x
    samples, -1 missing) of the variants and samples KING used."""
    n = geno.shape[1]
    max_sparse = n // plink2_sparse_divisor()
    excess = np.zeros((n, n), dtype=np.int64)
    for row in geno:
        if (row == 0).sum() >= n - max_sparse:
            rare_hom = np.flatnonzero(row == 2)
        elif (row == 2).sum() >= n - max_sparse:
            rare_hom = np.flatnonzero(row == 0)
        else:
            continue
        missing = np.flatnonzero(row == -1)
        if rare_hom.size and missing.size:
            excess[np.ix_(rare_hom, missing)] += 1
            excess[np.ix_(missing, rare_hom)] += 1
    i = np.repeat(np.arange(n), np.arange(n))
    j = np.arange(i.size) - i * (i - 1) // 2
    return excess[i, j]


def read_kin0(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"#FID1": str, "IID1": str, "FID2": str, "IID2": str})


def compare_with_plink2(prefix: Path, out: Path, result: KingResult, *, plink_args=(), sample_mask=None,
                        variant_mask=None) -> pd.DataFrame:
    """Run plink2 --make-king-table and check our result against it; returns plink2's table."""
    run_plink2("--bfile", str(prefix), "--make-king-table", "--threads", "1", *plink_args, "--out", str(out))
    ref = read_kin0(Path(f"{out}.kin0"))
    ours = result.table()
    assert len(ref) == len(ours)
    for theirs, mine in (("#FID1", "FID1"), ("IID1", "IID1"), ("FID2", "FID2"), ("IID2", "IID2")):
        assert (ref[theirs].to_numpy() == ours[mine].to_numpy()).all(), f"pair order differs in {mine}"
    finite = np.isfinite(ours["KINSHIP"].to_numpy())
    assert (np.isfinite(ref["KINSHIP"].to_numpy()) == finite).all()
    assert np.abs(ref["KINSHIP"].to_numpy()[finite] - ours["KINSHIP"].to_numpy()[finite]).max() <= KIN_TOL
    assert (ref["KINSHIP"].to_numpy()[~finite] == ours["KINSHIP"].to_numpy()[~finite]).all()  # same -inf
    bed = open_bed(prefix)
    use = king_variant_mask(bed, variant_mask)
    geno = bed.read()[use]
    if sample_mask is not None:
        geno = geno[:, sample_mask]
    excess = plink2_nsnp_excess(geno)
    np.testing.assert_array_equal(ref["NSNP"].to_numpy(), result.nsnp + excess)
    # HETHET / IBS0 are printed as proportions of plink2's NSNP with 6 digits: the counts are exact
    np.testing.assert_array_equal(np.rint(ref["HETHET"].to_numpy() * ref["NSNP"].to_numpy()), result.hethet)
    np.testing.assert_array_equal(np.rint(ref["IBS0"].to_numpy() * ref["NSNP"].to_numpy()), result.ibs0)
    # where plink2's NSNP is right, our .kin0 lines are byte-identical to plink2's
    write_king_table(ours, Path(f"{out}.ours.kin0"))
    theirs_lines = Path(f"{out}.kin0").read_text().splitlines()
    ours_lines = Path(f"{out}.ours.kin0").read_text().splitlines()
    assert ours_lines[0] == theirs_lines[0]
    clean = np.flatnonzero(excess == 0) + 1
    assert [ours_lines[k] for k in clean] == [theirs_lines[k] for k in clean]
    return ref


def plink2_cutoff(prefix: Path, out: Path, cutoff: float, *extra: str) -> list[str]:
    run_plink2("--bfile", str(prefix), "--king-cutoff", str(cutoff), "--threads", "1", *extra, "--out", str(out))
    removed = pd.read_csv(f"{out}.king.cutoff.out.id", sep="\t", dtype=str)
    return removed["IID"].tolist()


# ---------------------------------------------------------------------------------------------
# simulated cohort with planted relatives
# ---------------------------------------------------------------------------------------------

BLOCK = 40  # variants per freely recombining block


def _transmit(rng, parent: np.ndarray) -> np.ndarray:
    """One gamete: each block of BLOCK variants from a random one of the parent's haplotypes."""
    m = parent.shape[1]
    pick = rng.integers(0, 2, size=-(-m // BLOCK)).repeat(BLOCK)[:m]
    return np.where(pick == 0, parent[0], parent[1])


def simulate_cohort(prefix: Path, seed: int = 11) -> dict[str, list[tuple[str, str]]]:
    """Write a fileset of 72 samples with planted relatives and return the planted pairs by kind.

    22 autosomes of 700 variants (10% rare, freq 0.004) + 300 chrX + 20 MT variants; 1% missing
    calls; one sample with no heterozygous call (its kinship is -inf in plink2); a few rare
    variants with one rare homozygote and one missing call (plink2's NSNP quirk); shuffled order.
    """
    rng = np.random.default_rng(seed)
    n_auto = 22 * 700
    chrom = np.r_[np.repeat(np.arange(1, 23).astype(str), 700), np.repeat("X", 300), np.repeat("MT", 20)]
    m = chrom.size
    freq = rng.uniform(0.05, 0.5, m)
    rare = rng.random(m) < 0.10
    freq[rare] = 0.004
    haps: dict[str, np.ndarray] = {}
    parents: dict[str, tuple[str, str]] = {}

    def founder(name):
        haps[name] = (rng.random((2, m)) < freq).astype(np.int8)

    def child(name, father, mother):
        haps[name] = np.stack([_transmit(rng, haps[father]), _transmit(rng, haps[mother])])
        parents[name] = (father, mother)

    for k in range(56):
        founder(f"U{k}")
    for name in ("F1", "M1", "S1", "F2", "M2", "M3"):
        founder(name)
    for kid in ("K1", "K2", "K3"):
        child(kid, "F1", "M1")
    child("G1", "K1", "S1")  # grandchild of F1, M1; niece of K2, K3
    child("G2", "K1", "S1")  # full sib of G1
    child("H1", "F2", "M2")
    child("H2", "F2", "M3")  # half sib of H1
    geno = {name: h.sum(axis=0).astype(np.int8) for name, h in haps.items()}
    geno["DUP5"] = geno["U5"].copy()
    flip = rng.random(m) < 0.003
    geno["DUP5"][flip] = (geno["DUP5"][flip] + 1) % 3
    geno["TWIN3"] = geno["K3"].copy()
    geno["HOMZ"] = np.where(geno["U7"] == 1, 2, geno["U7"]).astype(np.int8)  # no het call at all
    names = list(geno)
    order = rng.permutation(len(names))
    names = [names[k] for k in order]
    g = np.stack([geno[nm] for nm in names], axis=1)  # variants x samples
    g[rng.random(g.shape) < 0.01] = -1
    # rare variants with exactly one rare homozygote and one missing call
    n = len(names)
    for v in np.flatnonzero(rare[:n_auto])[:12]:
        g[v] = 0
        a, b = rng.choice(n, size=2, replace=False)
        g[v, a] = 2
        g[v, b] = -1
    fam_of = {nm: "FAM1" for nm in ("F1", "M1", "K1", "K2", "K3", "TWIN3", "S1", "G1", "G2")}
    fam_of.update({nm: "FAM2" for nm in ("F2", "M2", "M3", "H1", "H2")})
    sex = rng.integers(1, 3, size=n)
    # males are haploid on X: hom calls only
    male = sex == 1
    xrows = chrom == "X"
    gx = g[xrows][:, male]
    gx[gx == 1] = 2
    g[np.ix_(xrows, male)] = gx
    fam = pd.DataFrame({"fid": [fam_of.get(nm, nm) for nm in names], "iid": names, "father": "0",
                        "mother": "0", "sex": sex, "pheno": -9})
    pos = np.arange(m) * 1000 + 1
    bim = pd.DataFrame({"chrom": chrom, "id": [f"v{k}" for k in range(m)], "cm": 0.0, "pos": pos,
                        "a1": "A", "a2": "G"})
    write_bed(prefix, g, bim, fam)
    return {
        "duplicate": [("DUP5", "U5"), ("TWIN3", "K3")],
        "first": [("K1", "F1"), ("K1", "M1"), ("K2", "K1"), ("K3", "K2"), ("G1", "K1"), ("G2", "G1"),
                  ("H1", "M2"), ("H1", "F2")],
        "second": [("G1", "F1"), ("G1", "M1"), ("G1", "K2"), ("G2", "K3"), ("H2", "H1")],
        "unrelated": [("U1", "U2"), ("U3", "F1"), ("S1", "M1"), ("U10", "H1")],
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("king")
    prefix = d / "sim"
    truth = simulate_cohort(prefix)
    return prefix, truth


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------

def test_planted_relatives_and_plink2_table(cohort, tmp_path):
    prefix, truth = cohort
    result = king_counts(prefix, threads=2)
    ref = compare_with_plink2(prefix, tmp_path / "sim", result)
    assert (plink2_nsnp_excess(open_bed(prefix).read()[king_variant_mask(open_bed(prefix))]) > 0).any()
    kin = result.matrix()
    index = {iid: k for k, iid in enumerate(result.samples["iid"])}
    expected = {"duplicate": 0.5, "first": 0.25, "second": 0.125, "unrelated": 0.0}
    tolerance = {"duplicate": 0.02, "first": 0.03, "second": 0.03, "unrelated": 0.03}
    for kind, pairs in truth.items():
        for a, b in pairs:
            assert abs(kin[index[a], index[b]] - expected[kind]) < tolerance[kind], (kind, a, b)
    homz = ref[(ref["IID1"] == "HOMZ") | (ref["IID2"] == "HOMZ")]
    assert len(homz) == result.n_samples - 1 and np.isneginf(homz["KINSHIP"]).all()
    # chromosomes X and MT are left out, as plink2 does
    assert result.n_variants == 22 * 700


@pytest.mark.parametrize("cutoff", [0.0884, 0.177])
def test_king_cutoff_matches_plink2(cohort, tmp_path, cutoff):
    prefix, _ = cohort
    ours = king_cutoff(prefix, cutoff=cutoff)
    assert ours == plink2_cutoff(prefix, tmp_path / "cut", cutoff)
    assert len(ours) >= 4
    # the same from a KingResult and from a .kin0-like table with the sample order
    result = king_counts(prefix)
    assert king_cutoff(result, cutoff=cutoff) == ours
    table = result.table(min_kinship=0.05)
    assert king_cutoff(table, cutoff=cutoff, samples=result.samples["iid"].tolist()) == ours
    # nobody left is related above the cutoff
    keep = ~result.samples["iid"].isin(ours).to_numpy()
    kin = result.matrix()[np.ix_(keep, keep)]
    np.fill_diagonal(kin, 0)
    assert not (kin > cutoff).any()
    in_id, out_id = write_king_cutoff_ids(open_bed(prefix).fam, ours, tmp_path / "ours")
    assert out_id.read_text() == Path(tmp_path / "cut.king.cutoff.out.id").read_text()
    assert in_id.read_text() == Path(tmp_path / "cut.king.cutoff.in.id").read_text()


def test_sample_and_variant_masks_match_keep_extract(cohort, tmp_path):
    prefix, _ = cohort
    bed = open_bed(prefix)
    rng = np.random.default_rng(3)
    sample_mask = rng.random(bed.n_samples) < 0.7
    variant_mask = rng.random(bed.n_variants) < 0.5
    keep = tmp_path / "keep.txt"
    bed.fam.loc[sample_mask, ["fid", "iid"]].to_csv(keep, sep="\t", header=False, index=False)
    extract = tmp_path / "extract.txt"
    extract.write_text("\n".join(bed.bim["id"][variant_mask]) + "\n")
    result = king_counts(bed, sample_mask=sample_mask, variant_mask=variant_mask)
    compare_with_plink2(prefix, tmp_path / "masked", result,
                        plink_args=("--keep", str(keep), "--extract", str(extract)),
                        sample_mask=sample_mask, variant_mask=variant_mask)
    removed = king_cutoff(bed, cutoff=0.0884, sample_mask=sample_mask, variant_mask=variant_mask)
    assert removed == plink2_cutoff(prefix, tmp_path / "mcut", 0.0884, "--keep", str(keep), "--extract", str(extract))


def test_threads_and_chunks_do_not_change_results(cohort):
    prefix, _ = cohort
    one = king_counts(prefix, threads=1)
    two = king_counts(prefix, threads=2, chunk_bytes=1)  # one 2048-variant sub-block per chunk
    for field in ("nsnp", "hethet", "ibs0", "het1_hom2", "het2_hom1"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    np.testing.assert_array_equal(one.kinship.view(np.int64), two.kinship.view(np.int64))


def test_table_filter_as_king_table_filter(cohort, tmp_path):
    prefix, _ = cohort
    ours = king_kinship(prefix, min_kinship=0.1)
    run_plink2("--bfile", str(prefix), "--make-king-table", "--king-table-filter", "0.1",
               "--out", str(tmp_path / "f"))
    ref = read_kin0(tmp_path / "f.kin0")
    assert ref["IID1"].tolist() == ours["IID1"].tolist() and ref["IID2"].tolist() == ours["IID2"].tolist()
    assert len(ours) > 10 and (ours["KINSHIP"] >= 0.1).all()


@pytest.mark.parametrize("folder, name", [("hapmap3_founders_957", "hapmap3_957"),
                                          ("gwas_1kg_phase3_subset", "plink/1kg_phase3_subset")])
def test_real_data_matches_plink2(tmp_path, folder, name):
    prefix = require_shared(folder) / name
    result = king_counts(prefix, threads=2)
    compare_with_plink2(prefix, tmp_path / "real", result)
    assert king_cutoff(result, cutoff=0.0884) == plink2_cutoff(prefix, tmp_path / "rcut", 0.0884)


def test_kinship_prune_rule():
    def prune(n, edges):
        e = np.array(edges, dtype=np.int64).reshape(-1, 2)
        return np.flatnonzero(kinship_prune(n, e[:, 0], e[:, 1])).tolist()
    assert prune(3, []) == []
    assert prune(3, [(1, 0), (2, 1)]) == [1]  # path 0-1-2: 0 has one relative, drop its partner
    assert prune(4, [(1, 0), (2, 0), (3, 0)]) == [0]  # star
    assert prune(3, [(1, 0), (2, 0), (2, 1)]) == [0, 2]  # triangle: first max degree, then partner
    # pair 0-1 and triangle 2-3-4: drop 1 (partner of degree-1 vertex 0), then 2 (first of max
    # degree), then 4 (partner of 3, now of degree 1)
    assert prune(5, [(1, 0), (3, 2), (4, 3), (4, 2)]) == [1, 2, 4]


def test_format_g6_as_plink2():
    values = np.array([0.25, -0.004140625, 0.0041406251, 1.5e-05, 0.0, np.nan, -np.inf, 0.12345649999, 1e-4])
    assert format_g6(values) == ["0.25", "-0.00414062", "0.00414063", "1.5e-05", "0", "nan", "-inf",
                                 "0.123456", "0.0001"]


def test_bad_input(cohort):
    prefix, _ = cohort
    bed = open_bed(prefix)
    with pytest.raises(CohortflowError, match="sample_mask"):
        king_counts(bed, sample_mask=np.ones(3, dtype=bool))
    with pytest.raises(CohortflowError, match="at least 2 samples"):
        king_counts(bed, sample_mask=np.arange(bed.n_samples) == 0)
    with pytest.raises(CohortflowError, match="no autosomal variants"):
        king_counts(bed, variant_mask=(bed.bim["chrom"] == "X").to_numpy())
    with pytest.raises(CohortflowError, match="samples="):
        king_cutoff(pd.DataFrame({"IID1": [], "IID2": [], "KINSHIP": []}))


def test_cohortflow_qc_removes_relatives_and_records_the_funnel(cohort, tmp_path):
    """`cohortflow qc`: relatives removed by the cutoff on QC'd variants, listed as plink2 does,
    counted in the funnel; kinship table of 3rd-degree-and-closer pairs; PCs of the kept samples."""
    from cohortflow import cli
    from cohortflow.variants.qc import read_id_list
    from cohortflow.variants.relatedness import relatedness_qc

    prefix, truth = cohort
    out = tmp_path / "qc"
    assert cli.main(["qc", "--bfile", str(prefix), "--n-pcs", "3", "--threads", "2", "--out", str(out)]) == 0
    removed = read_id_list(f"{out}.king.cutoff.out.id")
    direct = relatedness_qc(prefix, out_prefix=tmp_path / "again")
    assert removed == direct["removed"] and removed
    related = {a for kind in ("duplicate", "first", "second") for pair in truth[kind] for a in pair}
    assert set(removed) <= related  # only planted relatives go
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    step = next(s for s in summary["funnel"] if s["step"] == "king_cutoff")
    assert step["samples_removed"] == len(removed) and summary["thresholds"]["king_cutoff"] == 0.0884
    kept = open_bed(out).fam["iid"].tolist()
    assert not set(kept) & set(removed)
    kin = pd.read_csv(f"{out}.kinship.tsv", sep="\t")
    assert (kin["KINSHIP"] >= 0.0442).all() and len(kin) >= len(removed)
    pcs = pd.read_csv(f"{out}.pcs.tsv", sep="\t")
    assert pcs["IID"].tolist() == kept and list(pcs.columns[-3:]) == ["PC1", "PC2", "PC3"]


def test_related_pairs_in_sample_blocks_equal_all_pairs(cohort, tmp_path):
    """king_related (pairs counted per block of samples, only pairs above a floor kept) gives the
    rows of king_counts above that floor, the same .kin0 bytes and the same --king-cutoff."""
    prefix, _ = cohort
    bed = open_bed(prefix)
    rng = np.random.default_rng(5)
    sample_mask = rng.random(bed.n_samples) < 0.9
    variant_mask = rng.random(bed.n_variants) < 0.8
    full = king_counts(bed, sample_mask=sample_mask, variant_mask=variant_mask, threads=2)
    assert full.n_samples > 3 * 16  # several blocks, the last one partial
    for floor in (-np.inf, 0.0442):
        for block, chunk in ((16, 1), (30, CHUNK_BYTES), (4096, CHUNK_BYTES)):
            part = king_related(bed, min_kinship=floor, sample_mask=sample_mask, variant_mask=variant_mask,
                                threads=2, block_samples=block, chunk_bytes=chunk)
            keep = ~(full.kinship < floor)
            i, j = full.pair_indices()
            np.testing.assert_array_equal(part.pair_i, i[keep])
            np.testing.assert_array_equal(part.pair_j, j[keep])
            for field in ("nsnp", "hethet", "ibs0", "het1_hom2", "het2_hom1"):
                np.testing.assert_array_equal(getattr(part, field), getattr(full, field)[keep])
            np.testing.assert_array_equal(part.kinship.view(np.int64), full.kinship[keep].view(np.int64))
    assert 0 < len(part.kinship) < len(full.kinship) // 10
    a = write_king_table(full, tmp_path / "full.kin0", min_kinship=0.0442)
    b = write_king_table(part, tmp_path / "part.kin0", min_kinship=0.0442)
    assert a.read_bytes() == b.read_bytes()
    assert king_cutoff(part, cutoff=0.0884) == king_cutoff(full, cutoff=0.0884)
    with pytest.raises(CohortflowError, match="related pairs"):
        part.matrix()


def test_thinned_variants_evenly_spaced(cohort):
    prefix, _ = cohort
    bed = open_bed(prefix)
    use = king_variant_mask(bed)
    thin = thin_variants(use, 1000)
    rows = np.flatnonzero(thin)
    assert rows.size == 1000 and not (thin & ~use).any()
    ranks = np.searchsorted(np.flatnonzero(use), rows)
    np.testing.assert_array_equal(ranks, np.arange(1000) * int(use.sum()) // 1000)
    assert (thin_variants(use, 10**9) == use).all()
    part = king_related(bed, min_kinship=-np.inf, max_variants=1000)
    full = king_counts(bed, variant_mask=thin)
    assert part.n_variants == full.n_variants == 1000
    np.testing.assert_array_equal(part.kinship.view(np.int64), full.kinship.view(np.int64))


def test_parts_merge_to_the_one_part_result(cohort):
    prefix, _ = cohort
    bed = open_bed(prefix)
    one = king_related(bed, min_kinship=-np.inf, threads=2)
    for n_parts, block in ((2, 4096), (3, 8), (5, 7)):
        parts = [king_related(bed, min_kinship=-np.inf, part=part, n_parts=n_parts, block_samples=block)
                 for part in king_parts(n_parts)]
        assert len(parts) == n_parts * (n_parts + 1) // 2
        merged = merge_king_results(parts[::-1])
        for field in ("pair_i", "pair_j", "nsnp", "hethet", "ibs0", "het1_hom2", "het2_hom1"):
            np.testing.assert_array_equal(getattr(merged, field), getattr(one, field))
        np.testing.assert_array_equal(merged.kinship.view(np.int64), one.kinship.view(np.int64))
    with pytest.raises(CohortflowError, match="not one of the 3 parts"):
        king_related(bed, min_kinship=0.0, part=(0, 1), n_parts=2)


@pytest.mark.parametrize("n_parts", [1, 3])
def test_relatedness_jobs_write_the_bytes_of_one_call(cohort, tmp_path, n_parts):
    """The workflow's relatedness jobs (masks, one job per part, gather) write what
    relatedness_qc writes, with relatives removed."""
    prefix, _ = cohort
    direct = relatedness_qc(prefix, out_prefix=tmp_path / "one", max_variants=10_000)
    assert direct["removed"] and direct["n_variants"] == 10_000
    masks = tmp_path / "masks.npz"
    king_masks_file(bfile=prefix, out=masks, max_variants=10_000)
    parts = []
    for name in king_part_names(n_parts)[::-1]:
        parts.append(tmp_path / f"part.{name}.npz")
        king_part_file(bfile=prefix, masks=masks, part=name, n_parts=n_parts, out=parts[-1])
    gathered = relatedness_gather(fam=f"{prefix}.fam", masks=masks, parts=parts, out_prefix=tmp_path / "jobs")
    assert gathered == direct
    for suffix in ("kinship.tsv", "king.cutoff.in.id", "king.cutoff.out.id"):
        assert (tmp_path / f"jobs.{suffix}").read_bytes() == (tmp_path / f"one.{suffix}").read_bytes()
