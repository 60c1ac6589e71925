"""VCF/BCF ingestion: hand-computed dosages, plink2 (after bcftools norm -m-) on real edge cases,
shard merging, regions and bad input."""
import subprocess

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import open_bed
from cohortflow.variants.ingest import VARIANT_TABLE_COLUMNS, ingest_vcf, merge_bed_shards
from conftest import require_shared, require_tool

HEADER = """##fileformat=VCFv4.2
##contig=<ID=1,length=100000>
##contig=<ID=2,length=100000>
##contig=<ID=X,length=100000>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2\ts3\ts4
"""

# Each record with, per ALT, the expected ALT dosage for s1..s4 worked out by hand
# (other ALTs count as REF; haploid calls homozygous; half-calls haploid by default).
RECORDS = [
    ("1\t100\trs1\tA\tC,G\t.\t.\t.\tGT\t0/1\t1/2\t2|2\t./.", [[1, 1, 0, -1], [0, 1, 2, -1]]),
    ("1\t200\t.\tG\tT\t.\t.\t.\tGT\t0/0\t0/1\t1/1\t./.", [[0, 1, 2, -1]]),
    ("1\t300\trs3\tAC\tA\t.\t.\t.\tGT\t0/.\t./1\t1\t.", [[0, 2, 2, -1]]),
    ("1\t400\trs3\tT\t<DEL>\t.\t.\t.\tGT\t0|1\t1|1\t0/0\t0/0", [[1, 2, 0, 0]]),
    ("2\t10\trs5\tC\tA,G,T\t.\t.\t.\tGT\t1/3\t2/2\t0/3\t3/3", [[1, 0, 0, 0], [0, 2, 0, 0], [1, 0, 1, 2]]),
    ("X\t50\trs6\tG\tT\t.\t.\t.\tGT\t0\t1\t0/1\t.", [[0, 2, 1, -1]]),
]


def _write_vcf(path, records):
    path.write_text(HEADER + "".join(r + "\n" for r in records))
    return path


def test_synthetic_dosages_alleles_and_ids(tmp_path):
    vcf = _write_vcf(tmp_path / "a.vcf", [r for r, _ in RECORDS])
    res = ingest_vcf([vcf], out_prefix=tmp_path / "out")
    bed = open_bed(tmp_path / "out")
    expected = np.array([row for _, rows in RECORDS for row in rows], dtype=np.int8)
    assert np.array_equal(bed.read(), expected)
    assert bed.fam["iid"].tolist() == ["s1", "s2", "s3", "s4"] == bed.fam["fid"].tolist()
    assert bed.fam["sex"].tolist() == [0, 0, 0, 0]
    # A1 = ALT, A2 = REF; split multi-allelics share the VCF ID, so it is normalised
    assert bed.bim["a1"].tolist() == ["C", "G", "T", "A", "<DEL>", "A", "G", "T", "T"]
    assert bed.bim["a2"].tolist() == ["A", "A", "G", "AC", "T", "C", "C", "C", "G"]
    assert bed.bim["id"].tolist() == ["1:100:A:C", "1:100:A:G", "1:200:G:T", "1:300:AC:A", "1:400:T:<DEL>",
                                      "2:10:C:A", "2:10:C:G", "2:10:C:T", "rs6"]
    table = pd.read_parquet(tmp_path / "out.variants.parquet")
    assert list(table.columns) == VARIANT_TABLE_COLUMNS
    assert table["record"].tolist() == [1, 1, 2, 3, 4, 1, 1, 1, 1]  # numbered per chromosome
    assert table["split_index"].tolist() == [1, 2, 0, 0, 0, 1, 2, 3, 0]
    called = expected >= 0
    assert table["n_called"].tolist() == called.sum(1).tolist()
    assert table["alt_count"].tolist() == np.where(called, expected, 0).sum(1).tolist()
    assert (table["ref_count"] == 2 * table["n_called"] - table["alt_count"]).all()
    assert np.allclose(table["call_rate"], called.mean(1))
    assert res["n_records"] == 6 and res["n_variants"] == 9 and res["n_split_records"] == 2
    log = (tmp_path / "out.ingest.log").read_text()
    assert "records_read\t6" in log and "variants_written\t9" in log and "records_split\t2" in log


def test_half_call_missing(tmp_path):
    vcf = _write_vcf(tmp_path / "a.vcf", [RECORDS[2][0]])
    ingest_vcf([vcf], out_prefix=tmp_path / "m", half_call="missing")
    assert open_bed(tmp_path / "m").read().tolist() == [[-1, -1, 2, -1]]
    with pytest.raises(CohortflowError):
        ingest_vcf([vcf], out_prefix=tmp_path / "z", half_call="drop")


def _plink2_after_norm(tmp_path, vcf, name, extra=()):
    bcftools, plink2 = require_tool("bcftools"), require_tool("plink2")
    normed = tmp_path / f"{name}.norm.vcf.gz"
    cmd = f"'{bcftools}' annotate -x INFO '{vcf}' | '{bcftools}' norm -m- -Oz -o '{normed}'"
    subprocess.run(cmd, shell=True, check=True, capture_output=True)
    subprocess.run([plink2, "--vcf", str(normed), "--vcf-half-call", "h", "--allow-extra-chr", "--make-bed",
                    "--threads", "1", "--out", str(tmp_path / f"{name}.plink"), *extra], check=True, capture_output=True)
    return open_bed(tmp_path / f"{name}.plink")


def _assert_same_as_plink2(ours, theirs):
    assert ours.n_variants == theirs.n_variants
    assert np.array_equal(ours.read(), theirs.read())
    assert ours.bim["pos"].tolist() == theirs.bim["pos"].tolist()
    assert ours.bim["a1"].tolist() == theirs.bim["a1"].tolist()
    assert ours.bim["a2"].tolist() == theirs.bim["a2"].tolist()


def test_synthetic_matches_bcftools_norm_plink2(tmp_path):
    vcf = _write_vcf(tmp_path / "a.vcf", [r for r, _ in RECORDS])
    ingest_vcf([vcf], out_prefix=tmp_path / "ours")
    _assert_same_as_plink2(open_bed(tmp_path / "ours"), _plink2_after_norm(tmp_path, vcf, "syn"))


@pytest.mark.peer
@pytest.mark.parametrize("name", [
    "bcftools_test/convert.hap-missing.vcf",   # haploid + missing calls
    "bcftools_test/fill-tags-hemi.vcf",        # hemizygous calls, multi-allelic
    "bcftools_test/convert.gt.vcf",            # phased/unphased, haploid
    "bcftools_test/atomize.split.1.vcf",       # multi-allelic records only
    "htslib_test/tabix/vcf_file.bcf",          # BCF, multi-allelic, missing
    "bcftools_test/af-dist.vcf",
])
def test_edge_cases_match_plink2(tmp_path, name):
    vcf = require_shared("vcf_edgecases", *name.split("/"))
    ingest_vcf([vcf], out_prefix=tmp_path / "ours")
    _assert_same_as_plink2(open_bed(tmp_path / "ours"), _plink2_after_norm(tmp_path, vcf, "edge"))


@pytest.mark.peer
def test_1kg_chrx_half_calls_and_multiallelics_match_plink2(tmp_path):
    vcf_dir = require_shared("gwas_1kg_phase3_subset", "vcf")
    bcftools = require_tool("bcftools")
    files = [vcf_dir / "1KG_phase3_subset_chr22.vcf.gz", vcf_dir / "1KG_phase3_subset_chrX.vcf.gz"]
    res = ingest_vcf(files, out_prefix=tmp_path / "ours")
    assert res["n_split_records"] > 0
    concat = tmp_path / "all.vcf.gz"
    subprocess.run([bcftools, "concat", "-Oz", "-o", str(concat), *map(str, files)], check=True, capture_output=True)
    _assert_same_as_plink2(open_bed(tmp_path / "ours"), _plink2_after_norm(tmp_path, concat, "kg"))


def test_merge_shards_equals_one_go(tmp_path):
    a = _write_vcf(tmp_path / "a.vcf", [r for r, _ in RECORDS[:4]])
    # rs3 appears in both files: the merge must re-normalise it across shards
    b = _write_vcf(tmp_path / "b.vcf", [r for r, _ in RECORDS[4:]] + ["X\t60\trs3\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t1/1\t0/0"])
    ingest_vcf([a, b], out_prefix=tmp_path / "together")
    ingest_vcf([a], out_prefix=tmp_path / "sa")
    ingest_vcf([b], out_prefix=tmp_path / "sb")
    assert "rs3" in open_bed(tmp_path / "sb").bim["id"].tolist()
    merge_bed_shards([tmp_path / "sa", tmp_path / "sb"], out_prefix=tmp_path / "merged")
    for ext in (".bed", ".bim", ".fam"):
        assert (tmp_path / f"merged{ext}").read_bytes() == (tmp_path / f"together{ext}").read_bytes(), ext
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "merged.variants.parquet"),
                                  pd.read_parquet(tmp_path / "together.variants.parquet"))
    assert "rs3" not in open_bed(tmp_path / "merged").bim["id"].tolist()


def test_merge_rejects_different_samples(tmp_path):
    a = _write_vcf(tmp_path / "a.vcf", [RECORDS[1][0]])
    b = tmp_path / "b.vcf"
    b.write_text(HEADER.replace("s4", "other") + RECORDS[1][0] + "\n")
    ingest_vcf([a], out_prefix=tmp_path / "sa")
    ingest_vcf([b], out_prefix=tmp_path / "sb")
    with pytest.raises(CohortflowError, match="sb.fam"):
        merge_bed_shards([tmp_path / "sa", tmp_path / "sb"], out_prefix=tmp_path / "merged")
    assert not (tmp_path / "merged.bed").exists()


def test_region_indexed_and_unindexed_agree(tmp_path):
    bgzip, tabix = require_tool("bgzip"), require_tool("tabix")
    vcf = _write_vcf(tmp_path / "a.vcf", [r for r, _ in RECORDS])
    subprocess.run([bgzip, "-k", str(vcf)], check=True)
    gz = tmp_path / "a.vcf.gz"
    plain = ingest_vcf([gz], out_prefix=tmp_path / "plain", region="1:150-350")
    subprocess.run([tabix, "-p", "vcf", str(gz)], check=True)
    indexed = ingest_vcf([gz], out_prefix=tmp_path / "idx", region="1:150-350")
    assert plain["n_variants"] == indexed["n_variants"] == 2
    assert (tmp_path / "plain.bed").read_bytes() == (tmp_path / "idx.bed").read_bytes()
    assert open_bed(tmp_path / "idx").bim["pos"].tolist() == [200, 300]


def test_bad_input_names_file_and_leaves_nothing(tmp_path):
    a = _write_vcf(tmp_path / "a.vcf", [RECORDS[1][0]])
    b = tmp_path / "b.vcf"
    b.write_text(HEADER.replace("\ts4", "") + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t1/1\n")
    with pytest.raises(CohortflowError, match=r"b\.vcf: samples differ"):
        ingest_vcf([a, b], out_prefix=tmp_path / "out")
    with pytest.raises(CohortflowError, match="missing.vcf: file not found"):
        ingest_vcf([tmp_path / "missing.vcf"], out_prefix=tmp_path / "out")
    nosamples = tmp_path / "nos.vcf"
    nosamples.write_text(HEADER.split("\tFORMAT")[0] + "\n1\t5\t.\tA\tG\t.\t.\t.\n")
    with pytest.raises(CohortflowError, match="no samples"):
        ingest_vcf([nosamples], out_prefix=tmp_path / "out")
    broken = tmp_path / "broken.vcf"
    broken.write_text(HEADER + RECORDS[1][0] + "\n" + "1\t300\t.\tA\tG\t.\t.\t.\tGT\t0/x\t0/0\t1/1\t0/0\n")
    with pytest.raises(CohortflowError, match=r"broken\.vcf: record 2"):
        ingest_vcf([broken], out_prefix=tmp_path / "out")
    too_far = tmp_path / "far.vcf"
    too_far.write_text(HEADER + RECORDS[1][0] + "\n" + "1\t3000000000\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t1/1\t0/0\n")
    with pytest.raises(CohortflowError, match=r"far\.vcf: record 2: POS 3000000000 is above 2147483647"):
        ingest_vcf([too_far], out_prefix=tmp_path / "out")
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


def test_records_without_format_or_gt_are_missing_calls(tmp_path):
    # htslib reads an 8-column record, FORMAT ".", or a FORMAT without GT as no genotypes
    vcf = tmp_path / "nogt.vcf"
    vcf.write_text(HEADER + RECORDS[1][0] + "\n" + "1\t300\t.\tA\tG\t.\t.\t.\n"
                   + "1\t400\t.\tA\tG\t.\t.\t.\t.\t.\t.\t.\t.\n"
                   + "1\t500\t.\tA\tG\t.\t.\t.\tDP\t3\t4\t5\t6\n")
    ingest_vcf(vcf, out_prefix=tmp_path / "out")
    geno = open_bed(tmp_path / "out").read()
    assert geno.tolist() == [[0, 1, 2, -1], [-1] * 4, [-1] * 4, [-1] * 4]


def test_one_indexed_file_shards_per_contig_and_merges_to_one_go(tmp_path, monkeypatch):
    from cohortflow.config import Cohort
    from cohortflow.variants import ingest

    bgzip, tabix = require_tool("bgzip"), require_tool("tabix")
    vcf = _write_vcf(tmp_path / "all.vcf", [r for r, _ in RECORDS])
    subprocess.run([bgzip, str(vcf)], check=True)
    gz = tmp_path / "all.vcf.gz"
    subprocess.run([tabix, "-p", "vcf", str(gz)], check=True)
    shards = Cohort("c", {"genotypes": str(gz)}).shard_regions
    assert shards == {"all.1": (str(gz), "1"), "all.2": (str(gz), "2"), "all.X": (str(gz), "X")}
    for name, (path, region) in shards.items():
        ingest_vcf([path], region=region, out_prefix=tmp_path / name)
        # the numba parser reads a whole contig from the tabix offset: same bytes as htslib's query
        with monkeypatch.context() as patch:
            patch.setattr(ingest, "_ingest_text_fast", lambda *a, **k: None)
            ingest_vcf([path], region=region, out_prefix=tmp_path / f"htslib_{name}")
        for ext in (".bed", ".bim", ".ingest.log"):
            assert (tmp_path / f"{name}{ext}").read_bytes() == (tmp_path / f"htslib_{name}{ext}").read_bytes()
    merge_bed_shards([tmp_path / name for name in shards], out_prefix=tmp_path / "merged")
    ingest_vcf([gz], out_prefix=tmp_path / "together")
    for ext in (".bed", ".bim", ".fam"):
        assert (tmp_path / f"merged{ext}").read_bytes() == (tmp_path / f"together{ext}").read_bytes(), ext
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "merged.variants.parquet"),
                                  pd.read_parquet(tmp_path / "together.variants.parquet"))
    # without an index: one shard for the whole file
    (tmp_path / "all.vcf.gz.tbi").unlink()
    assert Cohort("c", {"genotypes": str(gz)}).shard_regions == {"all": (str(gz), "")}
