"""Demo reads for the alignment QC's known answers (cohortflow.demo.reads), on a small demo genome.

Known answers: X and Y depth by sex (counted with samtools idxstats and pysam), a planted
contamination seen as the source's alleles at sites where the sample is homozygous (pysam allele
counts), every read inside the targets BED, the truth file of a sheet with a swap, and byte-identical
BAMs per sample.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import yaml

from conftest import REPO, require_tool
from cohortflow.demo.genome import load_true_haplotypes, simulate_genotypes
from cohortflow.demo.reads import (
    parse_region,
    simulate_reads,
    write_alignment_targets,
    write_alignment_truth,
)
from cohortflow.errors import ConfigError

SMALL = dict(n_individuals=120, n_populations=3, n_chromosomes=2, chrom_length=1_000_000,
             n_quant_causal=2, n_disease_causal=2, seed=11)
SETTINGS = dict(region=("1", 200_001, 300_000), coverage=20, n_site_windows=150, site_window_bp=1000,
                x_region=("X", 150_001, 200_000), y_region=("Y", 50_001, 100_000), y_female_fraction=0.01, seed=5)
FRACTION = 0.10


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    simulate_genotypes(out, **SMALL)
    return out


@pytest.fixture(scope="module")
def cast(demo) -> dict:
    """The first female and male individuals, and a contamination source (a third individual)."""
    samples = pd.read_csv(demo / "samples.tsv", sep="\t")
    female = samples.loc[samples["sex"] == 2, "IID"].iloc[0]
    male = samples.loc[samples["sex"] == 1, "IID"].iloc[0]
    source = samples.loc[~samples["IID"].isin([female, male]), "IID"].iloc[0]
    return {"F": female, "M": male, "source": source}


def _simulate(out: Path, demo: Path, samples: list[str], contamination=None, **overrides) -> list[Path]:
    settings = {**SETTINGS, **overrides}
    return simulate_reads(out, reference=demo / "reference.fa", haplotypes=demo / "genotypes" / "true_haplotypes.npz",
                          samples=samples, sample_info=demo / "samples.tsv", contamination=contamination, **settings)


@pytest.fixture(scope="module")
def bams(demo, cast, tmp_path_factory) -> Path:
    """The female's BAM contaminated with FRACTION of the source's fragments; the male's clean."""
    out = tmp_path_factory.mktemp("reads")
    _simulate(out, demo, [cast["F"], cast["M"]],
              contamination={"sample": cast["F"], "source": cast["source"], "fraction": FRACTION})
    return out


@pytest.fixture(scope="module")
def targets(demo, bams) -> Path:
    path = bams / "targets.bed"
    settings = {k: v for k, v in SETTINGS.items() if k not in ("coverage", "y_female_fraction")}
    write_alignment_targets(path, reference=demo / "reference.fa",
                            haplotypes=demo / "genotypes" / "true_haplotypes.npz", **settings)
    return path


def _bed(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=["chrom", "start", "end"], dtype={"chrom": str})


def test_targets_bed_covers_every_read(bams, targets, cast):
    bed = _bed(targets)
    region, x, y = SETTINGS["region"], SETTINGS["x_region"], SETTINGS["y_region"]
    assert len(bed) == 1 + SETTINGS["n_site_windows"] + 2
    for chrom, start, end in (region, x, y):  # BED is 0-based, half-open
        assert ((bed["chrom"] == chrom) & (bed["start"] == start - 1) & (bed["end"] == end)).sum() == 1
    windows = bed[(bed["end"] - bed["start"]) == SETTINGS["site_window_bp"]]
    assert len(windows) == SETTINGS["n_site_windows"]
    order = {"1": 0, "2": 1, "X": 2, "Y": 3}
    keys = list(zip(bed["chrom"].map(order), bed["start"]))
    assert keys == sorted(keys)
    for chrom, rows in bed.groupby("chrom"):
        assert (rows["start"].to_numpy()[1:] >= rows["end"].to_numpy()[:-1]).all(), "targets overlap"
    intervals = {c: (rows["start"].to_numpy(), rows["end"].to_numpy()) for c, rows in bed.groupby("chrom")}
    with pysam.AlignmentFile(str(bams / "bam" / f"{cast['M']}.bam")) as bam:
        n = 0
        for read in bam.fetch(until_eof=True):
            if read.is_unmapped:
                continue
            starts, ends = intervals[read.reference_name]
            k = np.searchsorted(starts, read.reference_start, side="right") - 1
            assert k >= 0 and read.reference_end <= ends[k], read.to_string()
            n += 1
    assert n > 10_000


def _target_bp(targets: Path) -> dict[str, int]:
    bed = _bed(targets)
    bed["kind"] = bed["chrom"].where(bed["chrom"].isin(["X", "Y"]), "A")
    return (bed["end"] - bed["start"]).groupby(bed["kind"]).sum().to_dict()


@pytest.mark.parametrize("sex", ["F", "M"])
def test_sex_chromosome_depth(bams, targets, cast, sex):
    """Reads per target bp on X and Y over the autosomes': F 1 and 0.005, M 0.5 and 0.5 (samtools idxstats)."""
    require_tool("samtools")
    path = bams / "bam" / f"{cast[sex]}.bam"
    out = subprocess.run(["samtools", "idxstats", str(path)], check=True, capture_output=True, text=True).stdout
    mapped = {f[0]: int(f[2]) for f in (line.split("\t") for line in out.splitlines())}
    with pysam.AlignmentFile(str(path)) as bam:  # pysam reads the same index
        assert all(s.mapped == mapped[s.contig] for s in bam.get_index_statistics())
    bp = _target_bp(targets)
    auto = (mapped["1"] + mapped["2"]) / bp["A"]
    x_ratio, y_ratio = mapped["X"] / bp["X"] / auto, mapped["Y"] / bp["Y"] / auto
    if sex == "F":
        assert x_ratio == pytest.approx(1.0, abs=0.04)
        assert 0 < y_ratio == pytest.approx(SETTINGS["y_female_fraction"] / 2, abs=0.004)
    else:
        assert x_ratio == pytest.approx(0.5, abs=0.03)
        assert y_ratio == pytest.approx(0.5, abs=0.03)


def _contamination_estimate(bam_path: Path, demo: Path, sample: str, source: str) -> tuple[float, int]:
    """Reads of ``sample``'s BAM showing the allele it lacks, over the reads expected from the source
    at a contamination of 1: sum over sites where ``sample`` is homozygous and ``source`` carries the
    other allele of depth * (source's copies of that allele) / 2 (duplicates skipped). Returns the
    estimate and the number of such reads at fraction 1."""
    foreign = expected = 0.0
    with pysam.AlignmentFile(str(bam_path)) as bam:
        for chrom in ("1", "2"):
            samples, positions, ref, alt, hap = load_true_haplotypes(demo / "genotypes" / "true_haplotypes.npz", chrom)
            i, j = samples.index(sample), samples.index(source)
            g_sample, g_source = hap[:, 2 * i] + hap[:, 2 * i + 1], hap[:, 2 * j] + hap[:, 2 * j + 1]
            source_copies = np.where(g_sample == 0, g_source, 2 - g_source)
            for k in np.flatnonzero((g_sample != 1) & (source_copies > 0)):
                pos = int(positions[k])
                counts = bam.count_coverage(chrom, pos - 1, pos, quality_threshold=0,
                                            read_callback=lambda r: not (r.is_duplicate or r.is_unmapped))
                counts = np.array([c[0] for c in counts])
                other = alt[k] if g_sample[k] == 0 else ref[k]
                foreign += counts[other]
                expected += counts.sum() * source_copies[k] / 2
    return foreign / expected, int(expected)


def test_contamination_fraction(bams, demo, cast):
    """The contaminated sample's reads carry the source's alleles it lacks at ~FRACTION of the rate of a
    pure source BAM (~900 reads at fraction 1: binomial SD ~0.01; sequencing errors add ~0.3%); the clean
    sample's reads, against the same source, only errors."""
    estimate, n = _contamination_estimate(bams / "bam" / f"{cast['F']}.bam", demo, cast["F"], cast["source"])
    assert n > 500
    assert estimate == pytest.approx(FRACTION, abs=0.03)
    clean, n_clean = _contamination_estimate(bams / "bam" / f"{cast['M']}.bam", demo, cast["M"], cast["source"])
    assert n_clean > 500 and clean < 0.015


def test_contamination_changes_only_bases(bams, demo, cast, tmp_path):
    """Without contamination the same sample's BAM has the same reads (names, positions, flags, X/Y),
    differing only in the bases of reads over sites where the source differs."""
    _simulate(tmp_path, demo, [cast["F"]])
    with pysam.AlignmentFile(str(bams / "bam" / f"{cast['F']}.bam")) as a, \
            pysam.AlignmentFile(str(tmp_path / "bam" / f"{cast['F']}.bam")) as b:
        pairs = list(zip(a.fetch(until_eof=True), b.fetch(until_eof=True), strict=True))
    assert all((r.query_name, r.flag, r.reference_id, r.reference_start) ==
               (s.query_name, s.flag, s.reference_id, s.reference_start) for r, s in pairs)
    differ = sum(r.query_sequence != s.query_sequence for r, s in pairs)
    assert 0 < differ < 0.1 * len(pairs)
    assert all(r.query_sequence == s.query_sequence for r, s in pairs if r.reference_name in ("X", "Y"))


def test_region_reads_as_without_the_extras(bams, demo, cast, tmp_path):
    """The first region's reads are those of a BAM without windows, X/Y or contamination (the demo's
    earlier BAMs): the extras draw from their own random streams."""
    simulate_reads(tmp_path, reference=demo / "reference.fa", haplotypes=demo / "genotypes" / "true_haplotypes.npz",
                   samples=[cast["M"]], region=SETTINGS["region"], coverage=SETTINGS["coverage"], seed=SETTINGS["seed"])
    chrom, start, end = SETTINGS["region"]

    def region_reads(path):
        with pysam.AlignmentFile(str(path)) as bam:
            return [r.to_string() for r in bam.fetch(until_eof=True)
                    if r.reference_name == chrom and start - 1 <= r.reference_start < end]

    plain = region_reads(tmp_path / "bam" / f"{cast['M']}.bam")
    full = region_reads(bams / "bam" / f"{cast['M']}.bam")
    plain_set = set(plain)
    assert plain and plain_set <= set(full)
    assert [r for r in full if r in plain_set] == plain  # and in the same order


def test_reads_deterministic_per_sample(bams, demo, cast, tmp_path):
    _simulate(tmp_path, demo, [cast["F"]],  # the contaminated sample alone
              contamination={"sample": cast["F"], "source": cast["source"], "fraction": FRACTION})
    for suffix in ("bam", "bam.bai"):
        assert (tmp_path / "bam" / f"{cast['F']}.{suffix}").read_bytes() == \
            (bams / "bam" / f"{cast['F']}.{suffix}").read_bytes()


def test_bam_valid_for_samtools(bams, demo, cast):
    require_tool("samtools")
    path = str(bams / "bam" / f"{cast['F']}.bam")
    subprocess.run(["samtools", "quickcheck", path], check=True)
    calmd = subprocess.run(["samtools", "calmd", path, str(demo / "reference.fa")], check=True,
                           capture_output=True, text=True)
    assert "different" not in calmd.stderr  # NM/MD of every read, X and Y included


def test_alignment_truth_of_a_swapped_sheet(demo, cast, tmp_path):
    samples = pd.read_csv(demo / "samples.tsv", sep="\t")
    sexes = dict(zip(samples["IID"], samples["sex"].map({1: "M", 2: "F"})))
    other = samples.loc[~samples["IID"].isin([cast["F"], cast["M"], cast["source"]]), "IID"].iloc[0]
    sheet = tmp_path / "alignment.tsv"
    sheet.write_text("sample\tbam\n"
                     f"{cast['F']}\tbam/{cast['M']}.bam\n{cast['M']}\tbam/{cast['F']}.bam\n{other}\tbam/{other}.bam\n")
    contamination = {"sample": cast["F"], "source": cast["source"], "fraction": FRACTION}
    truth = write_alignment_truth(tmp_path / "truth.json", sheet=sheet, sample_info=demo / "samples.tsv",
                                  contamination=contamination)
    assert json.loads((tmp_path / "truth.json").read_text()) == truth
    assert truth["individual"] == {cast["F"]: cast["M"], cast["M"]: cast["F"], other: other}
    assert truth["sex"] == {cast["F"]: "M", cast["M"]: "F", other: sexes[other]}
    assert truth["reported_sex"] == {cast["F"]: "F", cast["M"]: "M", other: sexes[other]}
    assert truth["swapped"] == sorted([cast["F"], cast["M"]])
    # the contaminated individual's BAM is listed under the male's name
    assert truth["contaminated"] == {"sample": cast["M"], "individual": cast["F"], "source": cast["source"],
                                     "fraction": FRACTION}
    assert truth["expected_depth_ratio"]["M"] == {"X": 0.5, "Y": 0.5}
    sheet.write_text(f"sample\tbam\n{cast['F']}\tbam/{cast['source']}.bam\n")
    with pytest.raises(ConfigError, match="has a BAM in the sheet"):
        write_alignment_truth(tmp_path / "t2.json", sheet=sheet, sample_info=demo / "samples.tsv",
                              contamination=contamination)


def test_demo_config_plants_an_informative_swap(tmp_path):
    """The repository's demo: the sheet swaps two individuals of opposite sex, the contaminated
    sample keeps its own BAM and the source has none. Sexes as simulate_genotypes draws them (the
    first draw of its "covariates" stream; the first individuals' sexes do not depend on n)."""
    from cohortflow.demo.genome import _rng, sample_ids

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["demo"]
    n = 50
    sex = np.where(_rng(config["seed"], "covariates").random(n) < 0.5, 1, 2)
    info = tmp_path / "samples.tsv"
    pd.DataFrame({"IID": sample_ids(n), "population": "POP1", "sex": sex}).to_csv(info, sep="\t", index=False)
    truth = write_alignment_truth(tmp_path / "truth.json", sheet=REPO / config["reads"]["sheet"], sample_info=info,
                                  contamination=config["reads"]["contamination"])
    a, b = truth["swapped"]
    assert truth["individual"][a] == b and truth["individual"][b] == a
    assert truth["reported_sex"][a] != truth["reported_sex"][b]
    assert truth["contaminated"]["sample"] == config["reads"]["contamination"]["sample"] not in (a, b)
    assert parse_region(config["reads"]["x_region"])[0] == "X" and parse_region(config["reads"]["y_region"])[0] == "Y"
