"""VCF/BCF ingestion into PLINK 1 binary filesets, plus shard merging.

Conventions (matching ``bcftools norm -m- | plink2 --vcf --vcf-half-call h --make-bed``):

- a record with k ALT alleles becomes k biallelic variants; for the k-th one the genotype is the
  count of that ALT allele and every other ALT counts as REF (bcftools sets them to 0);
- .bim column 5 (A1) = ALT, column 6 (A2) = REF; chromosome names are kept as in the VCF;
- haploid calls (``1`` on male chrX) are coded homozygous (0 or 2 copies);
- half-calls (``0/.``) are read as haploid (``half_call="haploid"``, plink2 ``--vcf-half-call h``)
  or as missing (``half_call="missing"``, plink2 ``--vcf-half-call m``);
- symbolic (``<DEL>``, ``<*>``), spanning-deletion (``*``) and missing (``.``) ALT alleles are kept
  as allele codes, as plink2 keeps them; a record without ALT becomes one variant with A1 ``.``;
- a record without a GT field gives all-missing genotypes (plink2 does the same); records with a
  genotype of ploidy above 2 are skipped and counted in the log (plink2 cannot represent them);
- variant IDs: the VCF ID, replaced by ``chrom:pos:ref:alt`` when it is missing (``.``) or occurs
  more than once in the output (split multi-allelics share their ID); an ID that is still not
  unique after that (an exact duplicate record) gets ``:dup2``, ``:dup3``... on later copies.

``record`` in the variant table is the 1-based number of the record among its input file's
records on the same chromosome, so ingesting files one by one, or one file contig by contig
(``region`` = a whole chromosome), and merging the shards gives the same output as ingesting
everything together.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import atomic_path, write_text_atomic
from cohortflow.io.plink import BED_MAGIC, encode_bed_block, open_bed, write_fam
from cohortflow.io.tsv import write_tsv
from cohortflow.io.vcf_text import NotFastText, vcf_text_batches
from cohortflow.threads import thread_limit
from cohortflow.variants import vcf_kernels
from cohortflow.variants.kernels import gt_alt_dosage

VARIANT_TABLE_COLUMNS = ["chrom", "pos", "id", "vcf_id", "ref", "alt", "record", "split_index",
                         "call_rate", "alt_count", "ref_count", "n_called"]

_REGION_RE = re.compile(r"^(?P<chrom>[^:]+)(?::(?P<start>[\d,]+)(?:-(?P<end>[\d,]+))?)?$")


def _p(prefix: str | Path, ext: str) -> Path:
    return Path(f"{prefix}{ext}")


def _parse_region(region: str) -> tuple[str, int, int]:
    match = _REGION_RE.match(region.strip())
    if match is None:
        raise CohortflowError(f"region {region!r} is not CHROM, CHROM:START or CHROM:START-END")
    start = int(match["start"].replace(",", "")) if match["start"] else 1
    end = int(match["end"].replace(",", "")) if match["end"] else 2**62
    if end < start:
        raise CohortflowError(f"region {region!r} ends before it starts")
    return match["chrom"], start, end


def _has_index(path: Path) -> bool:
    return any(Path(f"{path}{ext}").exists() for ext in (".tbi", ".csi"))


class _HtslibMessages:
    """What htslib wrote to stderr (file descriptor 2) inside :func:`_htslib_messages`."""

    def __init__(self, fh):
        self._fh = fh

    def text(self) -> str:
        self._fh.seek(0)
        return self._fh.read().decode("utf-8", errors="replace")

    def last_error(self) -> str | None:
        """The last ``[E::...]`` message without its function tag, e.g. "Couldn't read GT data"."""
        errors = [line for line in self.text().splitlines() if line.startswith("[E::")]
        return errors[-1].split("] ", 1)[-1].strip() if errors else None


@contextmanager
def _htslib_messages():
    """Capture htslib's stderr (it writes from C, around Python's sys.stderr) so that a parse
    failure becomes one error line quoting htslib; after a success its warnings are passed on to
    stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        messages = _HtslibMessages(tmp)
        failed = False
        try:
            yield messages
        except BaseException:
            failed = True  # the error raised quotes htslib: do not print its messages again
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            text = messages.text()
            if text and not failed:
                sys.stderr.write(text)


def _htslib_problem(messages: _HtslibMessages, exc: BaseException) -> str:
    detail = messages.last_error()
    return f"htslib: {detail}" if detail else f"{type(exc).__name__}: {exc}"


def _open_vcf(path: Path):
    import cyvcf2

    if not path.exists():
        raise InputFormatError("file not found", path=path)
    with _htslib_messages() as messages:
        try:
            return cyvcf2.VCF(str(path))
        except Exception:  # cyvcf2 raises a bare Exception for an unparsable (e.g. truncated) header
            detail = messages.last_error()
            raise InputFormatError("not a readable VCF/BCF file" + (f" (htslib: {detail})" if detail else ""),
                                   path=path, record="header") from None


def _check_region_contig(paths: list[Path], vcfs: list, region: str) -> None:
    """A region whose contig no file knows (index or ##contig lines) is a naming mistake (``chr1``
    vs ``1``), not an empty region: one error naming the file and its contigs. Files that declare
    no contigs at all are not judged."""
    chrom = _parse_region(region)[0]
    known: list[tuple[Path, list[str]]] = []
    with _htslib_messages():  # seqnames looks for an index: no "could not retrieve index" lines
        for path, vcf in zip(paths, vcfs):
            names = list(vcf.seqnames)
            names += [n for n in re.findall(r"^##contig=<ID=([^,>]+)", vcf.raw_header, flags=re.M) if n not in names]
            if chrom in names:
                return
            known.append((path, names))
    if known and all(names for _, names in known):
        path, names = known[0]
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise InputFormatError(f"region {region!r}: contig {chrom!r} is not in the file (contigs: {shown}); "
                               "do the names follow the same convention (chr1 vs 1)?", path=path)


def _records(vcf, path: Path, region: str | None):
    """Yield records of one file, restricted to ``region`` (index query when indexed, else a scan
    keeping records overlapping the region, as an index query does)."""
    if region is None:
        yield from vcf
        return
    chrom, start, end = _parse_region(region)
    if _has_index(path):
        try:
            yield from vcf(region)
            return
        except (ValueError, OSError):
            pass  # index unusable or contig absent from it: fall back to a scan
    for rec in vcf:
        if rec.CHROM == chrom and rec.start < end and rec.end >= start:
            yield rec


def normalise_variant_ids(table: pa.Table) -> pa.Array:
    """Final variant IDs from ``vcf_id`` (see module docstring); deterministic, order-preserving."""
    vcf_id = table.column("vcf_id").combine_chunks().cast(pa.large_string())
    occurrence, counts = _occurrences(vcf_id)
    replace = pc.or_(pc.or_(pc.equal(vcf_id, "."), pc.equal(vcf_id, "")), pa.array(counts > 1))
    ids = vcf_id
    if pc.any(replace).as_py():
        rows = pa.array(np.flatnonzero(replace.to_numpy(zero_copy_only=False)))
        positional = _join(*(table.column(c).take(rows) for c in ("chrom", "pos", "ref", "alt")), separator=":")
        ids = pc.replace_with_mask(vcf_id, replace, positional.combine_chunks())
        occurrence, _ = _occurrences(ids)  # positional IDs may repeat (an exact duplicate record)
    if (occurrence > 0).any():
        ids = pc.if_else(pa.array(occurrence > 0), _join(ids, ":dup", pa.array(occurrence + 1)), ids)
    return ids


def _join(*values, separator: str = ""):
    """Element-wise concatenation of Arrow arrays and strings, as large strings."""
    def text(v):
        return pa.scalar(v, pa.large_string()) if isinstance(v, str) else v.cast(pa.large_string())
    return pc.binary_join_element_wise(*map(text, values), text(separator))


def _occurrences(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """For each element: how many equal elements come before it, and how many there are."""
    index = pc.dictionary_encode(values).indices.to_numpy()
    counts = np.bincount(index)
    order = np.argsort(index, kind="stable")
    group_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    occurrence = np.empty(len(index), dtype=np.int64)
    occurrence[order] = np.arange(len(index)) - group_start[index[order]]
    return occurrence, counts[index]


_META_SCHEMA = pa.schema([("chrom", pa.large_string()), ("pos", pa.int64()), ("vcf_id", pa.large_string()),
                          ("ref", pa.large_string()), ("alt", pa.large_string()), ("record", pa.int64()),
                          ("split_index", pa.int64()), ("n_called", pa.int64()), ("alt_count", pa.int64())])
_META_COLUMNS = _META_SCHEMA.names


def _empty_meta() -> pa.Table:
    return _META_SCHEMA.empty_table()


def _text_column(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The byte ranges of ``buf`` as an Arrow string array (checked to be UTF-8)."""
    data, offsets = vcf_kernels.gather_text(buf, starts, ends)
    arr = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data))
    arr.validate(full=True)
    return arr


def _record_numbers(chrom: pa.Array, per_chrom: dict[str, int]) -> np.ndarray:
    """1-based number of each line among the records of its chromosome so far (``per_chrom``
    holds the counts of earlier batches and is updated)."""
    encoded = pc.dictionary_encode(chrom)
    codes = encoded.indices.to_numpy()
    record = np.empty(len(codes), dtype=np.int64)
    for code, name in enumerate(encoded.dictionary.to_pylist()):
        where = np.flatnonzero(codes == code)
        record[where] = per_chrom.get(name, 0) + np.arange(1, len(where) + 1)
        per_chrom[name] = per_chrom.get(name, 0) + len(where)
    return record


def _ingest_text_fast(path: Path, n_samples: int, half_haploid: bool, bed_fh, region: str | None = None,
                     threads: int = 1):
    """See :func:`_ingest_text_batches`; None also where the BGZF blocks turn out to be damaged or
    not BGZF (htslib then reads the file and reports what is wrong)."""
    try:
        return _ingest_text_batches(path, n_samples, half_haploid, bed_fh, region, threads)
    except NotFastText:
        return None


def _ingest_text_batches(path: Path, n_samples: int, half_haploid: bool, bed_fh, region: str | None,
                         threads: int):
    """Read a VCF text file with the numba parser, appending .bed rows to ``bed_fh``; returns
    (variant metadata, records read, records split), or None where cyvcf2 must read the file
    (BCF, a region other than a whole contig of a tabix-indexed file, or any line the fast
    parser does not take: see :mod:`cohortflow.variants.vcf_kernels`)."""
    contig = None
    if region is not None:
        contig, start, end = _parse_region(region)
        if ":" in region:  # a range within a contig: htslib's overlap rules, via cyvcf2
            return None
    batches = vcf_text_batches(path, contig=contig, threads=threads)
    if batches is None:
        return None
    contig_bytes = np.frombuffer(contig.encode(), dtype=np.uint8).copy() if contig is not None else None
    done = False
    tables = []
    n_records = 0
    n_split = 0
    per_chrom: dict[str, int] = {}  # records so far on each chromosome
    bed_rows = np.empty((0, (n_samples + 3) // 4), dtype=np.uint8)
    for buf, ends in batches:
        if done:
            break
        starts = np.empty_like(ends)
        if len(ends):
            starts[0] = 0
            starts[1:] = ends[:-1] + 1
        if contig_bytes is not None:  # records of the contig end where the next contig starts
            keep = vcf_kernels.first_line_off_contig(buf, starts, contig_bytes)
            if keep < len(starts):
                done = True
                buf = buf[:ends[keep - 1] + 1] if keep else buf[:0]
                starts, ends = starts[:keep], ends[:keep]
            if not keep:
                break
        fields, info = vcf_kernels.scan_lines(buf, starts, ends, n_samples)
        too_large = np.flatnonzero(info[:, 0] == vcf_kernels.POSITION_TOO_LARGE)
        if len(too_large):
            line = int(too_large[0])
            batches.close()
            raise InputFormatError(f"POS {info[line, 1]} is above {vcf_kernels.MAX_POSITION}, the largest "
                                   "position a PLINK .bim holds", path=path, record=n_records + line + 1)
        if info[:, 0].any():
            batches.close()
            return None
        n_alt = info[:, 2]
        first_row = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(n_alt, out=first_row[1:])
        if first_row[-1] > len(bed_rows):  # one buffer for every batch: fresh memory is slow to fault in
            bed_rows = np.empty((max(first_row[-1], 2 * len(bed_rows)), (n_samples + 3) // 4), dtype=np.uint8)
        bed = bed_rows[:first_row[-1]]
        n_called, alt_count, status = vcf_kernels.decode_genotypes(buf, ends, info, first_row, n_samples,
                                                                  half_haploid, bed)
        if status.any():
            batches.close()
            return None
        bed_fh.write(memoryview(bed).cast("B"))
        chrom = _text_column(buf, fields[:, 0, 0], fields[:, 0, 1])
        record = _record_numbers(chrom, per_chrom)
        alt_starts, alt_ends = vcf_kernels.alt_bounds(buf, fields, first_row)
        split = n_alt > 1
        if split.any():
            line_of_row = pa.array(np.repeat(np.arange(len(starts)), n_alt))
            k = np.arange(first_row[-1]) - np.repeat(first_row[:-1], n_alt) + 1
            split_index = np.where(np.repeat(split, n_alt), k, 0)
        else:
            line_of_row = None
            split_index = np.zeros(len(starts), dtype=np.int64)

        def per_row(values):
            if line_of_row is None:
                return values
            return values.take(line_of_row) if isinstance(values, pa.Array) else values[line_of_row.to_numpy()]

        tables.append(pa.table({
            "chrom": per_row(chrom),
            "pos": per_row(info[:, 1].copy()),
            "vcf_id": per_row(_text_column(buf, fields[:, 2, 0], fields[:, 2, 1])),
            "ref": per_row(_text_column(buf, fields[:, 3, 0], fields[:, 3, 1])),
            "alt": _text_column(buf, alt_starts, alt_ends),
            "record": per_row(record),
            "split_index": split_index,
            "n_called": n_called,
            "alt_count": alt_count,
        }, schema=_META_SCHEMA))
        n_records += len(starts)
        n_split += int(split.sum())
    batches.close()
    table = pa.concat_tables(tables) if tables else _empty_meta()
    return table, n_records, n_split


def _ingest_with_cyvcf2(path: Path, vcf, region: str | None, n: int, half_haploid: bool, bed_fh,
                        skipped: Counter):
    """Read one file record by record with cyvcf2 (htslib), appending .bed rows to ``bed_fh``;
    returns (variant metadata, records read, records split)."""
    cols = {c: [] for c in _META_COLUMNS}
    block_size = 1024
    block = np.empty((block_size, n), dtype=np.int8)
    filled = 0
    dosage = np.empty(n, dtype=np.int8)
    missing_row = np.full(n, -1, dtype=np.int8)
    record_no = 0
    n_split = 0
    per_chrom: dict[str, int] = {}
    with _htslib_messages() as messages:
        try:
            for rec in _records(vcf, path, region):
                record_no += 1
                per_chrom[rec.CHROM] = record_in_chrom = per_chrom.get(rec.CHROM, 0) + 1
                alts = list(rec.ALT)
                if not 0 <= rec.POS <= vcf_kernels.MAX_POSITION:
                    raise InputFormatError(f"POS {rec.POS} is outside 0..{vcf_kernels.MAX_POSITION}", path=path,
                                           record=record_no)
                fmt = rec.FORMAT
                # no FORMAT ("."), or no GT in it: every call of the record is missing
                gt = rec.genotype.array() if fmt and "GT" in fmt else None
                if gt is not None and gt.shape[1] - 1 > 2 and (gt[:, 2:-1] != -2).any():
                    skipped["genotype ploidy above 2"] += 1
                    continue
                if len(alts) > 1:
                    n_split += 1
                vcf_id = rec.ID if rec.ID is not None else "."
                for k, alt in enumerate(alts or ["."], start=1):
                    if gt is None:
                        block[filled] = missing_row
                        called = 0
                    else:
                        called = gt_alt_dosage(gt, k, half_haploid, dosage)
                        block[filled] = dosage
                    row = block[filled]
                    values = (rec.CHROM, rec.POS, vcf_id, rec.REF, alt, record_in_chrom, k if len(alts) > 1 else 0,
                              called, int(row[row > 0].sum(dtype=np.int64)))
                    for name, value in zip(_META_COLUMNS, values):
                        cols[name].append(value)
                    filled += 1
                    if filled == block_size:
                        bed_fh.write(encode_bed_block(block).tobytes())
                        filled = 0
        except CohortflowError:
            raise
        except Exception as exc:  # htslib parse errors surface as various exception types
            problem = _htslib_problem(messages, exc)
            what = ("truncated or damaged bgzip data: re-download or re-compress the file"
                    if "BGZF" in problem.upper() else "cannot parse")
            raise InputFormatError(f"{what} ({problem})", path=path, record=record_no + 1) from None
    if filled:
        bed_fh.write(encode_bed_block(block[:filled]).tobytes())
    table = pa.table({name: pa.array(cols[name], type=_META_SCHEMA.field(name).type) for name in _META_COLUMNS},
                     schema=_META_SCHEMA)
    return table, record_no, n_split


def _finish_table(table: pa.Table, n_samples: int) -> pa.Table:
    """The variant table as written: IDs normalised, REF counts and call rates added, one chunk
    per column (the file's bytes do not depend on how the rows were batched)."""
    table = table.select(_META_COLUMNS).cast(_META_SCHEMA).combine_chunks()
    n_called = table.column("n_called").to_numpy()
    columns = {
        "chrom": table.column("chrom"), "pos": table.column("pos"), "id": normalise_variant_ids(table),
        "vcf_id": table.column("vcf_id"), "ref": table.column("ref"), "alt": table.column("alt"),
        "record": table.column("record"), "split_index": table.column("split_index"),
        "call_rate": n_called / n_samples if n_samples else np.full(len(n_called), np.nan),
        "alt_count": table.column("alt_count"),
        "ref_count": 2 * n_called - table.column("alt_count").to_numpy(),
        "n_called": table.column("n_called"),
    }
    return pa.table({name: columns[name] for name in VARIANT_TABLE_COLUMNS})


def _write_bim(path: Path, table: pa.Table) -> None:
    """.bim from the variant table: chrom, id, 0, pos, A1 = ALT, A2 = REF."""
    write_tsv(path, {"chrom": table.column("chrom"), "id": table.column("id"),
                     "cm": np.zeros(table.num_rows, dtype=np.int64), "pos": table.column("pos").to_numpy(),
                     "a1": table.column("alt"), "a2": table.column("ref")}, header=False)


def _write_fam(path: Path, samples: list[str]) -> None:
    """.fam of VCF samples: FID = IID = the sample name, no parents, sex 0, phenotype -9."""
    write_text_atomic(path, "".join(f"{s} {s} 0 0 0 -9\n" for s in samples))


def _write_parquet(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def ingest_vcf(vcf_paths, *, out_prefix, region: str | None = None, half_call: str = "haploid",
               threads: int = 1) -> dict:
    """Convert VCF/BCF files (plain, bgzipped or BCF; indexed or not) into one PLINK 1 fileset.

    Files are read in the order given and must hold the same samples in the same order. VCF text
    (plain or bgzipped; a whole contig of a tabix-indexed file) is parsed by numba kernels in
    32 MB batches, ``threads`` at a time, while the next batch is decompressed (BGZF blocks by
    ``threads`` threads); BCF, ranges within a contig, damaged BGZF and any line those kernels do
    not take go through cyvcf2 (htslib), with identical results. Memory: two batches plus the
    .bed bytes of one batch.

    Writes (atomically; nothing is written if the input is bad):

    - ``{out_prefix}.bed/.bim/.fam``: .bim = chrom (as in the VCF), id, 0, pos, A1 = ALT,
      A2 = REF; .fam = FID = IID = VCF sample name, father/mother 0, sex 0, phenotype -9;
    - ``{out_prefix}.variants.parquet``: one row per output variant, columns ``chrom pos id vcf_id
      ref alt record split_index call_rate alt_count ref_count n_called`` (``vcf_id`` is the ID
      column as read, ``.`` when missing; ``split_index`` 0 for a biallelic record, k for the k-th
      ALT of a split multi-allelic; counts are of the written genotypes: alt_count = sum of ALT
      dosages, ref_count = 2 n_called - alt_count);
    - ``{out_prefix}.ingest.log``: records read, variants written, records split, skipped records
      by reason, IDs normalised.

    Returns a dict with ``n_samples, n_records, n_variants, n_split_records, n_skipped,
    skipped_by_reason, n_ids_normalised`` and the output paths.
    """
    if half_call not in ("haploid", "missing"):
        raise CohortflowError(f"half_call must be 'haploid' or 'missing', not {half_call!r}")
    if isinstance(vcf_paths, (str, os.PathLike)):
        vcf_paths = [vcf_paths]
    paths = [Path(p) for p in vcf_paths]
    if not paths:
        raise CohortflowError("no VCF/BCF files given")
    half_haploid = half_call == "haploid"

    vcfs = [_open_vcf(p) for p in paths]
    samples = list(vcfs[0].samples)
    if not samples:
        raise InputFormatError("no samples in the VCF header (a sites-only VCF has no genotypes to ingest)",
                               path=paths[0], record="header")
    if len(set(samples)) != len(samples):
        dup = next(s for s, k in Counter(samples).items() if k > 1)
        raise InputFormatError(f"duplicate sample name {dup!r} in the header", path=paths[0])
    bad = next((s for s in samples if any(c.isspace() for c in s)), None)
    if bad is not None:
        raise InputFormatError(f"sample name {bad!r} contains whitespace (cannot go into a .fam)", path=paths[0])
    for path, vcf in zip(paths[1:], vcfs[1:]):
        if list(vcf.samples) != samples:
            raise InputFormatError(f"samples differ from those of {paths[0]} (same samples in the same "
                                   "order are required)", path=path)
    if region is not None:
        _check_region_contig(paths, vcfs, region)
    n = len(samples)
    with thread_limit(threads):
        skipped: Counter = Counter()
        n_records = 0
        n_split = 0
        blocks: list[pa.Table] = []

        bed_path = _p(out_prefix, ".bed")
        with atomic_path(bed_path) as tmp_bed:
            with open(tmp_bed, "wb") as bed_fh:
                bed_fh.write(BED_MAGIC)
                for path, vcf in zip(paths, vcfs):
                    start = bed_fh.tell()
                    fast = _ingest_text_fast(path, n, half_haploid, bed_fh, region, threads)
                    if fast is None:  # BCF, a region query, or text the fast parser leaves to htslib
                        bed_fh.seek(start)
                        bed_fh.truncate()
                        fast = _ingest_with_cyvcf2(path, vcf, region, n, half_haploid, bed_fh, skipped)
                    file_table, file_records, file_split = fast
                    blocks.append(file_table)
                    n_records += file_records
                    n_split += file_split

            table = _finish_table(pa.concat_tables(blocks) if blocks else _empty_meta(), n)
            n_ids_normalised = int(pc.sum(pc.not_equal(table.column("id"), table.column("vcf_id"))).as_py() or 0)
            log_lines = [
                f"inputs\t{','.join(str(p) for p in paths)}",
                f"region\t{region if region is not None else '.'}",
                f"half_call\t{half_call}",
                f"samples\t{n}",
                f"records_read\t{n_records}",
                f"variants_written\t{table.num_rows}",
                f"records_split\t{n_split}",
                f"records_skipped\t{sum(skipped.values())}",
            ]
            log_lines += [f"skipped\t{reason}\t{count}" for reason, count in sorted(skipped.items())]
            log_lines.append(f"ids_normalised\t{n_ids_normalised}")
            # with threads to spare, the parquet file (Arrow releases the GIL) beside the .bim
            with ThreadPoolExecutor(max_workers=1) if threads > 1 else nullcontext() as writer:
                parquet_path = _p(out_prefix, ".variants.parquet")
                parquet = writer.submit(_write_parquet, parquet_path, table) if writer else None
                _write_bim(_p(out_prefix, ".bim"), table)
                _write_fam(_p(out_prefix, ".fam"), samples)
                if parquet is None:
                    _write_parquet(parquet_path, table)
                else:
                    parquet.result()
            write_text_atomic(_p(out_prefix, ".ingest.log"), "\n".join(log_lines) + "\n")
    return {
        "n_samples": n,
        "n_records": n_records,
        "n_variants": table.num_rows,
        "n_split_records": n_split,
        "n_skipped": sum(skipped.values()),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "n_ids_normalised": n_ids_normalised,
        "bed": str(bed_path),
        "variants": str(_p(out_prefix, ".variants.parquet")),
        "log": str(_p(out_prefix, ".ingest.log")),
    }


def merge_bed_shards(prefixes, *, out_prefix) -> None:
    """Concatenate ingestion shards (in the order given) into one fileset.

    Every shard must have the same .fam (same samples, same order). Writes
    ``{out_prefix}.bed/.bim/.fam`` and ``{out_prefix}.variants.parquet`` (variant IDs normalised
    again over all shards), identical to ingesting all the shards' inputs in one call.
    """
    prefixes = [Path(str(p)) for p in prefixes]
    if not prefixes:
        raise CohortflowError("no shards to merge")
    beds = [open_bed(p) for p in prefixes]
    fam = beds[0].fam
    for prefix, bed in zip(prefixes[1:], beds[1:]):
        if not bed.fam.equals(fam):
            raise InputFormatError(f"samples differ from those of {prefixes[0]}.fam", path=_p(prefix, ".fam"))
    tables = []
    for prefix, bed in zip(prefixes, beds):
        path = _p(prefix, ".variants.parquet")
        if not path.exists():
            raise InputFormatError("file not found", path=path)
        tab = pq.read_table(path)
        if tab.num_rows != bed.n_variants or "vcf_id" not in tab.column_names:
            raise InputFormatError(f"does not match {prefix}.bim ({tab.num_rows} rows, {bed.n_variants} variants)",
                                   path=path)
        tables.append(tab.select(_META_COLUMNS).cast(_META_SCHEMA))
    table = _finish_table(pa.concat_tables(tables), len(fam))
    with atomic_path(_p(out_prefix, ".bed")) as tmp_bed:
        with open(tmp_bed, "wb") as out:
            out.write(BED_MAGIC)
            for prefix in prefixes:
                with open(_p(prefix, ".bed"), "rb") as src:
                    src.seek(len(BED_MAGIC))
                    shutil.copyfileobj(src, out, length=1 << 22)
        _write_bim(_p(out_prefix, ".bim"), table)
        write_fam(_p(out_prefix, ".fam"), fam)
        _write_parquet(_p(out_prefix, ".variants.parquet"), table)
