"""The benchmark BAM generator (benchmarks/_bam_generator.py) writes a valid, sorted, indexed BAM
whose NM/MD tags agree with its reference, and the same bytes for the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pysam
from pysam.libcbgzf import BGZFile

from conftest import require_tool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _bam_generator as gen  # noqa: E402

PAIRS = 2000


def test_generated_bam_is_valid(tmp_path):
    require_tool("samtools")
    bam, fasta = tmp_path / "g.bam", tmp_path / "g.fa"
    gen.generate_bam(bam, fasta, pairs=PAIRS, seed=3, scale=1000, threads=2, chunk_records=1500)
    subprocess.run(["samtools", "quickcheck", str(bam)], check=True)
    assert Path(str(bam) + ".bai").exists()

    n_sec = n_supp = n_dup = n_unmapped = n_clipped = n_indel = 0
    primary_names = set()
    last = (-1, -1)
    with pysam.AlignmentFile(str(bam)) as fh:
        assert fh.header.to_dict()["RG"][0]["SM"] == "BENCH01"
        assert [c for c in fh.references[:3]] == ["1", "2", "3"] and fh.references[-1] == "MT"
        for r in fh.fetch(until_eof=True):
            key = (r.reference_id if r.reference_id >= 0 else 1 << 30, r.reference_start)
            assert key >= last, "not coordinate-sorted"
            last = key
            n_sec += r.is_secondary
            n_supp += r.is_supplementary
            if r.is_secondary or r.is_supplementary:
                continue
            primary_names.add((r.query_name, r.is_read1))
            n_dup += r.is_duplicate
            n_unmapped += r.is_unmapped
            if r.is_unmapped:
                continue
            ops = {op for op, _ in r.cigartuples}
            n_clipped += 4 in ops
            n_indel += bool(ops & {1, 2})
            assert r.get_tag("RG") == "bench" and r.has_tag("MD") and r.query_length == 150
    assert len(primary_names) == 2 * PAIRS  # names unique per pair, one read1 and one read2
    assert 0.05 < n_dup / (2 * PAIRS) < 0.11
    assert 0 < n_unmapped < 0.03 * 2 * PAIRS
    assert n_sec > 0 and n_supp > 0 and n_clipped > 0 and n_indel > 0

    flagstat = subprocess.run(["samtools", "flagstat", str(bam)], check=True, capture_output=True,
                              text=True).stdout
    counts = {line.split(" ", 3)[3]: int(line.split()[0]) + int(line.split()[2]) for line in flagstat.splitlines()}
    assert counts["primary"] == 2 * PAIRS
    assert counts["in total (QC-passed reads + QC-failed reads)"] == 2 * PAIRS + n_sec + n_supp
    # samtools recomputes NM and MD from the reference and reports any that differ
    calmd = subprocess.run(["samtools", "calmd", str(bam), str(fasta)], capture_output=True, text=True)
    assert calmd.returncode == 0 and "different" not in calmd.stderr, calmd.stderr[:500]

    # same bytes whatever the thread count; same records whatever the chunking (only BGZF cuts move)
    again = tmp_path / "again.bam"
    gen.generate_bam(again, None, pairs=PAIRS, seed=3, scale=1000, threads=1, chunk_records=1500)
    assert again.read_bytes() == bam.read_bytes()
    gen.generate_bam(again, None, pairs=PAIRS, seed=3, scale=1000, threads=1, chunk_records=100_000)
    assert BGZFile(str(again), "rb").read() == BGZFile(str(bam), "rb").read()
