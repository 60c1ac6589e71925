"""numba kernels for per-base read depth: pure functions on arrays, no I/O.

Depth follows mosdepth's definition (and ``samtools depth -s``): reads with any flag of
``exclude_flags`` (default 1796 = unmapped, secondary, QC-fail, duplicate) or MAPQ below
``min_mapq`` are skipped; a read covers the reference bases of its M/=/X operations (deletions
and skips are not covered); where the two mates of a proper pair overlap, the overlap counts
once. With ``count_overlaps`` both mates count (``samtools depth``).

A contig's depth is kept as a difference array ``diff`` (length L + 1): a read's covered block
[s, e) adds 1 at s and -1 at e; :func:`to_depth` turns it into depth in place.
"""

from __future__ import annotations

import numba
import numpy as np

from cohortflow.alignment.kernels import F_PROPER, F_SUPPLEMENTARY

MAX_EVENTS = 64  # start/end events kept per stored mate (32 aligned blocks)
MAX_DEPTH = 400000  # depths above are binned just below it, as mosdepth

# state[] slots kept by the caller between batches
S_LAST_POS = 0  # position of the last counted read on the current contig
S_UNSORTED = 1  # 1 once a read came before its predecessor
S_FREE_TOP = 2  # number of free slots on the free stack
S_MAX_SPAN = 3  # longest reference span of a stored mate: a later mate further away cannot overlap it
S_RESUME = 4  # after NEED_SLOTS: the read to resume from
S_N = 5

# return codes of add_depth besides a read index
NEED_SLOTS = -1
UNSORTED = -2


def new_mate_table(capacity: int):
    """The name-hash -> slot table of stored mates: open addressing with linear probing in two
    arrays (keys stored + 1, 0 = empty) of twice the slot capacity, so it is at most half full.
    (numba's typed dict would cost ~0.5 s of compilation at every start.)"""
    size = 1 << max(4, int(2 * capacity - 1).bit_length())
    return np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)


@numba.njit(cache=True, nogil=True, inline="always")
def _ht_find(keys, key):
    """Index of ``key`` in the table, or -1."""
    mask = keys.shape[0] - 1
    i = (key * np.int64(0x9E3779B97F4A7C1)) & mask
    while keys[i] != 0:
        if keys[i] == key + 1:
            return i
        i = (i + 1) & mask
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _ht_insert(keys, vals, key, val):
    mask = keys.shape[0] - 1
    i = (key * np.int64(0x9E3779B97F4A7C1)) & mask
    while keys[i] != 0 and keys[i] != key + 1:
        i = (i + 1) & mask
    keys[i] = key + 1
    vals[i] = val


@numba.njit(cache=True, nogil=True)
def _ht_delete(keys, vals, i):
    """Remove entry i, shifting later entries of its probe run back (no tombstones)."""
    mask = keys.shape[0] - 1
    keys[i] = 0
    j = i
    while True:
        j = (j + 1) & mask
        if keys[j] == 0:
            return
        home = ((keys[j] - 1) * np.int64(0x9E3779B97F4A7C1)) & mask
        # move entry j into the hole at i unless its home lies cyclically in (i, j]
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            keys[i] = keys[j]
            vals[i] = vals[j]
            keys[j] = 0
            i = j


@numba.njit(cache=True, nogil=True)
def rehash_mates(keys, vals, new_keys, new_vals):
    for i in range(keys.shape[0]):
        if keys[i] != 0:
            _ht_insert(new_keys, new_vals, keys[i] - 1, vals[i])


def new_slots(capacity: int):
    """Storage for stored mates: event positions/values and (start, stop, n_events, n_cigar)."""
    return (np.zeros((capacity, MAX_EVENTS), dtype=np.int64), np.zeros((capacity, MAX_EVENTS), dtype=np.int8),
            np.zeros((capacity, 4), dtype=np.int64), np.arange(capacity - 1, -1, -1, dtype=np.int64))


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(buf, o):
    return np.int64(buf[o]) | (np.int64(buf[o + 1]) << 8) | (np.int64(buf[o + 2]) << 16) | (np.int64(buf[o + 3]) << 24)


@numba.njit(cache=True, nogil=True)
def _name_hash(buf, off):
    """FNV-1a hash of a record's read name (without its NUL)."""
    l_name = np.int64(buf[off + 12])
    h = np.uint64(0xCBF29CE484222325)
    for k in range(off + 36, off + 36 + l_name - 1):
        h = (h ^ np.uint64(buf[k])) * np.uint64(0x100000001B3)
    return np.int64(h & np.uint64(0x3FFFFFFFFFFFFFFF))  # 62 bits: the table stores key + 1


@numba.njit(cache=True, nogil=True)
def _read_events(buf, off, pos, ev_pos, ev_val, limit):
    """Start (+1) / end (-1) events of a read's covered blocks, adjacent blocks merged and
    clipped to the contig end ``limit`` (a read may hang over it).

    Returns (number of events, read end on the reference, number of CIGAR operations)."""
    l_name = np.int64(buf[off + 12])
    n_cigar = np.int64(buf[off + 16]) | (np.int64(buf[off + 17]) << 8)
    p_cigar = off + 36 + l_name
    ref = pos
    n_ev = 0
    block_start = -1
    block_end = -1
    cap = ev_pos.shape[0]
    for k in range(n_cigar):
        c = _u32(buf, p_cigar + 4 * k)
        op = c & 0xF
        ln = c >> 4
        if op == 0 or op == 7 or op == 8:  # M = X cover the reference
            if ln > 0:
                if block_end == ref:  # adjacent: extend the open block
                    block_end = ref + ln
                else:
                    if block_start >= 0 and n_ev + 2 <= cap:
                        ev_pos[n_ev] = min(block_start, limit)
                        ev_val[n_ev] = 1
                        ev_pos[n_ev + 1] = min(block_end, limit)
                        ev_val[n_ev + 1] = -1
                        n_ev += 2
                    elif block_start >= 0:
                        n_ev = cap + 1
                    block_start = ref
                    block_end = ref + ln
            ref += ln
        elif op == 2 or op == 3:  # D N: reference skipped, not covered
            ref += ln
    if block_start >= 0:
        if n_ev + 2 <= cap:
            ev_pos[n_ev] = min(block_start, limit)
            ev_val[n_ev] = 1
            ev_pos[n_ev + 1] = min(block_end, limit)
            ev_val[n_ev + 1] = -1
            n_ev += 2
        else:
            n_ev = cap + 1
    return n_ev, ref, n_cigar


@numba.njit(cache=True, nogil=True)
def _remove_pair_overlap(diff, ev_pos, ev_val, n_ev, m_pos, m_val, m_n):
    """Count once the bases both mates cover: sweep the two reads' events in position order
    (the later read's first at equal positions) and undo one count where both are open."""
    n = n_ev + m_n
    pos = np.empty(n, dtype=np.int64)
    val = np.empty(n, dtype=np.int64)
    for k in range(n_ev):
        pos[k] = ev_pos[k]
        val[k] = ev_val[k]
    for k in range(m_n):
        pos[n_ev + k] = m_pos[k]
        val[n_ev + k] = m_val[k]
    for i in range(1, n):  # stable insertion sort by position (a handful of events)
        p = pos[i]
        v = val[i]
        j = i - 1
        while j >= 0 and pos[j] > p:
            pos[j + 1] = pos[j]
            val[j + 1] = val[j]
            j -= 1
        pos[j + 1] = p
        val[j + 1] = v
    depth = 0
    last = 0
    for k in range(n):
        if val[k] == -1 and depth == 2:
            diff[last] -= 1
            diff[pos[k]] += 1
        depth += val[k]
        last = pos[k]


@numba.njit(cache=True, nogil=True, inline="always")
def _i32(buf, o):
    v = _u32(buf, o)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@numba.njit(cache=True, nogil=True)
def record_tid(buf, off):
    return _i32(buf, off + 4)


@numba.njit(cache=True, nogil=True)
def add_depth(buf, rec_off, n, start, tid, diff, exclude_flags, min_mapq, count_overlaps, state,
              mate_keys, mate_vals, slot_pos, slot_val, slot_meta, free_stack, seen):
    """Add records rec_off[start:n] (BAM record bytes in ``buf``) of contig ``tid`` to its
    difference array ``diff``; ``seen[t]`` is set for every contig t a record names.

    Returns ``n`` when all were added, the index of the first counted read on another contig
    (with ``tid`` -1: the first counted read; the caller finishes this contig and calls again from
    there), ``NEED_SLOTS`` when the mate storage is full (grow it and call again from
    ``state[S_RESUME]``, the read that needed it, for which nothing was added) or ``UNSORTED``
    when a read starts before the previous one.
    """
    ev_pos = np.empty(MAX_EVENTS, dtype=np.int64)
    ev_val = np.empty(MAX_EVENTS, dtype=np.int8)
    limit = diff.shape[0] - 1  # the contig length
    for i in range(start, n):
        off = rec_off[i]
        rtid = _i32(buf, off + 4)
        if rtid >= 0:
            seen[rtid] = True
        flag = np.int64(buf[off + 18]) | (np.int64(buf[off + 19]) << 8)
        if flag & exclude_flags or np.int64(buf[off + 13]) < min_mapq or rtid < 0:
            continue
        if rtid != tid:
            return i
        pos = _i32(buf, off + 8)
        if pos < state[S_LAST_POS]:
            state[S_UNSORTED] = 1
            return UNSORTED
        n_ev, stop, n_cigar = _read_events(buf, off, pos, ev_pos, ev_val, limit)
        if (not count_overlaps) and (flag & F_PROPER) and not (flag & F_SUPPLEMENTARY) and n_ev <= MAX_EVENTS:
            mpos = _i32(buf, off + 28)
            same_contig = _i32(buf, off + 24) == tid
            # the name (hash) is needed only if this read is stored or its mate may have been:
            # a mate starting more than the longest stored span before this read was not stored
            if not (same_contig and stop > mpos and pos <= mpos) and not (
                    mpos <= pos and pos - mpos < state[S_MAX_SPAN]):
                key = -1
            else:
                key = _name_hash(buf, off)
            found = _ht_find(mate_keys, key) if key >= 0 else -1
            if key < 0:
                pass
            elif same_contig and stop > mpos and (pos < mpos or (pos == mpos and found < 0)):
                if state[S_FREE_TOP] == 0:
                    state[S_RESUME] = i
                    return NEED_SLOTS
                state[S_FREE_TOP] -= 1
                slot = free_stack[state[S_FREE_TOP]]
                for k in range(n_ev):
                    slot_pos[slot, k] = ev_pos[k]
                    slot_val[slot, k] = ev_val[k]
                slot_meta[slot, 0] = pos
                slot_meta[slot, 1] = stop
                slot_meta[slot, 2] = n_ev
                slot_meta[slot, 3] = n_cigar
                _ht_insert(mate_keys, mate_vals, key, slot)
                if stop - pos > state[S_MAX_SPAN]:
                    state[S_MAX_SPAN] = stop - pos
            elif found >= 0:
                slot = mate_vals[found]
                _ht_delete(mate_keys, mate_vals, found)
                free_stack[state[S_FREE_TOP]] = slot
                state[S_FREE_TOP] += 1
                if n_cigar == 1 and slot_meta[slot, 3] == 1:
                    diff[min(pos, limit)] -= 1
                    diff[min(slot_meta[slot, 1], limit)] += 1
                else:
                    _remove_pair_overlap(diff, ev_pos, ev_val, n_ev, slot_pos[slot], slot_val[slot], slot_meta[slot, 2])
        if n_ev <= MAX_EVENTS:
            for k in range(n_ev):
                diff[ev_pos[k]] += ev_val[k]
        else:  # a read of more than MAX_EVENTS / 2 blocks: added block by block, never stored
            _add_long_read(buf, off, pos, diff, limit)
        state[S_LAST_POS] = pos
    return n


@numba.njit(cache=True, nogil=True)
def _add_long_read(buf, off, pos, diff, limit):
    l_name = np.int64(buf[off + 12])
    n_cigar = np.int64(buf[off + 16]) | (np.int64(buf[off + 17]) << 8)
    p_cigar = off + 36 + l_name
    ref = pos
    for k in range(n_cigar):
        c = _u32(buf, p_cigar + 4 * k)
        op = c & 0xF
        ln = c >> 4
        if op == 0 or op == 7 or op == 8:
            diff[min(ref, limit)] += 1
            diff[min(ref + ln, limit)] -= 1
            ref += ln
        elif op == 2 or op == 3:
            ref += ln


@numba.njit(cache=True, nogil=True)
def to_depth(diff, length, hist):
    """Turn ``diff`` into depth in place and count positions [0, length) by depth into ``hist``
    (complete only when the returned max is below len(hist)); returns (sum, min, max) of depth
    over [0, length). One pass: a contig can be hundreds of megabases."""
    d = np.int64(0)
    total = np.int64(0)
    lo = np.int64(1) << 62
    hi = np.int64(0)
    top = hist.shape[0]
    for i in range(length):
        d += diff[i]
        diff[i] = d
        total += d
        if d < lo:
            lo = d
        if d > hi:
            hi = d
        if 0 <= d < top:
            hist[d] += 1
    for i in range(length, diff.shape[0]):
        d += diff[i]
        diff[i] = d
    if length == 0:
        lo = 0
    return total, lo, hi


@numba.njit(cache=True, nogil=True)
def add_histogram(depth, start, stop, hist):
    """Count positions [start, stop) by depth into ``hist`` (depth > MAX_DEPTH binned just
    below it, as mosdepth; ``hist`` must be longer than the largest depth)."""
    stop = min(stop, depth.shape[0])
    for i in range(start, stop):
        v = depth[i]
        if v > MAX_DEPTH:
            v = MAX_DEPTH - 10
        if v >= 0:
            hist[v] += 1


@numba.njit(cache=True, nogil=True)
def region_stats(depth, starts, stops, out_mean, out_stat):
    """Per region [start, stop): mosdepth's mean (sum of depth / length, added position by
    position in floating point as mosdepth does, so the printed digits agree) and
    (length, sum, min, max)."""
    for r in range(starts.shape[0]):
        s = starts[r]
        e = stops[r]
        length = e - s
        mean = 0.0
        total = np.int64(0)
        lo = np.int64(1) << 62
        hi = np.int64(0)
        for i in range(s, min(e, depth.shape[0])):
            v = depth[i]
            mean += np.float64(v) / np.float64(length)
            total += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        out_mean[r] = mean
        out_stat[r, 0] = length
        out_stat[r, 1] = total
        out_stat[r, 2] = lo if length > 0 else 0
        out_stat[r, 3] = hi


@numba.njit(cache=True, nogil=True)
def _put_int(out, o, v):
    if v == 0:
        out[o] = 48
        return o + 1
    digits = 0
    t = v
    while t > 0:
        t //= 10
        digits += 1
    for k in range(digits - 1, -1, -1):
        out[o + k] = 48 + v % 10
        v //= 10
    return o + digits


@numba.njit(cache=True, nogil=True)
def format_runs(depth, start, stop, name, out):
    """Write runs of equal depth in [start, stop) as BED lines ``name start end depth`` into
    ``out`` until it is nearly full; returns (bytes written, position where the next call
    resumes: ``stop`` when done). Runs are never split."""
    line_max = name.shape[0] + 64
    o = 0
    i = start
    while i < stop and o + line_max <= out.shape[0]:
        d = depth[i]
        j = i + 1
        while j < stop and depth[j] == d:
            j += 1
        for k in range(name.shape[0]):
            out[o + k] = name[k]
        o += name.shape[0]
        out[o] = 9
        o = _put_int(out, o + 1, i)
        out[o] = 9
        o = _put_int(out, o + 1, j)
        out[o] = 9
        o = _put_int(out, o + 1, d if d > 0 else 0)
        out[o] = 10
        o += 1
        i = j
    return o, i
