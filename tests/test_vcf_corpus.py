"""`cohortflow ingest` on every VCF/BCF of the bcftools and htslib test suites
(../shared/data/vcf_edgecases, 547 files).

Each file either ingests, with genotypes equal to what `bcftools query -f '[%GT ]'` prints for its
records (decoded by the ingestion rules: per ALT, haploid calls and half-calls homozygous), or
fails within 10 s with one error line naming the file and the record (or the header), leaving no
output behind. Where the numba text parser reads a file, its output is byte-identical to the
cyvcf2 (htslib) path's.
"""
import gzip
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from cohortflow import cli
from cohortflow.io.plink import open_bed
from cohortflow.variants import ingest
from conftest import require_shared, require_tool

TIME_LIMIT_S = 10
OUTPUTS = (".bed", ".bim", ".fam", ".variants.parquet", ".ingest.log")


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _dosage(gt: str, allele: int) -> int:
    """ALT-``allele`` dosage of a bcftools GT string, by the ingestion rules (half-calls haploid)."""
    alleles = [-1 if a == "." else int(a) for a in gt.replace("|", "/").split("/")]
    called = [a for a in alleles if a >= 0]
    if not called:
        return -1
    if len(alleles) == 1 or len(called) == 1:
        return 2 if called[0] == allele else 0
    return sum(a == allele for a in alleles)


GT_HEADER = b'##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'


def _bcftools_gts(bcftools: str, path, scratch) -> dict[tuple[str, int], list[str]] | None:
    """bcftools' GT strings per sample, by (chromosome, number of the record on it) as in the
    ingested variant table; a VCF whose header lacks FORMAT/GT (bcftools query refuses it,
    htslib's reader assumes it) gets the definition added first."""
    run = subprocess.run([bcftools, "query", "-f", "%CHROM\t[%GT ]\n", str(path)], capture_output=True, text=True)
    if run.returncode != 0 and "FORMAT/GT" in run.stderr:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        chrom_line = text.find(b"#CHROM")
        scratch.write_bytes(text[:chrom_line] + GT_HEADER + text[chrom_line:])
        run = subprocess.run([bcftools, "query", "-f", "%CHROM\t[%GT ]\n", str(scratch)], capture_output=True, text=True)
    if run.returncode != 0:
        return None
    gts, per_chrom = {}, {}
    for line in run.stdout.splitlines():
        chrom, _, calls = line.partition("\t")
        per_chrom[chrom] = per_chrom.get(chrom, 0) + 1
        gts[chrom, per_chrom[chrom]] = calls.split()
    return gts


def _ingest_cli(path, prefix, capfd) -> tuple[int, str, float]:
    capfd.readouterr()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT_S)
    start = time.perf_counter()
    try:
        code = cli.main(["ingest", "--vcf", str(path), "--out", str(prefix)])
    except _Timeout:
        code = -1
    finally:
        signal.alarm(0)
    return code, capfd.readouterr().err, time.perf_counter() - start


@pytest.mark.peer
def test_every_corpus_file_ingests_like_bcftools_or_fails_in_one_line(tmp_path, capfd, monkeypatch):
    root = require_shared("vcf_edgecases")
    bcftools = require_tool("bcftools")
    manifest = pd.read_csv(root / "MANIFEST.tsv", sep="\t")
    assert len(manifest) == 547
    problems = []
    n_ingested = n_refused = n_fast = 0
    fast = ingest._ingest_text_fast
    took = []  # per CLI run: whether the numba parser read the file

    def spy(*args, **kwargs):
        result = fast(*args, **kwargs)
        took[-1] = took[-1] or result is not None
        return result

    monkeypatch.setattr(ingest, "_ingest_text_fast", spy)
    for i, rel in enumerate(manifest["path"]):
        path = root / rel
        prefix = tmp_path / f"f{i}"
        took.append(False)
        code, err, seconds = _ingest_cli(path, prefix, capfd)
        left = [ext for ext in OUTPUTS if (tmp_path / f"f{i}{ext}").exists()]
        if code != 0:
            n_refused += 1
            lines = [line for line in err.splitlines() if line.strip()]
            if code == -1 or seconds > TIME_LIMIT_S:
                problems.append(f"{rel}: no answer within {TIME_LIMIT_S} s")
            elif len(lines) != 1 or not lines[0].startswith(f"cohortflow: error: {path}: ") \
                    or not any(f": {where}" in lines[0] for where in ("record ", "header")):
                problems.append(f"{rel}: error output is not one line naming file and record: {err!r}")
            if left:
                problems.append(f"{rel}: failed but left {left}")
            continue
        n_ingested += 1
        table = pd.read_parquet(tmp_path / f"f{i}.variants.parquet")
        geno = open_bed(prefix).read()
        gts = _bcftools_gts(bcftools, path, tmp_path / "with_gt_header.vcf")
        if gts is None:
            problems.append(f"{rel}: ingested but bcftools query cannot read it")
            continue
        for v, (chrom, record, split) in enumerate(zip(table["chrom"], table["record"], table["split_index"])):
            expected = [_dosage(gt, max(split, 1)) for gt in gts[chrom, record]]
            if geno[v].tolist() != expected:
                problems.append(f"{rel}: record {record} ALT {max(split, 1)}: {geno[v].tolist()} != bcftools "
                                f"{expected}")
                break
        # the same file through cyvcf2 only: identical bytes wherever the numba parser took it
        if took[-1]:
            n_fast += 1
            with monkeypatch.context() as patch:
                patch.setattr(ingest, "_ingest_text_fast", lambda *a, **k: None)
                ingest.ingest_vcf(path, out_prefix=tmp_path / "slow")
            for ext in (".bed", ".bim", ".fam", ".ingest.log"):
                if (tmp_path / f"f{i}{ext}").read_bytes() != (tmp_path / f"slow{ext}").read_bytes():
                    problems.append(f"{rel}: numba parser and cyvcf2 differ in {ext}")
            if not table.equals(pd.read_parquet(tmp_path / "slow.variants.parquet")):
                problems.append(f"{rel}: numba parser and cyvcf2 differ in the variant table")
        for ext in OUTPUTS:
            (tmp_path / f"f{i}{ext}").unlink()
    assert not problems, "\n".join(problems[:20])
    # most of the corpus carries genotypes; the numba parser takes nearly every text file of it
    assert n_ingested > 300 and n_fast > 300 and n_refused < 240
    print(f"ingested {n_ingested} (numba parser {n_fast}), refused {n_refused}")


def test_numba_line_bounds_match_numpy_at_any_alignment():
    from cohortflow.variants.vcf_kernels import line_bounds

    rng = np.random.default_rng(0)
    data = rng.choice(np.frombuffer(b"ab\t\n0/1", dtype=np.uint8), size=5000)
    for offset in range(9):
        for tail in (0, 1, 7):
            buf = data[offset:len(data) - tail]
            starts, ends = line_bounds(buf)
            newlines = np.flatnonzero(buf == 10)
            has_tail = len(buf) > 0 and buf[-1] != 10
            assert np.array_equal(ends[:len(newlines)], newlines)
            assert len(ends) == len(newlines) + has_tail
            assert np.array_equal(starts[1:], ends[:-1] + 1) and starts[0] == 0
