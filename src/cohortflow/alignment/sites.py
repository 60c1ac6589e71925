"""Population site lists for contamination and sample-identity checks on alignment files.

A site list is a VCF/BCF of biallelic SNPs with an alternate-allele frequency (what VerifyBamID's
``--SVDPrefix``/``--VCF`` resources and the 1000 Genomes / gnomAD common-SNP panels provide).
:func:`read_sites` turns it into :class:`Sites` arrays the counting kernel
(:mod:`cohortflow.alignment.sites_kernels`) consumes; :func:`sites_from_plink` writes such a VCF from
a cohort's own PLINK genotypes; :func:`index_sites` lines sites up with a BAM header's contigs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import atomic_path

# BAM 4-bit base codes ("=ACMGRSVTWYHKDBN" order): only A, C, G and T occur at SNP sites.
NT16 = {"A": 1, "C": 2, "G": 4, "T": 8}
NT16_LETTER = {code: letter for letter, code in NT16.items()}
# The reasons a record can be left out; every reason appears in the summary, 0 when unused.
DROP_REASONS = ("not_biallelic_snp", "duplicate_position", "af_missing", "af_monomorphic", "other_contig")


@dataclass
class Sites:
    """Biallelic SNP sites, sorted by contig (in file order) then position.

    ``contig`` indexes ``contig_names``; ``pos`` is 0-based; ``ref``/``alt`` are BAM nt16 codes
    (A=1, C=2, G=4, T=8); ``af`` is the frequency of ``alt``. ``summary`` says how many records
    were read, kept, dropped (by reason) and where each kept frequency came from.
    """

    contig_names: tuple[str, ...]
    contig: np.ndarray  # int32
    pos: np.ndarray  # int64, 0-based
    ref: np.ndarray  # uint8 nt16
    alt: np.ndarray  # uint8 nt16
    af: np.ndarray  # float64
    summary: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pos.size)

    @property
    def chrom(self) -> np.ndarray:
        """Contig name of each site (object array)."""
        return np.asarray(self.contig_names, dtype=object)[self.contig] if len(self) else np.empty(0, dtype=object)


def _info_number(value) -> float | None:
    """A single-value INFO field as cyvcf2 returns it (scalar, 1-tuple or None)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        if len(value) != 1:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_sites(path: str | Path, *, contigs: Iterable[str] | None = None) -> Sites:
    """Read biallelic SNP sites and their alternate-allele frequencies from a VCF/BCF.

    The frequency comes from INFO/AF, else INFO/AC / INFO/AN, else the called alleles of the
    genotypes. Left out, and counted by reason in ``Sites.summary["dropped"]``: records that are not
    biallelic SNPs (REF and ALT one of A, C, G, T), a second record at a position already kept,
    sites whose frequency is missing or 0 or 1, and sites on contigs not in ``contigs`` (when given).
    The file must be sorted (each contig in one block, positions non-decreasing); a malformed or
    unsorted file raises one :class:`InputFormatError` naming the file and record.
    """
    import cyvcf2

    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    keep_contigs = None if contigs is None else set(contigs)
    try:
        vcf = cyvcf2.VCF(str(path), lazy=True, threads=1)
    except Exception as exc:  # cyvcf2 raises OSError or a bare Exception
        raise InputFormatError(f"not a VCF/BCF file ({_one_line(exc)})", path=path) from None

    names: list[str] = []
    contig_ix, positions, refs, alts, afs = [], [], [], [], []
    dropped = dict.fromkeys(DROP_REASONS, 0)
    af_source = {"INFO/AF": 0, "INFO/AC,AN": 0, "genotypes": 0}
    seen_contigs: set[str] = set()
    current, last_pos, last_kept_pos = None, -1, -1
    n_records = 0
    iterator = iter(vcf)
    try:
        while True:
            try:
                rec = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                where = f"record {n_records + 1}" + (f" (after {current}:{last_pos + 1})" if current else "")
                raise InputFormatError(f"malformed VCF record ({_one_line(exc)})", path=path,
                                       record=where) from None
            n_records += 1
            chrom, start = rec.CHROM, rec.start
            if chrom != current:
                if chrom in seen_contigs:
                    raise InputFormatError(f"file not sorted: contig {chrom} appears again after {current}",
                                           path=path, record=f"record {n_records} ({chrom}:{start + 1})")
                seen_contigs.add(chrom)
                current, last_pos, last_kept_pos = chrom, -1, -1
            elif start < last_pos:
                raise InputFormatError(f"file not sorted: position {start + 1} after {last_pos + 1}",
                                       path=path, record=f"record {n_records} ({chrom}:{start + 1})")
            last_pos = start
            if keep_contigs is not None and chrom not in keep_contigs:
                dropped["other_contig"] += 1
                continue
            ref, alt = rec.REF.upper(), [a.upper() for a in rec.ALT]
            if len(alt) != 1 or ref not in NT16 or alt[0] not in NT16 or ref == alt[0]:
                dropped["not_biallelic_snp"] += 1
                continue
            if start == last_kept_pos:
                dropped["duplicate_position"] += 1
                continue
            af, source = _site_af(rec)
            if af is None or not np.isfinite(af):
                dropped["af_missing"] += 1
                continue
            if af < 0.0 or af > 1.0:
                raise InputFormatError(f"alternate-allele frequency {af} outside [0, 1]", path=path,
                                       record=f"record {n_records} ({chrom}:{start + 1})")
            if af == 0.0 or af == 1.0:
                dropped["af_monomorphic"] += 1
                continue
            af_source[source] += 1
            if not names or names[-1] != chrom:
                names.append(chrom)
            contig_ix.append(len(names) - 1)
            positions.append(start)
            refs.append(NT16[ref])
            alts.append(NT16[alt[0]])
            afs.append(af)
            last_kept_pos = start
    finally:
        vcf.close()
    summary = {"n_records": n_records, "n_sites": len(positions), "dropped": dropped, "af_source": af_source}
    return Sites(contig_names=tuple(names), contig=np.asarray(contig_ix, dtype=np.int32),
                 pos=np.asarray(positions, dtype=np.int64), ref=np.asarray(refs, dtype=np.uint8),
                 alt=np.asarray(alts, dtype=np.uint8), af=np.asarray(afs, dtype=np.float64), summary=summary)


def _site_af(rec) -> tuple[float | None, str]:
    af = _info_number(rec.INFO.get("AF"))
    if af is not None:
        return af, "INFO/AF"
    ac, an = _info_number(rec.INFO.get("AC")), _info_number(rec.INFO.get("AN"))
    if ac is not None and an is not None and an > 0:
        return ac / an, "INFO/AC,AN"
    gt = rec.genotype
    if gt is None:
        return None, "genotypes"
    alleles = gt.array()[:, :-1]  # last column is the phase flag; -1 missing, -2 ploidy padding
    called = alleles[alleles >= 0]
    if called.size == 0:
        return None, "genotypes"
    return float(np.count_nonzero(called == 1)) / called.size, "genotypes"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@dataclass
class SiteIndex:
    """Sites reordered to a BAM header's contig order, as the counting kernel reads them.

    Sites of BAM contig ``tid`` are rows ``tid_start[tid]:tid_start[tid + 1]`` of ``pos``/``ref``/
    ``alt``; ``row[j]`` is the row of site ``j`` in the :class:`Sites` it came from (counts land
    there). Sites on contigs the BAM lacks are left out (``n_missing_contig``).
    """

    pos: np.ndarray  # int64
    ref: np.ndarray  # uint8
    alt: np.ndarray  # uint8
    row: np.ndarray  # int64
    tid_start: np.ndarray  # int64, len(ref_names) + 1
    n_missing_contig: int


def index_sites(sites: Sites, ref_names: Sequence[str]) -> SiteIndex:
    """Line ``sites`` up with the BAM header's reference names (``@SQ`` order)."""
    tid_of_name = {name: tid for tid, name in enumerate(ref_names)}
    site_tid = np.array([tid_of_name.get(name, -1) for name in sites.contig_names], dtype=np.int64)
    tid = site_tid[sites.contig] if len(sites) else np.empty(0, dtype=np.int64)
    present = tid >= 0
    rows = np.flatnonzero(present)
    # sites are sorted by position within a contig, so a stable sort on tid keeps that order
    rows = rows[np.argsort(tid[rows], kind="stable")]
    counts = np.bincount(tid[rows], minlength=len(ref_names)) if len(ref_names) else np.zeros(0, dtype=np.int64)
    tid_start = np.zeros(len(ref_names) + 1, dtype=np.int64)
    np.cumsum(counts, out=tid_start[1:])
    return SiteIndex(pos=np.ascontiguousarray(sites.pos[rows]), ref=np.ascontiguousarray(sites.ref[rows]),
                     alt=np.ascontiguousarray(sites.alt[rows]), row=rows.astype(np.int64),
                     tid_start=tid_start, n_missing_contig=int(np.count_nonzero(~present)))


def _letters(values) -> list[str]:
    """Allele letters from letters or nt16 codes."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        try:
            return [NT16_LETTER[int(v)] for v in arr]
        except KeyError as exc:
            raise CohortflowError(f"not an nt16 code of A, C, G or T: {exc.args[0]}") from None
    letters = [str(v).upper() for v in arr]
    for letter in letters:
        if letter not in NT16:
            raise CohortflowError(f"not a single-base allele (A, C, G or T): {letter!r}")
    return letters


def write_sites_vcf(out: str | Path, chrom, pos, ref, alt, af) -> Path:
    """Write a sites-only VCF (``##INFO`` AF), bgzipped, with a tabix index ``out + '.tbi'``.

    ``pos`` is the 1-based VCF POS; ``ref``/``alt`` are letters (A, C, G, T) or nt16 codes; ``af``
    the alternate-allele frequency (written with 6 significant digits). Records are sorted by contig
    (in order of first appearance) then position. Both files are written atomically and the same
    input gives byte-identical files.
    """
    import pysam

    out = Path(out)
    chrom = [str(c) for c in chrom]
    pos = np.asarray(pos, dtype=np.int64)
    af = np.asarray(af, dtype=np.float64)
    refs, alts = _letters(ref), _letters(alt)
    n = len(chrom)
    if not (pos.size == af.size == len(refs) == len(alts) == n):
        raise CohortflowError("chrom, pos, ref, alt and af differ in length")
    if n and (pos.min() < 1 or not np.all((af >= 0) & (af <= 1))):
        raise CohortflowError("positions must be >= 1 and frequencies in [0, 1]")
    order_of_contig: dict[str, int] = {}
    for c in chrom:
        order_of_contig.setdefault(c, len(order_of_contig))
    contig_rank = np.array([order_of_contig[c] for c in chrom], dtype=np.int64)
    order = np.lexsort((pos, contig_rank))
    lines = ["##fileformat=VCFv4.2\n"]
    lines += [f"##contig=<ID={c}>\n" for c in order_of_contig]
    lines.append('##INFO=<ID=AF,Number=A,Type=Float,Description="Alternate allele frequency">\n')
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    lines += [f"{chrom[i]}\t{pos[i]}\t.\t{refs[i]}\t{alts[i]}\t.\t.\tAF={af[i]:.6g}\n" for i in order]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmpdir:
        plain = Path(tmpdir) / "sites.vcf"
        plain.write_text("".join(lines), encoding="utf-8")
        gz = Path(tmpdir) / "sites.vcf.gz"
        pysam.tabix_compress(str(plain), str(gz), force=True)
        pysam.tabix_index(str(gz), preset="vcf", force=True)
        # data first, then its index, so an index never sits beside older data
        with atomic_path(out) as tmp:
            os.replace(gz, tmp)
        with atomic_path(f"{out}.tbi") as tmp:
            os.replace(f"{gz}.tbi", tmp)
    return out


def read_bed_regions(path: str | Path) -> dict[str, np.ndarray]:
    """BED regions per contig as (n, 2) int64 [start, end) arrays, sorted and merged."""
    path = Path(path)
    by_contig: dict[str, list[tuple[int, int]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                start, end = int(fields[1]), int(fields[2])
            except (IndexError, ValueError):
                raise InputFormatError("not a BED line (chrom, start, end)", path=path, record=f"line {line_no}") from None
            if start < 0 or end < start:
                raise InputFormatError(f"bad interval {start}-{end}", path=path, record=f"line {line_no}")
            by_contig.setdefault(fields[0], []).append((start, end))
    merged = {}
    for contig, intervals in by_contig.items():
        intervals.sort()
        out: list[list[int]] = []
        for start, end in intervals:
            if out and start <= out[-1][1]:
                out[-1][1] = max(out[-1][1], end)
            else:
                out.append([start, end])
        merged[contig] = np.asarray(out, dtype=np.int64).reshape(-1, 2)
    return merged


def _in_regions(pos0: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Whether each 0-based position lies in one of the sorted, merged [start, end) intervals."""
    if intervals.size == 0:
        return np.zeros(pos0.size, dtype=bool)
    k = np.searchsorted(intervals[:, 0], pos0, side="right") - 1
    ok = k >= 0
    ok[ok] = pos0[ok] < intervals[k[ok], 1]
    return ok


def sites_from_plink(bed_prefix: str | Path, *, out: str | Path, min_maf: float = 0.05,
                     regions: str | Path | None = None, block_size: int = 4096) -> dict:
    """Write a sites VCF (:func:`write_sites_vcf`) from a PLINK .bed/.bim/.fam.

    Keeps biallelic SNPs (one-letter A/C/G/T alleles) with minor-allele frequency >= ``min_maf``
    among called genotypes, optionally only inside the BED ``regions``. The alternate allele is
    .bim A1 (the counted allele, as :mod:`cohortflow.io.plink` and plink2 use it), the "reference"
    allele A2: PLINK does not record which allele is the reference base, and the contamination and
    concordance models only need the frequency of the allele called ``alt``. .bim positions are
    1-based and written as they are. Returns a summary dict (variants read, kept, dropped by reason).
    """
    from cohortflow.io.plink import open_bed

    if not 0.0 <= min_maf <= 0.5:
        raise CohortflowError(f"min_maf must lie in [0, 0.5], got {min_maf}")
    bed = open_bed(bed_prefix)
    bim = bed.bim
    a1 = bim["a1"].astype(str).str.upper().to_numpy()
    a2 = bim["a2"].astype(str).str.upper().to_numpy()
    letters = np.array(list(NT16))
    snp = np.isin(a1, letters) & np.isin(a2, letters) & (a1 != a2)
    in_region = np.ones(bed.n_variants, dtype=bool)
    if regions is not None:
        region_map = read_bed_regions(regions)
        chroms = bim["chrom"].astype(str).to_numpy()
        pos0 = bim["pos"].to_numpy(dtype=np.int64) - 1
        in_region[:] = False
        for contig, intervals in region_map.items():
            on = chroms == contig
            in_region[on] = _in_regions(pos0[on], intervals)
    alt_count = np.zeros(bed.n_variants, dtype=np.int64)
    called = np.zeros(bed.n_variants, dtype=np.int64)
    for start, geno in bed.iter_blocks(block_size):
        ok = geno >= 0
        alt_count[start:start + geno.shape[0]] = np.where(ok, geno, 0).sum(axis=1, dtype=np.int64)
        called[start:start + geno.shape[0]] = 2 * ok.sum(axis=1, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        af = np.where(called > 0, alt_count / np.maximum(called, 1), np.nan)
        # from the integer counts, so that e.g. 9/10 has MAF exactly 1/10
        maf = np.minimum(alt_count, called - alt_count) / np.maximum(called, 1)
    keep_snp = snp & in_region
    has_af = keep_snp & np.isfinite(af)
    keep = has_af & (maf >= min_maf) & (maf > 0)
    rows = np.flatnonzero(keep)
    write_sites_vcf(out, bim["chrom"].astype(str).to_numpy()[rows], bim["pos"].to_numpy()[rows],
                    a2[rows], a1[rows], af[rows])
    return {"n_variants": int(bed.n_variants), "n_sites": int(rows.size),
            "dropped": {"not_biallelic_snp": int(np.count_nonzero(~snp)),
                        "outside_regions": int(np.count_nonzero(snp & ~in_region)),
                        "no_called_genotypes": int(np.count_nonzero(keep_snp & ~np.isfinite(af))),
                        "below_min_maf": int(np.count_nonzero(has_af & ~((maf >= min_maf) & (maf > 0))))}}


class SiteCounter:
    """Ref / alt / other base counts at ``sites`` over one coordinate-sorted alignment file.

    Feed the file's record batches in order to :meth:`add`; ``counts`` (int32, one row per site of
    ``sites``, columns ref, alt, other) fills as they come. Holds the kernel's between-batch state
    (``next_site``, ``last_read``; see :func:`cohortflow.alignment.sites_kernels.count_site_bases`).
    """

    def __init__(self, sites: Sites, ref_names: Sequence[str], *, min_mapq: int = 20, min_baseq: int = 20,
                 path: str | Path | None = None):
        from cohortflow.alignment.sites_kernels import new_site_state

        self.index = index_sites(sites, ref_names)
        self.next_site, self.last_read = new_site_state(self.index.tid_start)
        self.counts = np.zeros((len(sites), 3), dtype=np.int32)
        self.min_mapq, self.min_baseq = int(min_mapq), int(min_baseq)
        self.path = path
        self.n_records = 0

    def add(self, buf: np.ndarray, rec_off: np.ndarray, n_records: int | None = None) -> None:
        """Count the batch's first ``n_records`` records (all of ``rec_off`` by default)."""
        from cohortflow.alignment.sites_kernels import STATUS_OK, STATUS_UNSORTED, count_site_bases

        n = rec_off.shape[0] if n_records is None else int(n_records)
        ix = self.index
        status, bad = count_site_bases(buf, rec_off, n, ix.pos, ix.ref, ix.alt, ix.row, ix.tid_start,
                                       self.next_site, self.last_read, self.counts, self.min_mapq,
                                       self.min_baseq)
        if status != STATUS_OK:
            problem = ("alignments not coordinate-sorted" if status == STATUS_UNSORTED
                       else "malformed BAM record (runs past its block or names an undeclared contig)")
            raise InputFormatError(problem, path=self.path, record=f"record {self.n_records + int(bad) + 1}")
        self.n_records += n
