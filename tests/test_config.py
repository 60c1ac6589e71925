"""Config and sheet validation: defaults filled, one clear error naming file, line and column."""
from pathlib import Path

import pytest
import yaml

from cohortflow.config import load_alignment_sheet, load_cohorts, validate_config
from cohortflow.errors import ConfigError
from conftest import REPO

SCHEMAS = REPO / "workflow" / "schemas"


def test_default_config_is_valid_and_runs_the_demo():
    config = validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), SCHEMAS / "config.schema.yaml")
    cohorts = load_cohorts(REPO / config["cohorts"], SCHEMAS / "cohorts.schema.yaml")
    assert [c.id for c in cohorts] == ["demo"]
    demo = cohorts[0]
    assert list(demo.shards) == ["chr1", "chr2", "chr3"]
    assert demo.has_gwas and demo.has_integration and demo.has_alignment and demo.has_spatial and demo.has_truth


def test_defaults_are_filled():
    config = validate_config({"cohorts": "c.tsv", "results": "r"}, SCHEMAS / "config.schema.yaml")
    assert config["qc"]["hwe"] == 1e-6 and config["gwas"]["n_pcs"] == 4 and config["privacy"]["min_cell_count"] == 5


def test_wrong_config_value_names_the_key():
    with pytest.raises(ConfigError, match=r"config: key 'qc.maf': 0.7 is greater than the maximum of 0.5"):
        validate_config({"cohorts": "c.tsv", "results": "r", "qc": {"maf": 0.7}}, SCHEMAS / "config.schema.yaml")


def _sheet(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cohorts.tsv"
    path.write_text(text)
    return path


def test_wrong_sheet_value_names_file_line_and_column(tmp_path):
    path = _sheet(tmp_path, "id\tgenotypes\tsinglecell\nok\ta.vcf.gz\t\nbad\tb.vcf.gz\tcells.csv\n")
    with pytest.raises(ConfigError) as exc:
        load_cohorts(path, SCHEMAS / "cohorts.schema.yaml")
    message = str(exc.value)
    assert message.startswith(f"{path}: line 3: column 'singlecell': 'cells.csv' is not valid (expected: single-cell"), message
    assert "\n" not in message


def test_unknown_column_and_duplicates(tmp_path):
    with pytest.raises(ConfigError, match="unknown column 'genotype'"):
        load_cohorts(_sheet(tmp_path, "id\tgenotype\nx\ta.vcf\n"), SCHEMAS / "cohorts.schema.yaml")
    with pytest.raises(ConfigError, match="line 3: column 'id': duplicate cohort id 'x'"):
        load_cohorts(_sheet(tmp_path, "id\nx\nx\n"), SCHEMAS / "cohorts.schema.yaml")
    with pytest.raises(ConfigError, match="a PLINK prefix stands alone"):
        load_cohorts(_sheet(tmp_path, "id\tgenotypes\nx\ta.vcf.gz,plink/prefix\n"), SCHEMAS / "cohorts.schema.yaml")


def test_empty_columns_skip_stages(tmp_path):
    path = _sheet(tmp_path, "id\tgenotypes\tphenotypes\ttraits\tsinglecell\nonly_sc\t\t\t\tx.h5ad\nplink\tdata/cohort\tp.tsv\tbmi\t\n")
    sc, plink = load_cohorts(path, SCHEMAS / "cohorts.schema.yaml")
    assert sc.has_singlecell and not sc.has_genotypes and not sc.has_gwas and not sc.has_integration
    assert plink.plink_prefix == "data/cohort" and plink.vcf_paths == [] and plink.has_gwas and not plink.has_singlecell


def test_alignment_sheet(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("sample\tbam\ns1\ta.bam\ns2\tb.cram\n")
    assert load_alignment_sheet(path, SCHEMAS / "alignment_sheet.schema.yaml") == {"s1": "a.bam", "s2": "b.cram"}
    path.write_text("sample\tbam\ns1\ta.sam\n")
    with pytest.raises(ConfigError, match=r"line 2: column 'bam'"):
        load_alignment_sheet(path, SCHEMAS / "alignment_sheet.schema.yaml")
