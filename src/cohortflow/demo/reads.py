"""Simulated paired-end reads (coordinate-sorted BAM) from demo individuals' own haplotypes.

:func:`simulate_reads` places read pairs uniformly over one region, each pair drawn from one of the
individual's two true haplotypes (``genotypes/true_haplotypes.npz`` written by
:func:`cohortflow.demo.genome.simulate_genotypes`), so a variant caller run on the BAM should
recover that individual's true genotypes in the region. Reads are reported as already aligned
(the simulated truth), with substitution errors, marked duplicates and a few unmapped mates.
"""

from __future__ import annotations

import os
import zlib
from array import array
from pathlib import Path

import numpy as np
import pysam

from cohortflow.demo._files import read_fasta_region
from cohortflow.demo.genome import load_true_haplotypes
from cohortflow.errors import CohortflowError, ConfigError
from cohortflow.io.atomic import atomic_path

_FLAG_PAIRED, _FLAG_PROPER, _FLAG_UNMAPPED, _FLAG_MATE_UNMAPPED = 0x1, 0x2, 0x4, 0x8
_FLAG_REVERSE, _FLAG_MATE_REVERSE, _FLAG_READ1, _FLAG_READ2, _FLAG_DUPLICATE = 0x10, 0x20, 0x40, 0x80, 0x400
_LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)


def _contig_lengths(reference: Path) -> list[tuple[str, int]]:
    fai = Path(f"{reference}.fai")
    if not fai.exists():
        pysam.faidx(str(reference))
    lengths = []
    with open(fai, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2 or not fields[1].isdigit():
                raise CohortflowError("malformed FASTA index line", path=fai, record=line_no)
            lengths.append((fields[0], int(fields[1])))
    return lengths


def _md_tag(mismatch_positions: np.ndarray, ref_letters: bytes, read_length: int) -> str:
    parts, previous = [], 0
    for p in mismatch_positions:
        parts.append(f"{p - previous}{chr(ref_letters[p])}")
        previous = p + 1
    parts.append(str(read_length - previous))
    return "".join(parts)


def simulate_reads(
    out_dir: str | Path,
    *,
    reference: str | Path,
    haplotypes: str | Path,
    samples: list[str],
    region: tuple[str, int, int] = ("1", 1_000_000, 1_200_000),
    coverage: float = 15.0,
    read_length: int = 100,
    insert_mean: float = 300.0,
    insert_sd: float = 30.0,
    error_rate: float = 0.005,
    duplicate_rate: float = 0.02,
    unmapped_rate: float = 0.002,
    seed: int = 42,
) -> list[Path]:
    """Write ``bam/{sample}.bam`` + ``bam/{sample}.bam.bai`` under ``out_dir`` for each sample.

    ``region`` is (contig, start, end), 1-based inclusive; fragments lie wholly inside it. Each BAM is
    coordinate-sorted with ``@HD SO:coordinate``, ``@SQ`` for every reference contig, one ``@RG``
    (``ID`` = ``SM`` = sample) and ``@PG``; reads carry MAPQ 60, ``{read_length}M`` CIGARs, TLEN,
    NM/MD/RG/MC tags, duplicates (flag 0x400, ``duplicate_rate`` of pairs) and, for
    ``unmapped_rate`` of pairs, one unmapped mate placed at its partner. A sample's BAM depends only
    on ``seed`` and the sample name (not on the other samples listed), byte for byte.

    Returns the BAM paths in the order of ``samples``.
    """
    reference = Path(reference)
    chrom, start, end = str(region[0]), int(region[1]), int(region[2])
    contigs = _contig_lengths(reference)
    lengths = dict(contigs)
    if chrom not in lengths:
        raise ConfigError(f"region contig {chrom!r} is not in the reference", path=reference)
    if not 1 <= start <= end <= lengths[chrom]:
        raise ConfigError(f"region {chrom}:{start}-{end} is outside the contig (length {lengths[chrom]})")
    region_len = end - start + 1
    if region_len < insert_mean + 6 * insert_sd or read_length < 20 or insert_mean < read_length:
        raise ConfigError(
            f"region {chrom}:{start}-{end} too short for {insert_mean}-bp inserts of {read_length}-bp reads"
        )
    ref_codes = read_fasta_region(reference, chrom, start - 1, end)
    all_samples, positions, ref, alt, hap = load_true_haplotypes(haplotypes, chrom)
    in_region = (positions >= start) & (positions <= end)
    offsets = positions[in_region] - start
    if (ref[in_region] != ref_codes[offsets]).any():
        raise CohortflowError("REF alleles of the haplotypes do not match the reference", path=haplotypes)
    alt, hap = alt[in_region], hap[in_region]
    sample_index = {s: i for i, s in enumerate(all_samples)}
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": name, "LN": length} for name, length in contigs],
    }
    bam_dir = Path(out_dir) / "bam"
    bam_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in samples:
        if sample not in sample_index:
            raise ConfigError(f"sample {sample!r} is not among the simulated individuals", path=haplotypes)
        i = sample_index[sample]
        haplotype_seqs = np.stack([ref_codes.copy(), ref_codes.copy()])
        for h in range(2):
            carries = hap[:, 2 * i + h] == 1
            haplotype_seqs[h, offsets[carries]] = alt[carries]
        sample_header = dict(header)
        sample_header["RG"] = [{"ID": sample, "SM": sample, "LB": f"{sample}-lib1", "PL": "ILLUMINA"}]
        sample_header["PG"] = [{"ID": "cohortflow.demo.reads", "PN": "cohortflow.demo.reads.simulate_reads"}]
        rng = np.random.default_rng([seed, zlib.crc32(f"reads:{sample}".encode())])
        path = bam_dir / f"{sample}.bam"
        _write_sample_bam(
            path,
            sample=sample,
            header=sample_header,
            chrom=chrom,
            region_start0=start - 1,
            ref_codes=ref_codes,
            haplotype_seqs=haplotype_seqs,
            coverage=coverage,
            read_length=read_length,
            insert_mean=insert_mean,
            insert_sd=insert_sd,
            error_rate=error_rate,
            duplicate_rate=duplicate_rate,
            unmapped_rate=unmapped_rate,
            rng=rng,
        )
        paths.append(path)
    return paths


def _write_sample_bam(
    path: Path,
    *,
    sample: str,
    header: dict,
    chrom: str,
    region_start0: int,
    ref_codes: np.ndarray,
    haplotype_seqs: np.ndarray,
    coverage: float,
    read_length: int,
    insert_mean: float,
    insert_sd: float,
    error_rate: float,
    duplicate_rate: float,
    unmapped_rate: float,
    rng: np.random.Generator,
) -> None:
    region_len = len(ref_codes)
    n_pairs = max(1, int(round(coverage * region_len / (2 * read_length))))
    n_dup = int(round(duplicate_rate * n_pairs))
    n_orig = n_pairs - n_dup
    frag_len = np.rint(rng.normal(insert_mean, insert_sd, n_orig))
    frag_len = np.clip(frag_len, read_length + 1, region_len).astype(np.int64)
    frag_start = (rng.random(n_orig) * (region_len - frag_len + 1)).astype(np.int64)
    which_hap = rng.integers(0, 2, n_orig)
    read1_left = rng.random(n_orig) < 0.5
    # Duplicates: extra copies of random original fragments (same molecule, sequenced again).
    source = rng.integers(0, n_orig, n_dup)
    frag_len = np.concatenate([frag_len, frag_len[source]])
    frag_start = np.concatenate([frag_start, frag_start[source]])
    which_hap = np.concatenate([which_hap, which_hap[source]])
    read1_left = np.concatenate([read1_left, read1_left[source]])
    is_dup = np.arange(n_pairs) >= n_orig
    # One mate unmapped for a few non-duplicate pairs; column 0 = left read, 1 = right read.
    broken = (rng.random(n_pairs) < unmapped_rate) & ~is_dup
    unmapped = np.zeros((n_pairs, 2), dtype=bool)
    unmapped[broken, rng.integers(0, 2, int(broken.sum()))] = True

    read_start = np.stack([frag_start, frag_start + frag_len - read_length], axis=1)  # (pairs, 2), region offsets
    cols = read_start[:, :, None] + np.arange(read_length)
    seqs = haplotype_seqs[which_hap[:, None, None], cols]
    errors = rng.random(seqs.shape) < error_rate
    seqs[errors] = (seqs[errors] + rng.integers(1, 4, int(errors.sum()))) % 4
    quals = rng.integers(30, 41, seqs.shape).astype(np.uint8)
    quals[errors] = rng.integers(5, 21, int(errors.sum()))
    n_unmapped = int(unmapped.sum())
    seqs[unmapped] = rng.integers(0, 4, (n_unmapped, read_length))  # unmappable junk
    mismatch = seqs != ref_codes[cols]
    letters = _LETTERS[seqs]

    # Coordinate sort: unmapped mates sit at their partner's position (SAM convention).
    placed = np.where(unmapped, read_start[:, ::-1], read_start) + region_start0
    pair_ids = np.repeat(np.arange(n_pairs), 2)
    sides = np.tile([0, 1], n_pairs)
    order = np.lexsort((sides, pair_ids, placed.ravel()))
    tid = [d["SN"] for d in header["SQ"]].index(chrom)
    ref_letters = _LETTERS[ref_codes].tobytes()
    cigar = [(0, read_length)]
    cigar_text = f"{read_length}M"
    with atomic_path(path) as tmp:
        with pysam.AlignmentFile(str(tmp), "wb", header=header) as bam:
            for flat in order:
                p, side = int(pair_ids[flat]), int(sides[flat])
                mate = 1 - side
                is_read1 = (side == 0) == bool(read1_left[p])
                seg = pysam.AlignedSegment(bam.header)
                seg.query_name = f"{sample}.{p + 1:07d}"
                flag = _FLAG_PAIRED | (_FLAG_READ1 if is_read1 else _FLAG_READ2)
                if is_dup[p]:
                    flag |= _FLAG_DUPLICATE
                seg.reference_id = tid
                seg.next_reference_id = tid
                if unmapped[p, side]:
                    flag |= _FLAG_UNMAPPED | (_FLAG_MATE_REVERSE if mate == 1 else 0)
                    seg.reference_start = int(placed[p, side])
                    seg.next_reference_start = int(placed[p, side])
                    seg.mapping_quality = 0
                elif unmapped[p, mate]:
                    flag |= _FLAG_MATE_UNMAPPED | (_FLAG_REVERSE if side == 1 else 0)
                    seg.reference_start = int(placed[p, side])
                    seg.next_reference_start = int(placed[p, side])
                    seg.mapping_quality = 60
                    seg.cigartuples = cigar
                else:
                    flag |= _FLAG_PROPER | (_FLAG_REVERSE if side == 1 else _FLAG_MATE_REVERSE)
                    seg.reference_start = int(placed[p, side])
                    seg.next_reference_start = int(placed[p, mate])
                    seg.mapping_quality = 60
                    seg.cigartuples = cigar
                    seg.template_length = int(frag_len[p]) if side == 0 else -int(frag_len[p])
                seg.flag = flag
                seg.query_sequence = letters[p, side].tobytes().decode()
                seg.query_qualities = array("B", quals[p, side].tobytes())
                tags: list[tuple[str, object]] = []
                if not unmapped[p, side]:
                    positions = np.flatnonzero(mismatch[p, side])
                    offset = int(read_start[p, side])
                    md = _md_tag(positions, ref_letters[offset : offset + read_length], read_length)
                    tags += [("NM", len(positions)), ("MD", md)]
                if not unmapped[p, mate]:
                    tags.append(("MC", cigar_text))
                tags.append(("RG", sample))
                seg.set_tags(tags)
                bam.write(seg)
        pysam.index(str(tmp), f"{tmp}.bai")
        os.replace(f"{tmp}.bai", f"{path}.bai")
