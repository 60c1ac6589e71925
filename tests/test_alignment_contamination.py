"""Contamination estimate, SNP-site base counts and the sample-swap check (issue 6).

Peers and known answers: simulated allele counts from VerifyBamID's model at known mixing
fractions; a simulated two-person BAM mixture; ``samtools mpileup`` and pysam ``count_coverage``
base counts; hand-computed allele frequencies for the site readers.
"""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
from pysam.libcbgzf import BGZFile

from cohortflow.alignment.contamination import (
    call_genotypes,
    concordance_rows,
    estimate_contamination,
    genotype_concordance,
    swap_check,
)
from cohortflow.alignment.sites import (
    NT16,
    SiteCounter,
    Sites,
    index_sites,
    read_sites,
    sites_from_plink,
    write_sites_vcf,
)
from cohortflow.alignment.sites_kernels import STATUS_UNSORTED, count_site_bases, new_site_state
from cohortflow.errors import InputFormatError
from conftest import require_shared, require_tool

LETTERS = "ACGT"


# --------------------------------------------------------------------------- helpers


def bam_records(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(buf, rec_off, reference names) of a whole BAM, decompressed with pysam's BGZF reader."""
    data = BGZFile(str(path), "rb").read()
    buf = np.frombuffer(data, dtype=np.uint8)
    assert data[:4] == b"BAM\1"
    l_text = int.from_bytes(data[4:8], "little")
    o = 8 + l_text
    n_ref = int.from_bytes(data[o:o + 4], "little")
    o += 4
    names = []
    for _ in range(n_ref):
        l_name = int.from_bytes(data[o:o + 4], "little")
        names.append(data[o + 4:o + 4 + l_name - 1].decode())
        o += 4 + l_name + 4
    offsets = []
    while o < len(data):
        offsets.append(o)
        o += 4 + int.from_bytes(data[o:o + 4], "little")
    assert o == len(data)
    return buf, np.asarray(offsets, dtype=np.int64), names


def make_sites(contig_names, contig, pos, ref_letters, alt_letters, af) -> Sites:
    return Sites(contig_names=tuple(contig_names), contig=np.asarray(contig, dtype=np.int32),
                 pos=np.asarray(pos, dtype=np.int64),
                 ref=np.array([NT16[b] for b in ref_letters], dtype=np.uint8),
                 alt=np.array([NT16[b] for b in alt_letters], dtype=np.uint8),
                 af=np.asarray(af, dtype=np.float64))


def count_bam(path: Path, sites: Sites, *, batches: int = 1, **kwargs) -> np.ndarray:
    buf, rec_off, names = bam_records(path)
    counter = SiteCounter(sites, names, path=path, **kwargs)
    for chunk in np.array_split(rec_off, batches):
        counter.add(buf, chunk)
    return counter.counts


def simulate_counts(rng, n_sites, alpha, *, depth=15.0, error=0.01):
    af = rng.uniform(0.05, 0.5, n_sites)
    g = rng.binomial(2, af)
    h = rng.binomial(2, af)
    n = rng.poisson(depth, n_sites)
    q = (1 - alpha) * g / 2 + alpha * h / 2
    alt = rng.binomial(n, error + q * (1 - 2 * error))
    return n - alt, alt, af, g


# --------------------------------------------------------------------------- (a) model-level


@pytest.mark.parametrize("alpha", [0.0, 0.02, 0.05, 0.10, 0.20])
def test_freemix_and_chipmix_recover_alpha(alpha):
    """2,000 sites, depth Poisson(15), af U(0.05, 0.5), error 0.01: |estimate - alpha| <= 1.5 pp."""
    rng = np.random.default_rng(1000 + int(alpha * 100))
    ref, alt, af, g = simulate_counts(rng, 2000, alpha)
    free = estimate_contamination(ref, alt, af)
    chip = estimate_contamination(ref, alt, af, genotypes=g)
    assert free["method"] == "freemix" and chip["method"] == "chipmix"
    for res in (free, chip):
        assert abs(res["alpha"] - alpha) <= 0.015, res
        assert 0.0 <= res["alpha"] <= 0.5
        assert res["loglik"] >= res["loglik_alpha0"] - 1e-9
        assert res["n_sites"] == int(np.count_nonzero(ref + alt))
        assert res["mean_depth"] == pytest.approx((ref + alt).mean())
    # knowing the genotypes sharpens the estimate: chipmix within 1 pp here
    assert abs(chip["alpha"] - alpha) <= 0.01, chip


def test_contamination_loglik_is_a_real_likelihood():
    """At a one-read site the likelihood at alpha 0 sums to 1 over the two outcomes, and P(alt)
    is the allele frequency passed through the symmetric error: 0.02 + 0.3 * 0.96."""
    af = np.array([0.3])
    p_alt = np.exp(estimate_contamination([0], [1], af, error=0.02)["loglik_alpha0"])
    p_ref = np.exp(estimate_contamination([1], [0], af, error=0.02)["loglik_alpha0"])
    assert p_alt + p_ref == pytest.approx(1.0)
    assert p_alt == pytest.approx(0.02 + 0.3 * (1 - 0.04))


def test_contamination_ignores_uncovered_and_missing_genotype_sites():
    rng = np.random.default_rng(7)
    ref, alt, af, g = simulate_counts(rng, 500, 0.05)
    ref = np.concatenate([ref, np.zeros(100, dtype=int)])
    alt = np.concatenate([alt, np.zeros(100, dtype=int)])
    af = np.concatenate([af, np.full(100, 0.3)])
    g = np.concatenate([g, np.zeros(100, dtype=int)])
    g[:10] = -1
    res = estimate_contamination(ref, alt, af, genotypes=g)
    assert res["n_sites"] == int(np.count_nonzero((ref + alt)[10:]))
    empty = estimate_contamination([0, 0], [0, 0], [0.2, 0.3])
    assert empty["n_sites"] == 0 and np.isnan(empty["alpha"])


# --------------------------------------------------------------------------- (b) BAM-level simulation

READ_LEN = 100


def _random_genome(rng, lengths):
    return {name: rng.choice(np.frombuffer(b"ACGT", dtype=np.uint8), size=n) for name, n in lengths.items()}


def _simulate_fragments(rng, genome, site_pos, haplotype_alleles, alt_codes, depth, name_prefix):
    """Read pairs (as tuples) from one person's two haplotypes, with assorted CIGARs, base errors,
    low base qualities and reads the counters must skip (duplicate, QC fail, secondary, MAPQ 10)."""
    reads = []
    tids = {name: tid for tid, name in enumerate(genome)}
    for contig, seq in genome.items():
        haps = []
        for h in range(2):
            hs = seq.copy()
            carries = haplotype_alleles[contig][h]
            hs[site_pos[contig][carries]] = alt_codes[contig][carries]
            haps.append(hs)
        n_pairs = int(depth * seq.size / (2 * READ_LEN))
        for k in range(n_pairs):
            hs = haps[rng.integers(2)]
            frag_start = int(rng.integers(0, seq.size - 800))
            frag_len = int(np.clip(rng.normal(220, 40), 120, 300))
            pair_flag = 0
            mapq = 60
            u = rng.random()
            if u < 0.02:
                pair_flag = 0x400
            elif u < 0.03:
                pair_flag = 0x200
            elif u < 0.06:
                mapq = 10
            for mate, start in ((0, frag_start), (1, frag_start + frag_len - READ_LEN)):
                style = rng.choice(["M", "M", "M", "M", "S", "D", "I", "N", "H"])
                noise = rng.choice(np.frombuffer(b"ACGT", dtype=np.uint8), size=10)
                if style == "M":
                    bases, cigar = hs[start:start + 100], [(0, 100)]
                elif style == "S":
                    bases, cigar = np.concatenate([noise[:5], hs[start:start + 95]]), [(4, 5), (0, 95)]
                elif style == "D":
                    bases, cigar = np.concatenate([hs[start:start + 40], hs[start + 42:start + 102]]), [(0, 40), (2, 2), (0, 60)]
                elif style == "I":
                    bases, cigar = np.concatenate([hs[start:start + 40], noise[:3], hs[start + 40:start + 97]]), [(0, 40), (1, 3), (0, 57)]
                elif style == "N":
                    bases, cigar = np.concatenate([hs[start:start + 30], hs[start + 530:start + 600]]), [(0, 30), (3, 500), (0, 70)]
                else:
                    bases, cigar = hs[start:start + 100], [(5, 10), (0, 100)]
                bases = bases.copy()
                err = rng.random(bases.size) < 0.005
                shift = rng.integers(1, 4, size=int(err.sum()))
                idx = np.searchsorted(np.frombuffer(b"ACGT", dtype=np.uint8), bases[err])
                bases[err] = np.frombuffer(b"ACGT", dtype=np.uint8)[(idx + shift) % 4]
                quals = np.where(rng.random(bases.size) < 0.05, 10, 30).astype(np.uint8)
                flag = 0x1 | 0x2 | pair_flag | (0x40 | 0x20 if mate == 0 else 0x80 | 0x10)
                reads.append((tids[contig], start, f"{name_prefix}{k}", flag, mapq, cigar, bases.tobytes().decode(), quals))
            if rng.random() < 0.01:  # a secondary copy of mate 1, which must not count
                tid, start, name, flag, _, cigar, bases, quals = reads[-2]
                reads.append((tid, start, name, flag | 0x100, 60, cigar, bases, quals))
    return reads


def _write_bam(path, genome, reads):
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": name, "LN": int(seq.size)} for name, seq in genome.items()]}
    reads = sorted(reads, key=lambda r: (r[0], r[1], r[2], r[3]))
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for tid, start, name, flag, mapq, cigar, bases, quals in reads:
            seg = pysam.AlignedSegment(out.header)
            seg.query_name = name
            seg.flag = flag
            seg.reference_id = tid
            seg.reference_start = start
            seg.mapping_quality = mapq
            seg.cigartuples = cigar
            seg.query_sequence = bases
            seg.query_qualities = pysam.qualitystring_to_array("".join(chr(q + 33) for q in quals))
            seg.next_reference_id = tid
            seg.next_reference_start = start
            out.write(seg)
    pysam.index(str(path))


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """Two unrelated people over a random 2-contig genome with 2,000 known SNPs, their genotypes,
    a pure BAM of A (depth 20) and A's BAM with 10% of the fragments from B."""
    tmp = tmp_path_factory.mktemp("mix")
    rng = np.random.default_rng(2024)
    genome = _random_genome(rng, {"c1": 100_000, "c2": 50_000})
    site_pos, alt_codes, site_af, alleles = {}, {}, {}, {"A": {}, "B": {}}
    for contig, seq in genome.items():
        n = {"c1": 1334, "c2": 666}[contig]
        pos = np.sort(rng.choice(np.arange(200, seq.size - 200), size=n, replace=False))
        ref = seq[pos]
        idx = np.searchsorted(np.frombuffer(b"ACGT", dtype=np.uint8), ref)
        alt = np.frombuffer(b"ACGT", dtype=np.uint8)[(idx + rng.integers(1, 4, size=n)) % 4]
        af = rng.uniform(0.05, 0.5, n)
        site_pos[contig], alt_codes[contig], site_af[contig] = pos, alt, af
        for person in ("A", "B"):
            alleles[person][contig] = rng.random((2, n)) < af
    pure = tmp / "A.bam"
    mixed = tmp / "A_plus_B.bam"
    reads_a = _simulate_fragments(rng, genome, site_pos, alleles["A"], alt_codes, 20.0, "a")
    _write_bam(pure, genome, reads_a)
    reads_a90 = _simulate_fragments(rng, genome, site_pos, alleles["A"], alt_codes, 18.0, "a")
    reads_b10 = _simulate_fragments(rng, genome, site_pos, alleles["B"], alt_codes, 2.0, "b")
    _write_bam(mixed, genome, reads_a90 + reads_b10)
    # the sites VCF lists c2 before c1 (not the BAM's order): index_sites lines them up
    chrom, pos1, refs, alts, afs, geno = [], [], [], [], [], []
    for contig in ("c2", "c1"):
        chrom += [contig] * site_pos[contig].size
        pos1.append(site_pos[contig] + 1)
        refs += list(genome[contig][site_pos[contig]].tobytes().decode())
        alts += list(alt_codes[contig].tobytes().decode())
        afs.append(site_af[contig])
        geno.append(np.stack([alleles[p][contig].sum(axis=0) for p in ("A", "B")], axis=1))
    vcf = tmp / "sites.vcf.gz"
    write_sites_vcf(vcf, chrom, np.concatenate(pos1), refs, alts, np.concatenate(afs))
    return {"pure": pure, "mixed": mixed, "vcf": vcf, "genotypes": np.concatenate(geno).astype(np.int8),
            "genome": genome}


def test_bam_mixture_contamination(two_people):
    """Kernel counts + freemix on simulated BAMs: 10% of B in A -> within 3 pp of 0.10; pure A < 0.02.
    With A's genotypes (chipmix) likewise."""
    sites = read_sites(two_people["vcf"])
    assert len(sites) == 2000 and sites.contig_names == ("c2", "c1")
    geno_a = two_people["genotypes"][:, 0]
    results = {}
    for name in ("pure", "mixed"):
        counts = count_bam(two_people[name], sites, batches=7)
        assert counts[:, 2].sum() < 0.01 * counts.sum()  # only base errors show a third base
        free = estimate_contamination(counts[:, 0], counts[:, 1], sites.af)
        chip = estimate_contamination(counts[:, 0], counts[:, 1], sites.af, genotypes=geno_a)
        results[name] = (free, chip)
        assert free["n_sites"] > 1900 and 12 < free["mean_depth"] < 25
    for res in results["pure"]:
        assert res["alpha"] < 0.02, res
    for res in results["mixed"]:
        assert abs(res["alpha"] - 0.10) <= 0.03, res


def test_kernel_batches_and_pysam_count_coverage(two_people):
    """Kernel counts on the simulated mixture equal pysam count_coverage's (MAPQ >= 20, baseQ >= 20,
    flags 0x704 skipped) at every site, whether the records come in 1 or 13 batches."""
    sites = read_sites(two_people["vcf"])
    one = count_bam(two_people["mixed"], sites)
    many = count_bam(two_people["mixed"], sites, batches=13)
    np.testing.assert_array_equal(one, many)
    expected = np.zeros_like(one)
    chrom = sites.chrom
    with pysam.AlignmentFile(str(two_people["mixed"])) as bam:
        for contig in sites.contig_names:
            rows = np.flatnonzero(chrom == contig)
            cov = np.asarray(bam.count_coverage(
                contig, 0, bam.get_reference_length(contig), quality_threshold=20,
                read_callback=lambda r: not (r.flag & 0x704) and r.mapping_quality >= 20))
            at = cov[:, sites.pos[rows]]  # (4, n) in A C G T order
            code_row = {1: 0, 2: 1, 4: 2, 8: 3}
            ref_i = np.array([code_row[c] for c in sites.ref[rows]])
            alt_i = np.array([code_row[c] for c in sites.alt[rows]])
            cols = np.arange(rows.size)
            expected[rows, 0] = at[ref_i, cols]
            expected[rows, 1] = at[alt_i, cols]
            expected[rows, 2] = at.sum(axis=0) - expected[rows, 0] - expected[rows, 1]
    np.testing.assert_array_equal(one, expected)
    # the filters do something here: without them the counts are larger
    loose = count_bam(two_people["mixed"], sites, min_mapq=0, min_baseq=0)
    assert loose.sum() > one.sum()


def test_unsorted_records_raise(two_people):
    sites = read_sites(two_people["vcf"])
    buf, rec_off, names = bam_records(two_people["pure"])
    counter = SiteCounter(sites, names, path=two_people["pure"])
    counter.add(buf, rec_off[:100])
    with pytest.raises(InputFormatError, match=r"A\.bam: record \d+: alignments not coordinate-sorted"):
        counter.add(buf, rec_off[::-1][:100])
    # the raw kernel reports the offending record (its index in rec_off) instead of raising
    index = index_sites(sites, names)
    starts = np.array([int.from_bytes(buf[o + 8:o + 12].tobytes(), "little") for o in rec_off[:200]])
    i = int(np.flatnonzero(np.diff(starts) > 0)[0])
    next_site, last_read = new_site_state(index.tid_start)
    counts = np.zeros((len(sites), 3), dtype=np.int32)
    status, bad = count_site_bases(buf, rec_off[[i + 1, i]], 2, index.pos, index.ref, index.alt, index.row,
                                   index.tid_start, next_site, last_read, counts, 20, 20)
    assert (status, bad) == (STATUS_UNSORTED, 1)


# --------------------------------------------------------------------------- (c) samtools mpileup peer


def _mpileup_counts(bam: Path, fasta: Path, min_mapq: int) -> dict[tuple[str, int], dict[str, int]]:
    """Base letter counts per (contig, 0-based pos) from samtools mpileup -B -q min_mapq -Q20 -A -x."""
    samtools = require_tool("samtools")
    out = subprocess.run([samtools, "mpileup", "-B", "-q", str(min_mapq), "-Q", "20", "-A", "-x",
                          "-f", str(fasta), str(bam)], check=True, capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines():
        chrom, pos, ref_base, _depth, bases = line.split("\t")[:5]
        ref_base = ref_base.upper()
        counts: dict[str, int] = {}
        i = 0
        while i < len(bases):
            c = bases[i]
            if c == "^":
                i += 2
                continue
            if c in "+-":
                j = i + 1
                while bases[j].isdigit():
                    j += 1
                i = j + int(bases[i + 1:j])
                continue
            if c in ".,":
                counts[ref_base] = counts.get(ref_base, 0) + 1
            elif c.isalpha():
                counts[c.upper()] = counts.get(c.upper(), 0) + 1
            i += 1  # '$', '*', '#', '>', '<' carry no base
        table[(chrom, int(pos) - 1)] = counts
    return table


@pytest.mark.parametrize("bam_name,fasta_name,min_mapq", [
    ("bcftools_mpileup/mpileup.1.bam", "bcftools_mpileup/mpileup.ref.fa", 20),
    ("bcftools_mpileup/mpileup.2.bam", "bcftools_mpileup/mpileup.ref.fa", 20),
    ("htslib_ce/ce_1000.sorted.bam", "htslib_ce/ce.fa", 0),  # its reads have MAPQ 0-17, mostly 1
])
def test_kernel_matches_samtools_mpileup(bam_name, fasta_name, min_mapq, tmp_path):
    """Every covered position with an A/C/G/T reference base is a site (alt = the next letter of
    ACGT): ref / alt / other counts equal samtools mpileup's (-B no BAQ, -A orphans counted, -x no
    overlap removal, -Q 20, default --ff UNMAP,SECONDARY,QCFAIL,DUP) at every site."""
    bam = require_shared("bam_cram_small", bam_name)
    fasta = require_shared("bam_cram_small", fasta_name)
    peer = _mpileup_counts(bam, fasta, min_mapq)
    _, _, names = bam_records(bam)
    with pysam.FastaFile(str(fasta)) as fa:
        keys = sorted(peer, key=lambda k: (names.index(k[0]), k[1]))
        ref_letters = [fa.fetch(c, p, p + 1).upper() for c, p in keys]
    keys = [k for k, b in zip(keys, ref_letters) if b in NT16]
    ref_letters = [b for b in ref_letters if b in NT16]
    assert len(keys) > 250  # ce_1000 piles 1,000 reads on its first 277 positions
    alt_letters = [LETTERS[(LETTERS.index(b) + 1) % 4] for b in ref_letters]
    contig_names = list(dict.fromkeys(c for c, _ in keys))
    sites = make_sites(contig_names, [contig_names.index(c) for c, _ in keys], [p for _, p in keys],
                       ref_letters, alt_letters, np.full(len(keys), 0.3))
    if bam_name.endswith("mpileup.1.bam"):
        # the same sites through a written and re-read VCF
        vcf = tmp_path / "sites.vcf.gz"
        write_sites_vcf(vcf, sites.chrom, sites.pos + 1, sites.ref, sites.alt, sites.af)
        sites = read_sites(vcf)
    counts = count_bam(bam, sites, batches=3, min_mapq=min_mapq)
    expected = np.zeros_like(counts)
    for i, (key, r, a) in enumerate(zip(keys, ref_letters, alt_letters)):
        c = peer[key]
        expected[i] = (c.get(r, 0), c.get(a, 0), sum(c.values()) - c.get(r, 0) - c.get(a, 0))
    np.testing.assert_array_equal(counts, expected)
    assert counts[:, 0].sum() > 10_000


# --------------------------------------------------------------------------- (d) sample swap


def test_concordance_and_swap_check():
    """Six genotyped people at 2,000 sites; BAM counts at depth Poisson(15). Self concordance is
    > 0.95, unrelated people's < 0.7; a swapped pair, a stranger, an ungenotyped sample and a
    shallow BAM get swap / mismatch / no_genotypes / too_few_sites."""
    rng = np.random.default_rng(11)
    n_sites, samples = 2000, [f"S{i}" for i in range(6)]
    af = rng.uniform(0.05, 0.5, n_sites)
    geno = rng.binomial(2, af[:, None], size=(n_sites, 6)).astype(np.int8)
    geno[rng.random(geno.shape) < 0.02] = -1
    stranger = rng.binomial(2, af)

    def reads_of(g, depth=15.0):
        n = rng.poisson(depth, n_sites)
        alt = rng.binomial(n, 0.01 + g / 2 * 0.98)
        return n - alt, alt

    truth = rng.binomial(2, af[:, None], size=(n_sites, 6))
    truth[geno >= 0] = geno[geno >= 0]
    bams = {  # bam -> (claimed sample, true genotypes, depth)
        "b0.bam": ("S0", truth[:, 0], 15.0), "b1.bam": ("S1", truth[:, 2], 15.0),
        "b2.bam": ("S2", truth[:, 1], 15.0), "b3.bam": ("S3", stranger, 15.0),
        "b4.bam": ("S9", truth[:, 4], 15.0), "b5.bam": ("S5", truth[:, 5], 0.05),
    }
    tables = []
    for bam, (claimed, g, depth) in bams.items():
        ref, alt = reads_of(g, depth)
        res = genotype_concordance(ref, alt, geno, min_depth=8)
        tables.append(concordance_rows(bam, claimed, samples, res))
        if bam == "b0.bam":
            assert res["concordance"][0] > 0.95
            assert np.all(res["concordance"][1:] < 0.7)
            assert res["n_compared"][0] > 1500
            assert res["n_called"] == int(np.count_nonzero(ref + alt >= 8))
    table = pd.concat(tables, ignore_index=True)
    report = swap_check(table.sample(frac=1.0, random_state=3)).set_index("bam")
    assert report.loc["b0.bam", "status"] == "ok"
    assert report.loc["b1.bam", "status"] == "swap" and report.loc["b1.bam", "best_other_sample"] == "S2"
    assert report.loc["b2.bam", "status"] == "swap" and report.loc["b2.bam", "best_other_sample"] == "S1"
    assert report.loc["b1.bam", "best_other_concordance"] > 0.95
    assert report.loc["b3.bam", "status"] == "mismatch"
    assert report.loc["b4.bam", "status"] == "no_genotypes" and report.loc["b4.bam", "best_other_sample"] == "S4"
    assert report.loc["b5.bam", "status"] == "too_few_sites"
    # the report does not depend on the table's row order
    pd.testing.assert_frame_equal(swap_check(table), swap_check(table.iloc[::-1]))


def test_concordance_on_simulated_bam(two_people):
    """The pure BAM of A at depth 20 calls A's genotypes (concordance > 0.95), not B's (< 0.7)."""
    sites = read_sites(two_people["vcf"])
    counts = count_bam(two_people["pure"], sites)
    res = genotype_concordance(counts[:, 0], counts[:, 1], two_people["genotypes"])
    assert res["concordance"][0] > 0.95 and res["concordance"][1] < 0.7
    assert res["n_compared"][0] > 1000


def test_call_genotypes_thresholds():
    calls = call_genotypes([8, 4, 0, 7, 1], [0, 4, 8, 0, 7])
    np.testing.assert_array_equal(calls, [0, 1, 2, -1, 2])
    assert call_genotypes([6, 4], [1, 4], min_depth=8).tolist() == [-1, 1]


# --------------------------------------------------------------------------- (e) site readers/writers

HEADER = """##fileformat=VCFv4.2
##contig=<ID=1>
##contig=<ID=2>
##INFO=<ID=AF,Number=A,Type=Float,Description="x">
##INFO=<ID=AC,Number=A,Type=Integer,Description="x">
##INFO=<ID=AN,Number=1,Type=Integer,Description="x">
##FORMAT=<ID=GT,Number=1,Type=String,Description="x">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2
"""


def _vcf(tmp_path, body: str, name="t.vcf") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body.replace("|T|", "\t"))
    return path


def test_read_sites_af_sources_and_drops(tmp_path):
    rows = [
        "1 10 . A G . . AF=0.25 GT 0/1 0/0",       # AF
        "1 20 . A G,T . . AF=0.25,0.1 GT 0/1 0/0",  # multiallelic
        "1 30 . A G . . AC=3;AN=8 GT 0/1 0/0",     # AC/AN -> 0.375
        "1 30 . A C . . AF=0.4 GT 0/1 0/0",        # second SNP at a kept position
        "1 40 . c t . . . GT 0/1 1/1",             # genotypes -> 3/4 (lower case letters)
        "1 50 . C T . . . GT 0/1 ./.",             # genotypes, one missing -> 1/2
        "1 60 . CA C . . AF=0.3 GT 0/1 0/0",       # indel
        "1 70 . C T . . AF=0 GT 0/0 0/0",          # monomorphic
        "1 80 . C T . . AC=4;AN=4 GT 1/1 1/1",     # monomorphic alt
        "1 90 . C T . . . GT ./. ./.",             # no frequency at all
        "1 95 . C . . . AF=0.1 GT 0/0 0/0",        # no ALT
        "2 5 . G A . . AF=0.125 GT 0/0 0/1",
    ]
    path = _vcf(tmp_path, "".join("\t".join(r.split()) + "\n" for r in rows))
    sites = read_sites(path)
    assert sites.contig_names == ("1", "2")
    np.testing.assert_array_equal(sites.pos, [9, 29, 39, 49, 4])
    np.testing.assert_array_equal(sites.contig, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(sites.ref, [NT16["A"], NT16["A"], NT16["C"], NT16["C"], NT16["G"]])
    np.testing.assert_array_equal(sites.alt, [NT16["G"], NT16["G"], NT16["T"], NT16["T"], NT16["A"]])
    np.testing.assert_allclose(sites.af, [0.25, 0.375, 0.75, 0.5, 0.125], rtol=1e-7)
    assert sites.pos.dtype == np.int64 and sites.af.dtype == np.float64 and sites.ref.dtype == np.uint8
    assert sites.summary == {
        "n_records": 12, "n_sites": 5,
        "dropped": {"not_biallelic_snp": 3, "duplicate_position": 1, "af_missing": 1,
                    "af_monomorphic": 2, "other_contig": 0},
        "af_source": {"INFO/AF": 2, "INFO/AC,AN": 1, "genotypes": 2}}
    only2 = read_sites(path, contigs=["2"])
    assert len(only2) == 1 and only2.contig_names == ("2",) and only2.summary["dropped"]["other_contig"] == 11
    # BCF gives the same
    bcf = tmp_path / "t.bcf"
    with pysam.VariantFile(str(path)) as src, pysam.VariantFile(str(bcf), "wb", header=src.header) as dst:
        for rec in src:
            dst.write(rec)
    again = read_sites(bcf)
    np.testing.assert_array_equal(again.pos, sites.pos)
    np.testing.assert_allclose(again.af, sites.af, rtol=1e-7)


@pytest.mark.parametrize("body,pattern", [
    ("1\t30\t.\tA\tG\t.\t.\tAF=0.1\tGT\t0/1\t0/0\n1\t20\t.\tA\tG\t.\t.\tAF=0.1\tGT\t0/1\t0/0\n",
     r"t\.vcf: record 2 \(1:20\): file not sorted: position 20 after 30"),
    ("1\t30\t.\tA\tG\t.\t.\tAF=0.1\tGT\t0/1\t0/0\n2\t20\t.\tA\tG\t.\t.\tAF=0.1\tGT\t0/1\t0/0\n"
     "1\t40\t.\tA\tG\t.\t.\tAF=0.1\tGT\t0/1\t0/0\n",
     r"t\.vcf: record 3 \(1:40\): file not sorted: contig 1 appears again after 2"),
    ("1\t30\t.\tA\tG\t.\t.\tAF=0.1\tGT\t0/1\t0/0\n1\tabc\t.\tA\tG\t.\t.\tAF=0.1\tGT\t0/1\t0/0\n",
     r"t\.vcf: record 2 \(after 1:30\): malformed VCF record"),
    ("1\t30\t.\tA\tG\t.\t.\tAF=1.5\tGT\t0/1\t0/0\n",
     r"t\.vcf: record 1 \(1:30\): alternate-allele frequency 1.5 outside \[0, 1\]"),
])
def test_read_sites_errors(tmp_path, body, pattern):
    path = _vcf(tmp_path, body)
    with pytest.raises(InputFormatError, match=pattern) as err:
        read_sites(path)
    assert "\n" not in str(err.value)


def test_read_sites_not_a_vcf(tmp_path):
    path = tmp_path / "junk.vcf"
    path.write_text("this is not a VCF\n")
    with pytest.raises(InputFormatError, match=r"junk\.vcf: not a VCF/BCF file"):
        read_sites(path)
    with pytest.raises(InputFormatError, match="file not found"):
        read_sites(tmp_path / "absent.vcf.gz")


def test_write_sites_vcf_deterministic_and_indexed(tmp_path):
    chrom = ["2", "1", "1", "2"]
    pos = [300, 200, 100, 50]
    a = tmp_path / "a" / "s.vcf.gz"
    b = tmp_path / "b" / "s.vcf.gz"
    write_sites_vcf(a, chrom, pos, ["A", "c", "G", "T"], ["G", "T", "A", "C"], [0.1, 0.2, 1 / 3, 0.4])
    write_sites_vcf(b, chrom, pos, np.array([1, 2, 4, 8]), np.array([4, 8, 1, 2]), [0.1, 0.2, 1 / 3, 0.4])
    assert a.read_bytes() == b.read_bytes()
    assert Path(f"{a}.tbi").read_bytes() == Path(f"{b}.tbi").read_bytes()
    assert sorted(p.name for p in a.parent.iterdir()) == ["s.vcf.gz", "s.vcf.gz.tbi"]
    text = gzip.decompress(a.read_bytes()).decode()
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == ["2\t50\t.\tT\tC\t.\t.\tAF=0.4", "2\t300\t.\tA\tG\t.\t.\tAF=0.1",
                    "1\t100\t.\tG\tA\t.\t.\tAF=0.333333", "1\t200\t.\tC\tT\t.\t.\tAF=0.2"]
    with pysam.TabixFile(str(a)) as tbx:
        assert [r.split("\t")[1] for r in tbx.fetch("1", 150, 250)] == ["200"]
    sites = read_sites(a)
    np.testing.assert_array_equal(sites.pos, [49, 299, 99, 199])


def test_sites_from_plink(tmp_path):
    """A1 is alt, frequencies from the .bed (missing calls left out), MAF and region filters."""
    from cohortflow.io.plink import write_bed

    geno = np.array([
        [0, 1, 2, 0, -1],    # 1:100 G/A  af 3/8
        [0, 0, 0, 1, 0],     # 1:200 T/C  af 1/10 (maf 0.1)
        [0, 0, 0, 0, 0],     # 1:300 monomorphic
        [2, 2, 2, 2, 1],     # 1:400 af 0.9 (maf 0.1)
        [1, 1, 0, 0, 0],     # 1:500 indel
        [-1, -1, -1, -1, -1],  # 1:600 no calls
        [1, 0, 0, 0, 0],     # 2:100 af 0.1
    ], dtype=np.int8)
    bim = pd.DataFrame({"chrom": ["1"] * 6 + ["2"], "id": [f"v{i}" for i in range(7)], "cm": 0.0,
                        "pos": [100, 200, 300, 400, 500, 600, 100],
                        "a1": ["G", "C", "A", "T", "AT", "G", "C"], "a2": ["A", "T", "G", "G", "A", "A", "T"]})
    fam = pd.DataFrame({"fid": list("abcde"), "iid": list("abcde"), "father": "0", "mother": "0",
                        "sex": 0, "pheno": "-9"})
    prefix = tmp_path / "cohort"
    write_bed(prefix, geno, bim, fam)
    out = tmp_path / "sites.vcf.gz"
    summary = sites_from_plink(prefix, out=out, min_maf=0.1)
    sites = read_sites(out)
    assert sites.chrom.tolist() == ["1", "1", "1", "2"]
    np.testing.assert_array_equal(sites.pos, [99, 199, 399, 99])
    np.testing.assert_array_equal(sites.alt, [NT16["G"], NT16["C"], NT16["T"], NT16["C"]])
    np.testing.assert_array_equal(sites.ref, [NT16["A"], NT16["T"], NT16["G"], NT16["T"]])
    np.testing.assert_allclose(sites.af, [3 / 8, 0.1, 0.9, 0.1], rtol=1e-6)
    assert summary == {"n_variants": 7, "n_sites": 4,
                       "dropped": {"not_biallelic_snp": 1, "outside_regions": 0, "no_called_genotypes": 1,
                                   "below_min_maf": 1}}
    bed = tmp_path / "regions.bed"
    bed.write_text("track name=x\n1\t150\t450\n2\t0\t99\n")  # 2:100 is 0-based 99: outside
    summary = sites_from_plink(prefix, out=out, min_maf=0.2, regions=bed)
    sites = read_sites(out)
    np.testing.assert_array_equal(sites.pos, [])
    assert summary["dropped"]["outside_regions"] == 3 and summary["dropped"]["below_min_maf"] == 3
    summary = sites_from_plink(prefix, out=out, min_maf=0.05, regions=bed)
    assert read_sites(out).pos.tolist() == [199, 399]
