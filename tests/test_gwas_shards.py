"""GWAS in shards (cohortflow.gwas.shards): the plan, and gathered shards equal an unsharded run
byte for byte (sumstats and -meta.yaml), for a linear and a logistic (Firth) trait."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.gwas.api import run_gwas_pair
from cohortflow.gwas.shards import gather_sumstats, shard_plan, shard_range, write_shard_plan
from cohortflow.io.plink import write_bed


def test_plan_per_chromosome_and_chunks():
    chroms = ["1"] * 5 + ["2"] * 2 + ["X"] * 3 + ["1"]
    plan = shard_plan(chroms, max_variants=2)
    assert plan["shard"].tolist() == ["chr1_1", "chr1_2", "chr1_3", "chr2", "chrX_1", "chrX_2", "chr1_r2"]
    assert plan["start"].tolist() == [0, 2, 4, 5, 7, 9, 10]
    assert plan["stop"].tolist() == [2, 4, 5, 7, 9, 10, 11]
    assert shard_plan(chroms, max_variants=100)["shard"].tolist() == ["chr1", "chr2", "chrX", "chr1_r2"]
    assert shard_plan([], max_variants=5).empty
    with pytest.raises(CohortflowError):
        shard_plan(chroms, max_variants=0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """400 samples x 900 variants on chromosomes 1, 2 and X; a quantitative and a binary trait
    (rare variants, so that some logistic fits separate and take the Firth fallback)."""
    tmp = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(3)
    n, m = 400, 900
    freqs = np.r_[rng.uniform(0.05, 0.5, m - 60), np.full(60, 0.004)]
    geno = rng.binomial(2, freqs[:, None], size=(m, n)).astype(np.int8)   # variants x samples, -1 missing
    geno[rng.random((m, n)) < 0.01] = -1
    chrom = np.r_[["1"] * 400, ["2"] * 350, ["X"] * 150]
    sex = rng.integers(1, 3, n)
    bim = pd.DataFrame({"chrom": chrom, "id": [f"v{i}" for i in range(m)], "cm": 0.0,
                        "pos": np.r_[np.arange(400), np.arange(350), np.arange(150)] * 100 + 1000,
                        "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"f{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": sex, "pheno": "-9"})
    write_bed(tmp / "c", geno, bim, fam)
    g = np.maximum(geno[10], 0)
    quant = 0.4 * g + rng.normal(size=n)
    case = (rng.random(n) < 1 / (1 + np.exp(-(-1 + 0.6 * g)))).astype(int) + 1
    pd.DataFrame({"#FID": fam.fid, "IID": fam.iid, "quant": quant, "case": case}).to_csv(tmp / "pheno.tsv", sep="\t", index=False)
    pd.DataFrame({"#FID": fam.fid, "IID": fam.iid, "age": rng.normal(50, 10, n), "PC1": rng.normal(size=n),
                  "PC2": rng.normal(size=n)}).to_csv(tmp / "covar.tsv", sep="\t", index=False)
    return tmp


@pytest.mark.parametrize("trait", ["quant", "case"])
def test_gathered_shards_equal_unsharded(cohort, tmp_path, trait):
    common = dict(bfile=cohort / "c", pheno=cohort / "pheno.tsv", trait=trait, covar=cohort / "covar.tsv",
                  covariates=["age"], n_pcs=2)
    run_gwas_pair(**common, out_with_pcs=tmp_path / "whole.tsv.gz", out_without_pcs=tmp_path / "whole.nopcs.tsv.gz")
    plan = write_shard_plan(bfile=cohort / "c", out=tmp_path / "plan.tsv", max_variants=300)
    assert plan["shard"].tolist() == ["chr1_1", "chr1_2", "chr2_1", "chr2_2", "chrX"]
    parts, parts_nopcs = [], []
    for shard in plan["shard"]:
        a, b = tmp_path / f"{shard}.tsv.gz", tmp_path / f"{shard}.nopcs.tsv.gz"
        run_gwas_pair(**common, out_with_pcs=a, out_without_pcs=b, variant_range=shard_range(tmp_path / "plan.tsv", shard))
        parts.append(a)
        parts_nopcs.append(b)
    gather_sumstats(parts, tmp_path / "gathered.tsv.gz")
    gather_sumstats(parts_nopcs, tmp_path / "gathered.nopcs.tsv.gz")
    for whole, gathered in (("whole.tsv.gz", "gathered.tsv.gz"), ("whole.nopcs.tsv.gz", "gathered.nopcs.tsv.gz")):
        assert (tmp_path / gathered).read_bytes() == (tmp_path / whole).read_bytes()
        meta_w = (tmp_path / f"{whole}-meta.yaml").read_text().replace(whole, "NAME")
        meta_g = (tmp_path / f"{gathered}-meta.yaml").read_text().replace(gathered, "NAME")
        assert meta_g == meta_w
    if trait == "case":
        assert "n_firth:" in meta_w


def test_gather_refuses_mismatched_shards(cohort, tmp_path):
    from cohortflow.errors import InputFormatError

    common = dict(bfile=cohort / "c", pheno=cohort / "pheno.tsv", covar=cohort / "covar.tsv", covariates=["age"], n_pcs=2)
    run_gwas_pair(**common, trait="quant", out_with_pcs=tmp_path / "a.tsv.gz", out_without_pcs=tmp_path / "a0.tsv.gz",
                  variant_range=(0, 100))
    run_gwas_pair(**common, trait="case", out_with_pcs=tmp_path / "b.tsv.gz", out_without_pcs=tmp_path / "b0.tsv.gz",
                  variant_range=(100, 200))
    with pytest.raises(InputFormatError, match="b.tsv.gz-meta.yaml: keys differ"):
        gather_sumstats([tmp_path / "a.tsv.gz", tmp_path / "b.tsv.gz"], tmp_path / "g.tsv.gz")
    assert not (tmp_path / "g.tsv.gz").exists()   # nothing written
    with pytest.raises(CohortflowError, match="no shard"):
        gather_sumstats([], tmp_path / "g.tsv.gz")
