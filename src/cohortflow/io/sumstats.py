"""GWAS-SSF summary statistics (tab-separated, gzip with mtime 0, compressed by ISA-L).

Columns, in order: chromosome base_pair_location effect_allele other_allele beta standard_error
effect_allele_frequency p_value n variant_id test_statistic errcode. The effect allele is the
.bim column-5 allele (A1). p-values below 1e-300 are written from log space as text
(``1.2e-400``); :func:`read_sumstats` returns them as ``neg_log10_p`` so nothing is lost.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import isal_zlib

from cohortflow.errors import InputFormatError
from cohortflow.io.atomic import atomic_open

SSF_COLUMNS = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
               "standard_error", "effect_allele_frequency", "p_value", "n", "variant_id",
               "test_statistic", "errcode"]

# text per compress() call of the gzip writer (fixed, so the bytes do not depend on blocking)
COMPRESS_CHUNK = 1 << 20

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


def format_significant(values: np.ndarray, *, digits: int = 6) -> pa.Array:
    """Numbers as text with ``digits`` significant digits (shortest form: 0.0123457, 1.5e-7,
    123457000); NaN -> 'NA'. Vectorised: rounded in decimal, then printed by Arrow."""
    x = np.asarray(values, dtype=float) + 0.0  # -0.0 -> 0.0
    out = x.copy()
    ok = np.isfinite(x) & (x != 0.0) & (np.abs(x) > 1e-290) & (np.abs(x) < 1e290)
    xs = x[ok]
    shift = (digits - 1) - np.floor(np.log10(np.abs(xs)))
    scale = 10.0 ** np.abs(shift)
    out[ok] = np.where(shift >= 0, np.rint(xs * scale) / scale, np.rint(xs / scale) * scale)
    # 10**k is exact only up to 1e22: beyond it the quotient above is not the double nearest the
    # rounded decimal (1.4813500000000002e-18); those few go through Python's decimal rounding
    far = np.flatnonzero(ok)[np.abs(shift) > 22]
    if far.size:
        out[far] = [float(f"{v:.{digits - 1}e}") for v in x[far]]
    text = pc.cast(pa.array(out, from_pandas=True), pa.string())
    return pc.fill_null(text, "NA")


def format_p_text(log10_p: np.ndarray, *, digits: int = 6) -> pa.Array:
    """p-values as text from log10 p: as :func:`format_significant` down to 1e-300, from log
    space below (``1.2e-400``); 'NA' for NaN."""
    lp = np.asarray(log10_p, dtype=float)
    tiny = lp < math.log10(LOG_P_FORMAT_BELOW)
    with np.errstate(under="ignore"):
        text = format_significant(np.where(tiny, np.nan, 10.0 ** lp), digits=digits)
    if tiny.any():
        items = np.array(text.to_pylist(), dtype=object)
        items[tiny] = format_p_values(lp[tiny], digits=digits)
        text = pa.array(items, type=pa.string())
    return text


def _column(values, kind: str) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if kind == "float":
        return format_significant(values)
    if kind == "int":
        return pa.array(np.asarray(values, dtype=np.int64))
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


_KINDS = {"chromosome": "str", "base_pair_location": "int", "effect_allele": "str", "other_allele": "str",
          "beta": "float", "standard_error": "float", "effect_allele_frequency": "float", "n": "int",
          "variant_id": "str", "test_statistic": "float", "errcode": "str"}


def sumstats_text(table, *, log10_p: np.ndarray, header: bool = True) -> bytes:
    """GWAS-SSF rows (tab-separated UTF-8) for ``table`` (a mapping or DataFrame with the SSF
    columns except p_value, which comes from ``log10_p``). Floats get 6 significant digits."""
    cols = []
    for name in SSF_COLUMNS:
        if name == "p_value":
            cols.append(format_p_text(log10_p))
        else:
            values = table[name]
            if isinstance(values, pd.Series):
                values = values.to_numpy()
            cols.append(_column(values, _KINDS[name]))
    buf = io.BytesIO()
    if header:
        buf.write(("\t".join(SSF_COLUMNS) + "\n").encode())
    if len(cols[0]):
        pacsv.write_csv(pa.table(cols, names=SSF_COLUMNS), buf,
                        pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"))
    return buf.getvalue()


class SumstatsWriter:
    """Streams GWAS-SSF blocks into ``path`` atomically (gzip, mtime 0, when the name ends in .gz):
    nothing appears at ``path`` unless :meth:`close` runs after the last block."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._ctx = atomic_open(self.path, "wb", compress=False)
        self._fh = self._ctx.__enter__()
        self._gz = self.path.suffix == ".gz"
        # wbits 31: the gzip header is written with mtime 0 and no file name, so the bytes depend
        # only on the data. ISA-L level 1 compresses GWAS text ~3.5x faster than zlib level 1 (and
        # a little smaller): with zlib, compression was a third of a linear GWAS's run time.
        # ISA-L's output depends on how the text is cut into compress() calls, so it always gets
        # COMPRESS_CHUNK bytes at a time, whatever the block sizes.
        self._zip = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31) if self._gz else None
        self._pending = bytearray()
        self._header = True

    def write(self, table, *, log10_p: np.ndarray) -> None:
        self.write_text(sumstats_text(table, log10_p=log10_p, header=self._header))

    def write_text(self, data: bytes) -> None:
        """Append already formatted GWAS-SSF lines (the header first, once); the output bytes
        depend only on the text, however it is cut into calls."""
        self._header = False
        if not self._gz:
            self._fh.write(data)
            return
        self._pending += data
        whole = len(self._pending) // COMPRESS_CHUNK * COMPRESS_CHUNK
        view = memoryview(self._pending)
        for start in range(0, whole, COMPRESS_CHUNK):
            self._fh.write(self._zip.compress(view[start:start + COMPRESS_CHUNK]))
        view.release()
        del self._pending[:whole]

    def close(self) -> None:
        if self._header:
            self.write({c: np.empty(0) for c in SSF_COLUMNS if c != "p_value"}, log10_p=np.empty(0))
        if self._gz:
            self._fh.write(self._zip.compress(bytes(self._pending)) + self._zip.flush())
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)


def write_sumstats(path: str | Path, table: pd.DataFrame, *, log10_p: np.ndarray) -> None:
    """Write a GWAS-SSF table atomically (gzip when the name ends in .gz).

    ``table`` holds the SSF columns except p_value (taken from ``log10_p``). Floats get 6
    significant digits, like plink2.
    """
    writer = SumstatsWriter(path)
    try:
        writer.write(table, log10_p=log10_p)
    except BaseException as exc:
        writer.abort(exc)
        raise
    writer.close()


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
                                                            "test_statistic": ["NA"], "n": ["NA"]})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot read summary statistics ({exc})", path=path) from None
    missing = [c for c in SSF_COLUMNS if c not in df.columns]
    if missing:
        raise InputFormatError(f"missing GWAS-SSF columns: {', '.join(missing)}", path=path)
    p_text = df["p_value"].astype(str).to_numpy()
    neg_log10 = np.full(len(df), np.nan)
    p_float = np.full(len(df), np.nan)
    for i, s in enumerate(p_text):
        if s.lower() in ("na", "", "nan"):
            continue
        try:
            if "e" in s.lower():
                mant, exp = s.lower().split("e")
                v = float(mant)
                lp = math.log10(v) + int(exp) if v > 0 else -math.inf
            else:
                v = float(s)
                lp = math.log10(v) if v > 0 else -math.inf
        except ValueError:
            raise InputFormatError(f"p_value {s!r} is not a number", path=path, record=f"line {i + 2}") from None
        if v < 0 or lp > 0:
            raise InputFormatError(f"p_value {s} is outside [0, 1]", path=path, record=f"line {i + 2}")
        neg_log10[i] = -lp
        p_float[i] = 10.0 ** lp
    df["p_value"] = p_float
    df["neg_log10_p"] = neg_log10
    df["errcode"] = df["errcode"].replace("NA", "").fillna("")
    return df
