"""GWAS-SSF summary statistics (tab-separated, gzip with mtime 0).

Columns, in order: chromosome base_pair_location effect_allele other_allele beta standard_error
effect_allele_frequency p_value n variant_id test_statistic errcode. The effect allele is the
.bim column-5 allele (A1). p-values below 1e-300 are written from log space as text
(``1.2e-400``); :func:`read_sumstats` returns them as ``neg_log10_p`` so nothing is lost.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import InputFormatError
from cohortflow.io.atomic import atomic_open

SSF_COLUMNS = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
               "standard_error", "effect_allele_frequency", "p_value", "n", "variant_id",
               "test_statistic", "errcode"]

# below this p is formatted from its log (doubles keep full precision down to ~2.2e-308)
LOG_P_FORMAT_BELOW = 1e-300


def format_p_values(log10_p: np.ndarray, *, digits: int = 6) -> np.ndarray:
    """Text for p = 10**log10_p with ``digits`` significant digits; 'NA' for NaN."""
    out = np.empty(len(log10_p), dtype=object)
    for i, lp in enumerate(log10_p):
        if lp != lp:
            out[i] = "NA"
        elif lp >= math.log10(LOG_P_FORMAT_BELOW):
            out[i] = f"{10.0 ** lp:.{digits}g}"
        else:
            exponent = math.floor(lp)
            mantissa = 10.0 ** (lp - exponent)
            if round(mantissa, digits - 1) >= 10.0:
                mantissa /= 10.0
                exponent += 1
            out[i] = f"{mantissa:.{digits - 1}f}".rstrip("0").rstrip(".") + f"e{exponent}"
    return out


def _fmt(values: np.ndarray, spec: str) -> np.ndarray:
    return np.array(["NA" if v != v else format(v, spec) for v in values], dtype=object)


def write_sumstats(path: str | Path, table: pd.DataFrame, *, log10_p: np.ndarray) -> None:
    """Write a GWAS-SSF table atomically (gzip when the name ends in .gz).

    ``table`` holds the SSF columns except p_value (taken from ``log10_p``). Floats get 6
    significant digits, like plink2.
    """
    out = pd.DataFrame({
        "chromosome": table["chromosome"].astype(str).to_numpy(),
        "base_pair_location": table["base_pair_location"].astype(np.int64).to_numpy(),
        "effect_allele": table["effect_allele"].to_numpy(),
        "other_allele": table["other_allele"].to_numpy(),
        "beta": _fmt(table["beta"].to_numpy(float), ".6g"),
        "standard_error": _fmt(table["standard_error"].to_numpy(float), ".6g"),
        "effect_allele_frequency": _fmt(table["effect_allele_frequency"].to_numpy(float), ".6g"),
        "p_value": format_p_values(np.asarray(log10_p, dtype=float)),
        "n": table["n"].astype(np.int64).to_numpy(),
        "variant_id": table["variant_id"].to_numpy(),
        "test_statistic": _fmt(table["test_statistic"].to_numpy(float), ".6g"),
        "errcode": table["errcode"].to_numpy(),
    }, columns=SSF_COLUMNS)
    data = out.to_csv(sep="\t", index=False, lineterminator="\n", na_rep="NA").encode("utf-8")
    path = Path(path)
    if path.suffix == ".gz":
        # level 6: much faster than gzip's default 9 for little size; mtime 0 keeps bytes stable
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_open(path, "wb", compress=False) as fh:
        fh.write(data)


def read_sumstats(path: str | Path) -> pd.DataFrame:
    """Read a GWAS-SSF file written by :func:`write_sumstats` (or any with these columns).

    Returns the SSF columns (p_value as float, 0.0 where it underflows) plus ``neg_log10_p``
    computed from the text, exact also for p below the double range; errcode '' when fine.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype={"chromosome": str, "effect_allele": str, "other_allele": str,
                                                 "variant_id": str, "p_value": str, "errcode": str},
                         keep_default_na=False, na_values={"beta": ["NA"], "standard_error": ["NA"],
                                                            "effect_allele_frequency": ["NA"],
                                                            "test_statistic": ["NA"]})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot read summary statistics ({exc})", path=path) from None
    missing = [c for c in SSF_COLUMNS if c not in df.columns]
    if missing:
        raise InputFormatError(f"missing GWAS-SSF columns: {', '.join(missing)}", path=path)
    p_text = df["p_value"].astype(str).to_numpy()
    neg_log10 = np.full(len(df), np.nan)
    p_float = np.full(len(df), np.nan)
    for i, s in enumerate(p_text):
        if s in ("NA", "", "nan"):
            continue
        try:
            if "e" in s.lower():
                mant, exp = s.lower().split("e")
                lp = math.log10(float(mant)) + int(exp) if float(mant) > 0 else -math.inf
            else:
                v = float(s)
                lp = math.log10(v) if v > 0 else -math.inf
        except ValueError:
            raise InputFormatError(f"bad p_value {s!r}", path=path, record=f"line {i + 2}") from None
        neg_log10[i] = -lp
        p_float[i] = 10.0 ** lp
    df["p_value"] = p_float
    df["neg_log10_p"] = neg_log10
    df["errcode"] = df["errcode"].replace("NA", "").fillna("")
    return df
