"""AnnData (.h5ad) reading with the project's error contract."""

from __future__ import annotations

from pathlib import Path

from cohortflow.errors import InputFormatError


def read_h5ad(path: str | Path, *, backed: str | None = None):
    """Read an .h5ad file; a missing or unreadable file is one InputFormatError naming it."""
    import anndata

    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    try:
        return anndata.read_h5ad(path, backed=backed)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputFormatError(f"cannot read AnnData ({type(exc).__name__}: {exc})", path=path) from None
