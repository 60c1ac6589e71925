"""PLINK .bed reader/writer against plink2 and on hand-checked bytes."""
import subprocess

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import InputFormatError
from cohortflow.io.plink import open_bed, write_bed
from conftest import require_shared, require_tool


def _fileset(tmp_path, geno):
    m, n = geno.shape
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(m)], "cm": 0.0, "pos": np.arange(m) + 100,
                        "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / "x", geno, bim, fam)
    return tmp_path / "x"


def test_known_bytes(tmp_path):
    # samples: A1/A1 (2), missing, het (1), A2/A2 (0) -> codes 00, 01, 10, 11 -> 0b11100100
    prefix = _fileset(tmp_path, np.array([[2, -1, 1, 0, 2]], dtype=np.int8))
    raw = (tmp_path / "x.bed").read_bytes()
    assert raw == bytes([0x6C, 0x1B, 0x01, 0b11100100, 0b00000000])
    assert open_bed(prefix).read().tolist() == [[2, -1, 1, 0, 2]]


def test_roundtrip_and_plink2_frequencies(tmp_path):
    plink2 = require_tool("plink2")
    rng = np.random.default_rng(0)
    geno = rng.choice([-1, 0, 1, 2], p=[0.05, 0.45, 0.35, 0.15], size=(50, 37)).astype(np.int8)
    prefix = _fileset(tmp_path, geno)
    assert np.array_equal(open_bed(prefix).read(), geno)
    subprocess.run([plink2, "--bfile", str(prefix), "--freq", "--out", str(tmp_path / "f")], check=True, capture_output=True)
    freq = pd.read_csv(tmp_path / "f.afreq", sep="\t")
    called = geno >= 0
    ours = np.where(called, geno, 0).sum(1) / (2 * called.sum(1))
    # plink2 counts ALT = .bim col 5 and prints 6 significant digits.
    np.testing.assert_allclose(freq["ALT_FREQS"], ours, rtol=5e-6)
    np.testing.assert_array_equal(freq["OBS_CT"], 2 * called.sum(1))


def test_reads_real_fileset_blockwise():
    prefix = require_shared("hapmap3_founders_957")
    beds = sorted(prefix.glob("*.bed"))
    if not beds:
        pytest.skip("no .bed in hapmap3_founders_957")
    bed = open_bed(beds[0].with_suffix(""))
    whole = bed.read(0, 3000)
    blocks = np.concatenate([g for _, g in bed.iter_blocks(block_size=1000) if _ < 3000][:3])
    assert np.array_equal(whole, blocks)
    assert set(np.unique(whole)) <= {-1, 0, 1, 2}


def test_read_rows_matches_full_read(tmp_path):
    rng = np.random.default_rng(3)
    geno = rng.choice([-1, 0, 1, 2], size=(300, 23)).astype(np.int8)
    bed = open_bed(_fileset(tmp_path, geno))
    rows = np.array([0, 1, 5, 70, 71, 200, 299])
    samples = np.array([3, 0, 22, 7])
    np.testing.assert_array_equal(bed.read_rows(rows), geno[rows])
    np.testing.assert_array_equal(bed.read_rows(rows, samples, max_gap=1), geno[rows][:, samples])
    assert bed.read_rows(np.array([], dtype=int)).shape == (0, 23)


def test_truncated_bed_is_refused(tmp_path):
    prefix = _fileset(tmp_path, np.zeros((4, 9), dtype=np.int8))
    data = (tmp_path / "x.bed").read_bytes()
    (tmp_path / "x.bed").write_bytes(data[:-1])
    with pytest.raises(InputFormatError, match=r"x\.bed: size .* does not match 4 variants x 9 samples"):
        open_bed(prefix)


def test_bim_tab_and_space_separated_read_alike(tmp_path):
    prefix = _fileset(tmp_path, np.zeros((3, 5), dtype=np.int8))
    tab = open_bed(prefix).bim
    text = (tmp_path / "x.bim").read_text()
    assert "\t" in text  # what write_bed (and plink) write: Arrow's reader
    (tmp_path / "x.bim").write_text(text.replace("\t", "  "))  # other whitespace: the pandas reader
    spaced = open_bed(prefix)
    pd.testing.assert_frame_equal(spaced.bim, tab)
    assert spaced.n_variants == 3 and list(tab["pos"]) == [100, 101, 102] and tab["chrom"].tolist() == ["1"] * 3


def test_bim_missing_position_names_line(tmp_path):
    prefix = _fileset(tmp_path, np.zeros((3, 5), dtype=np.int8))
    lines = (tmp_path / "x.bim").read_text().splitlines()
    fields = lines[1].split("\t")
    fields[3] = ""
    lines[1] = "\t".join(fields)
    (tmp_path / "x.bim").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match=r"x\.bim: line 2: .*missing pos"):
        open_bed(prefix)
