"""Atomic output: write to a temporary file beside the target, then rename over it.

A killed job never leaves a half-written file under the final name, so Snakemake (and users)
never mistake a partial output for a finished one.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of ``path`` left by a writer that was killed (SIGKILL, node loss): a
    target has one writer at a time (Snakemake runs one job per output), so any earlier
    ``.{name}.XXXXXXXX.tmp`` beside it is dead."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if entry.name.startswith(f".{path.name}.") and pattern.match(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, compress: bool | None = None) -> Iterator[io.IOBase]:
    """Open a temporary file for writing that becomes ``path`` only when the block succeeds.

    ``compress`` defaults to True for names ending in ``.gz``; gzip output uses mtime=0 so the
    same content gives byte-identical files.
    """
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    with atomic_path(path) as tmp:
        if compress:
            raw = open(tmp, "wb")
            try:
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                try:
                    if "b" in mode:
                        yield gz
                    else:
                        text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
                        yield text
                        text.flush()
                        text.detach()  # leave closing the gzip stream to the finally below
                finally:
                    gz.close()
            finally:
                raw.close()
        else:
            kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
            with open(tmp, mode, **kwargs) as fh:
                yield fh


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json_atomic(path: str | Path, obj) -> None:
    """Deterministic JSON (sorted keys); NaN and infinities become null (JSON has no NaN)."""
    import json

    write_text_atomic(path, json.dumps(_finite_or_none(obj), indent=2, sort_keys=True, allow_nan=False,
                                       default=_json_default) + "\n")


def _finite_or_none(obj):
    import math

    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_png_atomic(fig, path: str | Path, *, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically, without the Software/date metadata that would
    make the bytes differ between runs. (A pyplot figure is still the caller's to close.)"""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_table_atomic(path: str | Path, df, *, float_format: str | None = "%.6g", **kwargs) -> None:
    """Write a pandas DataFrame as TSV (gzip when the name ends in .gz), atomically."""
    with atomic_open(path, "w") as fh:
        df.to_csv(fh, sep="\t", index=False, float_format=float_format, lineterminator="\n", **kwargs)
