"""Scoring from packed .bed bytes (cohortflow.prs.scoring.score_bed) and the whole published-score
path (cohortflow.prs.pgs.score_pgs) against known answers and plink2 --score.

Known answers: a dense numpy re-implementation of the dosage rules (decoded genotypes, mean
imputation, plink2's chrX/chrY/MT rules) on small filesets of awkward shapes; hand-worked sums.
Peer: plink2 --score (2.00a3.5) on the same weights. plink2 prints 6 significant digits, so the
exact comparison uses inputs whose sums are multiples of 1/4 below 1000 (small integer weights,
each variant's mean imputed dosage a multiple of 1/4): there plink2's printed SUM is the exact
sum and ours must equal it to 1e-9; with real-valued weights the tolerance is plink2's printing
(relative 5e-6).
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.prs import kernels, scoring
from cohortflow.prs.pgs import score_pgs
from cohortflow.prs.scoring import a1_mean_dosage, score_bed

HAVE_PLINK2 = shutil.which("plink2") is not None
needs_plink2 = pytest.mark.skipif(not HAVE_PLINK2, reason="plink2 not on PATH (apt-get install plink2)")


def _fileset(path: Path, geno: np.ndarray, *, chrom=None, sex=None, a1=None, a2=None, pos=None) -> Path:
    m, n = geno.shape
    chrom = np.asarray(["1"] * m if chrom is None else chrom, dtype=object)
    pos = np.arange(1, m + 1) * 100 if pos is None else np.asarray(pos)
    a1 = np.asarray(["A"] * m if a1 is None else a1, dtype=object)
    a2 = np.asarray(["C"] * m if a2 is None else a2, dtype=object)
    bim = pd.DataFrame({"chrom": chrom, "id": [f"{c}:{p}:{b}:{a}" for c, p, a, b in zip(chrom, pos, a1, a2)],
                        "cm": 0.0, "pos": pos, "a1": a1, "a2": a2})
    iids = [f"S{i:04d}" for i in range(n)]
    fam = pd.DataFrame({"fid": iids, "iid": iids, "father": "0", "mother": "0",
                        "sex": np.zeros(n, dtype=np.int64) if sex is None else sex, "pheno": "-9"})
    write_bed(path, geno, bim, fam)
    return path


def _reference(geno: np.ndarray, chrom, sex: np.ndarray, weights: np.ndarray, freq_samples=None, count_a2=None):
    """Dense re-implementation of plink2 --score's SCORE_SUM with default mean imputation:
    (sums samples x k, mean A1 dosage per variant); ``count_a2`` (variants x k): the weight is on
    A2 (dosage full - A1 dosage, full = 2, or 1 on chrY/MT, 0 for non-males on chrY)."""
    m, n = geno.shape
    males = sex == 1
    use = np.zeros(n, dtype=bool)
    use[np.arange(n) if freq_samples is None else freq_samples] = True
    dosage = np.zeros((m, n))
    mean = np.zeros(m)
    for v in range(m):
        x = geno[v].astype(float)
        called = (x >= 0) & use
        c = str(chrom[v]).upper().removeprefix("CHR")
        if c in ("X", "23"):  # males haploid in the frequency, dosage 0/1/2 for all
            alleles, slots = np.where(males, x / 2, x)[called].sum(), np.where(males, 1, 2)[called].sum()
            mean[v] = 2 * (alleles / slots if slots else 0.5)
            dosage[v] = np.where(x >= 0, x, mean[v])
        elif c in ("Y", "24"):  # males only, haploid
            ok = called & males
            mean[v] = (x[ok] / 2).sum() / ok.sum() if ok.sum() else 0.5
            dosage[v] = np.where(males, np.where(x >= 0, x / 2, mean[v]), 0.0)
        elif c in ("MT", "26"):  # haploid
            mean[v] = (x[called] / 2).sum() / called.sum() if called.sum() else 0.5
            dosage[v] = np.where(x >= 0, x / 2, mean[v])
        else:
            mean[v] = x[called].mean() if called.any() else 1.0
            dosage[v] = np.where(x >= 0, x, mean[v])
    if count_a2 is None:
        return dosage.T @ weights, mean
    full = np.array([[0.0 if str(c).upper() in ("Y", "24") and sex[i] != 1 else
                      1.0 if str(c).upper() in ("Y", "24", "MT", "26") else 2.0 for i in range(n)] for c in chrom])
    sums = np.zeros((n, weights.shape[1]))
    for c in range(weights.shape[1]):
        counted = np.where(count_a2[:, c][:, None], full - dosage, dosage)
        sums[:, c] = counted.T @ weights[:, c]
    return sums, mean


# --------------------------------------------------------------------------------------------
# score_bed against the dense reference


@pytest.mark.parametrize("n", [1, 3, 4, 5, 31, 33, 130, 1029])
def test_score_bed_matches_dense_reference(tmp_path, n):
    rng = np.random.default_rng(n)
    m = 37
    geno = rng.integers(-1, 3, size=(m, n)).astype(np.int8)
    geno[0] = -1  # no call at all: plink2 takes the frequency to be 1/2
    chrom = np.sort(rng.choice(["1", "2", "X", "XY", "Y", "MT"], m))
    sex = rng.choice([0, 1, 2], n)
    bed = open_bed(_fileset(tmp_path / "g", geno, chrom=chrom, sex=sex))
    rows = np.sort(rng.choice(m, size=29, replace=False))
    for k in (1, 3, 4, 10):
        weights = rng.normal(size=(rows.size, k))
        expected, mean = _reference(geno[rows], chrom[rows], sex, weights)
        for threads in (1, 2):
            np.testing.assert_allclose(score_bed(bed, rows, weights, threads=threads), expected, rtol=1e-12,
                                       atol=1e-12)
        np.testing.assert_allclose(a1_mean_dosage(bed, rows), mean, rtol=1e-15)
        one = score_bed(bed, rows, weights[:, 0])
        assert one.shape == (n,)
        np.testing.assert_allclose(one, expected[:, 0], rtol=1e-12, atol=1e-12)
        # weights on A2 for some variants and columns (as plink2 counts a score file's A2 allele)
        count_a2 = rng.random((rows.size, k)) < 0.4
        expected, _ = _reference(geno[rows], chrom[rows], sex, weights, count_a2=count_a2)
        np.testing.assert_allclose(score_bed(bed, rows, weights, count_a2=count_a2, threads=2), expected,
                                   rtol=1e-12, atol=1e-12)
        expected, _ = _reference(geno[rows], chrom[rows], sex, weights, count_a2=np.repeat(count_a2[:, :1], k, 1))
        np.testing.assert_allclose(score_bed(bed, rows, weights, count_a2=count_a2[:, 0]), expected,
                                   rtol=1e-12, atol=1e-12)


def test_result_does_not_depend_on_threads_or_chunking(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    geno = rng.integers(-1, 3, size=(203, 517)).astype(np.int8)
    bed = open_bed(_fileset(tmp_path / "g", geno))
    rows = np.arange(203)
    weights = rng.normal(size=(203, 6))
    first = score_bed(bed, rows, weights, threads=1)
    assert np.array_equal(first, score_bed(bed, rows, weights, threads=2))
    monkeypatch.setattr(scoring, "_TABLE_BYTES", 1)  # 16 groups (64 variants) per chunk
    monkeypatch.setattr(scoring, "_TILE_BYTES", 3)
    assert np.array_equal(first, score_bed(bed, rows, weights, threads=2))
    # rows far apart (read one run each) and runs of neighbours, across chunks
    sparse = np.unique(np.r_[np.arange(0, 203, 9), np.arange(100, 140), [202]])
    expected, _ = _reference(geno[sparse], ["1"] * sparse.size, np.zeros(517), weights[sparse])
    np.testing.assert_allclose(score_bed(bed, sparse, weights[sparse], threads=2), expected, rtol=1e-12, atol=1e-12)


def test_missing_call_counts_twice_the_a1_frequency(tmp_path):
    # 8 samples; variant 0: A1 counts 2, 2, 1, 0, 0, 1, 2 and one missing -> 8 A1 of 14 alleles
    geno = np.array([[2, 2, 1, 0, -1, 0, 1, 2],
                     [0, 1, 1, 1, 1, 1, 1, -1]], dtype=np.int8)
    bed = open_bed(_fileset(tmp_path / "g", geno))
    weights = np.array([[0.5, -2.0], [1.0, 0.0]])
    sums = score_bed(bed, np.array([0, 1]), weights)
    f0, f1 = 8 / 14, 6 / 14
    assert sums[4, 0] == pytest.approx(2 * f0 * 0.5 + 1 * 1.0, rel=1e-15)   # missing at variant 0
    assert sums[4, 1] == pytest.approx(2 * f0 * -2.0, rel=1e-15)
    assert sums[7, 0] == pytest.approx(2 * 0.5 + 2 * f1 * 1.0, rel=1e-15)   # missing at variant 1
    assert sums[0, 0] == pytest.approx(2 * 0.5 + 0.0, rel=1e-15)
    np.testing.assert_allclose(a1_mean_dosage(bed, [0, 1]), [2 * f0, 2 * f1], rtol=1e-15)
    # frequencies of a subset of samples, and a caller's own mean dosages
    np.testing.assert_allclose(a1_mean_dosage(bed, [0, 1], samples=[0, 1, 4]), [2.0, 2 / 3], rtol=1e-15)
    given = score_bed(bed, np.array([0, 1]), weights, mean_dosage=[1.5, 0.25])
    assert given[4, 1] == -3.0 and given[7, 0] == 1.25
    # returning a subset does not change the imputation
    np.testing.assert_array_equal(score_bed(bed, np.array([0, 1]), weights, samples=[7, 4]), sums[[7, 4]])


def test_padding_bits_of_the_last_byte_are_ignored(tmp_path):
    rng = np.random.default_rng(3)
    geno = rng.integers(-1, 3, size=(9, 7)).astype(np.int8)
    prefix = _fileset(tmp_path / "g", geno)
    expected = score_bed(open_bed(prefix), np.arange(9), np.arange(9.0))
    raw = bytearray((tmp_path / "g.bed").read_bytes())
    for v in range(9):  # samples 7 (the byte's 4th field) set to 'missing' (01), which plink never writes
        raw[3 + 2 * v + 1] |= 0b01000000
    (tmp_path / "g.bed").write_bytes(bytes(raw))
    np.testing.assert_array_equal(score_bed(open_bed(prefix), np.arange(9), np.arange(9.0)), expected)


@pytest.mark.parametrize("kwargs, problem", [
    (dict(rows=[2, 1], weights=[1.0, 1.0]), "ascending, unique"),
    (dict(rows=[0, 9], weights=[1.0, 1.0]), r"in \[0, 3\)"),
    (dict(rows=[0, 1], weights=[1.0]), "weights must be"),
    (dict(rows=[0, 1], weights=[1.0, np.nan]), r"weight of .bim row 1 \(column 1\) is not finite"),
    (dict(rows=[0, 1], weights=[1.0, 2.0], mean_dosage=[1.0]), "one value per variant"),
    (dict(rows=[0, 1], weights=[1.0, 2.0], samples=[5]), "samples must be"),
])
def test_bad_arguments_raise_one_line_errors(tmp_path, kwargs, problem):
    bed = open_bed(_fileset(tmp_path / "g", np.zeros((3, 4), dtype=np.int8)))
    kwargs = dict(kwargs)
    with pytest.raises(CohortflowError, match=problem):
        score_bed(bed, kwargs.pop("rows"), kwargs.pop("weights"), **kwargs)


def test_score_table_numbers_are_printf_g10():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3000, 3)) * 10.0 ** rng.integers(-12, 12, size=(3000, 3))
    values[:4, 0] = [0.0, 1e-5, -2.5, 123456789012.0]
    ids = [f"id{i}" for i in range(len(values))]
    encoded = [s.encode() for s in ids]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    body = kernels.format_score_table(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets, values, 10)
    assert body.tobytes().decode() == "".join(i + "".join(f"\t{x:.10g}" for x in row) + "\n"
                                              for i, row in zip(ids, values))


# --------------------------------------------------------------------------------------------
# Peer: plink2 --score


def _plink2_score(tmp_path: Path, prefix: Path, table: pd.DataFrame, n_columns: int, *extra: str) -> pd.DataFrame:
    """plink2 --score on ``table`` (ID, allele, W1..Wk): its .sscore as a DataFrame."""
    path = tmp_path / "plink2.weights.tsv"
    table.to_csv(path, sep="\t", index=False, float_format="%.17g")
    cols = "3" if n_columns == 1 else f"3-{n_columns + 2}"
    subprocess.run(["plink2", "--bfile", str(prefix), "--score", str(path), "1", "2", "header", "cols=+scoresums",
                    "--score-col-nums", cols, "--threads", "1", *extra, "--out", str(tmp_path / "plink2")],
                   check=True, capture_output=True)
    return pd.read_csv(tmp_path / "plink2.sscore", sep="\t")


def _quarter_genotypes(rng, m: int, n: int) -> np.ndarray:
    """Genotypes whose called counts are multiples of 4 and whose mean A1 dosage over the called
    samples is a multiple of 1/4 (so mean-imputed sums of integer weights are multiples of 1/4)."""
    geno = np.full((m, n), -1, dtype=np.int8)
    for v in range(m):
        called = n - 4 * int(rng.integers(0, 5))
        total = called * int(rng.integers(1, 8)) // 4  # mean dosage 1/4 .. 7/4
        counts = np.zeros(called, dtype=np.int8)
        np.add.at(counts, rng.permutation(np.repeat(np.arange(called), 2))[:total], 1)  # at most 2 each
        geno[v, rng.permutation(n)[:called]] = counts
    return geno


_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_PAIRS = [("A", "C"), ("A", "G"), ("C", "A"), ("C", "T"), ("G", "A"), ("G", "T"), ("T", "C"), ("T", "G")]


def _catalog_file(path: Path, pgs_id: str, rows: list[tuple]) -> Path:
    text = f"#pgs_id={pgs_id}\n#trait_reported=test\n#variants_number={len(rows)}\n"
    text += "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\n"
    text += "".join(f"{c}\t{p}\t{e}\t{o}\t{w}\n" for c, p, e, o, w in rows)
    path.write_text(text)
    return path


@needs_plink2
@pytest.mark.parametrize("k", [1, 10])
def test_exact_sums_equal_plink2(tmp_path, k):
    rng = np.random.default_rng(10 + k)
    n, m = 80, 60
    geno = _quarter_genotypes(rng, m, n)
    pairs = [_PAIRS[i] for i in rng.integers(0, len(_PAIRS), m)]
    a1, a2 = [p[0] for p in pairs], [p[1] for p in pairs]
    a1[-1], a2[-1] = "A", "T"  # ambiguous: dropped by us, so not given to plink2 either
    prefix = _fileset(tmp_path / "g", geno, a1=a1, a2=a2)
    bim = open_bed(prefix).bim
    swapped = rng.random(m) < 0.4  # the score's effect allele is the .bim A2
    weights = rng.choice([-3, -2, -1, 1, 2, 3], size=(m, k)).astype(float)
    files = []
    for c in range(k):
        rows = []
        for v in range(m):
            effect, other = (a2[v], a1[v]) if swapped[v] else (a1[v], a2[v])
            if v < m - 1 and rng.random() < 0.2:  # reported on the other strand
                effect, other = effect.translate(_COMPLEMENT), other.translate(_COMPLEMENT)
            rows.append(("chr1", bim["pos"][v], effect, other, int(weights[v, c])))
        files.append(_catalog_file(tmp_path / f"PGS{c:06d}.txt", f"PGS{c:06d}", rows))
    summary = score_pgs(bfile=prefix, scores=files, min_overlap=0.5, out_prefix=tmp_path / "ours")
    assert all(s["matched"] == m - 1 and s["ambiguous_dropped"] == 1 and s["flipped"] > 0 and s["swapped"] > 0
               for s in summary["scores"].values())
    ours = pd.read_csv(tmp_path / "ours.scores.tsv.gz", sep="\t")

    table = pd.DataFrame({"ID": bim["id"][:-1], "A": np.where(swapped, a2, a1)[:-1]})
    for c in range(k):
        table[f"W{c + 1}"] = weights[:-1, c]
    ref = _plink2_score(tmp_path, prefix, table, k)
    assert ref["IID"].tolist() == ours["IID"].tolist()
    assert (geno[:-1] < 0).any(axis=1).sum() > 20  # mean imputation is exercised
    for c in range(k):
        got = ours[f"PGS{c:06d}_SUM"].to_numpy()
        assert np.array_equal(got * 4, np.round(got * 4)) and np.abs(got).max() < 1000  # exact in 6 digits
        np.testing.assert_allclose(got, ref[f"SCORE{c + 1}_SUM"], rtol=1e-9, atol=0)
        # AVG = SUM / (2 x variants), the same denominator as plink2's (printed to 6 digits)
        np.testing.assert_allclose(ours[f"PGS{c:06d}_AVG"], ref[f"SCORE{c + 1}_AVG"], rtol=5e-6, atol=0)


def _sexed_fileset(tmp_path: Path, rng, n: int = 120):
    chrom = ["1"] * 40 + ["2"] * 30 + ["X"] * 25 + ["Y"] * 10 + ["XY"] * 5 + ["MT"] * 10
    m = len(chrom)
    sex = rng.choice([1, 2, 0], n, p=[0.45, 0.45, 0.1])
    geno = rng.integers(0, 3, size=(m, n)).astype(np.int8)
    haploid_male = np.isin(chrom, ["X", "Y"])[:, None] & (sex == 1)[None, :]
    geno = np.where(haploid_male & (rng.random((m, n)) < 0.97), geno // 2 * 2, geno)  # a few male hets left
    geno = np.where(np.array(chrom)[:, None] == "MT", geno // 2 * 2, geno).astype(np.int8)
    geno[rng.random((m, n)) < 0.06] = -1
    geno[41] = -1  # no call at all
    pairs = [_PAIRS[i] for i in rng.integers(0, len(_PAIRS), m)]
    prefix = _fileset(tmp_path / "sexed", geno, chrom=chrom, sex=sex, a1=[p[0] for p in pairs],
                      a2=[p[1] for p in pairs])
    return prefix, geno, np.array(chrom), sex


@needs_plink2
def test_real_weights_match_plink2_incl_sex_chromosomes(tmp_path):
    rng = np.random.default_rng(21)
    prefix, geno, chrom, sex = _sexed_fileset(tmp_path, rng)
    bed = open_bed(prefix)
    m, k = geno.shape[0], 3
    weights = np.array([[float(f"{w:.6g}") for w in row] for row in rng.normal(size=(m, k))])
    swapped = rng.random(m) < 0.5
    table = pd.DataFrame({"ID": bed.bim["id"], "A": np.where(swapped, bed.bim["a2"], bed.bim["a1"])})
    for c in range(k):
        table[f"W{c + 1}"] = weights[:, c]
    ref = _plink2_score(tmp_path, prefix, table, k)
    ours = score_bed(bed, np.arange(m), weights, count_a2=swapped, threads=2)
    for c in range(k):
        np.testing.assert_allclose(ours[:, c], ref[f"SCORE{c + 1}_SUM"], rtol=5e-6, atol=1e-12)
    # and plink2's rules written out densely agree with both
    expected, _ = _reference(geno, chrom, sex, weights, count_a2=np.repeat(swapped[:, None], k, 1))
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


@needs_plink2
def test_plink2_keep_imputes_from_the_kept_samples(tmp_path):
    """plink2 computes the imputation frequencies over the samples it loaded: with --keep, the
    kept ones. score_bed's default is the whole fileset; a1_mean_dosage(samples=kept) gives
    plink2's numbers."""
    rng = np.random.default_rng(5)
    prefix, geno, chrom, sex = _sexed_fileset(tmp_path, rng)
    bed = open_bed(prefix)
    m = geno.shape[0]
    kept = np.sort(rng.choice(geno.shape[1], size=70, replace=False))
    bed.fam.iloc[kept][["fid", "iid"]].to_csv(tmp_path / "keep.txt", sep="\t", header=False, index=False)
    weights = rng.normal(size=(m, 1)).round(4)
    table = pd.DataFrame({"ID": bed.bim["id"], "A": bed.bim["a1"], "W1": weights[:, 0]})
    ref = _plink2_score(tmp_path, prefix, table, 1, "--keep", str(tmp_path / "keep.txt"))
    assert ref["IID"].tolist() == bed.fam["iid"].iloc[kept].tolist()
    kept_freq = score_bed(bed, np.arange(m), weights, samples=kept,
                          mean_dosage=a1_mean_dosage(bed, np.arange(m), samples=kept))
    np.testing.assert_allclose(kept_freq[:, 0], ref["SCORE1_SUM"], rtol=5e-6, atol=1e-12)
    all_freq = score_bed(bed, np.arange(m), weights, samples=kept)
    assert np.abs(all_freq[:, 0] - ref["SCORE1_SUM"]).max() > 1e-3  # the default differs from plink2 --keep


def test_sharded_scoring_equals_one_call(tmp_path):
    """The workflow's per-chromosome path (match_pgs -> JSON, pgs_partial_sums per shard -> .npy,
    gather_pgs) writes exactly the bytes of score_pgs, on autosomes, X, Y, XY and MT, with one
    shard per chromosome and with chunked chromosomes."""
    from cohortflow.gwas.shards import write_shard_plan
    from cohortflow.prs.pgs import gather_pgs, match_pgs, pgs_partial_sums

    rng = np.random.default_rng(8)
    prefix, geno, chrom, sex = _sexed_fileset(tmp_path, rng)
    bim = open_bed(prefix).bim
    files = []
    for c in range(2):
        keep = rng.random(len(bim)) < 0.8
        rows = [(f"chr{bim['chrom'][v]}", bim["pos"][v], bim["a1"][v] if rng.random() < 0.6 else bim["a2"][v],
                 "", round(float(rng.normal()), 4)) for v in np.flatnonzero(keep)]
        rows = [(ch, p, e, (bim["a2"][i] if e == bim["a1"][i] else bim["a1"][i]), w)
                for (ch, p, e, _, w), i in zip(rows, np.flatnonzero(keep))]
        files.append(_catalog_file(tmp_path / f"PGS{c:06d}.txt", f"PGS{c:06d}", rows))
    for max_variants in (1_000_000, 7):
        one = tmp_path / f"one{max_variants}"
        score_pgs(bfile=prefix, scores=files, min_overlap=0.5, out_prefix=one, max_shard_variants=max_variants)
        plan = write_shard_plan(bfile=prefix, out=tmp_path / "plan.tsv", max_variants=max_variants)
        assert len(plan) >= 6
        match_pgs(bfile=prefix, scores=files, min_overlap=0.5, out=tmp_path / "matched.json")
        parts = []
        for shard, start, stop in zip(plan["shard"], plan["start"], plan["stop"]):
            part = tmp_path / f"{shard}.npy"
            pgs_partial_sums(bfile=prefix, matched=tmp_path / "matched.json", variant_range=(start, stop), out=part)
            parts.append(part)
        sharded = tmp_path / f"sharded{max_variants}"
        gather_pgs(bfile=prefix, matched=tmp_path / "matched.json", partials=parts, out_prefix=sharded)
        for suffix in (".scores.tsv.gz", ".match.tsv", ".summary.json"):
            assert Path(f"{sharded}{suffix}").read_bytes() == Path(f"{one}{suffix}").read_bytes(), suffix
