"""Simulated genetic part of the demo cohort, with planted known answers.

:func:`simulate_genotypes` builds, from one seed and nothing downloaded, a random reference genome,
a gene annotation, msprime coalescent genotypes of individuals from several populations (phased
VCFs with a few missing calls), samples/phenotypes/covariates tables and ``truth.json`` with the
planted causal variants, so the workflow (ingest -> QC -> PCA -> GWAS -> PRS) can be checked
against known answers.

Planted model (defaults), checked with plink2 at 2,000 and 1,000 individuals:

* populations split from one ancestor ``split_generations`` ago (pairwise Fst ~0.05), so PCA
  separates them; individual ``i`` (0-based) belongs to population ``i mod n_populations``;
* each chromosome is a run of independently simulated blocks of ~``block_length`` bp (recombination
  ``recombination_rate`` inside a block, free recombination between blocks, as at strong hotspots);
  this keeps the LD of the few large-effect loci local, so lambda GC with PCs stays ~1.0-1.05 in this
  tiny genome (one 4 Mb msprime chromosome per contig gave lambda 1.44 with PCs);
* ``quant_trait``: ``n_quant_causal`` common SNVs (MAF >= 0.15, population frequencies within 0.05
  of the overall one), each in its own gene and explaining ``quant_h2 / n_quant_causal`` of the
  variance; at each of these loci ``n_quant_secondary`` further causal SNVs (MAF >= 0.05, within
  20 kb, r^2 with the first between 0.1 and 0.6) explaining ``quant_secondary_variance`` each,
  with the sign that strengthens the locus's marginal signal (allelic heterogeneity, as at many
  height and lipid loci: clumping keeps one variant per locus, an LD-aware score can use them all);
  plus sex and age effects and population mean shifts (stratification: a GWAS without PCs is
  inflated);
* ``disease``: ``n_disease_causal`` common SNVs (MAF >= 0.35) in other genes with odds ratio
  ``disease_odds_ratio`` per allele (direction random), logistic model with prevalence
  ``disease_prevalence``, sex/age effects and population log-odds shifts.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import msprime
import numpy as np
import pandas as pd
import pysam

from cohortflow.demo._files import BgzfWriter, write_fasta, write_npz
from cohortflow.demo._traits import (
    ChromosomeVariants,
    Gene,
    choose_causal_variant,
    choose_secondary_variants,
    locus_slots,
    simulate_binary,
    simulate_quantitative,
)
from cohortflow.errors import ConfigError
from cohortflow.io.atomic import atomic_open, atomic_path, write_json_atomic

SIGNIFICANCE_THRESHOLD = 5e-8
LOCUS_WINDOW_BP = 250_000
HAPLOTYPES_FILE = "genotypes/true_haplotypes.npz"
# Reference-only sex chromosomes: the demo reads place X and Y depth by sex (alignment QC's sex check).
SEX_CHROMOSOME_LENGTHS = {"X": 400_000, "Y": 200_000}
_BASE_PROBABILITIES = np.array([0.295, 0.205, 0.205, 0.295])  # ~41% GC
_AGE_RANGE = (40, 70)


def _rng(seed: int, component: str) -> np.random.Generator:
    """Independent stream per component, so changing one part leaves the others' draws unchanged."""
    return np.random.default_rng([seed, zlib.crc32(component.encode())])


def population_names(n_populations: int) -> list[str]:
    return [f"POP{k + 1}" for k in range(n_populations)]


def sample_ids(n_individuals: int) -> list[str]:
    width = max(5, len(str(n_individuals)))
    return [f"S{i + 1:0{width}d}" for i in range(n_individuals)]


def simulate_genes(
    chroms: list[str], chrom_length: int, *, spacing: tuple[int, int], length: tuple[int, int], rng: np.random.Generator
) -> list[Gene]:
    """Non-overlapping genes along each chromosome, named CFG1001, CFG1002, ... genome-wide."""
    genes: list[Gene] = []
    for chrom in chroms:
        start = int(rng.integers(5_000, 20_000))
        while True:
            gap = int(rng.integers(spacing[0], spacing[1] + 1))
            gene_len = int(rng.integers(length[0], min(length[1], gap - 2_000) + 1))
            end = start + gene_len - 1
            if end > chrom_length - 5_000:
                break
            strand = "+" if rng.random() < 0.5 else "-"
            genes.append(Gene(chrom, start, end, strand, f"CFG{1001 + len(genes)}"))
            start += gap
    return genes


def _simulate_chromosome(
    chrom: str,
    reference: np.ndarray,
    *,
    n_individuals: int,
    n_populations: int,
    effective_size: int,
    split_generations: int,
    recombination_rate: float,
    mutation_rate: float,
    block_length: int,
    seed: int,
) -> ChromosomeVariants:
    rng = _rng(seed, f"ancestry:{chrom}")
    names = population_names(n_populations)
    demography = msprime.Demography()
    for name in names:
        demography.add_population(name=name, initial_size=effective_size)
    demography.add_population(name="ANC", initial_size=effective_size)
    demography.add_population_split(time=split_generations, derived=names, ancestral="ANC")
    sizes = [(n_individuals - k + n_populations - 1) // n_populations for k in range(n_populations)]
    # msprime lists individuals population by population; IID i is the (i // K)-th of population i mod K.
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    iid = np.arange(n_individuals)
    ts_individual = offsets[iid % n_populations] + iid // n_populations
    nodes = np.stack([2 * ts_individual, 2 * ts_individual + 1], axis=1).ravel().astype(np.int32)
    # Recombination hotspots: the chromosome is a run of independently simulated blocks (free
    # recombination between them, ``recombination_rate`` inside), ``block_length`` long on average.
    # Without them, LD from a few large-effect loci spreads over much of this tiny genome and
    # inflates lambda GC even after PC adjustment; msprime's cost also stays linear in length.
    gaps = rng.uniform(0.5, 1.5, size=len(reference) // max(block_length // 2, 1) + 2) * block_length
    edges = np.concatenate([[0], np.cumsum(gaps.astype(np.int64))])
    edges = np.append(edges[edges < len(reference)], len(reference))
    block_haplotypes, block_positions = [], []
    for block_start, block_end in zip(edges[:-1], edges[1:]):
        block_start, block_len = int(block_start), int(block_end - block_start)
        ts = msprime.sim_ancestry(
            samples={name: size for name, size in zip(names, sizes) if size > 0},
            demography=demography,
            sequence_length=block_len,
            recombination_rate=recombination_rate,
            ploidy=2,
            random_seed=int(rng.integers(1, 2**31 - 1)),
        )
        ts = msprime.sim_mutations(
            ts,
            rate=mutation_rate,
            model=msprime.BinaryMutationModel(),
            discrete_genome=True,
            random_seed=int(rng.integers(1, 2**31 - 1)),
        )
        hap = np.empty((ts.num_sites, 2 * n_individuals), dtype=np.uint8)
        pos = np.empty(ts.num_sites, dtype=np.int64)
        for j, variant in enumerate(ts.variants(samples=nodes, copy=False)):
            hap[j] = variant.genotypes
            pos[j] = block_start + int(variant.site.position) + 1
        block_haplotypes.append(hap)
        block_positions.append(pos)
    haplotypes = np.concatenate(block_haplotypes)
    positions = np.concatenate(block_positions)
    alt_count = haplotypes.sum(axis=1, dtype=np.int64)
    keep = (alt_count > 0) & (alt_count < haplotypes.shape[1])  # back mutations can fix or lose an allele
    haplotypes, positions = haplotypes[keep], positions[keep]
    ref = reference[positions - 1]
    alt = (ref + rng.integers(1, 4, size=len(ref))) % 4
    return ChromosomeVariants(chrom, positions, ref.astype(np.uint8), alt.astype(np.uint8), haplotypes)


def _vcf_header(chrom_lengths: dict[str, int], samples: list[str], reference_name: str) -> bytes:
    lines = ["##fileformat=VCFv4.2", "##source=cohortflow.demo.genome (msprime coalescent simulation)"]
    lines.append(f"##reference={reference_name}")
    lines += [f"##contig=<ID={c},length={n}>" for c, n in chrom_lengths.items()]
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]))
    return ("\n".join(lines) + "\n").encode()


def write_vcf(
    path: str | Path,
    variants: ChromosomeVariants,
    *,
    header: bytes,
    missing_rate: float,
    rng: np.random.Generator,
    block_size: int = 1024,
) -> int:
    """Write phased genotypes as a bgzipped VCF + tabix index; ``missing_rate`` of calls become ``./.``.

    Genotype text is built with vectorised byte arrays per block of variants (4 bytes per call).
    Returns the number of missing calls written.
    """
    path = Path(path)
    n_sites, n_haps = variants.haplotypes.shape
    n = n_haps // 2
    ids = variants.variant_ids()
    n_missing = 0
    with atomic_path(path) as tmp:
        with BgzfWriter(tmp) as out:
            out.write(header)
            for start in range(0, n_sites, block_size):
                stop = min(start + block_size, n_sites)
                hap = variants.haplotypes[start:stop]
                calls = np.empty((stop - start, n, 4), dtype=np.uint8)
                calls[:, :, 0] = hap[:, 0::2] + ord("0")
                calls[:, :, 1] = ord("|")
                calls[:, :, 2] = hap[:, 1::2] + ord("0")
                calls[:, :, 3] = ord("\t")
                calls[:, -1, 3] = ord("\n")
                missing = rng.random((stop - start, n)) < missing_rate
                n_missing += int(missing.sum())
                calls[missing, 0] = ord(".")
                calls[missing, 1] = ord("/")
                calls[missing, 2] = ord(".")
                rows = calls.reshape(stop - start, -1)
                chunk = []
                for j in range(start, stop):
                    ref, alt = "ACGT"[variants.ref[j]], "ACGT"[variants.alt[j]]
                    fixed = f"{variants.chrom}\t{variants.positions[j]}\t{ids[j]}\t{ref}\t{alt}\t.\t.\t.\tGT\t"
                    chunk.append(fixed.encode())
                    chunk.append(rows[j - start].tobytes())
                out.write(b"".join(chunk))
        pysam.tabix_index(str(tmp), preset="vcf", force=True, keep_original=True)
        os.replace(f"{tmp}.tbi", f"{path}.tbi")
    return n_missing


def _write_gtf(path: Path, genes: list[Gene]) -> None:
    with atomic_open(path) as fh:
        for g in genes:
            attributes = f'gene_id "{g.name}"; gene_name "{g.name}"; gene_biotype "protein_coding";'
            fh.write(f"{g.chrom}\tcohortflow\tgene\t{g.start}\t{g.end}\t.\t{g.strand}\t.\t{attributes}\n")


def _write_reference(path: Path, contigs: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        write_fasta(tmp, contigs)
        pysam.faidx(str(tmp))
        os.replace(f"{tmp}.fai", f"{path}.fai")


def _write_haplotypes(path: Path, chroms: list[ChromosomeVariants], samples: list[str]) -> None:
    arrays: dict[str, np.ndarray] = {"samples": np.array(samples), "chromosomes": np.array([c.chrom for c in chroms])}
    for c in chroms:
        arrays[f"positions_{c.chrom}"] = c.positions
        arrays[f"ref_{c.chrom}"] = c.ref
        arrays[f"alt_{c.chrom}"] = c.alt
        arrays[f"haplotypes_{c.chrom}"] = np.packbits(c.haplotypes, axis=1)
    with atomic_path(path) as tmp:
        write_npz(tmp, arrays)


def load_true_haplotypes(
    path: str | Path, chrom: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``genotypes/true_haplotypes.npz``: (samples, positions, ref codes, alt codes, haplotypes).

    ``haplotypes`` is (n_sites, 2 * n_samples) uint8 ALT indicators; columns 2i and 2i+1 belong to
    ``samples[i]``. Base codes index ``"ACGT"``.
    """
    with np.load(path, allow_pickle=False) as data:
        samples = [str(s) for s in data["samples"]]
        if f"positions_{chrom}" not in data:
            raise ConfigError(f"chromosome {chrom!r} not in the simulated haplotypes", path=path)
        hap = np.unpackbits(data[f"haplotypes_{chrom}"], axis=1, count=2 * len(samples))
        return samples, data[f"positions_{chrom}"], data[f"ref_{chrom}"], data[f"alt_{chrom}"], hap


def simulate_genotypes(
    out_dir: str | Path,
    *,
    n_individuals: int = 2000,
    n_populations: int = 3,
    n_chromosomes: int = 3,
    chrom_length: int = 4_000_000,
    gene_spacing: tuple[int, int] = (25_000, 40_000),
    gene_length: tuple[int, int] = (15_000, 30_000),
    missing_rate: float = 0.002,
    effective_size: int = 10_000,
    split_generations: int = 1_000,
    recombination_rate: float = 1e-8,
    mutation_rate: float = 0.6e-8,
    block_length: int = 25_000,
    n_quant_causal: int = 6,
    quant_h2: float = 0.2,
    n_quant_secondary: int = 2,
    quant_secondary_variance: float = 0.008,
    quant_population_shift: float = 0.2,
    n_disease_causal: int = 4,
    disease_odds_ratio: float = 2.8,
    disease_prevalence: float = 0.40,
    disease_population_shift: float = 0.5,
    phenotype_missing_rate: float = 0.005,
    seed: int = 42,
) -> dict[str, Path | list[Path]]:
    """Simulate the demo cohort's genomes and traits into ``out_dir``.

    Writes (all deterministic in ``seed``):

    * ``reference.fa`` + ``reference.fa.fai``: random sequence, contigs ``1`` .. ``n_chromosomes``, then
      ``X`` and ``Y`` (:data:`SEX_CHROMOSOME_LENGTHS`; sequence only, no variants);
    * ``genes.gtf``: GTF ``gene`` records (``gene_id`` = ``gene_name`` = ``CFG1001``...);
    * ``genotypes/chr{c}.vcf.gz`` + ``.tbi``: VCFv4.2, biallelic SNVs, phased ``GT``, IDs
      ``chrom:pos:ref:alt``, REF = reference base, ``./.`` at ``missing_rate``;
    * ``genotypes/true_haplotypes.npz``: the true phased alleles without missing calls (input of
      :func:`cohortflow.demo.reads.simulate_reads`; read with :func:`load_true_haplotypes`);
    * ``samples.tsv``: ``IID population sex`` (sex 1 = male, 2 = female);
    * ``phenotypes.tsv``: ``#FID IID quant_trait disease`` (disease 1 = control, 2 = case, NA missing);
    * ``covariates.tsv``: ``#FID IID sex age``;
    * ``truth.json``: the planted answers (see :func:`_truth` for the keys).

    Returns the written paths by name.
    """
    if n_individuals < 10 * n_populations:
        raise ConfigError(f"n_individuals={n_individuals} is too small for {n_populations} populations")
    if n_chromosomes < 1 or chrom_length < 200_000:
        raise ConfigError("need at least one chromosome of at least 200 kb")
    out = Path(out_dir)
    (out / "genotypes").mkdir(parents=True, exist_ok=True)
    chroms = [str(c + 1) for c in range(n_chromosomes)]
    samples = sample_ids(n_individuals)
    pop_names = population_names(n_populations)

    ref_rng = _rng(seed, "reference")
    reference = {c: ref_rng.choice(4, size=chrom_length, p=_BASE_PROBABILITIES).astype(np.uint8) for c in chroms}
    # Sex chromosomes (sequence only: the VCFs stay autosomal), each from its own stream so the
    # autosomes' sequence is what it was without them.
    sex_chromosomes = {name: _rng(seed, f"reference:{name}").choice(4, size=length, p=_BASE_PROBABILITIES)
                       .astype(np.uint8) for name, length in SEX_CHROMOSOME_LENGTHS.items()}
    _write_reference(out / "reference.fa", {**reference, **sex_chromosomes})
    genes = simulate_genes(chroms, chrom_length, spacing=gene_spacing, length=gene_length, rng=_rng(seed, "genes"))
    _write_gtf(out / "genes.gtf", genes)

    header = _vcf_header({c: chrom_length for c in chroms}, samples, "reference.fa")
    variants: list[ChromosomeVariants] = []
    vcf_paths: list[Path] = []
    n_missing_calls = 0
    for c in chroms:
        chrom_variants = _simulate_chromosome(
            c,
            reference[c],
            n_individuals=n_individuals,
            n_populations=n_populations,
            effective_size=effective_size,
            split_generations=split_generations,
            recombination_rate=recombination_rate,
            mutation_rate=mutation_rate,
            block_length=block_length,
            seed=seed,
        )
        vcf = out / "genotypes" / f"chr{c}.vcf.gz"
        n_missing_calls += write_vcf(
            vcf, chrom_variants, header=header, missing_rate=missing_rate, rng=_rng(seed, f"missing:{c}")
        )
        variants.append(chrom_variants)
        vcf_paths.append(vcf)
    _write_haplotypes(out / HAPLOTYPES_FILE, variants, samples)

    population = np.arange(n_individuals) % n_populations
    cov_rng = _rng(seed, "covariates")
    sex = np.where(cov_rng.random(n_individuals) < 0.5, 1, 2)
    age = cov_rng.integers(_AGE_RANGE[0], _AGE_RANGE[1] + 1, size=n_individuals)
    age_centre = float(np.mean(_AGE_RANGE))

    # Causal loci: quantitative first (even slots), then disease; each in its own gene.
    by_chrom = {v.chrom: v for v in variants}
    genes_by_chrom = {c: [g for g in genes if g.chrom == c] for c in chroms}
    slots, n_slots = locus_slots(chroms, n_quant_causal, n_disease_causal)
    pick_rng = _rng(seed, "causal")
    used_genes: set[str] = set()
    causal: list[tuple[str, int, Gene]] = []
    for k, (c, slot) in enumerate(slots):
        is_quant = k < n_quant_causal
        index, gene = choose_causal_variant(
            by_chrom[c],
            genes_by_chrom[c],
            used_genes,
            slot=slot,
            n_slots=n_slots,
            chrom_length=chrom_length,
            population=population,
            n_populations=n_populations,
            min_maf=0.15 if is_quant else 0.35,
            max_population_diff=0.05,
            rng=pick_rng,
        )
        used_genes.add(gene.name)
        causal.append((c, index, gene))
    dosages = np.stack([by_chrom[c].dosage(i) for c, i, _ in causal], axis=1)
    # further causal variants at each quantitative locus, in partial LD with its first variant
    secondary_rng = _rng(seed, "secondary")
    secondary: list[tuple[str, int, int, float]] = []  # chromosome, index, locus number, r with the first
    taken = {(c, i) for c, i, _ in causal}
    for locus, (c, index, _) in enumerate(causal[:n_quant_causal]):
        for j, r in choose_secondary_variants(by_chrom[c], index, n=n_quant_secondary, window_bp=20_000,
                                              min_maf=0.05, r2_range=(0.1, 0.6),
                                              exclude={i for cc, i in taken if cc == c}, rng=secondary_rng):
            secondary.append((c, j, locus, r))
            taken.add((c, j))
    secondary_dosages = np.stack([by_chrom[c].dosage(j) for c, j, _, _ in secondary], axis=1) if secondary \
        else np.zeros((n_individuals, 0))

    centred = np.arange(n_populations) - (n_populations - 1) / 2
    quant_shift = quant_population_shift * centred
    disease_shift = disease_population_shift * centred
    trait_rng = _rng(seed, "traits")
    quant_effects = {"sex_male": 0.8, "age_per_year": 0.03, "age_centre": age_centre}
    primary_signs = trait_rng.choice(np.array([-1.0, 1.0]), size=n_quant_causal)
    # a further variant's effect has the sign that adds to its locus's first variant through LD
    secondary_signs = np.array([primary_signs[locus] * np.sign(r) for _, _, locus, r in secondary])
    quant, all_betas, noise_sd = simulate_quantitative(
        np.column_stack([dosages[:, :n_quant_causal], secondary_dosages]),
        variance_explained=np.concatenate([np.full(n_quant_causal, quant_h2 / max(n_quant_causal, 1)),
                                           np.full(len(secondary), quant_secondary_variance)]),
        signs=np.concatenate([primary_signs, secondary_signs]),
        sex=sex,
        age=age,
        population=population,
        population_shift=quant_shift,
        sex_effect=quant_effects["sex_male"],
        age_effect=quant_effects["age_per_year"],
        age_centre=age_centre,
        rng=trait_rng,
    )
    betas, secondary_betas = all_betas[:n_quant_causal], all_betas[n_quant_causal:]
    quant_genetic = np.column_stack([dosages[:, :n_quant_causal], secondary_dosages]) @ all_betas
    disease_effects = {"sex_male_log_or": 0.3, "age_log_or_per_year": 0.03, "age_centre": age_centre}
    is_case, log_ors, intercept = simulate_binary(
        dosages[:, n_quant_causal:],
        log_odds_ratio=math.log(disease_odds_ratio),
        prevalence=disease_prevalence,
        sex=sex,
        age=age,
        population=population,
        population_shift=disease_shift,
        sex_log_or=disease_effects["sex_male_log_or"],
        age_log_or=disease_effects["age_log_or_per_year"],
        age_centre=age_centre,
        rng=trait_rng,
    )
    quant_missing = trait_rng.random(n_individuals) < phenotype_missing_rate
    disease_missing = trait_rng.random(n_individuals) < phenotype_missing_rate

    samples_table = pd.DataFrame({"IID": samples, "population": np.array(pop_names)[population], "sex": sex})
    _write_table(out / "samples.tsv", samples_table)
    phenotypes = pd.DataFrame(
        {
            "#FID": samples,
            "IID": samples,
            "quant_trait": np.where(quant_missing, "NA", np.char.mod("%.4f", quant)),
            "disease": np.where(disease_missing, "NA", np.where(is_case, "2", "1")),
        }
    )
    _write_table(out / "phenotypes.tsv", phenotypes)
    _write_table(out / "covariates.tsv", pd.DataFrame({"#FID": samples, "IID": samples, "sex": sex, "age": age}))

    def causal_records(rows, effects, kind):
        records = []
        for (c, index, gene), effect in zip(rows, effects):
            v = by_chrom[c]
            dosage = v.dosage(index)
            eaf = float(dosage.mean() / 2)
            record = {
                "variant_id": v.variant_ids(index)[0],
                "chromosome": c,
                "position": int(v.positions[index]),
                "gene": gene.name,
                "effect_allele": "ACGT"[v.alt[index]],
                "other_allele": "ACGT"[v.ref[index]],
                "effect_allele_frequency": round(eaf, 4),
                "maf": round(min(eaf, 1 - eaf), 4),
                "population_effect_allele_frequency": {
                    pop_names[k]: round(float(dosage[population == k].mean() / 2), 4) for k in range(n_populations)
                },
            }
            if kind == "quantitative":
                record["beta"] = round(float(effect), 6)
                record["variance_explained"] = round(float(effect**2 * 2 * eaf * (1 - eaf)), 6)
            else:
                record["log_odds_ratio"] = round(float(effect), 6)
                record["odds_ratio"] = round(float(math.exp(effect)), 6)
            records.append(record)
        return records

    quant_causal = causal_records(causal[:n_quant_causal], betas, "quantitative")
    quant_secondary = causal_records([(c, j, causal[locus][2]) for c, j, locus, _ in secondary], secondary_betas,
                                     "quantitative")
    for record, (c, j, locus, r) in zip(quant_secondary, secondary):
        record["locus_variant_id"] = quant_causal[locus]["variant_id"]
        record["r2_with_locus_variant"] = round(r * r, 4)
    disease_causal = causal_records(causal[n_quant_causal:], log_ors, "binary")
    observed_quant = quant[~quant_missing]
    truth = {
        "generator": "cohortflow.demo.genome.simulate_genotypes",
        "seed": seed,
        "sizes": {
            "n_individuals": n_individuals,
            "n_chromosomes": n_chromosomes,
            "chrom_length": chrom_length,
            "n_genes": len(genes),
            "n_variants": {v.chrom: int(len(v.positions)) for v in variants},
            "n_variants_total": int(sum(len(v.positions) for v in variants)),
            "n_missing_calls": n_missing_calls,
        },
        "populations": {
            "names": pop_names,
            "sizes": {pop_names[k]: int((population == k).sum()) for k in range(n_populations)},
            "assignment": "individual i (0-based, IID order) belongs to population i mod n_populations",
            "demography": {
                "model": "populations split from one ancestral population (msprime)",
                "split_generations": split_generations,
                "effective_size": effective_size,
                "recombination_rate": recombination_rate,
                "mutation_rate": mutation_rate,
                "hotspot_block_length": block_length,
            },
        },
        "traits": {
            "quant_trait": {
                "type": "quantitative",
                "causal_variants": quant_causal,
                "causal_genes": [r["gene"] for r in quant_causal],
                "secondary_variants": quant_secondary,
                # realised: variance of the planted genetic values over the trait's variance
                "h2": round(float(np.var(quant_genetic) / np.var(quant)), 4),
                "model": (
                    "trait = sum(beta * (ALT dosage - 2 * eaf)) + covariate effects + population shift"
                    " + N(0, noise_sd^2)"
                ),
                "noise_sd": round(noise_sd, 6),
                "covariate_effects": quant_effects,
                "stratification": {
                    "population_mean_shift": {pop_names[k]: float(quant_shift[k]) for k in range(n_populations)}
                },
                "n_missing": int(quant_missing.sum()),
                "observed_mean": round(float(observed_quant.mean()), 4),
                "observed_sd": round(float(observed_quant.std()), 4),
            },
            "disease": {
                "type": "binary",
                "coding": {"control": 1, "case": 2, "missing": "NA"},
                "causal_variants": disease_causal,
                "causal_genes": [r["gene"] for r in disease_causal],
                "model": (
                    "logit P(case) = intercept + sum(log_or * (ALT dosage - 2 * eaf)) + covariate effects"
                    " + population shift"
                ),
                "intercept": round(intercept, 6),
                "target_prevalence": disease_prevalence,
                "observed_prevalence": round(float(is_case[~disease_missing].mean()), 4),
                "covariate_effects": disease_effects,
                "stratification": {
                    "population_log_odds_shift": {pop_names[k]: float(disease_shift[k]) for k in range(n_populations)},
                    "population_prevalence": {
                        pop_names[k]: round(float(is_case[(population == k) & ~disease_missing].mean()), 4)
                        for k in range(n_populations)
                    },
                },
                "n_missing": int(disease_missing.sum()),
            },
        },
        "significance_threshold": SIGNIFICANCE_THRESHOLD,
        "locus_window_bp": LOCUS_WINDOW_BP,
        "files": {
            "reference": "reference.fa",
            "genes": "genes.gtf",
            "vcfs": [str(p.relative_to(out)) for p in vcf_paths],
            "true_haplotypes": HAPLOTYPES_FILE,
            "samples": "samples.tsv",
            "phenotypes": "phenotypes.tsv",
            "covariates": "covariates.tsv",
        },
    }
    write_json_atomic(out / "truth.json", truth)
    return {
        "reference": out / "reference.fa",
        "genes": out / "genes.gtf",
        "vcfs": vcf_paths,
        "true_haplotypes": out / HAPLOTYPES_FILE,
        "samples": out / "samples.tsv",
        "phenotypes": out / "phenotypes.tsv",
        "covariates": out / "covariates.tsv",
        "truth": out / "truth.json",
    }


def _write_table(path: Path, table: pd.DataFrame) -> None:
    with atomic_open(path) as fh:
        table.to_csv(fh, sep="\t", index=False, lineterminator="\n")
