"""``samtools flagstat`` default text output from the flagstat counters of ``kernels``."""

from __future__ import annotations

import numpy as np

from cohortflow.alignment import kernels as K


def _percent(n: int, total: int) -> str:
    # samtools computes (float)n / total * 100.0: a single-precision quotient, then a double
    return "N/A" if total == 0 else "%.2f%%" % (float(np.float32(n) / np.float32(total)) * 100.0)


def format_flagstat_text(flagstat: np.ndarray) -> str:
    """Text identical to ``samtools flagstat`` (1.16, default format) for these counters.

    ``flagstat`` has shape (FS_N, 2): column 0 QC-passed reads, column 1 QC-failed reads.
    """
    f = [(int(flagstat[k, 0]), int(flagstat[k, 1])) for k in range(K.FS_N)]

    def line(k, text):
        return f"{f[k][0]} + {f[k][1]} {text}\n"

    def pct_line(k, text, total_k):
        return (f"{f[k][0]} + {f[k][1]} {text} ({_percent(f[k][0], f[total_k][0])} : "
                f"{_percent(f[k][1], f[total_k][1])})\n")

    return "".join([
        line(K.FS_TOTAL, "in total (QC-passed reads + QC-failed reads)"),
        line(K.FS_PRIMARY, "primary"),
        line(K.FS_SECONDARY, "secondary"),
        line(K.FS_SUPPLEMENTARY, "supplementary"),
        line(K.FS_DUP, "duplicates"),
        line(K.FS_PRIMARY_DUP, "primary duplicates"),
        pct_line(K.FS_MAPPED, "mapped", K.FS_TOTAL),
        pct_line(K.FS_PRIMARY_MAPPED, "primary mapped", K.FS_PRIMARY),
        line(K.FS_PAIRED, "paired in sequencing"),
        line(K.FS_READ1, "read1"),
        line(K.FS_READ2, "read2"),
        pct_line(K.FS_PROPER, "properly paired", K.FS_PAIRED),
        line(K.FS_BOTH_MAPPED, "with itself and mate mapped"),
        pct_line(K.FS_SINGLETON, "singletons", K.FS_PAIRED),
        line(K.FS_DIFF_CHR, "with mate mapped to a different chr"),
        line(K.FS_DIFF_CHR_MQ5, "with mate mapped to a different chr (mapQ>=5)"),
    ])
