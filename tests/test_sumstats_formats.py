"""Base summary statistics in the published layouts -> GWAS-SSF (cohortflow.io.sumstats_formats).

Expected counts and values come from the raw text, read here with the csv/gzip modules (and
cyvcf2 / bcftools for the GWAS-VCF), not from the reader under test.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import require_shared, require_tool
from scipy import stats

from cohortflow.errors import InputFormatError
from cohortflow.io.sumstats import read_sumstats, write_sumstats
from cohortflow.io.sumstats_formats import (
    DROP_REASONS,
    OUTPUT_COLUMNS,
    harmonise_sumstats,
    log_path_for,
    read_base_sumstats,
)

FORMATS = ("gwas_sumstats_formats",)


def _rows(path, *, sep="\t"):
    """Header and data rows of a (gzipped) text table, split on ``sep``."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        rows = list(csv.reader(fh, delimiter=sep))
    return rows[0], rows[1:]


def _vcf_records(path):
    with gzip.open(path, "rt") as fh:
        return [line.rstrip("\n").split("\t") for line in fh if not line.startswith("#")]


# --------------------------------------------------------------------------------------------
# the four real layouts


def test_prscs_rsids_positions_from_bim_and_se_from_p():
    folder = require_shared(*FORMATS, "prscs_test_data")
    header, rows = _rows(folder / "sumstats.txt")
    assert header == ["SNP", "A1", "A2", "BETA", "P"]
    bim = pd.read_csv(folder / "test.bim", sep="\t", header=None, names=["chrom", "id", "cm", "pos", "a1", "a2"])
    bim_pos = dict(zip(bim["id"], bim["pos"], strict=True))
    # rows whose beta is printed as 0: no SE can be derived from beta and p (z > 0, beta = 0)
    zero_beta = [r[0] for r in rows if float(r[3]) == 0.0]
    assert len(rows) == 1000 and len(zero_beta) == 2 and all(r[0] in bim_pos for r in rows)

    df, log = read_base_sumstats(folder / "sumstats.txt", bim=folder / "test")
    assert list(df.columns) == OUTPUT_COLUMNS
    assert log["layout"] == "prscs" and log["effect_allele"].startswith("A1")
    assert log["rows_in"] == 1000 and log["rows_out"] == 998 == len(df)
    assert log["dropped"]["se_not_derivable"]["count"] == 2
    assert sorted(e["variant_id"] for e in log["dropped"]["se_not_derivable"]["examples"]) == sorted(zero_beta)
    assert log["columns"] == {"SNP": "variant_id", "A1": "effect_allele", "A2": "other_allele", "BETA": "beta",
                              "P": "p_value"}
    assert "standard_error" in log["derived"] and "positions" in log and "test.bim" in log["positions"]
    assert np.isnan(df["n"]).all() and np.isnan(df["effect_allele_frequency"]).all()
    # positions from test.bim, chromosome 22, sorted
    assert (df["chromosome"] == "22").all()
    assert df["base_pair_location"].tolist() == [bim_pos[v] for v in df["variant_id"]]
    assert df["base_pair_location"].is_monotonic_increasing
    row = df.set_index("variant_id").loc["rs9605903"]
    assert (row.effect_allele, row.other_allele, row.base_pair_location) == ("T", "C", 17054720)
    assert row.beta == -0.0114 and row.p_value == pytest.approx(0.1602, rel=1e-12)
    # SE = |beta| / Phi^-1(1 - p/2), checked with scipy's normal quantile on every row
    raw = {r[0]: (float(r[3]), float(r[4])) for r in rows}
    expected = np.array([abs(raw[v][0]) / stats.norm.isf(raw[v][1] / 2) for v in df["variant_id"]])
    np.testing.assert_allclose(df["standard_error"], expected, rtol=1e-12)
    np.testing.assert_allclose(df["neg_log10_p"], [-math.log10(raw[v][1]) for v in df["variant_id"]], rtol=1e-14)


def test_prscs_derived_se_agrees_with_the_se_file():
    """sumstats_se.txt has the same SNPs with SE. Measured: the derived SE agrees to 4.9e-7
    relative at most (the SE file prints 7 significant digits, so half a unit of its last digit
    is up to 5e-7 relative); the p column's 4-5 significant digits would allow up to ~2e-5."""
    folder = require_shared(*FORMATS, "prscs_test_data")
    derived, _ = read_base_sumstats(folder / "sumstats.txt", bim=folder / "test.bim")
    given, log = read_base_sumstats(folder / "sumstats_se.txt", bim=folder / "test.bim")
    assert log["layout"] == "prscs" and log["rows_out"] == 1000 and log["dropped"] == {}
    assert "p_value" in log["derived"]  # no P column: p from beta / SE
    both = derived.merge(given, on="variant_id", suffixes=("_derived", "_given"))
    assert len(both) == 998
    np.testing.assert_allclose(both["standard_error_derived"], both["standard_error_given"], rtol=1e-6, atol=0)
    # and p from beta / SE recovers the P column of sumstats.txt to its printed precision
    np.testing.assert_allclose(both["p_value_given"], both["p_value_derived"], rtol=5e-4)


def test_okbay_ssgac_table():
    path = require_shared(*FORMATS, "mungesumstats_extdata", "eduAttainOkbay.txt")
    header, rows = _rows(path)
    assert header == ["MarkerName", "CHR", "POS", "A1", "A2", "EAF", "Beta", "SE", "Pval"]
    df, log = read_base_sumstats(path)
    assert log["layout"] == "ssgac" and log["effect_allele"].startswith("A1")
    assert log["rows_in"] == len(rows) == 93 and log["rows_out"] == 93 and log["dropped"] == {}
    assert set(df["variant_id"]) == {r[0] for r in rows}
    row = df.set_index("variant_id").loc["rs12987662"]  # "rs12987662 2 100821548 A C 0.3787 0.027 0.003 2.693e-24"
    assert (row.chromosome, row.base_pair_location, row.effect_allele, row.other_allele) == ("2", 100821548, "A", "C")
    assert (row.effect_allele_frequency, row.beta, row.standard_error) == (0.3787, 0.027, 0.003)
    assert row.neg_log10_p == pytest.approx(24 - math.log10(2.693), rel=1e-14)
    order = df["chromosome"].astype(int).to_numpy() * 10**10 + df["base_pair_location"].to_numpy()
    assert (np.diff(order) > 0).all()


def test_opengwas_export_a2_is_the_effect_allele():
    """MungeSumstats' export of ieu-a-298: A1 = reference, A2 = effect allele; two damaged lines
    (408 lost its last two fields, 409 holds only them) are malformed and dropped."""
    path = require_shared(*FORMATS, "mungesumstats_extdata", "ieu-a-298.tsv.gz")
    header, rows = _rows(path)
    well_formed = [r for r in rows if len(r) == len(header)]
    assert len(rows) == 417 and len(well_formed) == 415
    df, log = read_base_sumstats(path)
    assert log["layout"] == "opengwas-tsv" and log["effect_allele"].startswith("A2")
    assert log["rows_in"] == 417 and log["rows_out"] == 415
    assert log["dropped"]["malformed_line"]["count"] == 2
    assert [e["line"] for e in log["dropped"]["malformed_line"]["examples"]] == [408, 409]
    assert log["columns"]["A2"] == "effect_allele" and log["columns"]["A1"] == "other_allele"
    assert log["columns"]["LP"] == "neg_log10_p" and "P" in log["ignored_columns"]
    # p from LP exactly, for every row; n from N
    lp = {r[0]: float(r[header.index("LP")]) for r in well_formed}
    assert all(df["neg_log10_p"].to_numpy() == [lp[v] for v in df["variant_id"]])
    assert (df["n"] == 74046).all()
    row = df.set_index("variant_id").loc["rs76805690"]  # "rs76805690 1 2256288 C A 1 0.0389 0.0175 1.58536 74046"
    assert (row.effect_allele, row.other_allele, row.beta, row.standard_error) == ("A", "C", 0.0389, 0.0175)
    assert row.p_value == pytest.approx(0.0259800510432327, rel=1e-12)  # the file's P = 10^-LP
    # the layout's rule can be overridden: A1 as the effect allele
    swapped, log = read_base_sumstats(path, effect_allele_column="A1")
    row = swapped.set_index("variant_id").loc["rs76805690"]
    assert (row.effect_allele, row.other_allele, row.beta) == ("C", "A", 0.0389)
    assert log["effect_allele"] == "A1 (as asked)"


def test_gwas_vcf_duplicates_and_lp():
    path = require_shared(*FORMATS, "mungesumstats_extdata", "ALSvcf.vcf.gz")
    records = _vcf_records(path)
    variants = {(r[0], r[1], r[3], r[4]) for r in records}
    # within each variant every copy has the same FORMAT values (so: identical duplicates)
    values = {(r[0], r[1], r[3], r[4], r[9].rsplit(":", 1)[0]) for r in records}
    assert len(records) == 415 and len(variants) == 99 == len(values)
    df, log = read_base_sumstats(path)
    assert log["layout"] == "gwas-vcf" and log["effect_allele"].startswith("ALT")
    assert log["rows_in"] == 415 and log["rows_out"] == 99 == len(df)
    assert log["dropped"] == {"duplicate_identical": log["dropped"]["duplicate_identical"]}
    assert log["dropped"]["duplicate_identical"]["count"] == 415 - 99
    assert log["build"]["file"] == "GRCh37"  # contig 1 length 249250621
    # n from the header: TotalCases=20806 + TotalControls=59804
    assert (df["n"] == 80610).all() and "TotalCases" in log["n_source"]
    assert {(c, str(p), o, e) for c, p, o, e in df[["chromosome", "base_pair_location", "other_allele",
                                                      "effect_allele"]].itertuples(index=False)} == variants
    # first record of each variant, as text: p from LP exactly, ES, SE, AF
    first = {}
    for r in records:
        first.setdefault((r[0], int(r[1]), r[3], r[4]), r)
    for row in df.itertuples(index=False):
        r = first[(row.chromosome, row.base_pair_location, row.other_allele, row.effect_allele)]
        es, se, lp, af, _ = r[9].split(":")
        assert (row.beta, row.standard_error, row.neg_log10_p, row.effect_allele_frequency) == \
            (float(es), float(se), float(lp), float(af))
        assert row.variant_id == r[2]
    row = df.set_index("variant_id").loc["rs58108140"]
    assert row.p_value == 10 ** -0.369267


def test_gwas_vcf_matches_cyvcf2():
    """The same values through htslib (cyvcf2) for every record."""
    cyvcf2 = pytest.importorskip("cyvcf2")
    path = require_shared(*FORMATS, "mungesumstats_extdata", "ALSvcf.vcf.gz")
    df, _ = read_base_sumstats(path)
    ours = df.set_index(["chromosome", "base_pair_location", "other_allele", "effect_allele"])
    seen = set()
    for v in cyvcf2.VCF(str(path)):
        key = (v.CHROM, v.POS, v.REF, v.ALT[0])
        if key in seen:
            continue
        seen.add(key)
        row = ours.loc[key]
        for field, column in (("ES", "beta"), ("SE", "standard_error"), ("AF", "effect_allele_frequency")):
            assert row[column] == pytest.approx(float(v.format(field)[0][0]), rel=1e-6)  # htslib keeps float32
        assert row["neg_log10_p"] == pytest.approx(float(v.format("LP")[0][0]), rel=1e-6)
    assert len(seen) == len(df)


def test_gwas_vcf_counts_match_bcftools():
    bcftools = require_tool("bcftools")
    path = require_shared(*FORMATS, "mungesumstats_extdata", "ALSvcf.vcf.gz")
    text = subprocess.run([bcftools, "query", "-f", "%CHROM:%POS:%REF:%ALT\\n", str(path)], check=True,
                          capture_output=True, text=True).stdout.split()
    _, log = read_base_sumstats(path)
    assert log["rows_in"] == len(text) == 415 and log["rows_out"] == len(set(text)) == 99


def test_harmonised_output_reads_back(tmp_path):
    path = require_shared(*FORMATS, "mungesumstats_extdata", "ieu-a-298.tsv.gz")
    out = tmp_path / "base.tsv.gz"
    log = harmonise_sumstats(path, out)
    assert log_path_for(out) == tmp_path / "base.harmonise.json"
    assert json.loads(log_path_for(out).read_text()) == json.loads(json.dumps(log))
    direct, _ = read_base_sumstats(path)
    back = read_sumstats(out)  # the GWAS-SSF reader everything else uses
    assert list(back.columns) == OUTPUT_COLUMNS and len(back) == 415
    for column in ("beta", "standard_error", "effect_allele_frequency", "n", "test_statistic", "neg_log10_p"):
        np.testing.assert_allclose(back[column].astype(float), direct[column], rtol=5e-6, equal_nan=True)
    assert back["variant_id"].tolist() == direct["variant_id"].tolist()
    assert (back["errcode"] == "").all()
    again, log2 = read_base_sumstats(out)  # and through this reader as GWAS-SSF
    assert log2["layout"] == "gwas-ssf" and log2["rows_out"] == 415 and log2["dropped"] == {}
    # deterministic bytes
    out2 = tmp_path / "again.tsv.gz"
    harmonise_sumstats(path, out2)
    assert out.read_bytes() == out2.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.harmonise.json", "again.tsv.gz",
                                                          "base.harmonise.json", "base.tsv.gz"]


# --------------------------------------------------------------------------------------------
# constructed files with known answers


def _write(path, text, *, gz=False):
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def test_gwas_ssf_with_errcode_tiny_p_and_missing_n(tmp_path):
    table = pd.DataFrame({
        "chromosome": ["2", "1", "1", "X"], "base_pair_location": [50, 200, 100, 7],
        "effect_allele": ["A", "C", "G", "T"], "other_allele": ["G", "T", "A", "C"],
        "beta": [0.5, -0.1, np.nan, 0.2], "standard_error": [0.01, 0.05, np.nan, 0.1],
        "effect_allele_frequency": [0.3, 0.6, np.nan, 0.1], "n": pd.array([1000, 1000, 1000, 900]),
        "variant_id": ["a", "b", "c", "d"], "test_statistic": [50.0, -2.0, np.nan, 2.0],
        "errcode": ["", "", "monomorphic", ""],
    })
    path = tmp_path / "gwas.tsv.gz"
    write_sumstats(path, table, log10_p=np.array([-400.0, -1.5, np.nan, -1.2]))
    df, log = read_base_sumstats(path, n=5)
    assert log["layout"] == "gwas-ssf"
    assert log["dropped"]["gwas_errcode"]["count"] == 1 and log["rows_out"] == 3
    assert df["variant_id"].tolist() == ["b", "a", "d"]  # 1, 2, X
    assert df["neg_log10_p"].tolist()[1] == 400.0 and df["p_value"].tolist()[1] == 0.0
    assert df["n"].tolist() == [1000, 1000, 900]  # the file's n wins over the argument


def test_gwas_catalog_ssf_with_optional_columns(tmp_path):
    text = ("chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\tstandard_error\t"
            "effect_allele_frequency\tneg_log_10_p_value\tvariant_id\trsid\tref_allele\tci_upper\tci_lower\tn\tinfo\n"
            "23\t300\tA\tG\t0.1\t0.02\t0.4\t6.2\tX_300_G_A\trs9\tG\t0.14\t0.06\t10000\t0.9\n"
            "1\t100\tc\tt\t-0.1\t0.05\tNA\t1.3\t1_100_T_C\trs1\tT\tNA\tNA\tNA\t1\n")
    (tmp_path / "g.tsv-meta.yaml").write_text("genome_assembly: GRCh38\n")
    path = _write(tmp_path / "g.tsv", text)
    with pytest.raises(InputFormatError, match="on GRCh38"):
        read_base_sumstats(path, build="GRCh37")
    df, log = read_base_sumstats(path, build="hg38")
    assert log["layout"] == "gwas-ssf" and log["build"] == {"requested": "GRCh38", "file": "GRCh38"}
    assert df["chromosome"].tolist() == ["1", "X"] and df["effect_allele"].tolist() == ["C", "A"]
    assert df["variant_id"].tolist() == ["1_100_T_C", "X_300_G_A"] and log["ignored_columns"]["rsid"]
    assert df["neg_log10_p"].tolist() == [1.3, 6.2] and df["n"].tolist()[1] == 10000
    assert np.isnan(df["n"].tolist()[0]) and "unknown" not in log["n_source"]


def test_generic_table_drops_each_reason(tmp_path):
    text = """CHR BP SNP A1 A2 BETA SE P FRQ
1 100 rs1 A G 0.1 0.05 0.04 0.2
1 101 rs2 A G abc 0.05 0.04 0.2
1 102 rs3 A G 0.1 0.05 NA 0.2
1 103 rs4 A G 0.1 0.05 1.5 0.2
1 104 rs5 A G 0.1 0 0.04 0.2
1 105 rs6 A I 0.1 0.05 0.04 0.2
1 106 rs7 A G 0.1 0.05 0.04
1 107 rs8 A G 0.1 0.05 0.04 1.7
1 100 rs1 G A -0.1 0.05 0.04 0.8
1 108 rs9 C T 0.1 0.05 0.04 0.2
1 108 rs9 C T 0.2 0.05 0.04 0.2
2 5 rs10 C T 0.1 0.05 0.04 0.2
2 9 rs10 C T 0.1 0.05 0.04 0.2
chr1 0 rs11 C T 0.1 0.05 0.04 0.2
1 109 rs12 C T 0.1 0.05 0 0.2
"""
    df, log = read_base_sumstats(_write(tmp_path / "t.txt", text))
    assert log["layout"] == "table" and "A1" in log["effect_allele"]
    counts = {k: v["count"] for k, v in log["dropped"].items()}
    assert counts == {"malformed_line": 1, "missing_value": 1, "non_numeric": 1, "bad_allele": 1, "bad_position": 1,
                      "p_out_of_range": 2, "se_not_positive": 1, "duplicate_identical": 1,
                      "duplicate_conflicting": 2, "duplicate_id": 2}
    assert list(log["dropped"]) == [r for r in DROP_REASONS if r in counts]
    assert log["rows_in"] == 15 and log["rows_out"] == 2 == 15 - sum(counts.values())
    assert df["variant_id"].tolist() == ["rs1", "rs8"]
    # rs1 twice with the alleles swapped and beta/EAF turned: identical, the first kept
    assert log["dropped"]["duplicate_identical"]["examples"][0]["line"] == 10
    assert log["dropped"]["non_numeric"]["examples"][0] == {"line": 3, "variant_id": "rs2",
                                                            "detail": "beta 'abc'"}
    assert log["blanked_values"]["effect_allele_frequency"]["count"] == 1  # rs8's 1.7: blanked, row kept
    assert np.isnan(df.set_index("variant_id").loc["rs8", "effect_allele_frequency"])


def test_odds_ratio_csv_crlf_and_explicit_allele_names(tmp_path):
    text = "MarkerName,Chromosome,Position,Effect_Allele,Other_Allele,OR,SE,P-value,N\r\n" \
           "rs1,3,10,t,c,2.0,0.1,1e-400,5000\r\n" \
           "rs2,3,5,A,G,0.5,0.2,0.5,\r\n"
    df, log = read_base_sumstats(_write(tmp_path / "t.csv.gz", text, gz=True), n=100)
    assert log["layout"] == "table" and log["columns"]["OR"] == "odds_ratio"
    assert df["variant_id"].tolist() == ["rs2", "rs1"]
    assert df["beta"].tolist() == [math.log(0.5), math.log(2.0)]
    assert df["effect_allele"].tolist() == ["A", "T"]
    assert df["neg_log10_p"].tolist()[1] == 400.0
    assert df["n"].tolist() == [100, 5000]  # missing N filled from the argument
    assert "beta" in log["derived"]


def test_multiallelic_vcf_split_and_study_choice(tmp_path):
    header = ("##fileformat=VCFv4.2\n"
              '##FORMAT=<ID=ES,Number=A,Type=Float,Description="x">\n'
              '##FORMAT=<ID=SE,Number=A,Type=Float,Description="x">\n'
              '##FORMAT=<ID=LP,Number=A,Type=Float,Description="x">\n'
              '##FORMAT=<ID=SS,Number=A,Type=Float,Description="x">\n'
              '##contig=<ID=1,length=248956422>\n'
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tstudyA\tstudyB\n")
    body = ("chr1\t100\trs1\tA\tC,G\t.\tPASS\t.\tES:SE:LP:SS\t0.1,0.2:0.01,0.02:3,4:100,200\t.:.:.:.\n"
            "chr1\t50\t.\tT\tC\t.\tPASS\t.\tES:SE:LP\t-0.5:0.1:5\t0.1:0.1:1\n")
    path = _write(tmp_path / "x.vcf.gz", header + body, gz=True)
    with pytest.raises(InputFormatError, match="2 studies"):
        read_base_sumstats(path)
    with pytest.raises(InputFormatError, match="on GRCh38"):
        read_base_sumstats(path, study="studyA", build="hg19")
    df, log = read_base_sumstats(path, study="studyA", build="GRCh38", n=7)
    assert log["rows_in"] == 2 and log["rows_out"] == 3 and "1 multi-allelic" in log["notes"][0]
    shown = df[["base_pair_location", "effect_allele", "beta", "standard_error", "neg_log10_p", "n"]]
    assert shown.values.tolist() == [[50, "C", -0.5, 0.1, 5.0, 7.0], [100, "C", 0.1, 0.01, 3.0, 100.0],
                                     [100, "G", 0.2, 0.02, 4.0, 200.0]]
    assert df["variant_id"].tolist() == ["NA", "rs1", "rs1"]  # one ID, one position, two allele pairs: kept
    df_b, log_b = read_base_sumstats(path, study="studyB")
    assert log_b["dropped"]["missing_value"]["count"] == 2 and df_b["beta"].tolist() == [0.1]


# --------------------------------------------------------------------------------------------
# errors: one line naming the file and the problem


def _one_line_error(path, match, **kwargs):
    with pytest.raises(InputFormatError, match=match) as err:
        read_base_sumstats(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_errors(tmp_path):
    message = _one_line_error(_write(tmp_path / "nop.txt", "SNP CHR BP A1 A2 BETA\nrs1 1 5 A G 0.1\n"),
                              "no p-value column")
    assert "columns: SNP CHR BP A1 A2 BETA" in message
    _one_line_error(_write(tmp_path / "nobeta.txt", "SNP CHR BP A1 A2 SE P\nrs1 1 5 A G 0.1 0.5\n"),
                    "no effect-size column")
    _one_line_error(_write(tmp_path / "noallele.txt", "SNP CHR BP BETA SE P\nrs1 1 5 0.1 0.1 0.5\n"),
                    "no allele columns")
    _one_line_error(_write(tmp_path / "empty.txt", ""), "empty file")
    _one_line_error(_write(tmp_path / "header.txt", "SNP CHR BP A1 A2 BETA P\n"), "no data rows")
    _one_line_error(_write(tmp_path / "garbage.txt", "hello world\nthis is not a table\n"),
                    "no chromosome/position columns")
    (tmp_path / "binary.gz").write_bytes(gzip.compress(bytes(range(256)) * 10, mtime=0))
    _one_line_error(tmp_path / "binary.gz", "binary content")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(b"SNP A1 A2 BETA P\n" * 100)[:40])
    _one_line_error(tmp_path / "broken.gz", "damaged gzip")
    _one_line_error(_write(tmp_path / "alldrop.txt", "SNP CHR BP A1 A2 BETA P\nrs1 1 5 A G 0.1 7\n"),
                    "no usable rows: all 1 dropped \\(p_out_of_range 1\\)")


def test_rsid_only_needs_a_bim():
    folder = require_shared(*FORMATS, "prscs_test_data")
    message = _one_line_error(folder / "sumstats.txt", "no chromosome/position columns")
    assert "bim" in message and "SNP A1 A2 BETA P" in message


def test_bim_table_and_ambiguous_ids(tmp_path):
    path = _write(tmp_path / "p.txt", "SNP\tA1\tA2\tBETA\tP\nrs1\tA\tG\t0.1\t0.01\nrs2\tA\tG\t0.1\t0.01\n"
                                      "rs3\tA\tG\t0.1\t0.01\n")
    bim = pd.DataFrame({"chrom": ["chr1", "1", "2"], "id": ["rs1", "rs2", "rs2"], "cm": 0.0,
                        "pos": [10, 20, 30], "a1": "A", "a2": "G"})
    df, log = read_base_sumstats(path, bim=bim)
    assert df["variant_id"].tolist() == ["rs1"] and df["chromosome"].tolist() == ["1"]
    assert {k: v["count"] for k, v in log["dropped"].items()} == {"not_in_bim": 1, "ambiguous_in_bim": 1}


def test_whitespace_aligned_bgzip(tmp_path):
    pysam = pytest.importorskip("pysam")
    text = "  CHR   SNP        BP  A1  A2     BETA      SE       P\n" \
           "    1   rs1      1000   A   G   0.0100  0.0050  0.0455\n" \
           "   22   rs2       500   T   C  -0.0200  0.0100  0.0455\n"
    plain = _write(tmp_path / "a.assoc", text)
    pysam.tabix_compress(str(plain), str(tmp_path / "a.assoc.gz"))
    df, log = read_base_sumstats(tmp_path / "a.assoc.gz")
    assert df["variant_id"].tolist() == ["rs1", "rs2"] and log["rows_out"] == 2
    assert df["test_statistic"].tolist() == [2.0, -2.0]
