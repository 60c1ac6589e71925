"""Alignment files as batches of uncompressed BAM record bytes, whatever the container.

* BAM is inflated here, in parallel (:func:`cohortflow.io.bgzf.inflate_batches`);
* CRAM and SAM are decoded by htslib (pysam's bundled ``samtools view -u``) in a child process
  that writes uncompressed BAM into a pipe, inflated the same way.

Either way the caller gets :class:`RecordBatch` objects: ``buf`` holds whole records laid out as
in the BAM specification, so one set of numba kernels reads every format. The header is read with
pysam (:func:`open_alignment`), which also checks what can be checked before reading: the file
exists, its format, a CRAM's reference (present, with the CRAM's contigs and lengths) and, where
asked, an index no older than the file.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cohortflow.alignment import kernels as K
from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.bgzf import inflate_batches

# htslib's CRAM decoder fetches a missing reference from the EBI by MD5 unless REF_PATH says
# otherwise; cohorts are often on machines with no internet and sensitive data, so never.
_NO_NETWORK_REF_PATH = "/nonexistent-cohortflow-ref-cache/%s"


@dataclasses.dataclass
class AlignmentHeader:
    """What the QC needs from the header: contigs and read-group samples."""

    contig_names: list[str]
    contig_lengths: np.ndarray
    read_group_samples: list[str]
    file_format: str  # "BAM", "CRAM" or "SAM"
    sort_order: str = ""  # @HD SO


@dataclasses.dataclass
class RecordBatch:
    """Decoded records: ``cols[:n]`` (``kernels.K_*``) of the records in ``buf`` and the aligned
    M/=/X blocks of mapped non-secondary reads (``block_start``/``block_end``; read i's blocks
    end at ``cols[i, K_BLOCK_END]``, cumulative from 0 in the batch)."""

    buf: np.ndarray
    cols: np.ndarray
    n: int
    block_start: np.ndarray
    block_end: np.ndarray
    first_record: int  # 1-based number of the batch's first record in the file


def _magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(18)
    except OSError as err:
        raise CohortflowError(f"cannot read file: {err}", path=path) from None
    if head[:2] == b"\x1f\x8b":  # BGZF/gzip: BAM or compressed SAM
        try:
            import gzip

            with gzip.open(path, "rb") as fh:
                return fh.read(4)
        except (OSError, EOFError):
            return b""
    return head[:4]


def detect_format(path: str | Path) -> str:
    """'BAM', 'CRAM' or 'SAM' from the file's first bytes (not its name)."""
    path = Path(path)
    if not path.exists():
        raise CohortflowError("alignment file not found", path=path)
    if path.stat().st_size == 0:
        raise InputFormatError("empty file (not even a header)", path=path)
    magic = _magic(path)
    if magic[:4] == b"CRAM":
        return "CRAM"
    if magic[:4] == b"BAM\x01":
        return "BAM"
    if magic[:1] == b"@" or (magic and magic[:1].isalnum()):
        return "SAM"
    raise InputFormatError("not a BAM, CRAM or SAM file", path=path)


def index_path(path: str | Path) -> Path | None:
    """The index beside ``path`` (.bai/.csi for BAM, .crai for CRAM), or None."""
    path = Path(path)
    for suffix in (".bai", ".csi", ".crai"):
        for cand in (Path(f"{path}{suffix}"), path.with_suffix(suffix)):
            if cand.exists():
                return cand
    return None


def check_index(path: str | Path, fmt: str) -> Path:
    """The file's index; missing or older than the file is a CohortflowError."""
    path = Path(path)
    if fmt == "SAM":
        raise CohortflowError("SAM text cannot be indexed: convert it with `samtools sort -o X.bam` and "
                              "`samtools index X.bam`", path=path)
    idx = index_path(path)
    if idx is None:
        raise CohortflowError(f"no index beside the {fmt} (.{'crai' if fmt == 'CRAM' else 'bai'}): run "
                              f"`samtools index {path.name}`", path=path)
    if idx.stat().st_mtime < path.stat().st_mtime:
        raise CohortflowError(f"index {idx.name} is older than the file: re-run `samtools index`", path=path)
    return idx


def _fasta_lengths(reference: Path) -> dict[str, int]:
    import pysam

    try:
        with pysam.FastaFile(str(reference)) as fa:
            return dict(zip(fa.references, fa.lengths))
    except (OSError, ValueError) as err:
        raise CohortflowError(f"cannot read reference FASTA: {err}", path=reference) from None


def open_alignment(path: str | Path, *, reference: str | Path | None = None, threads: int = 1,
                   require_index: bool = False):
    """Check ``path`` and open it with pysam (returns (pysam file, AlignmentHeader))."""
    import pysam

    path = Path(path)
    fmt = detect_format(path)
    if reference is not None and not Path(reference).exists():
        raise CohortflowError(f"reference FASTA not found: {reference}", path=path)
    if fmt == "CRAM" and reference is None:
        raise CohortflowError("CRAM input needs the reference FASTA it was written against (--reference)", path=path)
    if require_index:
        check_index(path, fmt)
    kwargs = {"check_sq": False, "threads": max(1, int(threads))}
    if reference is not None and fmt == "CRAM":
        kwargs["reference_filename"] = str(reference)
    previous = pysam.set_verbosity(0)  # htslib warns for every CRAM without .crai: not needed here
    try:
        aln = pysam.AlignmentFile(str(path), "r", **kwargs)
    except (OSError, ValueError) as err:
        what = "SAM header" if fmt == "SAM" else fmt
        raise InputFormatError(f"cannot read the {what}: {err}", path=path) from None
    finally:
        pysam.set_verbosity(previous)
    header = read_header(aln)
    if fmt == "CRAM":
        _check_cram_reference(path, Path(reference), header)
    elif reference is not None:
        _check_reference_build(path, Path(reference), header)
    return aln, header


def _check_reference_build(path: Path, reference: Path, header: AlignmentHeader) -> None:
    """A BAM/SAM does not need its reference, but one given must be of the same build: a contig
    both name with another length (GRCh37 vs GRCh38), or no contig name in common (chr1 vs 1),
    is one error naming both files. Contigs only one of them has (decoys, alts) are fine."""
    lengths = _fasta_lengths(reference)
    names = header.contig_names
    for name, length in zip(names, header.contig_lengths.tolist()):
        if name in lengths and lengths[name] != length:
            raise CohortflowError(f"reference {reference.name} is another genome build than the alignment header: "
                                  f"contig {name!r} is {lengths[name]} bp there, {length} bp in {path.name} (give "
                                  "the FASTA of the build the reads were aligned to)", path=path)
    if names and lengths and not set(names) & set(lengths):
        raise CohortflowError(f"reference {reference.name} shares no contig name with the alignment header "
                              f"(FASTA: {', '.join(list(lengths)[:3])}; header: {', '.join(names[:3])}): do the "
                              "names follow the same convention (chr1 vs 1)?", path=path)


def _check_cram_reference(path: Path, reference: Path, header: AlignmentHeader) -> None:
    lengths = _fasta_lengths(reference)
    for name, length in zip(header.contig_names, header.contig_lengths.tolist()):
        if name not in lengths:
            raise CohortflowError(f"reference {reference.name} does not match the CRAM: it has no contig {name!r} "
                                  f"(give the FASTA the CRAM was written against)", path=path)
        if lengths[name] != length:
            raise CohortflowError(f"reference {reference.name} does not match the CRAM: contig {name!r} is "
                                  f"{lengths[name]} bp there, {length} bp in the CRAM header", path=path)


def read_header(aln) -> AlignmentHeader:
    """Contigs, read-group SM values, container format and sort order of an open pysam file."""
    names = list(aln.references)
    lengths = np.asarray(aln.lengths, dtype=np.int64)
    head = aln.header.to_dict()
    samples = [rg.get("SM", "") for rg in head.get("RG", []) or []]
    fmt = "CRAM" if aln.is_cram else ("BAM" if aln.is_bam else "SAM")
    return AlignmentHeader(names, lengths, samples, fmt, (head.get("HD") or {}).get("SO", ""))


# -------------------------------------------------------------------------------------- streams


def _htslib_pipe(path: Path, reference: Path | None, threads: int):
    """A child process writing ``path`` as uncompressed BAM to its stdout (htslib decodes)."""
    args = ["-u", "-o", "-"]
    if reference is not None:
        args += ["-T", str(reference)]
    if threads > 1:
        args += ["-@", str(threads - 1)]
    args.append(str(path))
    code = ("import sys, pysam\n"
            "try:\n"
            "    pysam.samtools.view(*sys.argv[1:], catch_stdout=False)\n"
            "except pysam.utils.SamtoolsError as err:\n"
            "    sys.stderr.write(str(err) + '\\n'); sys.exit(1)\n")
    env = dict(os.environ)
    env.setdefault("REF_PATH", _NO_NETWORK_REF_PATH)
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("[E::"):
            return ln
    return lines[-1] if lines else "htslib could not decode the file"


def record_byte_batches(path: str | Path, *, file_format: str, reference: str | Path | None = None,
                        threads: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Uncompressed BAM bytes of ``path`` after the header, cut so that every array holds whole
    records only (a record straddling two inflated batches comes as an array of its own), with
    the offsets of its records: (bytes, int64 offsets). Valid until the generator is resumed."""
    path = Path(path)
    proc = None
    stderr_text: list[str] = []
    if file_format == "BAM":
        fh = open(path, "rb")
    else:
        proc = _htslib_pipe(path, Path(reference) if reference else None, threads)
        fh = proc.stdout
        reader = threading.Thread(target=lambda: stderr_text.append(proc.stderr.read().decode(errors="replace")),
                                  daemon=True)
        reader.start()
    # for BAM all threads inflate; behind htslib one inflates the (stored, level-0) pipe
    batches = inflate_batches(fh, path=path, threads=threads if proc is None else 1)
    hint = " (is --reference the FASTA this CRAM was written against?)" if file_format == "CRAM" else ""
    try:
        yield from _records_after_header(batches, path)
        if proc is not None:
            rc = proc.wait()
            reader.join()
            if rc != 0:
                raise InputFormatError(f"htslib could not decode the file: {_first_error(''.join(stderr_text))}{hint}",
                                       path=path)
    except InputFormatError:
        if proc is not None:
            proc.wait()  # htslib stopped writing: its own message says why
            reader.join(timeout=5)
            if proc.returncode != 0 and stderr_text:
                raise InputFormatError(f"htslib could not decode the file: {_first_error(''.join(stderr_text))}{hint}",
                                       path=path) from None
        raise
    finally:
        batches.close()
        fh.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def _records_after_header(batches: Iterator[np.ndarray], path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    pending = np.empty(0, dtype=np.uint8)
    header_done = False
    for data in batches:
        if not header_done:
            pending = np.concatenate([pending, data]) if len(pending) else data
            skip = _header_size(pending, path)
            if skip is None:
                continue
            header_done = True
            data = pending[skip:]
            pending = np.empty(0, dtype=np.uint8)
        start = 0
        if len(pending):  # finish the record begun in the previous batch
            need = _record_size(pending, data)
            if need is None or need - len(pending) > len(data):
                pending = np.concatenate([pending, data])
                continue
            take = need - len(pending)
            yield np.concatenate([pending, data[:take]]), np.zeros(1, dtype=np.int64)
            start = take
            pending = np.empty(0, dtype=np.uint8)
        rec_off = np.empty((len(data) - start) // 36 + 1, dtype=np.int64)
        n, end = K.complete_record_offsets(data, start, rec_off)
        if n < 0:
            raise InputFormatError("corrupt BAM record (block size below 32 bytes)", path=path)
        if end > start:
            yield data[start:end], rec_off[:n]
        if end < len(data):
            pending = data[end:].copy()
    if not header_done:
        raise InputFormatError("truncated or empty file: the BAM header is incomplete", path=path)
    if len(pending):
        raise InputFormatError("truncated file: the last record is incomplete", path=path)


def _record_size(pending: np.ndarray, data: np.ndarray) -> int | None:
    head = pending[:4] if len(pending) >= 4 else np.concatenate([pending, data[: 4 - len(pending)]])
    if len(head) < 4:
        return None
    return 4 + int(struct.unpack("<i", head.tobytes())[0])


def _header_size(buf: np.ndarray, path: Path) -> int | None:
    """Bytes of the BAM header at the start of ``buf``, or None if ``buf`` does not hold it all."""
    if len(buf) < 12:
        return None
    if buf[:4].tobytes() != b"BAM\x01":
        raise InputFormatError("not a BAM stream (bad magic)", path=path)
    (l_text,) = struct.unpack("<i", buf[4:8].tobytes())
    p = 8 + l_text
    if len(buf) < p + 4:
        return None
    (n_ref,) = struct.unpack("<i", buf[p:p + 4].tobytes())
    p += 4
    for _ in range(n_ref):
        if len(buf) < p + 4:
            return None
        (l_name,) = struct.unpack("<i", buf[p:p + 4].tobytes())
        p += 4 + l_name + 4
    return p if len(buf) >= p else None


def record_batches(path: str | Path, *, file_format: str, reference: str | Path | None = None,
                   threads: int = 1) -> Iterator[RecordBatch]:
    """Decoded record batches (:class:`RecordBatch`) of the whole file, in file order."""
    path = Path(path)
    records = 0
    for buf, _ in record_byte_batches(path, file_format=file_format, reference=reference, threads=threads):
        start = 0
        while start < len(buf):
            rest = buf[start:]
            cap = min(len(rest) // 36 + 1, 1 << 18)
            cols = np.empty((cap, K.K_N), dtype=np.int64)
            bs = np.empty(len(rest) // 4 + 1, dtype=np.int64)
            be = np.empty_like(bs)
            n, consumed, _nb, err = K.decode_bam_records(rest, len(rest), cols, bs, be)
            if err >= 0:
                raise InputFormatError("corrupt BAM record", path=path, record=records + n + 1)
            if n == 0:
                raise InputFormatError("corrupt BAM record", path=path, record=records + 1)
            yield RecordBatch(rest, cols, n, bs, be, records + 1)
            records += n
            start += consumed
