"""numba kernels that read VCF text records straight into PLINK .bed bytes (no I/O here).

The fast path of ingestion (:mod:`cohortflow.variants.ingest`): a batch of complete VCF data
lines is split into lines, each line's fixed columns are located, and the GT subfield of every
sample is decoded into 2-bit .bed codes, one output variant per ALT allele (as ``bcftools norm
-m-``: for the k-th ALT, other ALTs count as REF). The rules are those of
:func:`cohortflow.variants.kernels.gt_alt_dosage` (haploid calls homozygous, half-calls haploid
or missing).

Anything this parser does not handle exactly as htslib would (a malformed line, GT not first in
FORMAT, ploidy above 2, carriage returns, a wrong number of sample columns...) sets a non-zero
status; the caller then reads the whole file with cyvcf2 instead, so the fast path never has to
reproduce htslib's error messages or its lenient corners.
"""

from __future__ import annotations

import numba
import numpy as np

from cohortflow.bitops import load_u64, popcount_u64

TAB = 9
NEWLINE = 10
COLON = 58
DOT = 46
COMMA = 44
SLASH = 47
PIPE = 124
ZERO = 48
NINE = 57
CARRIAGE_RETURN = 13

# per-line status (non-zero: read the file with cyvcf2)
OK = 0
BAD_COLUMNS = 1      # fewer than 9 fixed columns, or sample columns != header samples
BAD_POSITION = 2     # POS not a plain integer
BAD_FORMAT = 3       # GT present but not first in FORMAT
BAD_GENOTYPE = 4     # a GT value this parser does not read (ploidy > 2, odd characters)
BAD_LINE = 5         # empty line, carriage return, a '#' line among records
POSITION_TOO_LARGE = 6  # POS above 2^31 - 1: an input error, not a reason to fall back

MAX_POSITION = 2**31 - 1  # the largest position a PLINK .bim (and htslib's VCF reader) holds

# .bed 2-bit code of a missing call (A1 = ALT dosages 2, 1, 0 are 00, 10, 11)
CODE_MISSING = 1

LINES_PER_TASK = 64


NEWLINES = np.uint64(0x0A0A0A0A0A0A0A0A)
LOW_BITS = np.uint64(0x0101010101010101)
HIGH_BITS = np.uint64(0x8080808080808080)


@numba.njit(cache=True, nogil=True)
def _newlines(buf, words, head, out) -> int:
    """Positions of the newlines of ``buf`` into ``out`` (when it is long enough; pass an
    empty array to count); returns their number. ``words`` is buf[head:] seen as uint64: a word
    with no newline byte is skipped with a few integer operations (the has-zero-byte trick)."""
    count = 0
    limit = out.shape[0]
    for i in range(head):
        if buf[i] == NEWLINE:
            if count < limit:
                out[count] = i
            count += 1
    for w in range(words.shape[0]):
        x = words[w] ^ NEWLINES
        if (x - LOW_BITS) & ~x & HIGH_BITS:
            base = head + 8 * w
            for j in range(8):
                if buf[base + j] == NEWLINE:
                    if count < limit:
                        out[count] = base + j
                    count += 1
    for i in range(head + 8 * words.shape[0], buf.shape[0]):
        if buf[i] == NEWLINE:
            if count < limit:
                out[count] = i
            count += 1
    return count


def line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without the newline) of every line of ``buf``; a final line
    without a newline counts, an empty tail after the last newline does not."""
    head = min((-buf.ctypes.data) % 8, len(buf))
    words = buf[head:head + (len(buf) - head) // 8 * 8].view(np.uint64)
    count = _newlines(buf, words, head, np.empty(0, dtype=np.int64))
    tail = 1 if len(buf) and buf[-1] != NEWLINE else 0
    ends = np.empty(count + tail, dtype=np.int64)
    _newlines(buf, words, head, ends)
    if tail:
        ends[count] = len(buf)
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


@numba.njit(cache=True, nogil=True)
def _scan_line(buf, start, end, n_samples, fields, out):
    """Locate the 9 fixed columns of one line. fields[j] = (start, end) of column j; out =
    [status, pos, n_alt, has_gt, samples_start]."""
    if end <= start or buf[end - 1] == CARRIAGE_RETURN or buf[start] == 35:  # '#'
        out[0] = BAD_LINE
        return
    p = start
    for j in range(9):
        fields[j, 0] = p
        while p < end and buf[p] != TAB:
            p += 1
        fields[j, 1] = p
        if p >= end and j < 8:
            out[0] = BAD_COLUMNS
            return
        p += 1
    if fields[8, 1] >= end:  # FORMAT is the last column: no samples
        out[0] = BAD_COLUMNS
        return
    out[4] = fields[8, 1] + 1
    # POS
    pos = 0
    a, b = fields[1, 0], fields[1, 1]
    if b - a < 1 or b - a > 18:
        out[0] = BAD_POSITION
        return
    for i in range(a, b):
        c = buf[i]
        if c < ZERO or c > NINE:
            out[0] = BAD_POSITION
            return
        pos = pos * 10 + (c - ZERO)
    out[1] = pos
    if pos > MAX_POSITION:
        out[0] = POSITION_TOO_LARGE
        return
    # ALT: "." is one variant with allele "."; otherwise one per comma-separated allele
    a, b = fields[4, 0], fields[4, 1]
    n_alt = 1
    for i in range(a, b):
        n_alt += buf[i] == COMMA
    if b == a:
        out[0] = BAD_COLUMNS
        return
    out[2] = n_alt
    # FORMAT: GT must be the first key when present; "." is no FORMAT (all calls missing)
    a, b = fields[8, 0], fields[8, 1]
    has_gt = 0
    if b - a >= 2 and buf[a] == 71 and buf[a + 1] == 84 and (b - a == 2 or buf[a + 2] == COLON):
        has_gt = 1
    else:
        key = a
        for i in range(a, b + 1):
            if i == b or buf[i] == COLON:
                if i - key == 2 and buf[key] == 71 and buf[key + 1] == 84:
                    out[0] = BAD_FORMAT
                    return
                key = i + 1
    out[3] = has_gt
    out[0] = OK


@numba.njit(cache=True, nogil=True, parallel=True)
def scan_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_samples: int):
    """Fixed columns of every line: ``fields`` (lines x 9 x 2: start, end of CHROM, POS, ID, REF,
    ALT, QUAL, FILTER, INFO, FORMAT), ``info`` (lines x 5: status, POS, number of output
    variants, GT present (1) or absent (0), offset of the first sample column)."""
    m = starts.shape[0]
    fields = np.zeros((m, 9, 2), dtype=np.int64)
    info = np.zeros((m, 5), dtype=np.int64)
    for task in numba.prange((m + LINES_PER_TASK - 1) // LINES_PER_TASK):
        for line in range(task * LINES_PER_TASK, min(m, (task + 1) * LINES_PER_TASK)):
            _scan_line(buf, starts[line], ends[line], n_samples, fields[line], info[line])
    return fields, info


@numba.njit(cache=True, nogil=True)
def _allele(buf, p, end):
    """(next position, allele index) of the allele at p: index -1 for '.'; next position -1 when
    the text is not an allele."""
    if p >= end:
        return -1, 0
    c = buf[p]
    if c == DOT:
        return p + 1, -1
    if c < ZERO or c > NINE:
        return -1, 0
    value = 0
    digits = 0
    while p < end and ZERO <= buf[p] <= NINE:
        value = value * 10 + (buf[p] - ZERO)
        p += 1
        digits += 1
        if digits > 6:
            return -1, 0
    return p, value


@numba.njit(cache=True, nogil=True, inline="always")
def _is_digit(c) -> bool:
    return ZERO <= c <= NINE


@numba.njit(cache=True, nogil=True, inline="always")
def _is_separator(c) -> bool:
    return c == SLASH or c == PIPE


@numba.njit(cache=True, nogil=True, inline="always")
def _is_field_end(buf, q, end) -> bool:
    return q >= end or buf[q] == TAB or buf[q] == COLON


@numba.njit(cache=True, nogil=True)
def _parse_gt(buf, p, end, has_gt):
    """(start of the next sample column, allele 1, allele 2) for the sample column starting at
    p: alleles -1 for '.', allele 2 -2 when there is none (a haploid call); the next start is
    end + 1 after the last column, -1 for a GT this parser does not read."""
    a0 = -1
    a1 = -2
    q = p
    if has_gt:
        # the common case first: one-digit alleles, e.g. 0/1 or 1|0
        if q + 2 < end and _is_digit(buf[q]) and _is_separator(buf[q + 1]) and _is_digit(buf[q + 2]) \
                and _is_field_end(buf, q + 3, end):
            a0 = np.int64(buf[q] - ZERO)
            a1 = np.int64(buf[q + 2] - ZERO)
            q += 3
        else:
            q, a0 = _allele(buf, q, end)
            if q < 0:
                return -1, a0, a1
            if q < end and _is_separator(buf[q]):
                q, a1 = _allele(buf, q + 1, end)
                if q < 0:
                    return -1, a0, a1
                if q < end and _is_separator(buf[q]):
                    return -1, a0, a1  # ploidy above 2
            if not _is_field_end(buf, q, end):
                return -1, a0, a1
    if q < end and buf[q] == TAB:
        return q + 1, a0, a1
    while q < end and buf[q] != TAB:
        q += 1
    return q + 1, a0, a1


@numba.njit(cache=True, nogil=True, inline="always")
def _dosage(a0, a1, allele, half_haploid) -> int:
    """Copies of ``allele`` (as gt_alt_dosage): -1 missing; haploid calls (and half-calls when
    ``half_haploid``) count 0 or 2."""
    if a0 < 0 and a1 < 0:
        return -1
    if a1 == -2 or a0 < 0 or a1 < 0:
        if a1 != -2 and not half_haploid:
            return -1
        present = a0 if a0 >= 0 else a1
        return 2 if present == allele else 0
    return (1 if a0 == allele else 0) + (1 if a1 == allele else 0)


@numba.njit(cache=True, nogil=True, inline="always")
def _code(dosage) -> int:
    """.bed 2-bit code of an A1 (ALT) dosage, -1 missing: 2 -> 00, 1 -> 10, 0 -> 11, missing -> 01."""
    if dosage < 0:
        return CODE_MISSING
    return 3 - dosage - (dosage == 2)


# Two GT-only sample columns "a/b<TAB>c/d<TAB>" read as one little-endian uint64: the separator
# and TAB bytes, and the allele digits restricted to 0 and 1 (the low bit is the allele).
PAIR_PUNCTUATION = np.uint64(0xFF00FF00FF00FF00)
PAIR_UNPHASED = np.uint64(0x09002F0009002F00)
PAIR_PHASED = np.uint64(0x09007C0009007C00)
PAIR_DIGITS = np.uint64(0x00FE00FE00FE00FE)
PAIR_ZEROS = np.uint64(0x0030003000300030)
PAIR_ALLELE_BITS = np.uint64(0x0001000100010001)


@numba.njit(cache=True, nogil=True, inline="always")
def _pair_codes(word):
    """(.bed codes of both samples as 4 bits, ALT alleles of the pair) of a word that passed the
    PAIR_* checks. Per sample with allele bits a, b: code = (not (a and b)) << 1 | not (a or b),
    i.e. 2 ALT -> 00, 1 -> 10, 0 -> 11."""
    bits = word & PAIR_ALLELE_BITS
    both = bits & (bits >> np.uint64(16))
    either = bits | (bits >> np.uint64(16))
    one = np.uint64(1)
    code0 = (((both & one) ^ one) << one) | ((either & one) ^ one)
    code1 = ((((both >> np.uint64(32)) & one) ^ one) << one) | (((either >> np.uint64(32)) & one) ^ one)
    alts = (bits + (bits >> np.uint64(16)) + (bits >> np.uint64(32)) + (bits >> np.uint64(48))) & np.uint64(7)
    return np.int64(code0 | (code1 << np.uint64(2))), np.int64(alts)


# (allele bits of a pair word) * PAIR_KEY_MULTIPLIER >> 48: the four allele bits side by side
# (bits 0, 16, 32, 48 -> 48..51; the other products fall below bit 48 or above bit 63)
PAIR_KEY_MULTIPLIER = np.uint64((1 << 48) | (1 << 33) | (1 << 18) | (1 << 3))


def _quad_code_table() -> np.ndarray:
    """.bed byte of four samples from their eight allele bits (sample j: bits 2j, 2j + 1)."""
    table = np.empty(256, dtype=np.uint8)
    for key in range(256):
        byte = 0
        for j in range(4):
            alts = ((key >> (2 * j)) & 1) + ((key >> (2 * j + 1)) & 1)
            byte |= (3, 2, 0)[alts] << (2 * j)
        table[key] = byte
    return table


QUAD_CODES = _quad_code_table()


@numba.njit(cache=True, nogil=True, inline="always")
def _is_pair(word) -> bool:
    """Whether an 8-byte word is two GT-only columns of 0/1 alleles, e.g. "0/1<TAB>1|1<TAB>"."""
    punctuation = word & PAIR_PUNCTUATION
    return (punctuation == PAIR_UNPHASED or punctuation == PAIR_PHASED) and (word & PAIR_DIGITS) == PAIR_ZEROS


@numba.njit(cache=True, nogil=True)
def _biallelic_line(buf, p, end, n_samples, has_gt, half_haploid, row, out):
    """One-ALT line: .bed bytes into ``row``; out = [status, called, alt count]."""
    called = 0
    alt = 0
    packed = 0
    s = 0
    while s < n_samples:
        if p > end:
            out[0] = BAD_COLUMNS
            return
        # four samples = one .bed byte from two 8-byte words (the bulk of a GT-only VCF)
        if has_gt and (s & 3) == 0 and s + 4 <= n_samples and p + 16 <= end:
            first = load_u64(buf, p)
            second = load_u64(buf, p + 8)
            if _is_pair(first) and _is_pair(second):
                first &= PAIR_ALLELE_BITS
                second &= PAIR_ALLELE_BITS
                key = ((first * PAIR_KEY_MULTIPLIER) >> np.uint64(48)) \
                    | (((second * PAIR_KEY_MULTIPLIER) >> np.uint64(48)) << np.uint64(4))
                row[s >> 2] = QUAD_CODES[key]
                called += 4
                alt += np.int64(popcount_u64(first) + popcount_u64(second))
                p += 16
                s += 4
                continue
        # two samples from one word
        if has_gt and s + 1 < n_samples and p + 8 <= end:
            word = load_u64(buf, p)
            if _is_pair(word):
                codes, alts = _pair_codes(word)
                packed |= codes << (2 * (s & 3))
                if (s & 3) == 3:  # the pair straddles two .bed bytes
                    row[s >> 2] = np.uint8(packed & 0xFF)
                    packed >>= 8
                elif (s & 3) == 2:
                    row[s >> 2] = np.uint8(packed)
                    packed = 0
                called += 2
                alt += alts
                p += 8
                s += 2
                continue
        # "0/1<TAB>" or "./.<TAB>" without the general parser
        if has_gt and p + 3 < end and buf[p + 3] == TAB and _is_separator(buf[p + 1]) \
                and _is_digit(buf[p]) and _is_digit(buf[p + 2]):
            dosage = np.int64(buf[p] == 49) + np.int64(buf[p + 2] == 49)
            p += 4
        elif has_gt and p + 3 < end and buf[p + 3] == TAB and buf[p] == DOT and buf[p + 2] == DOT \
                and _is_separator(buf[p + 1]):
            dosage = -1
            p += 4
        else:
            p, a0, a1 = _parse_gt(buf, p, end, has_gt)
            if p < 0:
                out[0] = BAD_GENOTYPE
                return
            dosage = _dosage(a0, a1, 1, half_haploid)
        if dosage >= 0:
            called += 1
            alt += dosage
        packed |= _code(dosage) << (2 * (s & 3))
        if (s & 3) == 3:
            row[s >> 2] = np.uint8(packed)
            packed = 0
        s += 1
    if n_samples & 3:
        row[(n_samples - 1) >> 2] = np.uint8(packed)
    if p != end + 1:
        out[0] = BAD_COLUMNS  # more sample columns than the header has
        return
    out[0] = OK
    out[1] = called
    out[2] = alt


@numba.njit(cache=True, nogil=True)
def _multiallelic_line(buf, p, end, n_samples, has_gt, n_alt, half_haploid, bed_rows, n_called, alt_count):
    """Line with n_alt > 1 ALTs (one output variant each): .bed bytes into ``bed_rows``;
    returns a status."""
    called = 0
    for k in range(n_alt):
        alt_count[k] = 0
    packed = np.zeros(n_alt, dtype=np.int64)
    for s in range(n_samples):
        if p > end:
            return BAD_COLUMNS
        p, a0, a1 = _parse_gt(buf, p, end, has_gt)
        if p < 0:
            return BAD_GENOTYPE
        shift = 2 * (s & 3)
        for k in range(n_alt):
            dosage = _dosage(a0, a1, k + 1, half_haploid)
            if dosage > 0:
                alt_count[k] += dosage
            packed[k] |= _code(dosage) << shift
        if _dosage(a0, a1, 1, half_haploid) >= 0:
            called += 1
        if (s & 3) == 3 or s == n_samples - 1:
            for k in range(n_alt):
                bed_rows[k, s >> 2] = np.uint8(packed[k])
                packed[k] = 0
    if p != end + 1:
        return BAD_COLUMNS
    for k in range(n_alt):
        n_called[k] = called
    return OK


@numba.njit(cache=True, nogil=True, parallel=True)
def decode_genotypes(buf: np.ndarray, ends: np.ndarray, info: np.ndarray, first_row: np.ndarray,
                     n_samples: int, half_haploid: bool, bed: np.ndarray):
    """.bed rows into ``bed`` (output variants x ceil(n_samples / 4), uint8; every byte of a
    line's rows is written), and ``n_called`` and ``alt_count`` per output variant and a status
    per line. Output rows of line i start at first_row[i] (first_row has one more entry: the
    total)."""
    m = ends.shape[0]
    total = first_row[m]
    n_called = np.zeros(total, dtype=np.int64)
    alt_count = np.zeros(total, dtype=np.int64)
    status = np.zeros(m, dtype=np.int64)
    for task in numba.prange((m + LINES_PER_TASK - 1) // LINES_PER_TASK):
        one = np.zeros(3, dtype=np.int64)
        for line in range(task * LINES_PER_TASK, min(m, (task + 1) * LINES_PER_TASK)):
            r0 = first_row[line]
            r1 = first_row[line + 1]
            has_gt = info[line, 3] == 1
            if r1 - r0 == 1:
                _biallelic_line(buf, info[line, 4], ends[line], n_samples, has_gt, half_haploid, bed[r0],
                                one)
                status[line] = one[0]
                n_called[r0] = one[1]
                alt_count[r0] = one[2]
            else:
                status[line] = _multiallelic_line(buf, info[line, 4], ends[line], n_samples, has_gt, r1 - r0,
                                                  half_haploid, bed[r0:r1], n_called[r0:r1], alt_count[r0:r1])
    return n_called, alt_count, status


@numba.njit(cache=True, nogil=True)
def alt_bounds(buf: np.ndarray, fields: np.ndarray, first_row: np.ndarray):
    """Start and end of each output variant's ALT allele (the comma-separated pieces of ALT)."""
    m = fields.shape[0]
    total = first_row[m]
    starts = np.empty(total, dtype=np.int64)
    ends = np.empty(total, dtype=np.int64)
    for line in range(m):
        row = first_row[line]
        a = fields[line, 4, 0]
        b = fields[line, 4, 1]
        piece = a
        for i in range(a, b + 1):
            if i == b or buf[i] == COMMA:
                starts[row] = piece
                ends[row] = i
                row += 1
                piece = i + 1
    return starts, ends


@numba.njit(cache=True, nogil=True)
def gather_text(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """The byte ranges [starts[i], ends[i]) of ``buf`` packed end to end, with int64 offsets
    (Arrow's large-string layout)."""
    m = starts.shape[0]
    offsets = np.zeros(m + 1, dtype=np.int64)
    for i in range(m):
        offsets[i + 1] = offsets[i] + (ends[i] - starts[i])
    data = np.empty(offsets[m], dtype=np.uint8)
    for i in range(m):
        o = offsets[i]
        for j in range(starts[i], ends[i]):
            data[o] = buf[j]
            o += 1
    return data, offsets


@numba.njit(cache=True, nogil=True)
def first_line_off_contig(buf: np.ndarray, starts: np.ndarray, contig: np.ndarray) -> int:
    """Index of the first line whose CHROM is not ``contig`` (its bytes); the number of lines
    when all are on it."""
    k = contig.shape[0]
    for line in range(starts.shape[0]):
        s = starts[line]
        if s + k >= buf.shape[0] or buf[s + k] != TAB:
            return line
        for j in range(k):
            if buf[s + j] != contig[j]:
                return line
    return starts.shape[0]
