"""Meta-analysis of several cohorts' GWAS summary statistics (``cohortflow meta``)."""
