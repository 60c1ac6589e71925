"""VCF/BCF ingestion into PLINK 1 binary filesets, plus shard merging.

Conventions (matching ``bcftools norm -m- | plink2 --vcf --vcf-half-call h --make-bed``):

- a record with k ALT alleles becomes k biallelic variants; for the k-th one the genotype is the
  count of that ALT allele and every other ALT counts as REF (bcftools sets them to 0);
- .bim column 5 (A1) = ALT, column 6 (A2) = REF; chromosome names are kept as in the VCF;
- haploid calls (``1`` on male chrX) are coded homozygous (0 or 2 copies);
- half-calls (``0/.``) are read as haploid (``half_call="haploid"``, plink2 ``--vcf-half-call h``)
  or as missing (``half_call="missing"``, plink2 ``--vcf-half-call m``);
- symbolic (``<DEL>``, ``<*>``), spanning-deletion (``*``) and missing (``.``) ALT alleles are kept
  as allele codes, as plink2 keeps them; a record without ALT becomes one variant with A1 ``.``;
- a record without a GT field gives all-missing genotypes (plink2 does the same); records with a
  genotype of ploidy above 2 are skipped and counted in the log (plink2 cannot represent them);
- variant IDs: the VCF ID, replaced by ``chrom:pos:ref:alt`` when it is missing (``.``) or occurs
  more than once in the output (split multi-allelics share their ID); an ID that is still not
  unique after that (an exact duplicate record) gets ``:dup2``, ``:dup3``... on later copies.

``record`` in the variant table is the 1-based number of the record in its input file (counting
only records inside ``region`` when one is given), so ingesting files one by one and merging the
shards gives the same output as ingesting them together.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import atomic_path, write_text_atomic
from cohortflow.io.plink import BED_MAGIC, BIM_COLUMNS, encode_bed_block, open_bed, write_bim, write_fam
from cohortflow.variants.kernels import gt_alt_dosage

VARIANT_TABLE_COLUMNS = ["chrom", "pos", "id", "vcf_id", "ref", "alt", "record", "split_index",
                         "call_rate", "alt_count", "ref_count", "n_called"]

_REGION_RE = re.compile(r"^(?P<chrom>[^:]+)(?::(?P<start>[\d,]+)(?:-(?P<end>[\d,]+))?)?$")


def _p(prefix: str | Path, ext: str) -> Path:
    return Path(f"{prefix}{ext}")


def _parse_region(region: str) -> tuple[str, int, int]:
    match = _REGION_RE.match(region.strip())
    if match is None:
        raise CohortflowError(f"region {region!r} is not CHROM, CHROM:START or CHROM:START-END")
    start = int(match["start"].replace(",", "")) if match["start"] else 1
    end = int(match["end"].replace(",", "")) if match["end"] else 2**62
    if end < start:
        raise CohortflowError(f"region {region!r} ends before it starts")
    return match["chrom"], start, end


def _has_index(path: Path) -> bool:
    return any(Path(f"{path}{ext}").exists() for ext in (".tbi", ".csi"))


def _open_vcf(path: Path):
    import cyvcf2

    if not path.exists():
        raise InputFormatError("file not found", path=path)
    try:
        return cyvcf2.VCF(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputFormatError(f"cannot read as VCF/BCF ({exc})", path=path) from None


def _records(vcf, path: Path, region: str | None):
    """Yield records of one file, restricted to ``region`` (index query when indexed, else a scan
    keeping records overlapping the region, as an index query does)."""
    if region is None:
        yield from vcf
        return
    chrom, start, end = _parse_region(region)
    if _has_index(path):
        try:
            yield from vcf(region)
            return
        except (ValueError, OSError):
            pass  # index unusable or contig absent from it: fall back to a scan
    for rec in vcf:
        if rec.CHROM == chrom and rec.start < end and rec.end >= start:
            yield rec


def normalise_variant_ids(table: pd.DataFrame) -> pd.Series:
    """Final variant IDs from ``vcf_id`` (see module docstring); deterministic, order-preserving."""
    vcf_id = table["vcf_id"].astype(str)
    counts = vcf_id.map(vcf_id.value_counts())
    positional = (table["chrom"].astype(str) + ":" + table["pos"].astype(str) + ":"
                  + table["ref"].astype(str) + ":" + table["alt"].astype(str))
    replace = (vcf_id == ".") | (vcf_id == "") | (counts > 1)
    ids = vcf_id.where(~replace, positional)
    occurrence = ids.groupby(ids, sort=False).cumcount()
    dup = occurrence > 0
    if dup.any():
        ids = ids.where(~dup, ids + ":dup" + (occurrence + 1).astype(str))
    return ids.rename("id")


class _Accumulator:
    """Collects variant metadata while genotype blocks stream into the .bed temp file."""

    def __init__(self):
        self.cols = {c: [] for c in ("chrom", "pos", "vcf_id", "ref", "alt", "record", "split_index",
                                     "n_called", "alt_count")}

    def add(self, chrom, pos, vcf_id, ref, alt, record, split_index, n_called, alt_count):
        c = self.cols
        c["chrom"].append(chrom)
        c["pos"].append(pos)
        c["vcf_id"].append(vcf_id)
        c["ref"].append(ref)
        c["alt"].append(alt)
        c["record"].append(record)
        c["split_index"].append(split_index)
        c["n_called"].append(n_called)
        c["alt_count"].append(alt_count)

    def table(self, n_samples: int) -> pd.DataFrame:
        c = self.cols
        df = pd.DataFrame({
            "chrom": pd.Series(c["chrom"], dtype=str),
            "pos": np.asarray(c["pos"], dtype=np.int64),
            "vcf_id": pd.Series(c["vcf_id"], dtype=str),
            "ref": pd.Series(c["ref"], dtype=str),
            "alt": pd.Series(c["alt"], dtype=str),
            "record": np.asarray(c["record"], dtype=np.int64),
            "split_index": np.asarray(c["split_index"], dtype=np.int32),
            "n_called": np.asarray(c["n_called"], dtype=np.int64),
            "alt_count": np.asarray(c["alt_count"], dtype=np.int64),
        })
        return _finish_table(df, n_samples)


def _finish_table(df: pd.DataFrame, n_samples: int) -> pd.DataFrame:
    df = df.copy()
    df["id"] = normalise_variant_ids(df).values
    df["ref_count"] = 2 * df["n_called"] - df["alt_count"]
    df["call_rate"] = df["n_called"] / n_samples if n_samples else np.nan
    return df[VARIANT_TABLE_COLUMNS]


def _bim_from_table(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"chrom": table["chrom"], "id": table["id"], "cm": 0, "pos": table["pos"],
                         "a1": table["alt"], "a2": table["ref"]})[BIM_COLUMNS]


def _fam_from_samples(samples: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"fid": samples, "iid": samples, "father": "0", "mother": "0", "sex": 0,
                         "pheno": "-9"})


def _write_parquet(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")


def ingest_vcf(vcf_paths, *, out_prefix, region: str | None = None, half_call: str = "haploid",
               block_size: int = 1024) -> dict:
    """Convert VCF/BCF files (plain, bgzipped or BCF; indexed or not) into one PLINK 1 fileset.

    Files are read in the order given and must hold the same samples in the same order. Records
    are streamed in blocks of ``block_size`` output variants (memory O(samples x block)).

    Writes (atomically; nothing is written if the input is bad):

    - ``{out_prefix}.bed/.bim/.fam``: .bim = chrom (as in the VCF), id, 0, pos, A1 = ALT,
      A2 = REF; .fam = FID = IID = VCF sample name, father/mother 0, sex 0, phenotype -9;
    - ``{out_prefix}.variants.parquet``: one row per output variant, columns ``chrom pos id vcf_id
      ref alt record split_index call_rate alt_count ref_count n_called`` (``vcf_id`` is the ID
      column as read, ``.`` when missing; ``split_index`` 0 for a biallelic record, k for the k-th
      ALT of a split multi-allelic; counts are of the written genotypes: alt_count = sum of ALT
      dosages, ref_count = 2 n_called - alt_count);
    - ``{out_prefix}.ingest.log``: records read, variants written, records split, skipped records
      by reason, IDs normalised.

    Returns a dict with ``n_samples, n_records, n_variants, n_split_records, n_skipped,
    skipped_by_reason, n_ids_normalised`` and the output paths.
    """
    if half_call not in ("haploid", "missing"):
        raise CohortflowError(f"half_call must be 'haploid' or 'missing', not {half_call!r}")
    if isinstance(vcf_paths, (str, os.PathLike)):
        vcf_paths = [vcf_paths]
    paths = [Path(p) for p in vcf_paths]
    if not paths:
        raise CohortflowError("no VCF/BCF files given")
    half_haploid = half_call == "haploid"

    vcfs = [_open_vcf(p) for p in paths]
    samples = list(vcfs[0].samples)
    if not samples:
        raise InputFormatError("no samples in the VCF header", path=paths[0])
    if len(set(samples)) != len(samples):
        dup = next(s for s, k in Counter(samples).items() if k > 1)
        raise InputFormatError(f"duplicate sample name {dup!r} in the header", path=paths[0])
    bad = next((s for s in samples if any(c.isspace() for c in s)), None)
    if bad is not None:
        raise InputFormatError(f"sample name {bad!r} contains whitespace (cannot go into a .fam)", path=paths[0])
    for path, vcf in zip(paths[1:], vcfs[1:]):
        if list(vcf.samples) != samples:
            raise InputFormatError(f"samples differ from those of {paths[0]} (same samples in the same "
                                   "order are required)", path=path)
    n = len(samples)

    acc = _Accumulator()
    skipped: Counter = Counter()
    n_records = 0
    n_split = 0
    block = np.empty((block_size, n), dtype=np.int8)
    filled = 0
    dosage = np.empty(n, dtype=np.int8)
    missing_row = np.full(n, -1, dtype=np.int8)

    bed_path = _p(out_prefix, ".bed")
    with atomic_path(bed_path) as tmp_bed:
        with open(tmp_bed, "wb") as bed_fh:
            bed_fh.write(BED_MAGIC)

            def flush():
                nonlocal filled
                if filled:
                    bed_fh.write(encode_bed_block(block[:filled]).tobytes())
                    filled = 0

            for path, vcf in zip(paths, vcfs):
                record_no = 0
                try:
                    for rec in _records(vcf, path, region):
                        record_no += 1
                        n_records += 1
                        alts = list(rec.ALT)
                        fmt = rec.FORMAT
                        if not fmt:
                            raise InputFormatError(f"{rec.CHROM}:{rec.POS} has no FORMAT/sample columns but the "
                                                   f"header declares {n} samples", path=path, record=record_no)
                        gt = rec.genotype.array() if "GT" in fmt else None
                        if gt is not None and gt.shape[1] - 1 > 2 and (gt[:, 2:-1] != -2).any():
                            skipped["genotype ploidy above 2"] += 1
                            continue
                        if len(alts) > 1:
                            n_split += 1
                        vcf_id = rec.ID if rec.ID is not None else "."
                        for k, alt in enumerate(alts or ["."], start=1):
                            if gt is None:
                                block[filled] = missing_row
                                called = 0
                            else:
                                called = gt_alt_dosage(gt, k, half_haploid, dosage)
                                block[filled] = dosage
                            alt_count = int(block[filled][block[filled] > 0].sum(dtype=np.int64))
                            acc.add(rec.CHROM, rec.POS, vcf_id, rec.REF, alt, record_no,
                                    k if len(alts) > 1 else 0, called, alt_count)
                            filled += 1
                            if filled == block_size:
                                flush()
                except CohortflowError:
                    raise
                except Exception as exc:  # htslib parse errors surface as various exception types
                    raise InputFormatError(f"cannot parse ({type(exc).__name__}: {exc})", path=path,
                                           record=record_no + 1) from None
            flush()

        table = acc.table(n)
        n_ids_normalised = int((table["id"] != table["vcf_id"]).sum())
        log_lines = [
            f"inputs\t{','.join(str(p) for p in paths)}",
            f"region\t{region if region is not None else '.'}",
            f"half_call\t{half_call}",
            f"samples\t{n}",
            f"records_read\t{n_records}",
            f"variants_written\t{len(table)}",
            f"records_split\t{n_split}",
            f"records_skipped\t{sum(skipped.values())}",
        ]
        log_lines += [f"skipped\t{reason}\t{count}" for reason, count in sorted(skipped.items())]
        log_lines.append(f"ids_normalised\t{n_ids_normalised}")
        write_bim(_p(out_prefix, ".bim"), _bim_from_table(table))
        write_fam(_p(out_prefix, ".fam"), _fam_from_samples(samples))
        _write_parquet(_p(out_prefix, ".variants.parquet"), table)
        write_text_atomic(_p(out_prefix, ".ingest.log"), "\n".join(log_lines) + "\n")
    return {
        "n_samples": n,
        "n_records": n_records,
        "n_variants": len(table),
        "n_split_records": n_split,
        "n_skipped": sum(skipped.values()),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "n_ids_normalised": n_ids_normalised,
        "bed": str(bed_path),
        "variants": str(_p(out_prefix, ".variants.parquet")),
        "log": str(_p(out_prefix, ".ingest.log")),
    }


def merge_bed_shards(prefixes, *, out_prefix) -> None:
    """Concatenate ingestion shards (in the order given) into one fileset.

    Every shard must have the same .fam (same samples, same order). Writes
    ``{out_prefix}.bed/.bim/.fam`` and ``{out_prefix}.variants.parquet`` (variant IDs normalised
    again over all shards), identical to ingesting all the shards' inputs in one call.
    """
    prefixes = [Path(str(p)) for p in prefixes]
    if not prefixes:
        raise CohortflowError("no shards to merge")
    beds = [open_bed(p) for p in prefixes]
    fam = beds[0].fam
    for prefix, bed in zip(prefixes[1:], beds[1:]):
        if not bed.fam.equals(fam):
            raise InputFormatError(f"samples differ from those of {prefixes[0]}.fam", path=_p(prefix, ".fam"))
    tables = []
    for prefix, bed in zip(prefixes, beds):
        path = _p(prefix, ".variants.parquet")
        if not path.exists():
            raise InputFormatError("file not found", path=path)
        tab = pd.read_parquet(path)
        if len(tab) != bed.n_variants or "vcf_id" not in tab.columns:
            raise InputFormatError(f"does not match {prefix}.bim ({len(tab)} rows, {bed.n_variants} variants)",
                                   path=path)
        tables.append(tab)
    table = pd.concat(tables, ignore_index=True)
    table = _finish_table(table[["chrom", "pos", "vcf_id", "ref", "alt", "record", "split_index",
                                 "n_called", "alt_count"]], len(fam))
    table["chrom"] = table["chrom"].astype(str)
    with atomic_path(_p(out_prefix, ".bed")) as tmp_bed:
        with open(tmp_bed, "wb") as out:
            out.write(BED_MAGIC)
            for prefix in prefixes:
                with open(_p(prefix, ".bed"), "rb") as src:
                    src.seek(len(BED_MAGIC))
                    shutil.copyfileobj(src, out, length=1 << 22)
        write_bim(_p(out_prefix, ".bim"), _bim_from_table(table))
        write_fam(_p(out_prefix, ".fam"), fam)
        _write_parquet(_p(out_prefix, ".variants.parquet"), table)
