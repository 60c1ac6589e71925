"""cohortflow: cohorts of genomic and multi-omic data to results and one report per cohort."""

__version__ = "0.1.0"
