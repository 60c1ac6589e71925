"""Alignment QC: numbers equal to samtools stats / flagstat (peer tool) and hand-counted reads."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cohortflow.alignment.api import METRIC_COLUMNS, SUMMARY_COLUMNS, alignment_qc, summarize_alignment_qc
from cohortflow.errors import CohortflowError, ConfigError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SMALL = SHARED / "bam_cram_small"
SAMTOOLS = shutil.which("samtools")
needs_samtools = pytest.mark.skipif(SAMTOOLS is None, reason="samtools not on PATH")

# sections compared line by line with samtools stats (the others are not written by us)
COMPARED = ("SN", "FFQ", "LFQ", "GCF", "GCL", "GCC", "GCT", "FBC", "FTC", "LBC", "LTC", "IS", "RL", "FRL", "LRL",
            "ID", "IC", "COV")


def _shared_files() -> list[Path]:
    if not SMALL.is_dir():
        return []
    pats = ("*.bam", "*.cram", "*.sam", "*.sam.gz")
    return sorted({p for d in sorted(SMALL.iterdir()) if d.is_dir() for pat in pats for p in d.glob(pat)})


def _reference_for(path: Path) -> Path | None:
    """The FASTA a shared CRAM was written against (see the data README)."""
    stem = path.name[: -len(".cram")]
    for cand in (f"{stem}.fa", f"{stem.split('.')[0]}.ref.fa", "ce.fa"):
        if (path.parent / cand).exists():
            return path.parent / cand
    return None


# samtools 1.16 spends ~30 s of allocation on ce_large_seq.sam.gz (two 500 kb reads), too slow for
# the unit suite; these are its `samtools stats` values as printed by samtools 1.16.1 (SN fields
# not listed here print 0). Set COHORTFLOW_SLOW_TESTS=1 to run samtools itself instead.
SLOW_FILES = {"ce_large_seq.sam.gz"}
CE_LARGE_SEQ_SAMTOOLS_1_16 = {
    "raw total sequences": "2", "sequences": "2", "is sorted": "1", "1st fragments": "2",
    "reads mapped": "2", "total length": "1000747", "total first fragment length": "1000747",
    "bases mapped": "1000747", "bases mapped (cigar)": "1000747", "error rate": "0.000000e+00",
    "average length": "500373", "average first fragment length": "500374",
    "maximum length": "1000647", "maximum first fragment length": "1000647",
    "average quality": "2.0", "insert size average": "0.0", "insert size standard deviation": "0.0",
    "percentage of properly paired reads (%)": "0.0",
}
CE_LARGE_SEQ_COV_RL = ["RL\t100\t1", "RL\t1000647\t1", "COV\t[1-1]\t1\t954489", "COV\t[2-2]\t2\t98"]


def _samtools(*args: str) -> str:
    return subprocess.run([SAMTOOLS, *args], check=True, capture_output=True, text=True, timeout=120).stdout


def _sections(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(tuple(s + "\t" for s in COMPARED))]


@needs_samtools
@pytest.mark.skipif(not SMALL.is_dir(), reason=f"shared test data absent: {SMALL}")
@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_matches_samtools_on_shared_files(path, tmp_path):
    reference = None
    if path.name.endswith(".cram"):
        reference = _reference_for(path)
        if reference is None:
            pytest.skip(f"no reference FASTA found for {path.name}")
    if path.name in SLOW_FILES and not os.environ.get("COHORTFLOW_SLOW_TESTS"):
        result = alignment_qc(path, out_prefix=tmp_path / "qc")
        ours = _sections((tmp_path / "qc.stats").read_text())
        for line in ours:
            if line.startswith("SN\t"):
                field, value = line.split("\t")[1:3]
                assert value == CE_LARGE_SEQ_SAMTOOLS_1_16.get(field.rstrip(":"), "0"), field
        assert [line for line in ours if line.startswith(("RL\t", "COV\t"))] == CE_LARGE_SEQ_COV_RL
        assert (tmp_path / "qc.flagstat").read_text() == _samtools("flagstat", str(path))
        return
    ref_args = ["--reference", str(reference)] if reference else []
    flag_args = ["--input-fmt-option", f"reference={reference}"] if reference else []
    result = alignment_qc(path, out_prefix=tmp_path / "qc", reference=reference)

    ours = _sections((tmp_path / "qc.stats").read_text())
    theirs = _sections(_samtools("stats", *ref_args, str(path)))
    # every SN field (integers exactly, floats at samtools' printed precision) and the
    # IS / RL / FRL / LRL / COV rows, compared as text
    assert [line for line in ours if line.startswith("SN")] == [line for line in theirs if line.startswith("SN")]
    assert ours == theirs
    assert (tmp_path / "qc.flagstat").read_text() == _samtools("flagstat", *flag_args, str(path))
    assert result["total_reads"] == int(result["summary_numbers"]["raw total sequences"])


# ----------------------------------------------------------------------- constructed BAM


def _write_known_bam(path: Path, *, shuffle: bool = False) -> None:
    """Twelve records with flags chosen to exercise every counter (see test_known_bam)."""
    import pysam

    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": "chrA", "LN": 10000}, {"SN": "chrB", "LN": 5000}],
              "RG": [{"ID": "rg1", "SM": "S1"}]}
    # name, flag, tid, pos, mapq, cigar, mate tid, mate pos, tlen, length, NM
    recs = [
        ("p1", 99, 0, 100, 60, "50M", 0, 300, 250, 50, 1),
        ("p2", 1123, 0, 100, 60, "50M", 0, 300, 250, 50, None),  # duplicate of p1
        ("p1", 147, 0, 300, 60, "50M", 0, 100, -250, 50, None),
        ("p2", 1171, 0, 300, 60, "50M", 0, 100, -250, 50, None),  # duplicate
        ("p3", 73, 0, 1000, 60, "50M", 0, 1000, 0, 50, None),  # mate unmapped (singleton)
        ("p3", 133, 0, 1000, 0, None, 0, 1000, 0, 50, None),  # unmapped, placed by its mate
        ("p4", 97, 0, 2000, 30, "50M", 1, 100, 0, 50, None),  # mate on chrB
        ("p1", 355, 0, 5000, 0, "50M", 0, 300, 0, 50, None),  # secondary
        ("p4", 2145, 0, 7000, 30, "20H30M", 1, 100, 0, 30, None),  # supplementary
        ("q1", 512, 0, 8000, 0, "40M", -1, -1, 0, 40, None),  # QC-failed, unpaired, MAPQ 0
        ("p4", 145, 1, 100, 3, "50M", 0, 2000, 0, 50, None),  # mate on chrA, MAPQ 3
        ("u1", 4, -1, -1, 0, None, -1, -1, 0, 50, None),  # unmapped, unpaired
    ]
    if shuffle:  # chrA reads after the chrB one: samtools then reports "is sorted: 0"
        recs = recs[6:7] + recs[:6] + recs[7:]
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for name, flag, tid, pos, mapq, cigar, mtid, mpos, tlen, length, nm in recs:
            a = pysam.AlignedSegment(out.header)
            a.query_name = name
            a.flag = flag
            a.reference_id = tid
            a.reference_start = pos
            a.mapping_quality = mapq
            if cigar:
                a.cigarstring = cigar
            a.next_reference_id = mtid
            a.next_reference_start = mpos
            a.template_length = tlen
            a.query_sequence = "ACGT" * (length // 4) + "ACGT"[: length % 4]
            a.query_qualities = pysam.qualitystring_to_array("?" * length)  # Q30
            tags = [("RG", "rg1")] + ([("NM", nm)] if nm is not None else [])
            a.set_tags(tags)
            out.write(a)


def test_known_bam(tmp_path):
    bam = tmp_path / "known.bam"
    _write_known_bam(bam)
    res = alignment_qc(bam, out_prefix=tmp_path / "known", thresholds={"min_mapped_pct": 90})
    sn = res["summary_numbers"]
    # primary records: p1 x2, p2 x2, p3 x2, p4 x2, q1, u1 (secondary and supplementary excluded)
    assert sn["raw total sequences"] == "10"
    assert sn["1st fragments"] == "6"  # four READ1 + two unpaired reads
    assert sn["last fragments"] == "4"
    assert sn["reads mapped"] == "8"  # all primary but the p3 mate and u1
    assert sn["reads unmapped"] == "2"
    assert sn["reads mapped and paired"] == "6"  # p1, p2, p4 (p3 has its mate unmapped)
    assert sn["reads properly paired"] == "4"
    assert sn["reads paired"] == "8"
    assert sn["reads duplicated"] == "2"
    assert sn["reads MQ0"] == "1"  # q1 (the unmapped p3 mate does not count)
    assert sn["reads QC failed"] == "1"
    assert sn["non-primary alignments"] == "1"
    assert sn["supplementary alignments"] == "1"
    assert sn["total length"] == str(8 * 50 + 40 + 50)
    assert sn["bases mapped"] == str(7 * 50 + 40)
    assert sn["bases mapped (cigar)"] == str(7 * 50 + 40 + 30)  # + the supplementary 30M
    assert sn["bases duplicated"] == "100"
    assert sn["mismatches"] == "1"
    assert sn["error rate"] == "%e" % (1 / 420)
    assert sn["maximum length"] == "50"  # 20H30M counts its hard clip
    assert sn["average quality"] == "30.0"
    assert sn["insert size average"] == "250.0"
    assert sn["insert size standard deviation"] == "0.0"
    assert sn["inward oriented pairs"] == "2"
    assert sn["outward oriented pairs"] == "0"
    assert sn["pairs on different chromosomes"] == "1"
    assert sn["percentage of properly paired reads (%)"] == "40.0"
    assert sn["is sorted"] == "1"

    stats_text = (tmp_path / "known.stats").read_text()
    cov = [line.split("\t") for line in stats_text.splitlines() if line.startswith("COV\t")]
    # depth 2 over p1/p2 (2 x 50 bp); depth 1: p3 50, p4 50 + 50, supplementary 30, q1 40
    assert cov == [["COV", "[1-1]", "1", "220"], ["COV", "[2-2]", "2", "100"]]
    mapq = [line.split("\t")[1:] for line in stats_text.splitlines() if line.startswith("MAPQ\t")]
    assert mapq == [["0", "1"], ["3", "1"], ["30", "1"], ["60", "5"]]

    flagstat = (tmp_path / "known.flagstat").read_text().splitlines()
    assert flagstat == [
        "11 + 1 in total (QC-passed reads + QC-failed reads)",
        "9 + 1 primary",
        "1 + 0 secondary",
        "1 + 0 supplementary",
        "2 + 0 duplicates",
        "2 + 0 primary duplicates",
        "9 + 1 mapped (81.82% : 100.00%)",
        "7 + 1 primary mapped (77.78% : 100.00%)",
        "8 + 0 paired in sequencing",
        "4 + 0 read1",
        "4 + 0 read2",
        "4 + 0 properly paired (50.00% : N/A)",
        "6 + 0 with itself and mate mapped",
        "1 + 0 singletons (12.50% : N/A)",
        "2 + 0 with mate mapped to a different chr",
        "1 + 0 with mate mapped to a different chr (mapQ>=5)",
    ]

    assert res["sample"] == "S1"  # SM of the first @RG
    assert res["total_reads"] == 10
    assert res["mapped_pct"] == pytest.approx(80.0)
    assert res["duplicate_pct"] == pytest.approx(20.0)
    assert res["mapq20_pct"] == pytest.approx(75.0)  # 6 of 8 primary mapped reads
    # mosdepth's depth over both contigs (15 kb): p1 x2, p3, p4 and its supplementary 30M on chrA,
    # p4 on chrB; duplicates, the secondary and the QC-failed read do not count
    assert res["mean_depth"] == pytest.approx((4 * 50 + 30 + 50) / 15000)
    assert res["pct_1x"] == pytest.approx(100 * 280 / 15000)
    assert res["pct_10x"] == 0.0
    assert res["inferred_sex"] == "NA"  # no autosome or X named
    assert res["pass"] is False and res["fail_reasons"] == "mapped_pct=80<90"
    header, row = (tmp_path / "known.metrics.tsv").read_text().splitlines()
    assert header.split("\t") == METRIC_COLUMNS
    assert row.split("\t")[0] == "S1" and row.split("\t")[-2:] == ["false", "mapped_pct=80<90"]

    if SAMTOOLS:  # the same file through the peer tool
        assert _sections(stats_text) == _sections(_samtools("stats", str(bam)))
        assert (tmp_path / "known.flagstat").read_text() == _samtools("flagstat", str(bam))


@needs_samtools
def test_unsorted_input_matches_samtools(tmp_path):
    bam = tmp_path / "shuffled.bam"
    _write_known_bam(bam, shuffle=True)
    res = alignment_qc(bam, out_prefix=tmp_path / "s")
    assert res["summary_numbers"]["is sorted"] == "0"
    assert _sections((tmp_path / "s.stats").read_text()) == _sections(_samtools("stats", str(bam)))


def test_long_reference_skip_grows_coverage_window(tmp_path):
    import pysam

    bam = tmp_path / "spliced.bam"
    header = {"SQ": [{"SN": "c", "LN": 1_000_000}]}
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for i, (pos, cigar) in enumerate([(10, "10M300000N10M"), (20, "20M")]):
            a = pysam.AlignedSegment(out.header)
            a.query_name, a.flag, a.reference_id, a.reference_start = f"r{i}", 0, 0, pos
            a.mapping_quality, a.cigarstring = 60, cigar
            a.query_sequence, a.query_qualities = "A" * 20, pysam.qualitystring_to_array("I" * 20)
            out.write(a)
    alignment_qc(bam, out_prefix=tmp_path / "sp", thresholds={})
    cov = [line for line in (tmp_path / "sp.stats").read_text().splitlines() if line.startswith("COV")]
    # r0 covers 10-19 and 300020-300029; r1 covers 20-39: 40 positions at depth 1, none deeper
    assert cov == ["COV\t[1-1]\t1\t40"]


def test_outputs_are_deterministic_and_sample_override(tmp_path):
    bam = tmp_path / "k.bam"
    _write_known_bam(bam)
    alignment_qc(bam, out_prefix=tmp_path / "a", sample="X9")
    alignment_qc(bam, out_prefix=tmp_path / "b", sample="X9")
    for ext in (".stats", ".flagstat", ".metrics.tsv"):
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes()
    assert (tmp_path / "a.metrics.tsv").read_text().splitlines()[1].startswith("X9\t")


def test_summarize_sorts_by_sample(tmp_path):
    bam = tmp_path / "k.bam"
    _write_known_bam(bam)
    for name in ("zeta", "alpha", "mid"):
        alignment_qc(bam, out_prefix=tmp_path / name, sample=name)
    paths = [tmp_path / f"{n}.metrics.tsv" for n in ("zeta", "alpha", "mid")]
    summarize_alignment_qc(paths, out=tmp_path / "summary.tsv")
    lines = (tmp_path / "summary.tsv").read_text().splitlines()
    assert lines[0].split("\t") == SUMMARY_COLUMNS
    assert [line.split("\t")[0] for line in lines[1:]] == ["alpha", "mid", "zeta"]
    # the per-sample values are repeated verbatim from the per-sample files
    n = len(METRIC_COLUMNS) - 2
    assert lines[1].split("\t")[1:n] == (tmp_path / "alpha.metrics.tsv").read_text().splitlines()[1].split("\t")[1:n]
    assert lines[1].split("\t")[n:n + 7] == ["NA", "unknown", "0", "NA", "", "NA", "not_checked"]
    with pytest.raises(CohortflowError, match="more than one"):
        summarize_alignment_qc([paths[0], paths[0]], out=tmp_path / "dup.tsv")


def test_sample_falls_back_to_file_stem(tmp_path):
    import pysam

    bam = tmp_path / "NA0001.bam"
    with pysam.AlignmentFile(str(bam), "wb", header={"SQ": [{"SN": "c", "LN": 100}]}):
        pass
    res = alignment_qc(bam, out_prefix=tmp_path / "e", thresholds={})
    assert res["sample"] == "NA0001" and res["total_reads"] == 0 and res["pass"] is True


@pytest.mark.skipif(not SMALL.is_dir(), reason=f"shared test data absent: {SMALL}")
def test_cram_errors_are_clear(tmp_path):
    cram = SMALL / "bcftools_mpileup" / "mpileup.4.cram"
    with pytest.raises(CohortflowError, match="CRAM input needs the reference"):
        alignment_qc(cram, out_prefix=tmp_path / "x")
    with pytest.raises(CohortflowError, match="reference ce.fa does not match the CRAM: it has no contig '17'"):
        alignment_qc(cram, out_prefix=tmp_path / "x", reference=SMALL / "htslib_ce" / "ce.fa")
    # same contig names and lengths, other bases: htslib's MD5 check, reported in one line
    ref = (SMALL / "bcftools_mpileup" / "mpileup.ref.fa").read_text().splitlines()
    ref[1] = ref[1].translate(str.maketrans("ACGT", "CATG"))
    wrong = tmp_path / "wrong.fa"
    wrong.write_text("\n".join(ref) + "\n")
    with pytest.raises(CohortflowError, match=r"htslib could not decode the file: .*(MD5|mismatch).*written against"):
        alignment_qc(cram, out_prefix=tmp_path / "x", reference=wrong)
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith("wrong.fa")]  # nothing half-written


def test_bad_inputs(tmp_path):
    not_bam = tmp_path / "x.bam"
    not_bam.write_text("hello\n")
    with pytest.raises(CohortflowError):
        alignment_qc(not_bam, out_prefix=tmp_path / "x")
    with pytest.raises(CohortflowError, match="not found"):
        alignment_qc(tmp_path / "missing.bam", out_prefix=tmp_path / "x")
    bam = tmp_path / "k.bam"
    _write_known_bam(bam)
    with pytest.raises(ConfigError, match="unknown alignment QC threshold"):
        alignment_qc(bam, out_prefix=tmp_path / "x", thresholds={"min_depth": 3})
    truncated = tmp_path / "t.bam"
    # drop the BGZF EOF block and part of the last data block
    truncated.write_bytes(bam.read_bytes()[:-60])
    with pytest.raises(CohortflowError):
        alignment_qc(truncated, out_prefix=tmp_path / "t")


@needs_samtools
@pytest.mark.parametrize("seed", [7, 8, 9])
def test_random_pairs_match_samtools(tmp_path, seed):
    """Random flags, orientations, inserts beyond the 8000 cap, clips and indels vs samtools."""
    import numpy as np
    import pysam

    rng = np.random.default_rng(seed)
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": "c1", "LN": 200_000}, {"SN": "c2", "LN": 200_000}]}
    cigars = ["60M", "10S50M", "30M2I28M", "25M3D35M", "5H55M", "20M100N40M", "58M2S"]
    recs = []
    for i in range(400):
        tid, mtid = int(rng.integers(0, 2)), int(rng.integers(0, 2)) if rng.random() < 0.1 else None
        pos = int(rng.integers(0, 150_000))
        insert = int(rng.choice([rng.integers(100, 900), rng.integers(8000, 30000)]))
        mpos = pos + insert - 60 if rng.random() < 0.8 else max(0, pos - insert)
        mtid = tid if mtid is None else mtid
        flag = 1 | int(rng.choice([0x40, 0x80]))
        flag |= int(rng.choice([0, 0x10])) | int(rng.choice([0, 0x20]))
        for bit, p in ((0x2, 0.7), (0x400, 0.1), (0x200, 0.05), (0x8, 0.05), (0x100, 0.05), (0x800, 0.05)):
            if rng.random() < p:
                flag |= bit
        if flag & 0x100 and flag & 0x800:
            flag &= ~0x800
        tlen = 0 if mtid != tid else (insert if mpos >= pos else -insert)
        recs.append((tid, pos, flag, mtid, mpos, tlen, str(rng.choice(cigars)), int(rng.integers(0, 61)),
                     int(rng.integers(0, 4))))
    recs.sort(key=lambda r: (r[0], r[1]))
    bam = tmp_path / "random.bam"
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for i, (tid, pos, flag, mtid, mpos, tlen, cigar, mapq, nm) in enumerate(recs):
            a = pysam.AlignedSegment(out.header)
            a.query_name, a.flag, a.reference_id, a.reference_start = f"r{i}", flag, tid, pos
            a.mapping_quality, a.cigarstring = mapq, cigar
            a.next_reference_id, a.next_reference_start, a.template_length = mtid, mpos, tlen
            n = a.infer_query_length()
            a.query_sequence = "".join(rng.choice(list("ACGTN"), n))
            a.query_qualities = pysam.qualitystring_to_array("".join(chr(33 + int(q)) for q in rng.integers(2, 41, n)))
            a.set_tag("NM", nm)
            out.write(a)
    alignment_qc(bam, out_prefix=tmp_path / "r", thresholds={})
    ours = (tmp_path / "r.stats").read_text()
    assert any(line.startswith("IS\t") for line in ours.splitlines())
    assert _sections(ours) == _sections(_samtools("stats", str(bam)))
    assert (tmp_path / "r.flagstat").read_text() == _samtools("flagstat", str(bam))


def test_cohort_summary_sex_and_identity_checks(tmp_path):
    """Reads counted at 300 sites, consistent with the genotypes of the sample each BAM holds:
    A's BAM is labelled A, B's is labelled C and C's B (a swap); the reported sexes of B and C
    disagree with their reads."""
    import numpy as np
    import pandas as pd

    from cohortflow.io.plink import write_bed

    rng = np.random.default_rng(3)
    n_sites, samples = 300, ["A", "B", "C"]
    af = rng.uniform(0.1, 0.5, n_sites)
    geno = (rng.random((n_sites, 3, 2)) < af[:, None, None]).sum(axis=2).astype(np.int8)  # alt dosage
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(n_sites)], "cm": 0.0,
                        "pos": np.arange(n_sites) * 100 + 1000, "a1": "G", "a2": "A"})
    fam = pd.DataFrame({"fid": samples, "iid": samples, "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / "geno", geno, bim, fam)
    holds = {"A": 0, "B": 2, "C": 1}  # sheet label -> whose reads
    sexes = {"A": "F", "B": "M", "C": "F"}  # inferred from the reads: the BAM labelled B holds C (male)
    metrics, counts = [], []
    header = METRIC_COLUMNS
    for label, who in holds.items():
        depth = rng.poisson(20, n_sites)
        alt = rng.binomial(depth, geno[:, who] / 2 * 0.99 + 0.005)
        sites = pd.DataFrame({"chrom": "1", "pos": bim["pos"], "ref": "A", "alt": "G", "ref_count": depth - alt,
                              "alt_count": alt, "other_count": 0})
        sites.to_csv(tmp_path / f"{label}.sites.tsv.gz", sep="\t", index=False)
        row = {c: "0" for c in header}
        row.update(sample=label, inferred_sex=sexes[label], contamination="0")
        row["pass"], row["fail_reasons"] = "true", ""
        (tmp_path / f"{label}.metrics.tsv").write_text("\t".join(header) + "\n" + "\t".join(row[c] for c in header) + "\n")
        metrics.append(tmp_path / f"{label}.metrics.tsv")
        counts.append(tmp_path / f"{label}.sites.tsv.gz")
    info = tmp_path / "info.tsv"
    info.write_text("IID\tsex\nA\t2\nB\t2\nC\t1\n")
    table = summarize_alignment_qc(metrics, out=tmp_path / "summary.tsv", site_counts=counts,
                                   genotypes=tmp_path / "geno", sample_info=info,
                                   identity_out=tmp_path / "identity.tsv")
    by = table.set_index("sample")
    assert by.loc["A", "identity_check"] == "ok" and float(by.loc["A", "self_concordance"]) > 0.95
    assert by.loc["B", "identity_check"] == "swap" and by.loc["B", "best_match"] == "C"
    assert by.loc["C", "identity_check"] == "swap" and by.loc["C", "best_match"] == "B"
    assert list(by["sex_check"]) == ["ok", "mismatch", "mismatch"]
    assert list(by["pass"]) == ["true", "false", "false"]
    assert "reads match sample C" in by.loc["B", "fail_reasons"] and "sex reported F inferred M" in by.loc["B", "fail_reasons"]
    assert (tmp_path / "summary.tsv").read_text().splitlines()[0].split("\t") == SUMMARY_COLUMNS
