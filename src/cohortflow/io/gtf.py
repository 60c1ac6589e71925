"""Gene records of a GTF annotation (only what nearest-gene lookups need)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd

from cohortflow.errors import InputFormatError

_ATTR = re.compile(r'(\S+)\s+"([^"]*)"')


def read_gtf_genes(path: str | Path) -> pd.DataFrame:
    """Gene records (feature ``gene``) of a GTF file, plain or gzip.

    Returns DataFrame(chrom, start, end, gene_name, gene_id, strand), 1-based inclusive
    coordinates as in the file, in file order; gene_name falls back to gene_id.
    """
    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 9:
                raise InputFormatError(f"{len(fields)} tab-separated fields, GTF has 9", path=path,
                                       record=f"line {lineno}")
            if fields[2] != "gene":
                continue
            try:
                start, end = int(fields[3]), int(fields[4])
            except ValueError:
                raise InputFormatError("start/end not integers", path=path, record=f"line {lineno}") from None
            attrs = dict(_ATTR.findall(fields[8]))
            gene_id = attrs.get("gene_id")
            if gene_id is None:
                raise InputFormatError("gene record without gene_id", path=path, record=f"line {lineno}")
            rows.append((fields[0], start, end, attrs.get("gene_name", gene_id), gene_id, fields[6]))
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "gene_name", "gene_id", "strand"])
