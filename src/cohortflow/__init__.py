"""cohortflow: cohorts of genomic and multi-omic data to results and one report per cohort."""

import os

# numba's OpenMP workers otherwise spin after each parallel kernel and take the cores that the
# serial parts between kernels (I/O, formatting, compression threads) need; set before OpenMP
# loads, and only when the user has not chosen a policy
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
