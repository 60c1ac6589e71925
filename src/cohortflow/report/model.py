"""Building blocks of the report (sections, tables, figures) and the number formatting they share.

Everything here is plain data handed to the jinja2 template; the template escapes every string,
so nothing read from a results file can inject markup.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohortflow.errors import InputFormatError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAGE_SIZE = 50  # tables with more rows than this are paginated on screen (all rows print)
FILTER_MIN_ROWS = 5  # tables with more rows than this get a filter box


# --------------------------------------------------------------------------------------------
# Blocks


@dataclass
class Cell:
    """One table cell: the text shown, an optional numeric sort key and an optional CSS class."""

    text: str
    sort: float | None = None
    cls: str | None = None

    @property
    def sort_attr(self) -> str | None:
        """The sort key as JavaScript's parseFloat reads it (None: sort by text)."""
        if self.sort is None or math.isnan(self.sort):
            return None
        if math.isinf(self.sort):
            return "Infinity" if self.sort > 0 else "-Infinity"
        return repr(float(self.sort))


@dataclass
class Column:
    label: str
    numeric: bool = False
    title: str | None = None  # tooltip: the column's name in the source file


@dataclass
class Row:
    cells: list[Cell]
    cls: str | None = None


@dataclass
class Table:
    """A data table: sortable by clicking a header, filterable, paginated above ``PAGE_SIZE`` rows."""

    id: str
    columns: list[Column]
    rows: list[Row]
    caption: str = ""
    note: str = ""
    kind: str = "table"
    number: int = 0  # "Table n", assigned in report order before rendering

    @property
    def filterable(self) -> bool:
        """A filter box is offered above a handful of rows; tiny tables are read at a glance."""
        return len(self.rows) > FILTER_MIN_ROWS

    @property
    def paginated(self) -> bool:
        return len(self.rows) > PAGE_SIZE

    @property
    def page_size(self) -> int:
        return PAGE_SIZE


@dataclass
class KeyValues:
    """A compact two-column fact list (label, value) without sorting or filtering."""

    items: list[tuple[str, str]]
    caption: str = ""
    kind: str = "kv"


@dataclass
class Figure:
    """A PNG embedded as a data URI, with a caption and alt text."""

    id: str
    data_uri: str
    caption: str
    alt: str
    kind: str = "figure"
    number: int = 0  # "Figure n", assigned in report order before rendering


@dataclass
class FigureGrid:
    figures: list[Figure]
    kind: str = "figure_grid"


@dataclass
class Columns:
    """Blocks shown side by side on a wide screen (stacked on narrow screens and paper); an item
    that is a list is one column of blocks stacked vertically."""

    blocks: list[Any]
    kind: str = "columns"


@dataclass
class Paragraph:
    text: str
    cls: str | None = None
    lead: str = ""  # a bold run-in heading
    kind: str = "paragraph"


@dataclass
class BulletList:
    items: list[str]
    title: str = ""
    kind: str = "bullets"


@dataclass
class Citations:
    items: list[tuple[str, str]]  # (key, formatted reference with a DOI as plain text)
    kind: str = "citations"


@dataclass
class Preformatted:
    text: str
    caption: str = ""
    kind: str = "pre"


@dataclass
class StatTiles:
    tiles: list[tuple[str, str]]  # (value, label)
    kind: str = "tiles"


@dataclass
class Subsection:
    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)
    subsections: list[Subsection] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # sentences offered to the summary


# --------------------------------------------------------------------------------------------
# Reading inputs


def read_json(path: Path) -> dict:
    """A results JSON object; a file that is not a JSON object is a clear error."""
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as err:
        raise InputFormatError(f"not valid JSON ({err.msg} at line {err.lineno})", path=path) from None
    if not isinstance(obj, dict):
        raise InputFormatError("expected a JSON object at the top level", path=path)
    return obj


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a tab-separated table, all values as the text written in the file.

    A leading ``#`` on the header (plink style) is dropped. Rows with the wrong number of fields
    are an error naming the line.
    """
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            return [], []
        if header and header[0].startswith("#"):
            header[0] = header[0][1:]
        header = [h.strip() for h in header]
        rows = []
        for line_no, fields in enumerate(reader, start=2):
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                raise InputFormatError(
                    f"{len(fields)} fields where the header has {len(header)}", path=path, record=f"line {line_no}"
                )
            rows.append(dict(zip(header, (f.strip() for f in fields))))
    return header, rows


def png_data_uri(path: Path) -> str | None:
    """``data:image/png;base64,...`` for a PNG file, or None when the file is not a PNG."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_MAGIC):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def make_figure(path: Path, *, fig_id: str, caption: str, alt: str) -> Figure | None:
    """A Figure for ``path`` if it exists and is a PNG, else None (so no broken image is shown)."""
    if not Path(path).is_file():
        return None
    uri = png_data_uri(path)
    if uri is None:
        return None
    return Figure(id=fig_id, data_uri=uri, caption=caption, alt=alt)


# --------------------------------------------------------------------------------------------
# Numbers

_P_TEXT = re.compile(r"^\s*([0-9]*\.?[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*$")


def to_float(value: Any) -> float | None:
    """A finite float from a JSON value or a table field, or None (missing, NA, text, bool)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        x = float(value)
    else:
        try:
            x = float(str(value).strip())
        except ValueError:
            return None
    return x if math.isfinite(x) else None


def to_int(value: Any) -> int | None:
    x = to_float(value)
    if x is None or x != int(x):
        return None
    return int(x)


def neg_log10_p(value: Any) -> float | None:
    """-log10(p), exact also for p-values below the double range written as text ("1e-400")."""
    if value is None or isinstance(value, bool):
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    m = _P_TEXT.match(text)
    if not m:
        return None
    mantissa = float(m.group(1))
    exponent = int(m.group(2) or 0)
    if mantissa <= 0:
        return math.inf
    return -(math.log10(mantissa) + exponent)


def fmt_p(value: Any) -> str:
    """A p-value with two significant digits; scientific below 0.001; works beyond double range."""
    nl = neg_log10_p(value)
    if nl is None:
        return "n/a"
    if math.isinf(nl):
        return "0"
    if nl < 3:
        p = 10.0 ** (-nl)
        return f"{p:.2g}" if p < 0.995 else f"{p:.2f}"
    exponent = math.floor(-nl)
    mantissa = 10.0 ** (-nl - exponent)
    if round(mantissa, 1) >= 10.0:
        mantissa /= 10.0
        exponent += 1
    return f"{mantissa:.1f}e{exponent}"


def fmt_int(value: Any) -> str:
    n = to_int(value)
    return "n/a" if n is None else f"{n:,}"


def fmt_num(value: Any, *, digits: int = 3) -> str:
    """A float with ``digits`` significant digits (integers keep all their digits)."""
    x = to_float(value)
    if x is None:
        return "n/a" if value is None or str(value).strip() == "" else str(value)
    if x == int(x) and abs(x) < 1e15 and not isinstance(value, float) and "." not in str(value):
        return f"{int(x):,}"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.{max(digits - 1, 0)}e}"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:,.0f}"


def fmt_fixed(value: Any, *, decimals: int = 1) -> str:
    x = to_float(value)
    return "n/a" if x is None else f"{x:,.{decimals}f}"


def suppress_count(value: Any, min_count: int) -> tuple[str, float | None, bool]:
    """(text, sort key, suppressed) for a count of individuals or cells.

    Counts below ``min_count`` are shown as ``<min_count`` (small-cell suppression), sorted as 0 so
    the sort order cannot reveal them. A count a stage already masked (``"<5"``, ``"suppressed"``)
    stays masked.
    """
    if isinstance(value, str) and (value.strip().startswith("<") or value.strip() == "suppressed"):
        return (f"<{min_count}", 0.0, True)
    n = to_int(value)
    if n is None:
        return ("n/a", None, False)
    if n < min_count:
        return (f"<{min_count}", 0.0, True)
    return (f"{n:,}", float(n), False)


def slug(text: str) -> str:
    """An HTML id fragment from arbitrary text (letters, digits, '-', '_')."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-")
    return s or "x"
