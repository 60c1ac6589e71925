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


def _reference(geno: np.ndarray, chrom, sex: np.ndarray, weights: np.ndarray, freq_samples=None):
    """Dense re-implementation of plink2 --score's SCORE_SUM with default mean imputation:
    (sums samples x k, mean dosage per variant)."""
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
    return dosage.T @ weights, mean


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
