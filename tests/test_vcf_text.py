"""The fast ingestion path's reader and GT decoder: BGZF batches equal the decompressed file (any
batch size, any number of threads, from a tabix offset), damaged or truncated BGZF goes to
htslib, and the word-at-a-time GT decoder equals the one-sample-at-a-time rules."""
import gzip
import subprocess

import numpy as np
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.io import vcf_text
from cohortflow.io.plink import open_bed
from cohortflow.variants.ingest import ingest_vcf
from conftest import require_tool

GT_TOKENS = ["0/0", "0/1", "1/1", "1|0", "0|1", "./.", ".", "0", "1", "0/.", "1/2", "2|0", "."]


def _vcf_text(n_samples: int, n_records: int, seed: int = 0, *, chroms=("1",)) -> str:
    rng = np.random.default_rng(seed)
    lines = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={c},length=10000000>" for c in chroms]
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
                 + "\t".join(f"s{i}" for i in range(n_samples)))
    for chrom in chroms:
        for r in range(n_records):
            # mostly 0/1 pairs (the word path), with every other form sprinkled in
            common = rng.choice(GT_TOKENS[:5], size=n_samples)
            odd = rng.random(n_samples) < 0.05
            common[odd] = rng.choice(GT_TOKENS, size=int(odd.sum()))
            alt = "C,G" if r % 7 == 3 else "C"
            lines.append(f"{chrom}\t{100 + 10 * r}\trs{chrom}_{r}\tA\t{alt}\t.\tPASS\t.\tGT\t" + "\t".join(common))
    return "\n".join(lines) + "\n"


def _bgzip(text: str, path, *, index: bool = False):
    require_tool("bgzip")
    path.write_bytes(subprocess.run(["bgzip", "-c"], input=text.encode(), capture_output=True, check=True).stdout)
    if index:
        require_tool("tabix")
        subprocess.run(["tabix", "-p", "vcf", str(path)], check=True)
    return path


def _data_lines(text: str) -> bytes:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("#")).encode()


def _joined(batches) -> bytes:
    pieces = []
    for buf, ends in batches:
        data = buf.tobytes()
        newlines = [i for i, c in enumerate(data) if c == 10]
        assert ends.tolist() == newlines or ends.tolist() == newlines + [len(data)]
        pieces.append(data)
    return b"".join(pieces)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("batch_bytes", [700, 65536, 1 << 20])
def test_bgzf_batches_are_the_decompressed_lines(tmp_path, threads, batch_bytes):
    text = _vcf_text(150, 400)  # ~500 kB: several BGZF blocks, lines longer than the smallest batch
    path = _bgzip(text, tmp_path / "a.vcf.gz")
    batches = vcf_text.vcf_text_batches(path, batch_bytes=batch_bytes, threads=threads)
    assert _joined(batches) == _data_lines(text)


def test_bgzf_from_a_tabix_contig_offset(tmp_path):
    text = _vcf_text(40, 300, chroms=("1", "2", "3"))
    path = _bgzip(text, tmp_path / "a.vcf.gz", index=True)
    lines = _data_lines(text).decode().splitlines(keepends=True)
    for contig in ("2", "3"):
        got = _joined(vcf_text.vcf_text_batches(path, contig=contig, threads=2, batch_bytes=4096)).decode()
        first = next(i for i, line in enumerate(lines) if line.startswith(f"{contig}\t"))
        assert got == "".join(lines[first:])  # from the contig's first record to the end of the file


def test_last_line_without_newline_and_header_only(tmp_path):
    text = _vcf_text(8, 5)
    path = _bgzip(text.rstrip("\n"), tmp_path / "a.vcf.gz")
    assert _joined(vcf_text.vcf_text_batches(path)) == _data_lines(text).rstrip(b"\n")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    assert _joined(vcf_text.vcf_text_batches(_bgzip(header, tmp_path / "h.vcf.gz"))) == b""


def test_plain_gzip_and_uncompressed_read_the_same(tmp_path):
    text = _vcf_text(30, 200)
    plain = tmp_path / "a.vcf"
    plain.write_text(text)
    gz = tmp_path / "a.vcf.gz"
    gz.write_bytes(gzip.compress(text.encode()))  # one gzip member: not BGZF
    assert not vcf_text._is_bgzf(gz) and vcf_text._is_bgzf(_bgzip(text, tmp_path / "b.vcf.gz"))
    for path in (plain, gz):
        assert _joined(vcf_text.vcf_text_batches(path, batch_bytes=5000)) == _data_lines(text)


@pytest.mark.parametrize("damage", ["crc", "truncated"])
def test_damaged_bgzf_is_left_to_htslib(tmp_path, damage):
    text = _vcf_text(150, 400)
    data = bytearray(_bgzip(text, tmp_path / "good.vcf.gz").read_bytes())
    if damage == "crc":
        data[len(data) // 2] ^= 0xFF  # inside some block's deflate stream
    else:
        data = data[: len(data) // 2]
    bad = tmp_path / "bad.vcf.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(vcf_text.NotFastText):
        for _ in vcf_text.vcf_text_batches(bad, threads=2):
            pass
    with pytest.raises(CohortflowError, match=r"bad\.vcf\.gz"):
        ingest_vcf(bad, out_prefix=tmp_path / "out", threads=2)
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


def test_word_decoder_equals_cyvcf2_path(tmp_path, monkeypatch):
    # every sample count mod 4, so the 4- and 2-sample word paths meet every alignment and tail
    from cohortflow.variants import ingest

    read_fast = []
    batches = ingest._ingest_text_batches
    monkeypatch.setattr(ingest, "_ingest_text_batches",
                        lambda *a: read_fast.append(batches(*a)) or read_fast[-1])
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 33):
        text = _vcf_text(n, 60, seed=n)
        path = _bgzip(text, tmp_path / f"n{n}.vcf.gz")
        fast = ingest_vcf(path, out_prefix=tmp_path / "fast", threads=2)
        assert read_fast.pop() is not None, f"{n} samples: the numba parser did not take the file"
        with monkeypatch.context() as m:
            m.setattr(ingest, "_ingest_text_fast", lambda *a, **k: None)
            ingest_vcf(path, out_prefix=tmp_path / "slow")
        assert fast["n_variants"] == 60 + sum(1 for r in range(60) if r % 7 == 3)
        assert (tmp_path / "fast.bed").read_bytes() == (tmp_path / "slow.bed").read_bytes(), n
        assert (tmp_path / "fast.bim").read_bytes() == (tmp_path / "slow.bim").read_bytes(), n
        assert np.array_equal(open_bed(tmp_path / "fast").read(), open_bed(tmp_path / "slow").read())
