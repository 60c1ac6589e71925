"""Simulated paired-end reads (coordinate-sorted BAM) from demo individuals' own haplotypes.

:func:`simulate_reads` places read pairs uniformly over one autosomal region and, optionally, over
windows around common SNPs genome-wide (a SNP panel), one X window and one Y window. Each autosomal
pair is drawn from one of the individual's two true haplotypes (``genotypes/true_haplotypes.npz``
written by :func:`cohortflow.demo.genome.simulate_genotypes`), so a variant caller run on the BAM
should recover that individual's true genotypes there. X and Y reads copy the reference (the demo
has no sex-chromosome variants) at the depth of the individual's sex. One individual can be
contaminated: a fraction of its autosomal fragments come from another individual's haplotypes.
Reads are reported as already aligned (the simulated truth), with substitution errors, marked
duplicates and a few unmapped mates.

:func:`write_alignment_targets` writes the regions the reads cover (BED) and
:func:`write_alignment_truth` the planted answers of the demo's alignment sample sheet (sex of each
BAM's individual, swapped rows, the contaminated sample), for the alignment QC's known-answer checks.
"""

from __future__ import annotations

import bisect
import os
import zlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from cohortflow.demo._files import read_fasta_region
from cohortflow.demo.genome import load_true_haplotypes
from cohortflow.errors import CohortflowError, ConfigError
from cohortflow.io.atomic import atomic_open, atomic_path, write_json_atomic

_FLAG_PAIRED, _FLAG_PROPER, _FLAG_UNMAPPED, _FLAG_MATE_UNMAPPED = 0x1, 0x2, 0x4, 0x8
_FLAG_REVERSE, _FLAG_MATE_REVERSE, _FLAG_READ1, _FLAG_READ2, _FLAG_DUPLICATE = 0x10, 0x20, 0x40, 0x80, 0x400
_LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)
_SEX_CODES = {1: "M", 2: "F"}  # samples.tsv: 1 = male, 2 = female

Region = tuple[str, int, int]  # (contig, start, end), 1-based inclusive


def parse_region(text: str) -> Region:
    """``"chrom:start-end"`` (1-based inclusive) -> (chrom, start, end)."""
    try:
        chrom, span = text.rsplit(":", 1)
        start, end = (int(x) for x in span.split("-"))
    except ValueError:
        raise ConfigError(f"region {text!r} is not chrom:start-end") from None
    return chrom, start, end


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


def _check_region(region: Region, lengths: dict[str, int], reference: Path, *, read_length: int,
                  insert_mean: float, insert_sd: float) -> None:
    chrom, start, end = region
    if chrom not in lengths:
        raise ConfigError(f"region contig {chrom!r} is not in the reference", path=reference)
    if not 1 <= start <= end <= lengths[chrom]:
        raise ConfigError(f"region {chrom}:{start}-{end} is outside the contig (length {lengths[chrom]})")
    if end - start + 1 < insert_mean + 6 * insert_sd or read_length < 20 or insert_mean < read_length:
        raise ConfigError(
            f"region {chrom}:{start}-{end} too short for {insert_mean}-bp inserts of {read_length}-bp reads"
        )


def read_sexes(sample_info: str | Path) -> dict[str, str]:
    """IID -> "M"/"F" from the demo's ``samples.tsv`` (sex 1 = male, 2 = female)."""
    table = pd.read_csv(sample_info, sep="\t", dtype={"IID": str})
    if not {"IID", "sex"} <= set(table.columns):
        raise ConfigError("sample table needs IID and sex columns", path=sample_info)
    sexes = {}
    for line_no, (iid, sex) in enumerate(zip(table["IID"], table["sex"].astype(str)), start=2):
        if sex not in ("1", "2"):
            raise ConfigError(f"sex {sex!r} of {iid} is not 1 (male) or 2 (female)", path=sample_info, record=line_no)
        sexes[iid] = _SEX_CODES[int(sex)]
    return sexes


def site_windows(
    haplotypes: str | Path,
    *,
    contig_lengths: Mapping[str, int],
    n_windows: int,
    width: int,
    exclude: list[Region] = (),
    min_maf: float = 0.05,
    seed: int = 42,
) -> list[Region]:
    """Non-overlapping ``width``-bp windows centred on common SNPs (cohort MAF >= ``min_maf``).

    A random subset (deterministic in ``seed``) of ``n_windows`` windows over all simulated
    chromosomes, none overlapping ``exclude``, sorted by chromosome (haplotype file order) and start.
    The reads' SNP panel: the swap and contamination checks need many more common sites than one
    region of a few hundred kb holds (each site adds information; depth at a site adds little).
    """
    if n_windows <= 0:
        return []
    with np.load(haplotypes, allow_pickle=False) as data:
        chromosomes = [str(c) for c in data["chromosomes"]]
    half = width // 2
    candidates: list[tuple[int, int]] = []  # (chromosome index, window start)
    for k, chrom in enumerate(chromosomes):
        _, positions, _, _, hap = load_true_haplotypes(haplotypes, chrom)
        freq = hap.mean(axis=1)
        starts = positions[np.minimum(freq, 1 - freq) >= min_maf] - half
        starts = starts[(starts >= 1) & (starts + width - 1 <= contig_lengths.get(chrom, 0))]
        for c, s, e in exclude:
            if c == chrom:
                starts = starts[(starts + width - 1 < s) | (starts > e)]
        candidates += [(k, int(s)) for s in np.unique(starts)]
    rng = np.random.default_rng([seed, zlib.crc32(b"reads:site_windows")])
    taken: dict[int, list[int]] = {}
    chosen: list[tuple[int, int]] = []
    for j in rng.permutation(len(candidates)):
        k, start = candidates[j]
        starts = taken.setdefault(k, [])
        i = bisect.bisect_left(starts, start)
        if (i > 0 and start - starts[i - 1] < width) or (i < len(starts) and starts[i] - start < width):
            continue
        starts.insert(i, start)
        chosen.append((k, start))
        if len(chosen) == n_windows:
            break
    return [(chromosomes[k], s, s + width - 1) for k, s in sorted(chosen)]


@dataclass
class _Pairs:
    """Simulated read pairs of one region; column 0 = left read, 1 = right read."""

    tid: int
    frag_len: np.ndarray  # (pairs,)
    read_start: np.ndarray  # (pairs, 2) 0-based reference positions
    read1_left: np.ndarray  # (pairs,) bool
    is_dup: np.ndarray  # (pairs,) bool
    unmapped: np.ndarray  # (pairs, 2) bool
    letters: np.ndarray  # (pairs, 2, read_length) ASCII bases
    quals: np.ndarray  # (pairs, 2, read_length)
    ref_letters: np.ndarray  # (pairs, 2, read_length) ASCII reference bases under the read
    mismatch: np.ndarray  # (pairs, 2, read_length) bool


def _simulate_pairs(
    rng: np.random.Generator,
    *,
    tid: int,
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
    contamination: tuple[np.random.Generator, float] | None = None,
) -> _Pairs:
    """Pairs over ``ref_codes`` (one region) drawn from the rows of ``haplotype_seqs``: rows 0-1 the
    individual's haplotypes, rows 2-3 (with ``contamination`` = (rng, fraction)) the contaminant's."""
    region_len = len(ref_codes)
    n_pairs = max(1, int(round(coverage * region_len / (2 * read_length))))
    n_dup = int(round(duplicate_rate * n_pairs))
    n_orig = n_pairs - n_dup
    frag_len = np.rint(rng.normal(insert_mean, insert_sd, n_orig))
    frag_len = np.clip(frag_len, read_length + 1, region_len).astype(np.int64)
    frag_start = (rng.random(n_orig) * (region_len - frag_len + 1)).astype(np.int64)
    which_hap = rng.integers(0, 2, n_orig)
    if contamination is not None:
        # exactly round(fraction * n) original fragments (from their own stream, so the
        # individual's draws are those of an uncontaminated BAM) come from the contaminant
        contamination_rng, fraction = contamination
        n_foreign = int(round(fraction * n_orig))
        which_hap[contamination_rng.choice(n_orig, n_foreign, replace=False)] += 2
    read1_left = rng.random(n_orig) < 0.5
    # Duplicates: extra copies of random original fragments (same molecule, sequenced again).
    source = rng.integers(0, n_orig, n_dup)
    frag_len = np.concatenate([frag_len, frag_len[source]])
    frag_start = np.concatenate([frag_start, frag_start[source]])
    which_hap = np.concatenate([which_hap, which_hap[source]])
    read1_left = np.concatenate([read1_left, read1_left[source]])
    is_dup = np.arange(n_pairs) >= n_orig
    # One mate unmapped for a few non-duplicate pairs.
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
    ref_under = ref_codes[cols]
    return _Pairs(
        tid=tid,
        frag_len=frag_len,
        read_start=read_start + region_start0,
        read1_left=read1_left,
        is_dup=is_dup,
        unmapped=unmapped,
        letters=_LETTERS[seqs],
        quals=quals,
        ref_letters=_LETTERS[ref_under],
        mismatch=seqs != ref_under,
    )


def _individual_sequences(ref_codes: np.ndarray, positions: np.ndarray, alt: np.ndarray, hap: np.ndarray,
                          individuals: list[int]) -> np.ndarray:
    """(2 * len(individuals), contig length) base codes: each individual's two haplotypes."""
    seqs = np.tile(ref_codes, (2 * len(individuals), 1))
    for k, i in enumerate(individuals):
        for h in range(2):
            carries = hap[:, 2 * i + h] == 1
            seqs[2 * k + h, positions[carries] - 1] = alt[carries]
    return seqs


def simulate_reads(
    out_dir: str | Path,
    *,
    reference: str | Path,
    haplotypes: str | Path,
    samples: list[str],
    region: Region = ("1", 1_000_000, 1_200_000),
    coverage: float = 15.0,
    n_site_windows: int = 0,
    site_window_bp: int = 1000,
    x_region: Region | None = None,
    y_region: Region | None = None,
    sample_info: str | Path | None = None,
    y_female_fraction: float = 0.01,
    contamination: Mapping | None = None,
    read_length: int = 100,
    insert_mean: float = 300.0,
    insert_sd: float = 30.0,
    error_rate: float = 0.005,
    duplicate_rate: float = 0.02,
    unmapped_rate: float = 0.002,
    seed: int = 42,
) -> list[Path]:
    """Write ``bam/{sample}.bam`` + ``bam/{sample}.bam.bai`` under ``out_dir`` for each sample.

    Reads cover, at ``coverage``:

    * ``region`` (contig, start, end; 1-based inclusive; fragments lie wholly inside it) and the
      ``n_site_windows`` windows of ``site_window_bp`` around common SNPs of :func:`site_windows`
      (``exclude`` = ``region``), from the individual's two true haplotypes;
    * ``x_region`` and ``y_region`` (optional; they need ``sample_info``, the demo's ``samples.tsv``),
      copies of the reference: X at ``coverage`` for females and ``coverage / 2`` for males, Y at
      ``coverage / 2`` for males and ``y_female_fraction * coverage / 2`` for females (mis-mapped
      reads, as real female genomes show on Y).

    ``contamination`` = ``{"sample", "source", "fraction"}``: exactly ``round(fraction * n)`` of the
    ``n`` original autosomal fragments of ``sample`` come from ``source``'s haplotypes (its own
    read group, names and X/Y depth are unchanged).

    Each BAM is coordinate-sorted with ``@HD SO:coordinate``, ``@SQ`` for every reference contig,
    one ``@RG`` (``ID`` = ``SM`` = sample) and ``@PG``; reads carry MAPQ 60, ``{read_length}M``
    CIGARs, TLEN, NM/MD/RG/MC tags, duplicates (flag 0x400, ``duplicate_rate`` of pairs) and, for
    ``unmapped_rate`` of pairs, one unmapped mate placed at its partner. A sample's BAM depends only
    on ``seed``, the sample name and the settings above (not on the other samples listed), byte for
    byte; ``region``'s reads are those of a BAM without windows, X, Y or contamination.

    Returns the BAM paths in the order of ``samples``.
    """
    reference = Path(reference)
    region = (str(region[0]), int(region[1]), int(region[2]))
    contigs = _contig_lengths(reference)
    lengths = dict(contigs)
    tids = {name: t for t, (name, _) in enumerate(contigs)}
    shape = dict(read_length=read_length, insert_mean=insert_mean, insert_sd=insert_sd)
    _check_region(region, lengths, reference, **shape)
    sex_regions = [(name, r) for name, r in (("X", x_region), ("Y", y_region)) if r is not None]
    for _, r in sex_regions:
        _check_region(r, lengths, reference, **shape)
    if sex_regions and sample_info is None:
        raise ConfigError("X/Y reads need the sample table (sex)")
    sexes = read_sexes(sample_info) if sex_regions else {}
    windows = site_windows(haplotypes, contig_lengths=lengths, n_windows=n_site_windows, width=site_window_bp,
                           exclude=[region], seed=seed)
    if windows and site_window_bp < insert_mean + 6 * insert_sd:
        raise ConfigError(f"site windows of {site_window_bp} bp are too short for {insert_mean}-bp inserts")
    autosomal = [region, *windows]
    contaminant = None
    if contamination and float(contamination.get("fraction", 0)) > 0:
        contaminant = (str(contamination["sample"]), str(contamination["source"]), float(contamination["fraction"]))
        if not 0 < contaminant[2] < 1:
            raise ConfigError(f"contamination fraction {contaminant[2]} is not between 0 and 1")

    # Whole autosomes once: reference codes and the haplotype file, shared by all samples.
    by_chrom: dict[str, tuple] = {}
    all_samples: list[str] = []
    for chrom in dict.fromkeys(c for c, _, _ in autosomal):
        ref_codes = read_fasta_region(reference, chrom, 0, lengths[chrom])
        all_samples, positions, ref, alt, hap = load_true_haplotypes(haplotypes, chrom)
        if (ref != ref_codes[positions - 1]).any():
            raise CohortflowError("REF alleles of the haplotypes do not match the reference", path=haplotypes)
        by_chrom[chrom] = (ref_codes, positions, alt, hap)
    sex_refs = {name: read_fasta_region(reference, c, s - 1, e) for name, (c, s, e) in sex_regions}
    sample_index = {s: i for i, s in enumerate(all_samples)}
    if contaminant and contaminant[1] not in sample_index:
        raise ConfigError(f"contamination source {contaminant[1]!r} is not among the simulated individuals")

    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": name, "LN": length} for name, length in contigs],
    }
    bam_dir = Path(out_dir) / "bam"
    bam_dir.mkdir(parents=True, exist_ok=True)
    common = dict(read_length=read_length, insert_mean=insert_mean, insert_sd=insert_sd, error_rate=error_rate,
                  duplicate_rate=duplicate_rate, unmapped_rate=unmapped_rate)
    paths = []
    for sample in samples:
        if sample not in sample_index:
            raise ConfigError(f"sample {sample!r} is not among the simulated individuals", path=haplotypes)
        if sex_regions and sample not in sexes:
            raise ConfigError(f"sample {sample!r} has no sex in the sample table", path=sample_info)
        individuals = [sample_index[sample]]
        contaminated = contaminant is not None and contaminant[0] == sample
        if contaminated:
            individuals.append(sample_index[contaminant[1]])
        rng = np.random.default_rng([seed, zlib.crc32(f"reads:{sample}".encode())])
        pairs: list[_Pairs] = []
        for k, (chrom, start, end) in enumerate(autosomal):
            ref_codes, positions, alt, hap = by_chrom[chrom]
            in_region = (positions >= start) & (positions <= end)
            seqs = _individual_sequences(ref_codes[start - 1 : end], positions[in_region] - start + 1,
                                         alt[in_region], hap[in_region], individuals)
            # the first region keeps the sample's original stream; every other region has its own
            region_rng = rng if k == 0 else np.random.default_rng(
                [seed, zlib.crc32(f"reads:{sample}:{chrom}:{start}".encode())])
            mix = None
            if contaminated:
                mix = (np.random.default_rng([seed, zlib.crc32(f"contamination:{sample}:{chrom}:{start}".encode())]),
                       contaminant[2])
            pairs.append(_simulate_pairs(region_rng, tid=tids[chrom], region_start0=start - 1,
                                         ref_codes=ref_codes[start - 1 : end], haplotype_seqs=seqs,
                                         coverage=coverage, contamination=mix, **common))
        for name, (chrom, start, end) in sex_regions:
            if sexes[sample] == "M":
                depth = coverage / 2
            else:
                depth = coverage * y_female_fraction / 2 if name == "Y" else coverage
            if depth <= 0:
                continue
            ref_codes = sex_refs[name]
            pairs.append(_simulate_pairs(
                np.random.default_rng([seed, zlib.crc32(f"reads:{sample}:{chrom}:{start}".encode())]),
                tid=tids[chrom], region_start0=start - 1, ref_codes=ref_codes,
                haplotype_seqs=np.stack([ref_codes, ref_codes]), coverage=depth, **common))
        sample_header = dict(header)
        sample_header["RG"] = [{"ID": sample, "SM": sample, "LB": f"{sample}-lib1", "PL": "ILLUMINA"}]
        sample_header["PG"] = [{"ID": "cohortflow.demo.reads", "PN": "cohortflow.demo.reads.simulate_reads"}]
        path = bam_dir / f"{sample}.bam"
        _write_sample_bam(path, sample=sample, header=sample_header, pairs=pairs, read_length=read_length)
        paths.append(path)
    return paths


def _write_sample_bam(path: Path, *, sample: str, header: dict, pairs: list[_Pairs], read_length: int) -> None:
    frag_len = np.concatenate([p.frag_len for p in pairs])
    read_start = np.concatenate([p.read_start for p in pairs])
    read1_left = np.concatenate([p.read1_left for p in pairs])
    is_dup = np.concatenate([p.is_dup for p in pairs])
    unmapped = np.concatenate([p.unmapped for p in pairs])
    letters = np.concatenate([p.letters for p in pairs])
    quals = np.concatenate([p.quals for p in pairs])
    ref_letters = np.concatenate([p.ref_letters for p in pairs])
    mismatch = np.concatenate([p.mismatch for p in pairs])
    pair_tid = np.concatenate([np.full(len(p.frag_len), p.tid) for p in pairs])
    n_pairs = len(frag_len)

    # Coordinate sort: unmapped mates sit at their partner's position (SAM convention).
    placed = np.where(unmapped, read_start[:, ::-1], read_start)
    pair_ids = np.repeat(np.arange(n_pairs), 2)
    sides = np.tile([0, 1], n_pairs)
    order = np.lexsort((sides, pair_ids, placed.ravel(), pair_tid[pair_ids]))
    cigar = [(0, read_length)]
    cigar_text = f"{read_length}M"
    with atomic_path(path) as tmp:
        with pysam.AlignmentFile(str(tmp), "wb", header=header) as bam:
            for flat in order:
                p, side = int(pair_ids[flat]), int(sides[flat])
                mate = 1 - side
                tid = int(pair_tid[p])
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
                    md = _md_tag(positions, ref_letters[p, side].tobytes(), read_length)
                    tags += [("NM", len(positions)), ("MD", md)]
                if not unmapped[p, mate]:
                    tags.append(("MC", cigar_text))
                tags.append(("RG", sample))
                seg.set_tags(tags)
                bam.write(seg)
        pysam.index(str(tmp), f"{tmp}.bai")
        os.replace(f"{tmp}.bai", f"{path}.bai")


def write_alignment_targets(
    path: str | Path,
    *,
    reference: str | Path,
    haplotypes: str | Path,
    region: Region,
    n_site_windows: int = 0,
    site_window_bp: int = 1000,
    x_region: Region | None = None,
    y_region: Region | None = None,
    seed: int = 42,
) -> Path:
    """BED (0-based, half-open; ``chrom start end``) of every region :func:`simulate_reads` covers
    with the same settings, in reference contig order: the alignment QC's target regions."""
    lengths = _contig_lengths(Path(reference))
    order = {name: k for k, (name, _) in enumerate(lengths)}
    region = (str(region[0]), int(region[1]), int(region[2]))
    windows = site_windows(haplotypes, contig_lengths=dict(lengths), n_windows=n_site_windows,
                           width=site_window_bp, exclude=[region], seed=seed)
    regions = [region, *windows, *(r for r in (x_region, y_region) if r is not None)]
    for chrom, _, _ in regions:
        if chrom not in order:
            raise ConfigError(f"region contig {chrom!r} is not in the reference", path=reference)
    regions.sort(key=lambda r: (order[r[0]], r[1]))
    path = Path(path)
    with atomic_open(path) as fh:
        fh.writelines(f"{chrom}\t{start - 1}\t{end}\n" for chrom, start, end in regions)
    return path


_BAM_SUFFIXES = (".bam", ".cram")


def write_alignment_truth(
    path: str | Path,
    *,
    sheet: str | Path,
    sample_info: str | Path,
    contamination: Mapping | None = None,
    y_female_fraction: float = 0.01,
) -> dict:
    """The planted answers of a demo alignment sheet (``sample``, ``bam`` = ``.../{individual}.bam``).

    JSON keys: ``individual`` (sheet sample -> individual whose reads its BAM holds), ``sex`` (that
    individual's sex, "M"/"F": what the reads show), ``reported_sex`` (the sheet sample's own sex in
    ``samples.tsv``), ``swapped`` (sorted sheet samples whose BAM holds another individual),
    ``contaminated`` (``{"sample": sheet sample, "individual", "source", "fraction"}`` or null when
    no listed BAM is contaminated) and ``expected_depth_ratio`` (X and Y depth over autosomal depth
    by sex, as simulated).
    """
    sexes = read_sexes(sample_info)
    table = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False)
    if not {"sample", "bam"} <= set(table.columns):
        raise ConfigError("alignment sheet needs sample and bam columns", path=sheet)
    individual = {}
    for line_no, (sample, bam) in enumerate(zip(table["sample"], table["bam"]), start=2):
        name = Path(bam).name
        stem = next((name[: -len(s)] for s in _BAM_SUFFIXES if name.endswith(s)), name)
        if stem not in sexes:
            raise ConfigError(f"BAM {bam!r} is not named after a demo individual", path=sheet, record=line_no)
        if sample not in sexes:
            raise ConfigError(f"sample {sample!r} is not a demo individual", path=sheet, record=line_no)
        individual[sample] = stem
    contaminated = None
    if contamination and float(contamination.get("fraction", 0)) > 0:
        listed = [s for s, i in individual.items() if i == contamination["sample"]]
        if str(contamination["source"]) in individual.values():
            raise ConfigError(f"contamination source {contamination['source']!r} has a BAM in the sheet", path=sheet)
        if listed:
            contaminated = {"sample": listed[0], "individual": str(contamination["sample"]),
                            "source": str(contamination["source"]), "fraction": float(contamination["fraction"])}
    truth = {
        "generator": "cohortflow.demo.reads",
        "sheet": str(sheet),
        "individual": individual,
        "sex": {s: sexes[i] for s, i in individual.items()},
        "reported_sex": {s: sexes[s] for s in individual},
        "swapped": sorted(s for s, i in individual.items() if s != i),
        "contaminated": contaminated,
        "expected_depth_ratio": {
            "F": {"X": 1.0, "Y": y_female_fraction / 2},
            "M": {"X": 0.5, "Y": 0.5},
        },
    }
    write_json_atomic(path, truth)
    return truth
