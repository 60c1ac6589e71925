"""Configuration and sample sheets: load, validate against the JSON schemas, fill defaults.

A wrong value gives one ConfigError naming the file, the line and the column. The workflow
(`workflow/rules/common.smk`) and the tests use these functions; the schemas live in
`workflow/schemas/`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from cohortflow.errors import ConfigError

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")


def load_schema(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _fill_defaults(instance: dict, schema: dict) -> None:
    """Set schema defaults for absent keys, recursing into nested objects."""
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            if key not in instance and any("default" in s or s.get("type") == "object"
                                           for s in sub["properties"].values()):
                instance[key] = {}
            if isinstance(instance.get(key), dict):
                _fill_defaults(instance[key], sub)
        elif key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])


def _error_message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message, or for a pattern mismatch the field's description (a regex is no help)."""
    if err.validator == "pattern" and err.schema.get("description"):
        return f"{err.instance!r} is not valid (expected: {err.schema['description']})"
    return err.message


def _error_location(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        return path or "(top level)"
    return path or "(top level)"


def validate_config(config: dict, schema_path: str | Path, *, source: str = "config") -> dict:
    """Validate a config mapping; return a copy with schema defaults filled in."""
    schema = load_schema(schema_path)
    resolved = copy.deepcopy(config)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(resolved), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        raise ConfigError(f"key '{_error_location(err)}': {_error_message(err)}", path=source)
    _fill_defaults(resolved, schema)
    return resolved


def read_sheet(path: str | Path, schema_path: str | Path) -> list[dict]:
    """Read a TSV sheet and validate every row; empty cells become ''."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("sheet not found", path=path)
    schema = load_schema(schema_path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"not a tab-separated sheet ({exc})", path=path) from None
    known = set(schema.get("properties", {}))
    for col in df.columns:
        if col not in known:
            raise ConfigError(f"unknown column '{col}' (known: {', '.join(sorted(known))})", path=path, record="line 1")
    for col in schema.get("required", []):
        if col not in df.columns:
            raise ConfigError(f"missing required column '{col}'", path=path, record="line 1")
    validator = jsonschema.Draft202012Validator(schema)
    rows = []
    for i, row in enumerate(df.to_dict(orient="records")):
        row = {k: v.strip() for k, v in row.items()}
        for err in validator.iter_errors(row):
            column = ".".join(str(p) for p in err.absolute_path) or "(row)"
            raise ConfigError(f"column '{column}': {_error_message(err)}", path=path, record=f"line {i + 2}")
        rows.append(row)
    return rows


@dataclass
class Cohort:
    """One row of the cohorts sheet, with the stages it can run."""

    id: str
    columns: dict = field(default_factory=dict)

    def get(self, column: str) -> str:
        return self.columns.get(column, "") or ""

    @property
    def vcf_paths(self) -> list[str]:
        parts = [p.strip() for p in self.get("genotypes").split(",") if p.strip()]
        return parts if parts and all(p.endswith(VCF_SUFFIXES) for p in parts) else []

    @property
    def plink_prefix(self) -> str:
        value = self.get("genotypes")
        return value.removesuffix(".bed") if value and not self.vcf_paths else ""

    @property
    def shards(self) -> dict[str, str]:
        """Ingestion shard name -> VCF path (file stem, or an index if stems collide)."""
        return {name: path for name, (path, _) in self.shard_regions.items()}

    @property
    def shard_regions(self) -> dict[str, tuple[str, str]]:
        """Ingestion shard name -> (VCF path, region or ""). Several files: one shard each (file
        stem, or partNNN if stems collide). One indexed file: one shard per contig of its index
        (``{stem}.{contig}``), so Snakemake ingests the chromosomes as separate jobs; merging
        the shards in this order gives what one run over the file gives."""
        paths = self.vcf_paths
        if len(paths) == 1:
            contigs = _indexed_contigs(paths[0])
            if len(contigs) > 1:
                stem = _vcf_stem(paths[0])
                return {f"{stem}.{_safe_name(c)}": (paths[0], c) for c in contigs}
        stems = [_vcf_stem(p) for p in paths]
        if len(set(stems)) != len(stems):
            stems = [f"part{i + 1:03d}" for i in range(len(paths))]
        return {stem: (path, "") for stem, path in zip(stems, paths)}

    @property
    def traits(self) -> list[str]:
        value = self.get("traits")
        return [t for t in value.split(",") if t] if value else []

    @property
    def has_genotypes(self) -> bool:
        return bool(self.get("genotypes"))

    @property
    def has_gwas(self) -> bool:
        return self.has_genotypes and bool(self.get("phenotypes")) and bool(self.traits)

    @property
    def has_alignment(self) -> bool:
        return bool(self.get("alignment_sheet"))

    @property
    def has_singlecell(self) -> bool:
        return bool(self.get("singlecell"))

    @property
    def has_spatial(self) -> bool:
        return bool(self.get("spatial"))

    @property
    def has_integration(self) -> bool:
        return self.has_gwas and self.has_singlecell and bool(self.get("genes"))

    @property
    def pgs_files(self) -> list[str]:
        return [p.strip() for p in self.get("pgs").split(",") if p.strip()]

    @property
    def has_pgs(self) -> bool:
        return self.has_genotypes and bool(self.pgs_files)

    @property
    def has_truth(self) -> bool:
        return bool(self.get("truth"))


def _indexed_contigs(path: str) -> list[str]:
    """Contigs with records in a bgzipped VCF's or BCF's index (.tbi/.csi), in index order;
    [] when there is no index or it cannot be read."""
    if not any(Path(f"{path}{ext}").exists() for ext in (".tbi", ".csi")):
        return []
    try:
        import cyvcf2

        vcf = cyvcf2.VCF(path)
        try:
            return list(vcf.seqnames)
        finally:
            vcf.close()
    except (OSError, ValueError, RuntimeError, AttributeError):
        return []


def _safe_name(contig: str) -> str:
    """A contig name usable in a shard (file) name: characters other than [A-Za-z0-9_.-] -> _."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", contig)


def _vcf_stem(path: str) -> str:
    name = Path(path).name
    for suffix in sorted(VCF_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# Cohort-sheet columns that hold input paths (genotypes and pgs: comma-separated lists).
PATH_COLUMNS = ("genotypes", "phenotypes", "covariates", "sample_info", "alignment_sheet", "alignment_targets",
                "reference", "genes", "singlecell", "markers", "spatial", "pgs", "truth")


def _generated(value: str, generated) -> bool:
    """Whether ``value`` lies under one of the folders the workflow itself writes (the demo's)."""
    path = Path(value)
    for folder in generated:
        if folder and (path == Path(folder) or Path(folder) in path.parents):
            return True
    return False


def _missing_input(cohort: Cohort, generated) -> tuple[str, str] | None:
    """(column, path) of the cohort's first input that does not exist, or None."""
    for column in PATH_COLUMNS:
        value = cohort.get(column)
        if not value:
            continue
        if column == "genotypes" and cohort.plink_prefix:
            paths = [f"{cohort.plink_prefix}{ext}" for ext in (".bed", ".bim", ".fam")]
        else:
            paths = [p.strip() for p in value.split(",") if p.strip()] if column in ("genotypes", "pgs") else [value]
        for p in paths:
            if not _generated(p, generated) and not Path(p).exists():
                return column, p
    return None


def _phenotype_columns(path: str) -> list[str] | None:
    """The data columns of a plink2-style phenotype file's header (None when it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if fields:
                    first = fields[0].lstrip("#")
                    n_id = 2 if first == "FID" else 1 if first == "IID" else 0
                    return fields[n_id:]
    except OSError:
        return None
    return None


def load_cohorts(path: str | Path, schema_path: str | Path, *, check_paths: bool = False,
                 generated: tuple[str, ...] | list[str] = ()) -> list[Cohort]:
    """The cohorts of the sheet at ``path``, validated.

    Traits must be columns of the cohort's phenotype file (checked when the file exists). With
    ``check_paths``, every input path of every cohort must exist, except paths under the folders
    in ``generated`` (inputs the workflow writes itself, e.g. the demo's ``data/demo``).
    """
    rows = read_sheet(path, schema_path)
    seen: set[str] = set()
    cohorts = []
    for i, row in enumerate(rows):
        if row["id"] in seen:
            raise ConfigError(f"column 'id': duplicate cohort id '{row['id']}'", path=path, record=f"line {i + 2}")
        seen.add(row["id"])
        cohort = Cohort(id=row["id"], columns=row)
        parts = [p for p in cohort.get("genotypes").split(",") if p]
        if len(parts) > 1 and not cohort.vcf_paths:
            raise ConfigError("column 'genotypes': a list must hold only VCF/BCF files "
                              f"({', '.join(VCF_SUFFIXES)}); a PLINK prefix stands alone", path=path, record=f"line {i + 2}")
        if cohort.get("traits") and not cohort.get("phenotypes"):
            raise ConfigError("column 'traits': traits given but no phenotypes file", path=path, record=f"line {i + 2}")
        if check_paths:
            missing = _missing_input(cohort, generated)
            if missing is not None:
                raise ConfigError(f"column '{missing[0]}': {missing[1]} not found (no such file)", path=path,
                                  record=f"line {i + 2}")
        pheno = cohort.get("phenotypes")
        if cohort.traits and pheno and Path(pheno).is_file():
            columns = _phenotype_columns(pheno)
            absent = [t for t in cohort.traits if columns is not None and t not in columns]
            if absent:
                raise ConfigError(f"column 'traits': {absent[0]!r} is not a column of {pheno} (columns: "
                                  f"{', '.join(columns) or 'none'})", path=path, record=f"line {i + 2}")
        cohorts.append(cohort)
    if not cohorts:
        raise ConfigError("no cohorts (the sheet has a header but no rows)", path=path)
    return cohorts


def load_alignment_sheet(path: str | Path, schema_path: str | Path, *, check_paths: bool = False,
                         generated: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """sample -> BAM/CRAM path. With ``check_paths``, every BAM/CRAM must exist (except under
    the folders in ``generated``, as for :func:`load_cohorts`)."""
    rows = read_sheet(path, schema_path)
    samples: dict[str, str] = {}
    for i, row in enumerate(rows):
        if row["sample"] in samples:
            raise ConfigError(f"column 'sample': duplicate sample '{row['sample']}'", path=path, record=f"line {i + 2}")
        if check_paths and not _generated(row["bam"], generated) and not Path(row["bam"]).exists():
            raise ConfigError(f"column 'bam': {row['bam']} not found (no such file)", path=path, record=f"line {i + 2}")
        samples[row["sample"]] = row["bam"]
    return samples
