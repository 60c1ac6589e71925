"""plink2-style phenotype/covariate reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.gwas.api import make_gwas_covariates
from cohortflow.io.pheno import is_binary, read_pheno_table, to_binary01


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("header", ["#FID IID", "FID IID", "IID"])
def test_header_forms_and_missing_tokens(tmp_path, header):
    ids = header.count("ID")
    rows = [["f1", "s1"], ["f2", "s2"], ["f3", "s3"], ["f4", "s4"]][:4]
    vals = [("1.5", "2", "x"), ("NA", "1", "y"), ("-9", "0", "NA"), ("nan", "2", "x")]
    lines = [f"{header} q d cat"] + [" ".join(r[2 - ids:] + list(v)) for r, v in zip(rows, vals)]
    p = _write(tmp_path / "p.txt", "\n".join(lines) + "\n")
    df = read_pheno_table(p)
    assert list(df.index) == ["s1", "s2", "s3", "s4"]
    assert df["q"].iloc[0] == 1.5 and df["q"].iloc[1:].isna().all()
    assert df["cat"].tolist() == ["x", "y", None, "x"]
    assert is_binary(df["d"]) and not is_binary(df["q"])
    # 1/2 coding: 0 is missing, 1 control, 2 case
    np.testing.assert_array_equal(to_binary01(df["d"]).to_numpy(), [1.0, 0.0, np.nan, 1.0])


def test_zero_one_coding(tmp_path):
    p = _write(tmp_path / "p.txt", "IID d\na 0\nb 1\nc NA\n")
    d = read_pheno_table(p)["d"]
    assert is_binary(d)
    np.testing.assert_array_equal(to_binary01(d).to_numpy(), [0.0, 1.0, np.nan])


def test_bad_values_name_file_line_column(tmp_path):
    p = _write(tmp_path / "p.txt", "#FID IID h\nf a 1.0\nf b tall\n")
    with pytest.raises(CohortflowError, match=r"p.txt: line 3: column 'h': non-numeric value 'tall'"):
        read_pheno_table(p, require_numeric=True)
    bad = _write(tmp_path / "q.txt", "#FID IID h\nf a 1.0 2.0\n")
    with pytest.raises(CohortflowError, match="line 2"):
        read_pheno_table(bad)
    dup = _write(tmp_path / "d.txt", "IID h\na 1\na 2\n")
    with pytest.raises(CohortflowError, match="duplicate IID"):
        read_pheno_table(dup)
    with pytest.raises(CohortflowError, match="column 'zz' not found"):
        read_pheno_table(p, columns=["zz"])


def test_make_gwas_covariates(tmp_path):
    cov = _write(tmp_path / "c.tsv", "#FID IID sex age\nf1 a 1 30\nf2 b 2 NA\n")
    pcs = _write(tmp_path / "pcs.tsv", "#FID IID PC1 PC2 PC3\nf2 b 0.1 0.2 0.3\nf1 a -0.1 -0.2 -0.3\n")
    out = tmp_path / "out.tsv"
    make_gwas_covariates(covar=cov, pcs=pcs, n_pcs=2, out=out)
    df = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert list(df.columns) == ["#FID", "IID", "sex", "age", "PC1", "PC2"]
    assert df["IID"].tolist() == ["b", "a"] and df["#FID"].tolist() == ["f2", "f1"]
    assert df["age"].tolist() == ["NA", "30"] and df["PC2"].tolist() == [0.2, -0.2]
