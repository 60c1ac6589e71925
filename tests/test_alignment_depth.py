"""Per-base depth and coverage against the peers: mosdepth 0.3.3 (summary, distribution, per-base
and region files byte for byte) and samtools depth (every position); BAM and CRAM of the same
reads give the same numbers; bad input is one error line."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cohortflow.alignment.api import alignment_qc, depth
from cohortflow.errors import CohortflowError
from conftest import require_shared, require_tool

SMALL_FILES = [
    ("htslib_ce", "ce_1000.sorted.bam", None),
    ("htslib_ce", "ce_1000.sorted.cram", "ce.fa"),
    ("bcftools_mpileup", "mpileup.1.bam", None),
    ("bcftools_mpileup", "mpileup.2.bam", None),
    ("bcftools_mpileup", "mpileup.3.bam", None),
    ("bcftools_mpileup", "mpileup.1.cram", "mpileup.ref.fa"),
    ("bcftools_mpileup", "mpileup.2.cram", "mpileup.ref.fa"),
    ("bcftools_mpileup", "mpileup.3.cram", "mpileup.ref.fa"),
    ("bcftools_mpileup", "mpileup.4.bam", None),  # no index upstream: indexed in the test
    ("bcftools_mpileup", "indel-AD.1.bam", None),
    ("bcftools_mpileup", "indel-AD.2.bam", None),
    ("bcftools_mpileup", "indel-AD.2.cram", "indel-AD.2.fa"),
    ("bcftools_mpileup", "annot-NMBZ.1.bam", None),
    ("bcftools_mpileup", "annot-NMBZ.2.bam", None),
    ("bcftools_mpileup", "annot-NMBZ.3.1.bam", None),
    ("bcftools_mpileup", "iupac.bam", None),
    ("bcftools_mpileup", "mpileup-SCR.bam", None),
]


def _indexed_copy(path: Path, tmp_path: Path, samtools: str) -> Path:
    """The file itself when it has an index, else a copy indexed here (the data dir is read-only)."""
    for suffix in (".bai", ".crai", ".csi"):
        if Path(f"{path}{suffix}").exists():
            return path
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    subprocess.run([samtools, "index", str(copy)], check=True)
    return copy


def _contigs(path: Path):
    import pysam

    with pysam.AlignmentFile(str(path), check_sq=False, reference_filename=None) if path.suffix != ".cram" else \
            pysam.AlignmentFile(str(path), check_sq=False) as fh:
        return list(fh.references), list(fh.lengths)


def _expand(per_base_gz: Path, contigs: set[str]) -> list[str]:
    """mosdepth-style runs as ``samtools depth`` lines (1-based position, every position)."""
    out = []
    with gzip.open(per_base_gz, "rt") as fh:
        for line in fh:
            chrom, start, end, d = line.split("\t")
            if chrom in contigs:
                out.extend(f"{chrom}\t{p + 1}\t{d.strip()}" for p in range(int(start), int(end)))
    return out


@pytest.mark.peer
@pytest.mark.parametrize("folder,name,ref", SMALL_FILES, ids=[f[1] for f in SMALL_FILES])
def test_depth_matches_mosdepth_and_samtools_depth(folder, name, ref, tmp_path):
    mosdepth = require_tool("mosdepth")
    samtools = require_tool("samtools")
    src = require_shared("bam_cram_small", folder, name)
    reference = str(src.parent / ref) if ref else None
    path = _indexed_copy(src, tmp_path, samtools)
    peer = tmp_path / "peer"
    cmd = [mosdepth] + (["-f", reference] if reference else []) + [str(peer), str(path)]
    # mosdepth 0.3.3 aborts (IndexDefect) on indel-AD.1.bam, whose reads run past the contig end;
    # there samtools depth is the only peer
    mosdepth_ok = subprocess.run(cmd, capture_output=True).returncode == 0
    assert mosdepth_ok or name == "indel-AD.1.bam"
    ours = tmp_path / "ours"
    depth(path, out_prefix=ours, reference=reference)
    if mosdepth_ok:
        for ext in (".mosdepth.summary.txt", ".mosdepth.global.dist.txt"):
            assert Path(f"{ours}{ext}").read_text() == Path(f"{peer}{ext}").read_text(), ext
        ours_runs = gzip.open(f"{ours}.per-base.bed.gz", "rt").read()
        assert ours_runs == gzip.open(f"{peer}.per-base.bed.gz", "rt").read()

    # every position against samtools depth: -s (overlapping mates once) is our default,
    # plain samtools depth counts both mates (count_overlaps=True)
    ref_args = ["--reference", reference] if reference else []
    for overlaps, flags in ((False, ["-a", "-s"]), (True, ["-a"])):
        expected = subprocess.run([samtools, "depth", *flags, *ref_args, str(path)], check=True,
                                  capture_output=True, text=True).stdout.splitlines()
        # samtools prints positions past the contig end where reads hang over it; we clip at the end
        lengths = dict(zip(*_contigs(path)))
        expected = [ln for ln in expected if int(ln.split("\t")[1]) <= lengths[ln.split("\t")[0]]]
        contigs = {line.split("\t", 1)[0] for line in expected}
        prefix = tmp_path / f"o{int(overlaps)}"
        depth(path, out_prefix=prefix, reference=reference, count_overlaps=overlaps)
        assert _expand(Path(f"{prefix}.per-base.bed.gz"), contigs) == expected, flags


@pytest.mark.peer
def test_regions_match_mosdepth(tmp_path):
    mosdepth = require_tool("mosdepth")
    folder = require_shared("bam_cram_small", "htslib_ce")
    bed = tmp_path / "r.bed"
    # overlapping, unsorted, named and unnamed regions, one on a contig without reads
    bed.write_text("CHROMOSOME_I\t200\t300\nCHROMOSOME_I\t0\t500\tA\nCHROMOSOME_III\t10\t100\tz\n"
                   "CHROMOSOME_I\t100000\t100500\tfar\n")
    for name, ref in (("ce_1000.sorted.bam", None), ("ce_1000.sorted.cram", folder / "ce.fa")):
        peer = tmp_path / f"peer_{name}"
        subprocess.run([mosdepth, "-b", str(bed)] + (["-f", str(ref)] if ref else []) + [str(peer), str(folder / name)],
                       check=True, capture_output=True)
        ours = tmp_path / f"ours_{name}"
        depth(folder / name, out_prefix=ours, reference=ref, regions=bed, per_base=False)
        for ext in (".mosdepth.summary.txt", ".mosdepth.global.dist.txt", ".mosdepth.region.dist.txt"):
            assert Path(f"{ours}{ext}").read_text() == Path(f"{peer}{ext}").read_text(), (name, ext)
        assert gzip.open(f"{ours}.regions.bed.gz", "rt").read() == gzip.open(f"{peer}.regions.bed.gz", "rt").read()


def test_mate_storage_grows(tmp_path, monkeypatch):
    """With room for only two waiting mates the storage and its table grow many times over; the
    depth must not change."""
    from cohortflow.alignment.depth import DepthAccumulator

    import pysam

    bam = tmp_path / "pairs.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "1", "LN": 5000}]}
    reads = []
    for k in range(60):  # 60 pairs, all first mates before any second: 60 mates wait at once
        for name, flag, pos, mpos in ((f"p{k}", 99, 100 + k, 130 + k), (f"p{k}", 147, 130 + k, 100 + k)):
            reads.append((pos, name, flag, mpos))
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for pos, name, flag, mpos in sorted(reads):
            r = pysam.AlignedSegment(out.header)
            r.query_name, r.flag, r.reference_id, r.reference_start = name, flag, 0, pos
            r.cigarstring, r.mapping_quality = "20M1D30M" if flag == 99 else "50M", 60
            r.next_reference_id, r.next_reference_start = 0, mpos
            r.query_sequence, r.query_qualities = "A" * 50, pysam.qualitystring_to_array("I" * 50)
            out.write(r)
    depth(bam, out_prefix=tmp_path / "a")
    monkeypatch.setattr(DepthAccumulator, "initial_mate_slots", 2)
    grown = []
    original = DepthAccumulator._grow_slots
    monkeypatch.setattr(DepthAccumulator, "_grow_slots", lambda self: (grown.append(1), original(self)))
    depth(bam, out_prefix=tmp_path / "b")
    assert grown
    assert gzip.open(f"{tmp_path}/a.per-base.bed.gz").read() == gzip.open(f"{tmp_path}/b.per-base.bed.gz").read()


def _cov(prefix) -> str:
    return Path(f"{prefix}.coverage.tsv").read_text()


def test_bam_and_cram_of_the_same_reads_agree(tmp_path):
    folder = require_shared("bam_cram_small", "bcftools_mpileup")
    for k in (1, 2, 3):
        a = alignment_qc(folder / f"mpileup.{k}.bam", out_prefix=tmp_path / f"b{k}")
        b = alignment_qc(folder / f"mpileup.{k}.cram", out_prefix=tmp_path / f"c{k}",
                         reference=folder / "mpileup.ref.fa")
        for ext in (".flagstat", ".coverage.tsv", ".mosdepth.summary.txt", ".mosdepth.global.dist.txt",
                    ".metrics.tsv"):
            assert Path(f"{tmp_path}/b{k}{ext}").read_bytes() == Path(f"{tmp_path}/c{k}{ext}").read_bytes(), ext
        # the .stats files differ only in the file name of their command-line comment
        sa = Path(f"{tmp_path}/b{k}.stats").read_text().splitlines()[3:]
        sb = Path(f"{tmp_path}/c{k}.stats").read_text().splitlines()[3:]
        assert sa == sb
        assert a["mean_depth"] == b["mean_depth"] > 0


def test_coverage_table_known_values(tmp_path):
    """Two 50 bp mates overlapping by 20 bp and one read with a 5 bp deletion, on a 1 kb contig."""
    import pysam

    bam = tmp_path / "k.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "1", "LN": 1000}]}
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for name, flag, pos, cigar, mpos in (("a", 99, 100, "50M", 130), ("a", 147, 130, "50M", 100),
                                             ("b", 0, 400, "20M5D20M", 0), ("d", 1024, 400, "40M", 0)):
            r = pysam.AlignedSegment(out.header)
            r.query_name, r.flag, r.reference_id, r.reference_start = name, flag, 0, pos
            r.cigarstring, r.mapping_quality = cigar, 60
            r.next_reference_id, r.next_reference_start = (0, mpos) if flag & 1 else (-1, -1)
            length = sum(n for op, n in r.cigartuples if op == 0)
            r.query_sequence = "A" * length
            r.query_qualities = pysam.qualitystring_to_array("I" * length)
            out.write(r)
    pysam.index(str(bam))
    region_bed = tmp_path / "t.bed"
    region_bed.write_text("1\t100\t180\tpair\n1\t400\t445\tdel\n")
    depth(bam, out_prefix=tmp_path / "w")
    rows = [line.split("\t") for line in _cov(tmp_path / "w").splitlines()]
    # contig: 80 bases of the pair (the 20 bp overlap once) + 40 of b (the deletion uncovered)
    assert rows[1][:5] == ["1", "1", "0", "1000", "1000"]
    assert float(rows[1][5]) == pytest.approx(120 / 1000)
    assert float(rows[1][6]) == 0.0 and float(rows[1][7]) == pytest.approx(12.0)
    depth(bam, out_prefix=tmp_path / "r", regions=region_bed)
    rows = {line.split("\t")[0]: line.split("\t") for line in _cov(tmp_path / "r").splitlines()[1:]}
    assert float(rows["pair"][5]) == 1.0 and float(rows["pair"][7]) == 100.0
    # coverage.tsv prints 4 decimals
    assert float(rows["del"][5]) == pytest.approx(40 / 45, abs=1e-4)
    assert float(rows["del"][7]) == pytest.approx(100 * 40 / 45, abs=1e-4)
    assert float(rows["total_regions"][5]) == pytest.approx(120 / 125, abs=1e-4)
    depth(bam, out_prefix=tmp_path / "c", count_overlaps=True, per_base=False)
    assert float(_cov(tmp_path / "c").splitlines()[1].split("\t")[5]) == pytest.approx(140 / 1000)


# ------------------------------------------------------------------------------------ bad input


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cohortflow.cli", *args], capture_output=True, text=True,
                          timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert pattern in lines[0], lines[0]


def test_bad_inputs_give_one_line_and_no_outputs(tmp_path):
    import pysam

    folder = require_shared("bam_cram_small")
    good = folder / "htslib_ce" / "ce_1000.sorted.bam"
    out = tmp_path / "out"
    out.mkdir()

    truncated = tmp_path / "trunc.bam"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _one_error_line(_cli("alignment-qc", "--bam", str(truncated), "--out", str(out / "t")), "truncated")

    no_index = tmp_path / "noidx.bam"
    shutil.copy(good, no_index)
    bed = tmp_path / "r.bed"
    bed.write_text("CHROMOSOME_I\t0\t1000\n")
    _one_error_line(_cli("alignment-qc", "--bam", str(no_index), "--regions", str(bed), "--out", str(out / "i")),
                    "no index beside the BAM")

    unsorted = tmp_path / "unsorted.bam"
    with pysam.AlignmentFile(str(good)) as src:
        reads = list(src.fetch(until_eof=True))
        with pysam.AlignmentFile(str(unsorted), "wb", template=src) as dst:
            for r in reads[::-1]:
                dst.write(r)
    Path(f"{unsorted}.bai").write_bytes(Path(f"{good}.bai").read_bytes())  # an index, made for another order
    _one_error_line(_cli("alignment-qc", "--bam", str(unsorted), "--regions", str(bed), "--out", str(out / "u")),
                    "not coordinate-sorted")

    cram = folder / "htslib_ce" / "ce_1000.sorted.cram"
    _one_error_line(_cli("alignment-qc", "--bam", str(cram), "--out", str(out / "c")),
                    "CRAM input needs the reference FASTA")
    _one_error_line(_cli("alignment-qc", "--bam", str(cram), "--reference",
                         str(folder / "bcftools_mpileup" / "mpileup.ref.fa"), "--out", str(out / "c")),
                    "does not match the CRAM")

    empty = tmp_path / "empty.bam"
    empty.write_bytes(b"")
    _one_error_line(_cli("alignment-qc", "--bam", str(empty), "--out", str(out / "e")), "empty file")

    broken = tmp_path / "broken.sam"
    broken.write_text("@HD\tVN:1.6\n@SQ\tSN:c1\n@SQ\tLN:10\tSN:c2\nr1\t0\tc2\t1\t60\t4M\t*\t0\t0\tACGT\t****\n")
    _one_error_line(_cli("alignment-qc", "--bam", str(broken), "--out", str(out / "s")), "broken.sam")

    assert not list(out.iterdir())  # no partial output for any of them

    # a BAM with a header and no reads is valid: zero reads, zero depth, no failure of its own
    header_only = tmp_path / "header_only.bam"
    with pysam.AlignmentFile(str(header_only), "wb", header={"SQ": [{"SN": "1", "LN": 100}]}):
        pass
    res = alignment_qc(header_only, out_prefix=tmp_path / "h", thresholds={})
    assert res["total_reads"] == 0 and res["pass"] is True
    with pytest.raises(CohortflowError, match="empty file"):
        alignment_qc(empty, out_prefix=tmp_path / "e2")
