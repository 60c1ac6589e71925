"""Published polygenic scores: PGS Catalog scoring files (cohortflow.io.pgs), matching and scoring
(cohortflow.prs.pgs) and the demo scoring file with known answers (cohortflow.demo.pgs).

Known answers: the matching categories of a hand-built .bim (counts derived by hand below), SUM
and AVG against plink2 --score on the same matched variants, and the demo file's planted rows.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cohortflow.demo.genome import simulate_genotypes
from cohortflow.demo.pgs import write_demo_scoring_file
from cohortflow.errors import CohortflowError
from cohortflow.io.pgs import read_scoring_file
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.prs.pgs import MATCH_COLUMNS, BimSites, match_counts, match_variants, score_pgs
from cohortflow.variants.ingest import ingest_vcf

CATALOG_HEADER = """\
###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring for additional information
#format_version=2.0
##POLYGENIC SCORE (PGS) INFORMATION
#pgs_id=PGS000999
#pgs_name=TEST_PRS
#trait_reported=Test trait
#trait_mapped=test
#trait_efo=EFO_0000000
#genome_build=GRCh37
#variants_number={n}
#weight_type=NR
##SOURCE INFORMATION
#pgp_id=PGP000001
#citation=Someone et al. (2020)
##HARMONIZATION DETAILS
#HmPOS_build=GRCh38
#HmPOS_date=2022-07-29
"""


def _write(path: Path, text: str, *, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _catalog(path: Path, rows: list[str], columns: str, *, gz: bool = False) -> Path:
    return _write(path, CATALOG_HEADER.format(n=len(rows)) + columns + "\n" + "\n".join(rows) + "\n", gz=gz)


# --------------------------------------------------------------------------------------------
# Reading


def test_read_harmonized_catalog_file(tmp_path):
    cols = "rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\tallelefrequency_effect\t" \
           "hm_source\thm_rsID\thm_chr\thm_pos\thm_inferOtherAllele"
    rows = [
        "rs1\t1\t1000\tA\tG\t0.5\t0.2\tENSEMBL\trs1\t1\t2000\t",
        "rs2\t2\t3000\tc\t\t-0.25\t0.3\tENSEMBL\trs2\t2\t4000\tT",
        "rs3\t3\t5000\tG\t\t1e-3\t0.4\tENSEMBL\trs3\t\t\tA/C",  # not harmonized: no position
    ]
    header, table = read_scoring_file(_catalog(tmp_path / "PGS000999_hmPOS_GRCh38.txt.gz", rows, cols, gz=True))
    assert header["pgs_id"] == "PGS000999"
    assert header["trait_reported"] == "Test trait"
    assert header["genome_build"] == "GRCh37" and header["HmPOS_build"] == "GRCh38"
    assert header["variants_number"] == "3"
    assert table["chrom"].tolist() == ["1", "2", ""]
    assert table["pos"].tolist()[:2] == [2000, 4000] and pd.isna(table["pos"].iloc[2])  # hm_pos, not chr_position
    assert table["effect_allele"].tolist() == ["A", "C", "G"]
    assert table["other_allele"].tolist() == ["G", "T", ""]  # inferred when single, unknown when A/C
    assert table["weight"].tolist() == [0.5, -0.25, 1e-3]
    assert table["line"].tolist() == [19, 20, 21]  # 17 header lines, then the column names


def test_read_format1_header_and_plain_tables(tmp_path):
    v1 = "# PGS ID = PGS000001\n# Reported Trait = Breast cancer\n# Original Genome Build = NR\n" \
         "# Number of Variants = 1\nrsID\tchr_name\tchr_position\teffect_allele\treference_allele\teffect_weight\n" \
         "rs1\t11\t69331418\tC\tT\t0.16\n"
    header, table = read_scoring_file(_write(tmp_path / "v1.txt", v1))
    assert header["pgs_id"] == "PGS000001" and header["trait_reported"] == "Breast cancer"
    assert table["pos"].tolist() == [69331418] and table["other_allele"].tolist() == [""]

    header, table = read_scoring_file(_write(tmp_path / "mine.tsv", "chrom pos effect_allele other_allele weight\n"
                                                                    "chr1 10 A G 0.1\n"))
    assert header["pgs_id"] == "mine" and table.loc[0, "chrom"] == "chr1" and table.loc[0, "weight"] == 0.1

    _, table = read_scoring_file(_write(tmp_path / "p2.txt", "ID\tA1\tWEIGHT\n1:10:A:G\tA\t0.3\n2:20:C:T\tT\t0.2\n"))
    assert table["chrom"].tolist() == ["1", "2"] and table["pos"].tolist() == [10, 20]
    assert table["effect_allele"].tolist() == ["A", "T"] and table["other_allele"].tolist() == ["G", "C"]


def test_layout_variants_read_alike(tmp_path):
    """Blank lines, tab-only lines, CRLF endings and a missing final newline: same table, and line
    numbers that are the file's (the Arrow reader hands such files to pandas, or keeps its own)."""
    columns = "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\thm_inferOtherAllele"
    rows = ["1\t10\tA\tg\t0.5\t", "2\t20\tc\t\t-1e-3\tT", "3\t30\tG\t\t2\tA/C"]
    layouts = {
        "plain": "\n".join(rows) + "\n",
        "blank": rows[0] + "\n\n" + rows[1] + "\n\t\t\t\t\t\n" + rows[2] + "\n\n\n",
        "crlf": "\r\n".join(rows) + "\r\n",
        "no_final_newline": "\n".join(rows),
    }
    expected_lines = {"plain": [2, 3, 4], "blank": [2, 4, 6], "crlf": [2, 3, 4], "no_final_newline": [2, 3, 4]}
    for name, body in layouts.items():
        for gz in (False, True):
            path = _write(tmp_path / f"{name}.txt{'.gz' if gz else ''}", columns + "\n" + body, gz=gz)
            _, table = read_scoring_file(path)
            assert table["chrom"].tolist() == ["1", "2", "3"], name
            assert table["pos"].tolist() == [10, 20, 30]
            assert table["effect_allele"].tolist() == ["A", "C", "G"]
            assert table["other_allele"].tolist() == ["G", "T", ""]
            assert table["weight"].tolist() == [0.5, -1e-3, 2.0]
            assert table["line"].tolist() == expected_lines[name], name
    bad = _write(tmp_path / "bad.txt", columns + "\n" + rows[0] + "\n\n" + rows[1].replace("-1e-3", "x") + "\n")
    with pytest.raises(CohortflowError, match=r"line 4, column 'effect_weight': weight 'x' is not a finite number"):
        read_scoring_file(bad)


@pytest.mark.parametrize("row, column, problem", [
    ("1\t100\tA\tG\tabc", "effect_weight", "not a finite number"),
    ("1\tx100\tA\tG\t0.1", "chr_position", "not a non-negative integer"),
    ("1\t100\tA-\tG\t0.1", "effect_allele", "not a nucleotide"),
])
def test_read_errors_name_file_line_column(tmp_path, row, column, problem):
    path = _catalog(tmp_path / "bad.txt", ["1\t50\tA\tG\t0.1", row],
                    "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight")
    with pytest.raises(CohortflowError) as err:
        read_scoring_file(path)
    msg = str(err.value)
    assert str(path) in msg and "line 20" in msg and repr(column) in msg and problem in msg


def test_dominant_weights_are_refused(tmp_path):
    path = _catalog(tmp_path / "dom.txt", ["1\t50\tA\tG\t0.1\tFalse", "1\t60\tA\tG\t0.1\tTrue"],
                    "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\tis_dominant")
    with pytest.raises(CohortflowError, match=r"line 20, column 'is_dominant'.*dominant weights are not supported"):
        read_scoring_file(path)


# --------------------------------------------------------------------------------------------
# Matching and scoring on a hand-built fileset

# .bim: (chrom, pos, A1, A2); A1 is the counted allele
BIM = [
    ("1", 100, "G", "A"),
    ("1", 200, "C", "T"),
    ("1", 300, "G", "A"),
    ("1", 400, "G", "T"),
    ("1", 500, "T", "A"),  # A/T: ambiguous
    ("1", 700, "G", "A"),
    ("2", 100, "G", "A"),  # multi-allelic site: two .bim variants
    ("2", 100, "C", "A"),
    ("2", 300, "C", "A"),
]
# scoring rows: chrom, pos, effect, other, weight -> (status, swapped, flipped) worked out by hand
SCORE_ROWS = [
    ("chr1", 100, "G", "A", 0.5, "matched", False, False),    # direct
    ("1", 200, "T", "C", -0.3, "matched", True, False),       # effect = A2
    ("1", 300, "C", "T", 0.2, "matched", False, True),        # complement G/A
    ("1", 400, "A", "C", 0.7, "matched", True, True),         # complement T/G: effect = A2 after flip
    ("1", 500, "T", "A", 0.1, "ambiguous", False, False),
    ("1", 600, "A", "G", 0.4, "missing", False, False),       # no such position
    ("1", 700, "C", "A", 0.6, "allele_mismatch", False, False),  # C/A vs G/A: neither same nor flipped
    ("2", 100, "C", "A", -0.8, "matched", False, False),      # second variant of the multi-allelic site
    ("2", 300, "A", "", 0.25, "matched", True, False),        # other allele unknown; effect = A2
]


def _fileset(tmp_path: Path, n: int = 80, seed: int = 3) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.1, 0.9, size=len(BIM))
    geno = (rng.random((len(BIM), n)) < freq[:, None]).astype(np.int8) + \
        (rng.random((len(BIM), n)) < freq[:, None]).astype(np.int8)
    geno[rng.random(geno.shape) < 0.05] = -1
    bim = pd.DataFrame({"chrom": [b[0] for b in BIM], "id": [f"{b[0]}:{b[1]}:{b[3]}:{b[2]}" for b in BIM],
                        "cm": 0.0, "pos": [b[1] for b in BIM], "a1": [b[2] for b in BIM], "a2": [b[3] for b in BIM]})
    iids = [f"I{i:03d}" for i in range(n)]
    fam = pd.DataFrame({"fid": iids, "iid": iids, "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / "g", geno, bim, fam)
    return tmp_path / "g", geno


def _score_file(path: Path, rows=SCORE_ROWS, pgs_id: str = "PGS000999") -> Path:
    text = CATALOG_HEADER.replace("PGS000999", pgs_id).format(n=len(rows))
    text += "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\n"
    text += "".join(f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]}\n" for r in rows)
    return _write(path, text)


def test_match_categories(tmp_path):
    prefix, _ = _fileset(tmp_path)
    _, table = read_scoring_file(_score_file(tmp_path / "s.txt"))
    bim = open_bed(prefix).bim
    m = match_variants(table, bim)
    assert m["status"].tolist() == [r[5] for r in SCORE_ROWS]
    assert m["swapped"].tolist() == [r[6] for r in SCORE_ROWS]
    assert m["flipped"].tolist() == [r[7] for r in SCORE_ROWS]
    assert bim["pos"].iloc[m.loc[7, "bim_row"]] == 100 and bim["a1"].iloc[m.loc[7, "bim_row"]] == "C"
    counts = match_counts(m)
    assert {k: counts[k] for k in MATCH_COLUMNS[2:9]} == {
        "n_variants": 9, "matched": 6, "swapped": 3, "flipped": 2, "ambiguous_dropped": 1, "missing": 1,
        "other_dropped": 1}
    assert counts["weight_fraction_matched"] == pytest.approx((0.5 + 0.3 + 0.2 + 0.7 + 0.8 + 0.25) / 3.85)
    kept = match_counts(match_variants(table, bim, keep_ambiguous=True))
    assert kept["matched"] == 7 and kept["ambiguous_dropped"] == 0


_COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}
_CHROM = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}


def _match_one_by_one(table: pd.DataFrame, bim: pd.DataFrame, keep_ambiguous: bool) -> list[tuple]:
    """The matching rules written row by row: (status, bim_row, swapped, flipped) per scoring row."""
    def chrom(c):
        c = str(c).strip().upper().removeprefix("CHR")
        return _CHROM.get(c, c)

    b_chrom, b_pos = [chrom(c) for c in bim["chrom"]], bim["pos"].tolist()
    b_a1, b_a2 = bim["a1"].tolist(), bim["a2"].tolist()
    out = []
    for r in table.itertuples():
        if pd.isna(r.pos):
            out.append(("missing", -1, False, False))
            continue
        cands = [i for i in range(len(bim)) if b_chrom[i] == chrom(r.chrom) and b_pos[i] == r.pos]
        if not cands:
            out.append(("missing", -1, False, False))
            continue
        scored = []
        for i in cands:
            a1, a2, ea, oa = b_a1[i], b_a2[i], r.effect_allele, r.other_allele
            snv = all(a in _COMP for a in (a1, a2))
            ambiguous = snv and _COMP[a1] == a2
            fits = lambda e, o, x, y: e == x and (o == "" or o == y)  # noqa: E731
            flip_ok = snv and not ambiguous and ea in _COMP and (oa == "" or oa in _COMP)
            fe, fo = (_COMP.get(ea, ""), _COMP.get(oa, "")) if flip_ok else ("", "")
            level = 0 if fits(ea, oa, a1, a2) else 1 if fits(ea, oa, a2, a1) else \
                2 if flip_ok and fits(fe, fo, a1, a2) else 3 if flip_ok and fits(fe, fo, a2, a1) else 4
            scored.append((level, i, ambiguous))
        best = min(scored)
        if best[0] == 4:
            out.append(("allele_mismatch", -1, False, False))
        elif sum(s[0] == best[0] for s in scored) > 1:
            out.append(("multiple_matches", -1, False, False))
        elif best[2] and not keep_ambiguous:
            out.append(("ambiguous", -1, False, False))
        else:
            out.append(("matched", best[1], best[0] in (1, 3), best[0] in (2, 3)))
    return out


def test_matching_agrees_with_the_rules_row_by_row():
    rng = np.random.default_rng(5)
    alleles = ["A", "C", "G", "T", "AT", "CTG", "N"]
    p = [.22, .22, .22, .22, .05, .04, .03]
    compared = 0
    for _ in range(60):
        nb, nt = int(rng.integers(1, 50)), int(rng.integers(1, 50))
        bim = pd.DataFrame({"chrom": rng.choice(["1", "2", "X", "23", "chr1"], nb),
                            "id": [f"v{i}" for i in range(nb)], "cm": 0.0, "pos": rng.integers(1, 25, nb),
                            "a1": rng.choice(alleles, nb, p=p), "a2": rng.choice(alleles, nb, p=p)})
        pos = pd.array(rng.integers(1, 25, nt), dtype="Int64")
        pos[rng.random(nt) < 0.1] = pd.NA
        table = pd.DataFrame({"chrom": rng.choice(["1", "chr2", "X", "CHRX", "3", "chr23"], nt), "pos": pos,
                              "effect_allele": rng.choice(alleles, nt), "other_allele": rng.choice(alleles + [""], nt),
                              "weight": rng.normal(size=nt), "line": np.arange(nt) + 2})
        before = table.copy()
        for keep in (False, True):
            expected = _match_one_by_one(table, bim, keep)
            rows = [e[1] for e in expected if e[1] >= 0]
            if len(rows) != len(set(rows)):
                with pytest.raises(CohortflowError, match="not summed"):
                    match_variants(table, bim, keep_ambiguous=keep)
                continue
            for sites in (bim, BimSites(bim), BimSites(pa.Table.from_pandas(bim, preserve_index=False))):
                m = match_variants(table, sites, keep_ambiguous=keep)
                assert list(zip(m["status"], m["bim_row"], m["swapped"], m["flipped"])) == expected
            compared += 1
        pd.testing.assert_frame_equal(table, before)  # the caller's table is left alone
    assert compared > 60


def test_duplicated_weights_are_an_error(tmp_path):
    prefix, _ = _fileset(tmp_path)
    rows = SCORE_ROWS[:2] + [("1", 200, "C", "T", 0.3, "", False, False)]  # same variant, other orientation
    with pytest.raises(CohortflowError, match=r"lines 20, 21 all match .bim variant 1:200:T:C.*not summed"):
        score_pgs(bfile=prefix, scores=[_score_file(tmp_path / "d.txt", rows)], out_prefix=tmp_path / "o")


def test_min_overlap_error_counts_reasons(tmp_path):
    prefix, _ = _fileset(tmp_path)
    with pytest.raises(CohortflowError) as err:
        score_pgs(bfile=prefix, scores=[_score_file(tmp_path / "s.txt")], min_overlap=0.9, out_prefix=tmp_path / "o")
    msg = str(err.value)
    assert "only 6 of 9 variants matched the genotypes (66.7%, min_overlap 90%)" in msg
    assert "missing 1" in msg and "ambiguous 1" in msg and "allele_mismatch 1" in msg
    assert not list(tmp_path.glob("o.*"))


def test_bad_scoring_inputs_are_one_line_errors(tmp_path):
    prefix, _ = _fileset(tmp_path)
    columns = "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\n"
    (tmp_path / "elsewhere.txt").write_text(columns + "7\t100\tG\tA\t0.5\n")
    (tmp_path / "truncated.txt.gz").write_bytes(gzip.compress((columns + "1\t100\tG\tA\t0.5\n").encode())[:25])
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x01")
    cases = {
        "elsewhere.txt": r"score elsewhere: only 0 of 1 variants matched the genotypes \(0.0%, min_overlap 0%\); "
                         r"not matched: missing 1$",
        "truncated.txt.gz": r"truncated.txt.gz: cannot inflate the gzip file",
        "binary.txt": r"binary.txt: not a text or gzip file$",
    }
    for name, problem in cases.items():
        with pytest.raises(CohortflowError, match=problem) as err:
            score_pgs(bfile=prefix, scores=[tmp_path / name], min_overlap=0, out_prefix=tmp_path / "o")
        assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("o.*"))


def _plink2_score(tmp_path: Path, prefix: Path, matched: pd.DataFrame, bim: pd.DataFrame) -> pd.DataFrame:
    """plink2 --score on the matched variants, the weight on the .bim allele the effect allele is."""
    used = matched[matched["status"] == "matched"]
    rows = used["bim_row"].to_numpy()
    allele = np.where(used["swapped"].to_numpy(), bim["a2"].to_numpy()[rows], bim["a1"].to_numpy()[rows])
    pd.DataFrame({"ID": bim["id"].to_numpy()[rows], "A": allele, "W": used["weight"].to_numpy()}).to_csv(
        tmp_path / "plink2.score", sep="\t", index=False)
    subprocess.run(["plink2", "--bfile", str(prefix), "--score", str(tmp_path / "plink2.score"), "1", "2", "3",
                    "header", "cols=+scoresums", "--threads", "1", "--out", str(tmp_path / "plink2")],
                   check=True, capture_output=True)
    return pd.read_csv(tmp_path / "plink2.sscore", sep="\t")


def test_sum_and_avg_match_plink2(tmp_path):
    if shutil.which("plink2") is None:
        pytest.skip("plink2 not on PATH")
    prefix, geno = _fileset(tmp_path)
    assert (geno == -1).any()  # mean imputation is exercised
    score_path = _score_file(tmp_path / "s.txt")
    summary = score_pgs(bfile=prefix, scores=[score_path], min_overlap=0.5, out_prefix=tmp_path / "pgs")
    ours = pd.read_csv(tmp_path / "pgs.scores.tsv.gz", sep="\t")
    assert list(ours.columns) == ["IID", "PGS000999_SUM", "PGS000999_AVG"]
    bim = open_bed(prefix).bim
    ref = _plink2_score(tmp_path, prefix, match_variants(read_scoring_file(score_path)[1], bim), bim)
    assert ref["IID"].tolist() == ours["IID"].tolist()
    np.testing.assert_allclose(ours["PGS000999_SUM"], ref["SCORE1_SUM"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(ours["PGS000999_AVG"], ref["SCORE1_AVG"], rtol=1e-5, atol=1e-9)
    assert summary["scores"]["PGS000999"]["matched"] == 6

    match = pd.read_csv(tmp_path / "pgs.match.tsv", sep="\t")
    assert list(match.columns) == MATCH_COLUMNS
    assert match.loc[0, ["matched", "swapped", "flipped", "ambiguous_dropped", "missing", "other_dropped"]].tolist() \
        == [6, 3, 2, 1, 1, 1]


def test_trait_metrics_and_determinism(tmp_path):
    prefix, _ = _fileset(tmp_path)
    scores = [_score_file(tmp_path / "a.txt"), _score_file(tmp_path / "b.txt", SCORE_ROWS[:4], "PGS000002")]
    first = score_pgs(bfile=prefix, scores=scores, min_overlap=0.5, out_prefix=tmp_path / "one")
    s = pd.read_csv(tmp_path / "one.scores.tsv.gz", sep="\t")
    rng = np.random.default_rng(0)
    quant = s["PGS000999_SUM"].to_numpy() + rng.normal(size=len(s))
    disease = np.where(s["PGS000002_SUM"] > s["PGS000002_SUM"].median(), 2, 1)
    pheno = tmp_path / "pheno.tsv"
    pd.DataFrame({"#FID": s["IID"], "IID": s["IID"], "q": quant, "d": disease}).to_csv(pheno, sep="\t", index=False)
    summary = score_pgs(bfile=prefix, scores=scores, pheno=pheno, traits=["q", "d"], min_overlap=0.5,
                        out_prefix=tmp_path / "two")
    q = summary["scores"]["PGS000999"]["traits"]["q"]
    assert q["type"] == "quantitative" and q["n"] == len(s)
    assert q["r"] == pytest.approx(np.corrcoef(s["PGS000999_SUM"], quant)[0, 1], rel=1e-9)
    d = summary["scores"]["PGS000002"]["traits"]["d"]
    assert d["type"] == "binary" and d["auc"] == 1.0  # cases are exactly the upper half of this score
    assert first["scores"]["PGS000002"]["n_variants"] == 4
    score_pgs(bfile=prefix, scores=scores, pheno=pheno, traits=["q", "d"], min_overlap=0.5,
              out_prefix=tmp_path / "three")
    for ext in (".scores.tsv.gz", ".match.tsv", ".summary.json"):
        assert (tmp_path / f"two{ext}").read_bytes() == (tmp_path / f"three{ext}").read_bytes()


# --------------------------------------------------------------------------------------------
# The demo scoring file on a small simulated cohort

SMALL = dict(n_individuals=300, n_populations=3, n_chromosomes=2, chrom_length=1_000_000, n_quant_causal=6,
             n_disease_causal=2, disease_odds_ratio=4.0, seed=11)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pgs_demo")
    simulate_genotypes(out, **SMALL)
    ingest_vcf(sorted(glob.glob(str(out / "genotypes" / "chr*.vcf.gz"))), out_prefix=out / "geno")
    return out


def test_demo_scoring_file_known_answers(demo, tmp_path):
    out = tmp_path / "DEMO000001.txt.gz"
    expected = write_demo_scoring_file(truth_json=demo / "truth.json", bim=demo / "geno.bim", out=out)
    assert json.loads(Path(f"{out}.expected.json").read_text()) == expected
    header, table = read_scoring_file(out)
    assert header["pgs_id"] == "DEMO000001" and header["trait_reported"] == "quant_trait (demo)"
    assert header["genome_build"] == "simulated" and header["format_version"] == "2.0"
    assert int(header["variants_number"]) == len(table) == expected["n_variants"]
    # every planted variant is there with its true effect (the swapped one negated)
    truth = json.loads((demo / "truth.json").read_text())["traits"]["quant_trait"]["causal_variants"]
    by_pos = {(r.chrom, int(r.pos)): r for r in table.itertuples()}
    for v in truth:
        row = by_pos[(v["chromosome"], v["position"])]
        sign = -1 if v["variant_id"] == expected["swapped_variant"] else 1
        assert row.weight == sign * v["beta"]
    # the rows written to test each rule exist; a small simulation has them all
    assert expected["swapped_variant"] and expected["flipped_variant"] and expected["ambiguous_variant"]
    assert expected["missing"] == 1 and expected["swapped"] >= 1 and expected["flipped"] == 1

    summary = score_pgs(bfile=demo / "geno", scores=[out], pheno=demo / "phenotypes.tsv", traits=["quant_trait"],
                        out_prefix=tmp_path / "pgs")
    got = summary["scores"]["DEMO000001"]
    for key in ("n_variants", "matched", "swapped", "flipped", "ambiguous_dropped", "missing", "other_dropped"):
        assert got[key] == expected[key], key
    assert got["traits"]["quant_trait"]["r"] > 0.2
    kept = score_pgs(bfile=demo / "geno", scores=[out], keep_ambiguous=True, out_prefix=tmp_path / "kept")
    assert kept["scores"]["DEMO000001"]["matched"] == expected["matched_keep_ambiguous"]
    assert expected["matched_keep_ambiguous"] == expected["matched"] + expected["ambiguous_dropped"]


def test_demo_scoring_file_is_deterministic(demo, tmp_path):
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name / "DEMO000001.txt.gz"
        write_demo_scoring_file(truth_json=demo / "truth.json", bim=demo / "geno.bim", out=out)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


# --------------------------------------------------------------------------------------------
# Peer: the PGS Catalog's own matcher (pgscatalog-match 0.4.0, as pgsc_calc runs it)
#
# pgscatalog-match pins polars==0.20.30, so it lives in a venv of its own: set PGSCATALOG_BIN to
# that venv's bin directory, or put pgscatalog-match on PATH (.ci/run installs it in .ci/pgsc).
# Same outcome per scoring-file row, except where the two differ by design (asserted as such):
# - a row several .bim variants match equally well (a multi-allelic site, other allele unknown):
#   pgscatalog keeps the first candidate (or excludes the row when that one is ambiguous); we drop
#   the row (multiple_matches): which variant the weight belongs to is not known;
# - strand flips of indels: pgscatalog complements multi-base alleles without reversing them; we
#   flip SNVs only (a strand flip reverses an indel too; complementing alone is not a flip);
# - chromosome names: we read chr1 = 1 and 23-26 = X/Y/XY/MT; pgscatalog compares the names as
#   written and leaves out .bim variants off 1-22, X, Y;
# - two rows on one variant: pgscatalog excludes both; we refuse the file (weights not summed).

def _pgscatalog_bin() -> Path | None:
    candidates = [os.environ.get("PGSCATALOG_BIN"), Path(__file__).resolve().parents[1] / ".ci" / "pgsc" / "bin"]
    on_path = shutil.which("pgscatalog-match")
    if on_path:
        candidates.insert(1, Path(on_path).parent)
    for c in candidates:
        if c and (Path(c) / "pgscatalog-match").exists() and (Path(c) / "pgscatalog-format").exists():
            return Path(c)
    return None


@pytest.fixture(scope="module")
def pgscatalog() -> Path:
    found = _pgscatalog_bin()
    if found is None:
        pytest.skip("pgscatalog-match not found: set PGSCATALOG_BIN to the bin directory of a venv with "
                    "pgscatalog-match==0.4.0 (.ci/run installs one in .ci/pgsc)")
    return found


def _bim_file(path: Path, rows: list[tuple]) -> pd.DataFrame:
    """.bim of (chrom, pos, a1, a2) rows, IDs chrom:pos:a2:a1 (unique)."""
    bim = pd.DataFrame({"chrom": [r[0] for r in rows], "id": [f"{r[0]}:{r[1]}:{r[3]}:{r[2]}" for r in rows], "cm": 0,
                        "pos": [r[1] for r in rows], "a1": [r[2] for r in rows], "a2": [r[3] for r in rows]})
    bim.to_csv(path, sep="\t", header=False, index=False)
    return bim


def _catalog_rows_file(path: Path, rows: list[tuple]) -> Path:
    text = f"#pgs_id=PGS999001\n#trait_reported=test\n#genome_build=GRCh38\n#variants_number={len(rows)}\n"
    text += "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\n"
    text += "".join(f"{c}\t{p}\t{e}\t{o}\t{w}\n" for c, p, e, o, w in rows)
    path.write_text(text)
    return path


def _pgscatalog_outcomes(tool: Path, tmp_path: Path, score: Path, bim: Path, keep_ambiguous: bool) -> list[tuple]:
    """Per scoring-file row: ("matched", ID, match_type, duplicate_best_match), ("excluded", ambiguous)
    or ("unmatched",), from pgscatalog-match's variant log."""
    fmt, out = tmp_path / f"fmt{keep_ambiguous}", tmp_path / f"out{keep_ambiguous}"
    fmt.mkdir()
    out.mkdir()
    subprocess.run([str(tool / "pgscatalog-format"), "-s", str(score), "-t", "GRCh38", "-o", str(fmt),
                    "-l", str(fmt / "log.json"), "--threads", "1"], check=True, capture_output=True)
    subprocess.run([str(tool / "pgscatalog-match"), "-d", "test", "-s", str(fmt / f"normalised_{score.name}"),
                    "-t", str(bim), "--outdir", str(out), "--min_overlap", "0",
                    *(["--keep_ambiguous"] if keep_ambiguous else [])], check=True, capture_output=True)
    log = pd.read_csv(out / "test_log.csv.gz", dtype={"ID": str, "match_type": str, "match_status": str})
    outcomes = []
    for _, rows in log.groupby("row_nr", sort=True):
        matched = rows[rows["match_status"] == "matched"]
        excluded = rows[rows["match_status"] == "excluded"]
        if len(matched):
            r = matched.iloc[0]
            outcomes.append(("matched", r["ID"], r["match_type"], bool(r["duplicate_best_match"])))
        elif len(excluded):
            outcomes.append(("excluded", bool(excluded.iloc[0]["ambiguous"])))
        else:
            outcomes.append(("unmatched",))
    return outcomes


_MATCH_TYPES = {(False, False): ("refalt", "no_oa_ref"), (True, False): ("altref", "no_oa_alt"),
                (False, True): ("refalt_flip", "no_oa_ref_flip"), (True, True): ("altref_flip", "no_oa_alt_flip")}


def _ours_as_pgscatalog(m: pd.DataFrame, bim: pd.DataFrame) -> list[tuple]:
    """Our outcome per row in pgscatalog's terms (multiple_matches kept as is: a designed difference)."""
    out = []
    for r in m.itertuples():
        if r.status == "matched":
            out.append(("matched", bim["id"][r.bim_row], _MATCH_TYPES[(r.swapped, r.flipped)][r.other_allele == ""]))
        elif r.status == "ambiguous":
            out.append(("excluded", True))
        elif r.status in ("missing", "allele_mismatch"):
            out.append(("unmatched",))
        else:
            out.append((r.status,))
    return out


def test_matching_agrees_with_pgscatalog_match(tmp_path, pgscatalog):
    bim_rows = [("1", 100, "G", "A"), ("1", 200, "C", "T"), ("1", 300, "G", "A"), ("1", 400, "G", "T"),
                ("1", 500, "T", "A"), ("1", 700, "G", "A"), ("1", 800, "C", "A"), ("1", 900, "G", "A"),
                ("1", 900, "C", "A"), ("1", 950, "G", "A"), ("1", 950, "T", "C"), ("1", 1000, "AC", "A"),
                ("1", 1100, "G", "A"), ("1", 1200, "C", "G"), ("2", 50, "G", "C"), ("X", 10, "A", "G"),
                ("MT", 20, "C", "T")]
    bim = _bim_file(tmp_path / "t.bim", bim_rows)
    rows = [  # chrom, pos, effect, other, weight
        ("1", 100, "G", "A", 0.5),      # direct
        ("1", 200, "T", "C", -0.3),     # swapped
        ("1", 300, "C", "T", 0.2),      # strand flipped
        ("1", 400, "A", "C", 0.7),      # flipped and swapped
        ("1", 500, "T", "A", 0.1),      # A/T: ambiguous
        ("1", 600, "A", "G", 0.4),      # no variant there
        ("1", 700, "C", "A", 0.6),      # variant there, other alleles
        ("1", 800, "A", "", 0.25),      # other allele unknown, effect = A2
        ("1", 900, "C", "A", -0.8),     # second variant of a multi-allelic site
        ("1", 950, "A", "G", 0.3),      # G/A swapped beats T/C flipped (multi-allelic site)
        ("1", 1100, "C", "", 0.35),     # other allele unknown, flipped
        ("1", 1200, "G", "C", 0.45),    # C/G: ambiguous
        ("2", 50, "C", "G", 0.55),      # G/C ambiguous, swapped
        ("X", 10, "T", "C", 0.65),      # flipped on X
    ]
    score = _catalog_rows_file(tmp_path / "s.txt", rows)
    _, table = read_scoring_file(score)
    for keep in (False, True):
        ours = _ours_as_pgscatalog(match_variants(table, bim, keep_ambiguous=keep), bim)
        theirs = _pgscatalog_outcomes(pgscatalog, tmp_path, score, tmp_path / "t.bim", keep)
        assert [t[:3] for t in theirs] == ours, keep
    assert [o[0] for o in ours].count("matched") == len(rows) - 2  # no variant / other alleles

    # the designed differences, one at a time
    differences = [
        # multi-allelic site, other allele unknown: both G/A and C/A have A as A2
        ([("1", 900, "G", "A"), ("1", 900, "C", "A")], ("1", 900, "A", "", 0.3), ("multiple_matches",),
         ("matched", "1:900:A:G", "no_oa_alt", True)),
        # indel "flip" by complementing without reversing
        ([("1", 1000, "AC", "A")], ("1", 1000, "TG", "T", 0.8), ("unmatched",),
         ("matched", "1:1000:A:AC", "refalt_flip", False)),
        # chromosome names
        ([("1", 1100, "G", "A")], ("chr1", 1100, "G", "A", 0.9), ("matched", "1:1100:A:G", "refalt"),
         ("unmatched",)),
        ([("MT", 20, "C", "T")], ("MT", 20, "C", "T", 0.9), ("matched", "MT:20:T:C", "refalt"), ("unmatched",)),
    ]
    anchor = (("22", 5, "G", "A"), ("22", 5, "G", "A", 1.0))  # pgscatalog-match fails when nothing matches
    for i, (variants, row, ours_expected, theirs_expected) in enumerate(differences):
        d = tmp_path / f"difference{i}"
        d.mkdir()
        b = _bim_file(d / "t.bim", variants + [anchor[0]])
        s = _catalog_rows_file(d / "s.txt", [row, anchor[1]])
        ours = _ours_as_pgscatalog(match_variants(read_scoring_file(s)[1], b), b)
        assert ours[0] == ours_expected, i
        theirs = _pgscatalog_outcomes(pgscatalog, d, s, d / "t.bim", False)
        assert (theirs[0] if theirs[0][0] == "matched" else theirs[0][:1]) == theirs_expected, i

    # two rows on one variant: pgscatalog excludes both, we refuse the file
    d = tmp_path / "duplicated"
    d.mkdir()
    b = _bim_file(d / "t.bim", [("1", 100, "G", "A"), ("1", 200, "C", "T")])
    s = _catalog_rows_file(d / "s.txt", [("1", 100, "G", "A", 0.5), ("1", 100, "A", "G", 0.2), ("1", 200, "C", "T", 1)])
    theirs = _pgscatalog_outcomes(pgscatalog, d, s, d / "t.bim", False)
    assert [t[0] for t in theirs] == ["excluded", "excluded", "matched"]
    with pytest.raises(CohortflowError, match="not summed"):
        match_variants(read_scoring_file(s)[1], b)


def test_matching_agrees_with_pgscatalog_match_on_random_sites(tmp_path, pgscatalog):
    """Random SNV sites (several per position at times) and scoring rows in every orientation;
    rows several variants match equally well are the designed difference."""
    rng = np.random.default_rng(11)
    snvs = ["A", "C", "G", "T"]
    variants = []
    for pos in range(1, 401):
        a1, a2 = rng.choice(snvs, 2, replace=False)
        variants.append(("1", pos * 10, str(a1), str(a2)))
        if rng.random() < 0.25:  # a second variant at the site, sharing its A2 (multi-allelic, split)
            variants.append(("1", pos * 10, str(rng.choice([b for b in snvs if b not in (a1, a2)])), str(a2)))
    bim = _bim_file(tmp_path / "t.bim", variants)
    comp = str.maketrans("ACGT", "TGCA")
    rows = []
    for pos in rng.choice(np.arange(1, 451), 300, replace=False):  # some positions have no variant
        a1, a2 = rng.choice(snvs, 2, replace=False) if rng.random() < 0.2 else \
            next(v[2:] for v in variants if v[1] == pos * 10) if any(v[1] == pos * 10 for v in variants) else ("A", "C")
        e, o = (a2, a1) if rng.random() < 0.5 else (a1, a2)
        if rng.random() < 0.3:
            e, o = e.translate(comp), o.translate(comp)
        rows.append(("1", int(pos) * 10, e, "" if rng.random() < 0.2 else o, 0.1))
    score = _catalog_rows_file(tmp_path / "s.txt", rows)
    _, table = read_scoring_file(score)
    seen = {}
    for keep in (False, True):
        m = match_variants(table, bim, keep_ambiguous=keep)
        ours = _ours_as_pgscatalog(m, bim)
        theirs = _pgscatalog_outcomes(pgscatalog, tmp_path, score, tmp_path / "t.bim", keep)
        for o, t in zip(ours, theirs, strict=True):
            if o == ("multiple_matches",):  # pgscatalog: the first of the equal best matches, excluded if ambiguous
                assert (t[0] == "matched" and t[3]) or (t[0] == "excluded" and t[1] and not keep), t
            else:
                assert t[:3] == o
            key = o[0] if o[0] != "matched" else o[2]
            seen[key] = seen.get(key, 0) + 1
    # every outcome was exercised
    every = ("unmatched", "excluded", "multiple_matches", *(t for pair in _MATCH_TYPES.values() for t in pair))
    assert all(seen.get(k, 0) > 0 for k in every), sorted(seen.items())
