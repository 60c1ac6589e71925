"""Phenotype and covariate tables, read the way plink2 reads them.

Whitespace-delimited text with a header line ``#FID IID ...``, ``FID IID ...`` or ``IID ...``.
Missing values are ``NA``, ``nan`` (any case), ``-9`` and empty fields; for binary traits coded
1/2, ``0`` is missing too (see :func:`to_binary01`). Columns whose non-missing values all parse
as numbers become float64; other columns are kept as strings (plink2 treats them as categorical
covariates). The reader computes no statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import InputFormatError

MISSING_TOKENS = frozenset({"na", "nan", "-9", ""})


def _is_missing_token(value: str) -> bool:
    return value.lower() in MISSING_TOKENS


def read_pheno_table(path: str | Path, *, columns: list[str] | None = None,
                     require_numeric: bool = False) -> pd.DataFrame:
    """Read a plink2-style phenotype/covariate file.

    Returns a DataFrame indexed by IID (index name ``IID``) with one column per data column (or
    only ``columns``, in that order). Numeric columns are float64 with NaN for missing values;
    non-numeric columns are object dtype with None for missing values (categorical).
    With ``require_numeric=True`` a non-numeric value raises InputFormatError naming the file,
    line and column.
    """
    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    header_idx = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_idx is None:
        raise InputFormatError("empty phenotype/covariate file", path=path)
    header = lines[header_idx].split()
    first = header[0].lstrip("#")
    if header[0].startswith("#") and first not in ("FID", "IID"):
        raise InputFormatError(f"header must start with #FID or #IID, found {header[0]!r}", path=path, record="line 1")
    if first == "FID":
        if len(header) < 2 or header[1] != "IID":
            raise InputFormatError("header must be '#FID IID ...', 'FID IID ...' or 'IID ...'", path=path,
                                   record=f"line {header_idx + 1}")
        id_col, n_id = 1, 2
    elif first == "IID":
        id_col, n_id = 0, 1
    else:
        raise InputFormatError("header must be '#FID IID ...', 'FID IID ...' or 'IID ...'", path=path,
                               record=f"line {header_idx + 1}")
    names = header[n_id:]
    if len(set(names)) != len(names):
        raise InputFormatError("duplicate column names in header", path=path, record=f"line {header_idx + 1}")
    wanted = names if columns is None else list(columns)
    for name in wanted:
        if name not in names:
            raise InputFormatError(f"column {name!r} not found (columns: {', '.join(names)})", path=path)
    col_pos = [n_id + names.index(name) for name in wanted]

    iids: list[str] = []
    values: list[list[str]] = [[] for _ in wanted]
    line_of: list[int] = []
    seen: set[str] = set()
    for i in range(header_idx + 1, len(lines)):
        fields = lines[i].split()
        if not fields:
            continue
        if len(fields) != len(header):
            raise InputFormatError(f"{len(fields)} fields, header has {len(header)}", path=path,
                                   record=f"line {i + 1}")
        iid = fields[id_col]
        if iid in seen:
            raise InputFormatError(f"duplicate IID {iid!r}", path=path, record=f"line {i + 1}")
        seen.add(iid)
        iids.append(iid)
        line_of.append(i + 1)
        for j, pos in enumerate(col_pos):
            values[j].append(fields[pos])

    data = {}
    for name, vals in zip(wanted, values):
        text = pd.Series(vals, dtype=object)
        missing = text.str.lower().isin(MISSING_TOKENS).to_numpy()
        col = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(np.isnan(col) & ~missing)
        if not len(bad):
            if np.isinf(col).any():
                r = int(np.flatnonzero(np.isinf(col))[0])
                raise InputFormatError(f"column {name!r}: infinite value", path=path, record=f"line {line_of[r]}")
            data[name] = col
        elif require_numeric:
            r = int(bad[0])
            raise InputFormatError(f"column {name!r}: non-numeric value {vals[r]!r}", path=path,
                                   record=f"line {line_of[r]}")
        else:
            data[name] = np.array([None if m else v for v, m in zip(vals, missing)], dtype=object)
    frame = pd.DataFrame(data, index=pd.Index(iids, name="IID"), columns=wanted)
    return frame


def _binary_coding(series: pd.Series) -> str | None:
    """'12' for 1/2 coding (0 = missing), '01' for 0/1 coding, None if not binary."""
    if series.dtype == object:
        return None
    vals = set(np.unique(series.dropna().to_numpy()).tolist())
    if not vals:
        return None
    if vals <= {0.0, 1.0, 2.0} and 2.0 in vals:
        return "12"
    if vals <= {0.0, 1.0}:
        return "01"
    return None


def is_binary(series: pd.Series) -> bool:
    """True when the non-missing values are a 1/2 coding (0 = missing) or a 0/1 coding."""
    return _binary_coding(series) is not None


def to_binary01(series: pd.Series) -> pd.Series:
    """Recode a binary trait to 0 (control) / 1 (case) floats, NaN missing.

    1/2 coding: 1 -> 0, 2 -> 1, 0 -> missing (as plink2). 0/1 coding is kept.
    """
    coding = _binary_coding(series)
    if coding is None:
        raise ValueError(f"{series.name!r} is not a binary trait")
    if coding == "12":
        out = series.where(series != 0) - 1.0
    else:
        out = series.astype(float)
    return out.rename(series.name)
