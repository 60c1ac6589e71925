"""Chromosome names on one scale, whichever convention a file uses (``chr1``/``1``, plink's
23-26 for X/Y/XY/MT, ``M`` for MT), so files from different sources can be matched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_CHROM_ALIASES = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}


def factorize_strings(values) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of strings given as a list, numpy array, pandas Series/array or
    Arrow array; a missing value is a distinct value of its own (NaN). Arrow-backed strings are
    dictionary-encoded by Arrow (no Python object per value)."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.array
    if isinstance(values, pd.api.extensions.ExtensionArray) and hasattr(values, "__arrow_array__"):
        values = values.__arrow_array__()
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values.cast(pa.string()), null_encoding="encode")
        distinct = np.asarray([np.nan if v is None else v for v in encoded.dictionary.to_pylist()], dtype=object)
        return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), distinct
    if isinstance(values, pd.arrays.NumpyExtensionArray) or not isinstance(
            values, (np.ndarray, pd.api.extensions.ExtensionArray)):
        values = np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def normalise_chrom_names(names: np.ndarray) -> np.ndarray:
    out = pd.Series(names, dtype=object).astype(str).str.strip().str.upper()
    out = out.str.replace(r"^CHR", "", regex=True)
    return out.replace(_CHROM_ALIASES).to_numpy(dtype=object)


def normalise_chrom(values) -> np.ndarray:
    """Chromosome names on one scale: no ``chr`` prefix, upper case, plink's 23-26 as X/Y/XY/MT
    (computed once per distinct name)."""
    codes, names = factorize_strings(values)
    return normalise_chrom_names(names)[codes] if len(codes) else np.array([], dtype=object)
