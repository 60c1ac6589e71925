"""Per-base samtools-stats sections (FFQ ... LTC, ID, IC) equal to samtools stats 1.16.1 (peer tool).

Records reach ``BaseSections`` as uncompressed BAM bytes with record offsets, built here with
pysam (CRAM and SAM are first converted to uncompressed BAM by ``samtools view``, as the reader
does); every line of these sections must equal samtools' line.
"""

from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from cohortflow.alignment import sections_format as SF
from cohortflow.alignment import sections_kernels as SK
from cohortflow.alignment.sections import BaseSections
from cohortflow.errors import InputFormatError
from conftest import SHARED_DATA, require_shared, require_tool

SMALL = SHARED_DATA / "bam_cram_small"
CYCLE_TAGS = ("FFQ", "LFQ", "GCF", "GCL", "GCC", "GCT", "FBC", "FTC", "LBC", "LTC")
INDEL_TAGS = ("ID", "IC")
# samtools 1.16 needs ~30 s on this file (two 500 kb reads): not a unit-test peer run
SLOW_FILES = {"ce_large_seq.sam.gz"}


def _shared_files() -> list[Path]:
    if not SMALL.is_dir():
        return []
    pats = ("*.bam", "*.cram", "*.sam", "*.sam.gz")
    return sorted({p for d in sorted(SMALL.iterdir()) if d.is_dir() for pat in pats for p in d.glob(pat)})


def _reference_for(path: Path) -> Path | None:
    stem = path.name[: -len(".cram")]
    for cand in (f"{stem}.fa", f"{stem.split('.')[0]}.ref.fa", "ce.fa"):
        if (path.parent / cand).exists():
            return path.parent / cand
    return None


def _records(bam: Path) -> tuple[np.ndarray, np.ndarray]:
    """(buf, rec_off) of a whole BAM file: decompressed bytes and each record's offset."""
    from pysam.libcbgzf import BGZFile

    with BGZFile(str(bam), "rb") as fh:
        data = fh.read()
    assert data[:4] == b"BAM\x01"
    (l_text,) = struct.unpack_from("<i", data, 4)
    o = 8 + l_text
    (n_ref,) = struct.unpack_from("<i", data, o)
    o += 4
    for _ in range(n_ref):
        (l_name,) = struct.unpack_from("<i", data, o)
        o += 8 + l_name
    offsets = []
    while o < len(data):
        offsets.append(o)
        (block_size,) = struct.unpack_from("<i", data, o)
        o += 4 + block_size
    return np.frombuffer(data, dtype=np.uint8), np.asarray(offsets, dtype=np.int64)


def _as_uncompressed_bam(path: Path, reference: Path | None, tmp_path: Path) -> Path:
    if path.name.endswith(".bam"):
        return path
    import pysam

    out = tmp_path / "converted.bam"
    ref_args = ["-T", str(reference)] if reference else []
    pysam.view("-b", "-u", *ref_args, "-o", str(out), str(path), catch_stdout=False)
    return out


def _ours(bam: Path, batches: int = 1) -> tuple[list[str], list[str]]:
    buf, rec_off = _records(bam)
    sections = BaseSections.new()
    for part in np.array_split(rec_off, batches):  # batches of one buffer: offsets stay absolute
        sections.add(buf, part, len(part))
    cycles, indels = sections.format_text()
    return cycles.splitlines(), indels.splitlines()


def _theirs(samtools: str, path: Path, reference: Path | None) -> list[str]:
    ref_args = ["--reference", str(reference)] if reference else []
    text = subprocess.run([samtools, "stats", *ref_args, str(path)], check=True, capture_output=True,
                          text=True, timeout=120).stdout
    return text.splitlines()


def _block(lines: list[str], tags: tuple[str, ...]) -> list[str]:
    """Lines of the sections ``tags`` with their comment lines, in file order, from a stats text."""
    out = []
    keep = False
    for line in lines:
        if line.startswith("# "):
            keep = any(f"`grep ^{t} |" in line for t in tags) or (keep and line.startswith("# Columns"))
        elif not line.startswith(tuple(t + "\t" for t in tags)):
            keep = False
            continue
        if keep or line.startswith(tuple(t + "\t" for t in tags)):
            out.append(line)
    return out


def _compare(samtools: str, path: Path, reference: Path | None, tmp_path: Path, batches: int = 1) -> None:
    ours_cycles, ours_indels = _ours(_as_uncompressed_bam(path, reference, tmp_path), batches)
    theirs = _theirs(samtools, path, reference)
    for tag in CYCLE_TAGS + INDEL_TAGS:  # per section first, for a readable failure
        prefix = tag + "\t"
        assert [x for x in ours_cycles + ours_indels if x.startswith(prefix)] == \
            [x for x in theirs if x.startswith(prefix)], tag
    # then whole blocks, comment lines and order included
    assert ours_cycles == _block(theirs, CYCLE_TAGS)
    assert ours_indels == _block(theirs, INDEL_TAGS)


@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sections_match_samtools_on_shared_files(path, tmp_path):
    samtools = require_tool("samtools")
    require_shared("bam_cram_small")
    reference = None
    if path.name.endswith(".cram"):
        reference = _reference_for(path)
        if reference is None:
            pytest.skip(f"no reference FASTA found for {path.name}")
    if path.name in SLOW_FILES:
        pytest.skip(f"{path.name}: samtools stats takes ~30 s on its 500 kb reads")
    _compare(samtools, path, reference, tmp_path)


def test_shared_files_listed():
    require_shared("bam_cram_small")
    assert len(_shared_files()) >= 20


# ------------------------------------------------------------------------------- synthetic BAMs


def _write_bam(path: Path, records: list[tuple]) -> Path:
    """records: (name, flag, pos, cigar or None, sequence or None, qualities text or None)."""
    import pysam

    header = {"HD": {"VN": "1.6", "SO": "unsorted"}, "SQ": [{"SN": "c1", "LN": 100000}]}
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for name, flag, pos, cigar, seq, qual in records:
            a = pysam.AlignedSegment(out.header)
            a.query_name = name
            a.flag = flag
            a.reference_id = -1 if flag & 4 and cigar is None else 0
            a.reference_start = pos
            a.mapping_quality = 60
            if cigar:
                a.cigarstring = cigar
            if seq:
                a.query_sequence = seq
                if qual:
                    a.query_qualities = pysam.qualitystring_to_array(qual)
            out.write(a)
    return path


def _random_records(rng: np.random.Generator, n: int) -> list[tuple]:
    """Reads of every kind: both strands, all fragment orders, clips, indels, N/IUPAC/'=' bases,
    missing qualities, supplementary/secondary/unmapped/duplicate/QC-failed records."""
    flags = [0, 16, 4, 20, 65, 81, 129, 145, 1, 17, 193, 209, 256, 272, 2048, 2064, 2113, 2193,
             1024, 512, 99, 147, 83, 163, 73, 133, 137, 69, 128, 64]
    alphabet = np.array(list("ACGTACGTACGTACGTNN=MRWSYKVHDB"))
    out = []
    for i in range(n):
        flag = int(rng.choice(flags))
        length = int(rng.integers(1, 160))
        seq = "".join(rng.choice(alphabet, length))
        if rng.random() < 0.15:  # GC-only and AT-only reads: the histogram's edge bins
            seq = "".join(rng.choice(list("GC" if rng.random() < 0.5 else "AT"), length))
        qual = None if rng.random() < 0.05 else "".join(chr(33 + int(q)) for q in rng.integers(0, 42, length))
        cigar = None
        if not flag & 4 or rng.random() < 0.2:
            ops = []
            left = length
            if rng.random() < 0.3:
                ops.append(f"{int(rng.integers(1, 30))}H")
            if rng.random() < 0.3 and left > 2:
                s = int(rng.integers(1, left // 2 + 1))
                ops.append(f"{s}S")
                left -= s
            if rng.random() < 0.2:
                ops.append(f"{int(rng.integers(1, 5))}D")  # leading deletion: no cycle
            while left > 0:
                m = int(rng.integers(1, left + 1))
                ops.append(f"{m}M")
                left -= m
                r = rng.random()
                if left > 0 and r < 0.3:
                    k = int(rng.integers(1, left + 1))
                    ops.append(f"{k}I")
                    left -= k
                elif r < 0.5:
                    ops.append(f"{int(rng.integers(1, 400))}D")
                elif r < 0.6:
                    ops.append(f"{int(rng.integers(1, 2000))}N")
            if rng.random() < 0.2:
                ops.append(f"{int(rng.integers(1, 3))}D")
            if rng.random() < 0.3:
                ops.append(f"{int(rng.integers(1, 30))}H")
            cigar = "".join(ops)
        if rng.random() < 0.03:  # no sequence stored
            seq = None
            qual = None
            cigar = None if flag & 4 else f"{length}M"
        out.append((f"r{i}", flag, int(rng.integers(0, 90000)), cigar, seq, qual))
    return out


def test_synthetic_reads_match_samtools(tmp_path):
    samtools = require_tool("samtools")
    rng = np.random.default_rng(7)
    bam = _write_bam(tmp_path / "synthetic.bam", _random_records(rng, 3000))
    _compare(samtools, bam, None, tmp_path)
    _compare(samtools, bam, None, tmp_path, batches=7)  # accumulating over batches changes nothing


def test_long_reads_grow_the_tables(tmp_path):
    samtools = require_tool("samtools")
    rng = np.random.default_rng(11)
    recs = _random_records(rng, 200)
    # reads longer than the initial 320 cycles, with a missing-quality read (quality 255)
    for i, length in enumerate((500, 999, 700)):
        seq = "".join(rng.choice(list("ACGTN"), length))
        qual = None if i == 1 else "".join(chr(33 + int(q)) for q in rng.integers(0, 60, length))
        recs.insert(50 * i, (f"long{i}", (0, 16, 145)[i], 100, f"10H{length // 2}M3I5D{length - length // 2 - 3}M",
                             seq, qual))
    bam = _write_bam(tmp_path / "long.bam", recs)
    _compare(samtools, bam, None, tmp_path, batches=3)


def test_hand_counted_reads(tmp_path):
    """A reverse read with clips and indels and an 'other' paired read, counted by hand."""
    bam = _write_bam(tmp_path / "hand.bam", [
        ("r1", 16, 10, "2H2S2M1I2M2D3M", "ACGNTTAAMC", "ABCDEFGHIJ"),
        ("r2", 1, 10, "3M2I5M", "ACGTTAAGGC", "JJJJJJJJJJ"),  # paired, neither READ1 nor READ2
    ])
    sections = BaseSections.new()
    sections.add(*_records(bam))
    cycles, indels = (t.splitlines() for t in sections.format_text())
    ffq = [x.split("\t") for x in cycles if x.startswith("FFQ\t")]
    assert len(ffq) == 12  # unclipped length: 2 hard-clipped + 10 stored bases
    assert all(len(row) == 2 + 43 for row in ffq)  # qualities 0..42: 'J' = 41, then one more
    assert ffq[0][2 + 41] == "1"  # reverse strand: cycle 1 is the last stored base
    assert [x for x in cycles if x.startswith("FTC\t")] == ["FTC\t3\t2\t1\t2\t1"]
    gct = {x.split("\t")[1]: x.split("\t")[2:] for x in cycles if x.startswith("GCT\t")}
    assert gct["1"] == ["0.00", "0.00", "100.00", "0.00"]  # last base C, complemented: G
    assert "2" not in gct and "7" not in gct  # the M and N bases are no A/C/G/T
    # r2 ('other') adds its insertion to ID but to no cycle table
    assert [x for x in indels if x.startswith("ID\t")] == ["ID\t1\t1\t0", "ID\t2\t1\t1"]
    assert [x for x in indels if x.startswith("IC\t")] == ["IC\t3\t0\t0\t1\t0", "IC\t6\t1\t0\t0\t0"]


def test_corrupt_record_is_an_input_format_error(tmp_path):
    bam = _write_bam(tmp_path / "one.bam", [("r1", 0, 10, "5M", "ACGTA", "IIIII")])
    buf, rec_off = _records(bam)
    cut = buf[: len(buf) - 3].copy()  # the record's qualities run past the buffer
    with pytest.raises(InputFormatError):
        BaseSections.new().add(cut, rec_off, 1)


def test_kernel_speed_on_a_million_reads():
    """Kernel throughput on 1M synthetic 150 bp paired reads (printed; a loose floor only)."""
    rng = np.random.default_rng(3)

    template = []
    for k in range(64):
        flag = (99, 147, 83, 163)[k % 4]
        name = b"read%05d\x00" % k
        cigar = np.array([(70 << 4) | 0, (2 << 4) | 1, (78 << 4) | 0], dtype="<u4").tobytes()
        seq = rng.integers(0, 256, 75, dtype=np.uint8).tobytes()
        qual = rng.integers(2, 42, 150, dtype=np.uint8).tobytes()
        body = struct.pack("<iiBBHHHiiii", 0, 1000 + k, len(name), 60, 0, 3, flag, 150, 0, 1200, 300)
        rec = body + name + cigar + seq + qual
        template.append(struct.pack("<i", len(rec)) + rec)
    n = 1_000_000  # a multiple of the 64 templates
    buf = np.frombuffer(b"".join(template) * (n // 64), dtype=np.uint8)
    sizes = np.array([len(t) for t in template], dtype=np.int64)
    rec_off = np.concatenate([[0], np.cumsum(np.tile(sizes, n // 64))[: n - 1]])
    sections = BaseSections.new()
    sections.add(buf[:10_000], rec_off[:10], 10)  # compile (cached) outside the timing
    sections = BaseSections.new()
    t0 = time.perf_counter()
    sections.add(buf, rec_off, n)
    seconds = time.perf_counter() - t0
    print(f"accumulate_base_sections: {n / seconds:,.0f} reads/s ({n * 150 / seconds / 1e6:,.0f} Mbases/s)")
    assert int(sections.bases.sum(dtype=np.int64)) == n * 150
    assert int(sections.state[SK.S_MAX_LEN_1ST]) == 150
    assert seconds < 30


def test_uint32_tables_spill_into_int64_totals(tmp_path, monkeypatch):
    """Spilling the uint32 working tables (due every 2**32 - 1 records) leaves the text unchanged."""
    from cohortflow.alignment import sections as sections_module

    rng = np.random.default_rng(5)
    buf, rec_off = _records(_write_bam(tmp_path / "spill.bam", _random_records(rng, 400)))
    whole = BaseSections.new()
    whole.add(buf, rec_off)
    monkeypatch.setattr(sections_module, "_SPILL_AFTER_RECORDS", 150)
    spilled = BaseSections.new()
    for part in np.array_split(rec_off, 8):
        spilled.add(buf, part)
    assert spilled.quals_spilled is not None
    assert spilled.format_text() == whole.format_text()


# ------------------------------------------------------------------------- numba text writers


def _python_base_content_rows(tag: str, codes: np.ndarray, read_oriented: bool) -> str:
    """The rows as samtools prints them, with Python's %-format (C printf's rounding): ``codes``
    (strand, cycle, 16) int64 counts of one fragment."""
    acgtn = [SK.CODE_A, SK.CODE_C, SK.CODE_G, SK.CODE_T, SK.CODE_N]
    if read_oriented:
        counts = codes[0][:, acgtn[:4]] + codes[1][:, acgtn[:4][::-1]]
    else:
        both = codes[0] + codes[1]
        other = both.sum(axis=1, keepdims=True) - both[:, acgtn].sum(axis=1, keepdims=True)
        counts = np.concatenate([both[:, acgtn], other], axis=1)
    total = counts[:, :4].sum(axis=1)
    cycles = np.flatnonzero(total)
    pct = 100.0 * counts[cycles].astype(np.float64) / total[cycles, None].astype(np.float64)
    fmt = tag + "\t%d" + "\t%.2f" * counts.shape[1] + "\n"
    return "".join(fmt % (c + 1, *row) for c, row in zip(cycles.tolist(), pct.tolist()))


def _numba_base_content_rows(tag: str, bases: np.ndarray, spilled: np.ndarray, read_oriented: bool) -> str:
    tag_codes = np.frombuffer(tag.encode(), dtype=np.uint8)
    records = int(bases.sum(axis=(0, 1, 3)).max()) + (int(spilled.sum(axis=(0, 1, 3)).max()) if spilled.size else 0)
    out = np.empty(SF.base_content_rows_bound(tag.encode(), bases.shape[2], records), dtype=np.uint8)
    used = np.array([bases.shape[2], 0], dtype=np.int64)
    end = SF.write_base_content_rows(tag_codes, bases, spilled, 0, read_oriented, used, out, 0)
    return out[:end].tobytes().decode()


def test_percentages_print_as_c_printf_does():
    """A million percentages 100.0 * count / (A+C+G+T) of random counts at every scale, printed by
    the numba writer exactly as %.2f (C printf: the exact double rounded, ties to even)."""
    rng = np.random.default_rng(2024)
    cycles = 170_000  # x 6 columns: a million percentages
    scale = 10 ** rng.integers(0, 10, cycles)  # counts from 0..1 up to 2^32 - 1
    bases = np.zeros((2, 2, cycles, 16), dtype=np.uint32)
    for strand in range(2):
        cells = rng.random((cycles, 16)) * scale[:, None] * (rng.random((cycles, 16)) < 0.7)
        bases[0, strand] = np.minimum(cells, 2**32 - 1).astype(np.uint32)
    # spilled totals beyond uint32 in a few cycles
    spilled = np.zeros_like(bases, dtype=np.int64)
    spilled[0, :, ::97] = rng.integers(0, 2**40, spilled[0, :, ::97].shape)
    for read_oriented in (False, True):
        assert _numba_base_content_rows("GCC", bases, np.zeros((0, 0, 0, 0), np.int64), read_oriented) == \
            _python_base_content_rows("GCC", bases[0].astype(np.int64), read_oriented)
        assert _numba_base_content_rows("GCC", bases, spilled, read_oriented) == \
            _python_base_content_rows("GCC", bases[0].astype(np.int64) + spilled[0], read_oriented)


def test_fixed2_rounds_like_printf_at_ties_and_edges():
    rng = np.random.default_rng(3)
    values = [0.0, -0.0, 100.0, 0.125, 0.375, 0.625, 0.875, 0.005, 0.015, 0.025, 0.035, 1.005, 2.675,
              12.345, 99.995, 99.99499999999999, 99.99500000000001, 1e-300, 5e-324, -0.001, -0.005,
              -2.675, 0.004999999999999999, 2.0**52 + 0.5, 2.0**53 - 1, 123456789.125, 1e15 + 0.375]
    values += [k / 8 for k in range(0, 1000)]  # exact ties: the third decimal 5, nothing after
    values += [k / 200 for k in range(0, 20000)]  # decimal ties, above or below in binary
    values += (rng.random(20000) * 1000).tolist()
    values += [float(np.nextafter(v, np.inf)) for v in values[:500]]
    values += [float(np.nextafter(v, -np.inf)) for v in values[:500]]
    out = np.zeros(64, dtype=np.uint8)
    for x in values:
        end = SF.put_fixed2(x, out, 0)
        assert out[:end].tobytes().decode() == "%.2f" % x, x


def test_quality_rows_as_python_formats_them():
    """FFQ/LFQ rows: counts of every width, spilled totals added, cells outside the table 0."""
    rng = np.random.default_rng(9)
    quals = (rng.random((500, 24)) * 10.0 ** rng.integers(0, 10, (500, 1))).astype(np.uint32)
    spilled = rng.integers(0, 2**40, quals.shape)
    tag = np.frombuffer(b"FFQ", dtype=np.uint8)
    for extra, rows, width in ((None, 500, 24), (None, 520, 30), (spilled, 480, 20), (spilled, 510, 26)):
        table = np.zeros((rows, width), dtype=np.int64)
        src = quals.astype(np.int64) + (extra if extra is not None else 0)
        r, w = min(rows, 500), min(width, 24)
        table[:r, :w] = src[:r, :w]
        fmt = "FFQ" + "\t%d" * (width + 1) + "\n"
        expected = "".join(fmt % (c + 1, *row) for c, row in enumerate(table.tolist()))
        out = np.empty(SF.quality_rows_bound(b"FFQ", rows, width, int(table.max())), dtype=np.uint8)
        end = SF.write_quality_rows(tag, quals, extra if extra is not None else np.zeros((0, 0), np.int64),
                                    rows, width, out, 0)
        assert out[:end].tobytes().decode() == expected
