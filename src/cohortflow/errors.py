"""User-facing errors: one clear line naming the file, the record and the problem."""

from __future__ import annotations

from pathlib import Path


class CohortflowError(Exception):
    """An error caused by the user's input or configuration (not a bug).

    The CLI and the Snakemake scripts print ``str(err)`` as one line and exit non-zero,
    without a traceback.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, record: str | int | None = None):
        self.path = None if path is None else str(path)
        self.record = record
        self.problem = message
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if record is not None:
            parts.append(f"record {record}" if isinstance(record, int) else str(record))
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InputFormatError(CohortflowError):
    """A file does not follow the format it claims to be in."""


class ConfigError(CohortflowError):
    """The configuration or a sample sheet holds a wrong value."""
