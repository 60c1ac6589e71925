"""Simulated single-cell and spatial expression for the demo cohort, with planted answers.

The simulation is tied to the demo genome: gene names come from its GTF, the causal genes of each
simulated trait (from the genome's ``truth.json``) become markers of one planted "trait cell type",
donors are the first cohort samples of the VCFs, and one common variant drives a cell-type-specific
eQTL through the donors' ALT dosage.

Counts are gamma-Poisson (negative binomial): for cell ``c`` of type ``t`` from donor ``d``,
``count[c, g] ~ Poisson(L_c * p[t, g] * donor[d, g] * Gamma(1/phi_g, phi_g))`` where ``p[t]`` is
the type's expression profile (fractions summing to 1) and ``L_c`` the library size. Everything is
built with numpy in blocks of cells, never a Python loop over cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import atomic_path, write_json_atomic, write_table_atomic
from cohortflow.io.gtf import read_gtf_genes

__all__ = ["simulate_expression", "CELL_TYPES", "TRAIT_CELL_TYPES", "EQTL_CELL_TYPE"]

# (name, share of cells, library-size factor). PBMC-like, names used throughout the demo.
CELL_TYPES: tuple[tuple[str, float, float], ...] = (
    ("T_CD4", 0.28, 1.0),
    ("T_CD8", 0.18, 1.0),
    ("NK", 0.11, 1.0),
    ("B", 0.15, 1.0),
    ("Monocyte", 0.17, 1.3),
    ("DC", 0.06, 1.2),
    ("Platelet", 0.05, 0.5),
)
# Groups of types that share a few extra markers (T cells share CD3-like genes, myeloid cells share some).
_SHARED_MODULES: dict[str, tuple[str, ...]] = {"T_shared": ("T_CD4", "T_CD8"), "myeloid_shared": ("Monocyte", "DC")}
TRAIT_CELL_TYPES = {"quant_trait": "B", "disease": "Monocyte"}
EQTL_CELL_TYPE = "T_CD4"
# Types in which the eQTL gene is expressed (at the same level); the eQTL acts in EQTL_CELL_TYPE only.
_EQTL_GENE_TYPES = ("T_CD4", "T_CD8", "NK", "B", "Monocyte")
EQTL_EFFECT_PER_ALT = 0.8  # mean x (1 + 0.8 x ALT dosage) in EQTL_CELL_TYPE
EQTL_MIN_MAF = 0.25
EQTL_WINDOW_BP = 2000

MITO_GENES = ("MT-ND1", "MT-ND2", "MT-CO1", "MT-CO2", "MT-ATP8", "MT-ATP6", "MT-CO3", "MT-ND3", "MT-ND4L",
              "MT-ND4", "MT-ND5", "MT-ND6", "MT-CYB")
_LOW_QUALITY_FRACTION = 0.02
_DOUBLET_FRACTION = 0.04
_MEDIAN_LIBRARY = 2500.0

# Spatial regions, in order of precedence where they overlap: (name, description).
_REGIONS = (
    ("follicle", "disc centred at (0.30, 0.62) of the slide, radius 0.17: quant_trait cell type enriched"),
    ("medulla", "band x > 0.72: disease cell type and NK enriched"),
    ("T_zone", "band 0.05 < y < 0.30: T cells and DC enriched"),
    ("cortex", "the rest: mixed composition"),
)
_REGION_ENRICHMENT = {
    "follicle": {TRAIT_CELL_TYPES["quant_trait"]: 10.0},
    "medulla": {TRAIT_CELL_TYPES["disease"]: 5.0, "NK": 2.0},
    "T_zone": {"T_CD4": 3.0, "T_CD8": 3.0, "DC": 3.0},
    "cortex": {},
}


def simulate_expression(
    out_dir: str | Path,
    *,
    genes_gtf: str | Path,
    truth_json: str | Path,
    vcf_paths: list[str | Path],
    n_cells: int = 6000,
    n_donors: int = 40,
    n_spots: int = 2500,
    seed: int = 7,
) -> dict:
    """Write the demo's single-cell and spatial data with their planted answers into ``out_dir``.

    Outputs (all deterministic from ``seed`` and the inputs):

    - ``singlecell.h5ad``: ``X`` = raw integer counts (CSR, float32 holding integers), cells x genes;
      ``var_names`` = every ``gene_name`` of the GTF (file order) then the 13 ``MT-`` genes,
      ``var['gene_id']``; ``obs_names`` = 10x-like barcodes, ``obs['donor']`` = cohort IIDs (the
      first ``n_donors`` samples of the first VCF). Includes ~2% low-quality cells (few UMIs, high
      % mito) and ~4% heterotypic doublets. No cell type in ``obs``.
    - ``singlecell_truth.tsv``: ``barcode true_cell_type artefact`` (artefact = ``none``,
      ``low_quality`` or ``doublet``; a doublet's ``true_cell_type`` is its first cell's type).
    - ``markers.tsv``: ``cell_type gene``, the annotation marker table (type-specific markers plus a
      few markers shared within T cells and within myeloid cells).
    - ``spatial.h5ad``: hexagonal grid of spots, raw counts, same genes, ``obsm['spatial']`` (x, y),
      ``obs['array_row']``, ``obs['array_col']``; each spot mixes ~1-15 cells whose composition
      depends on a planted region.
    - ``spatial_truth.tsv``: ``barcode region n_cells prop_<cell type>...``.
    - ``singlecell_truth.json`` (sorted keys): ``cell_types``, ``markers`` (type -> genes),
      ``causal_genes`` (trait -> genes made markers of the trait cell type), ``trait_cell_types``
      (trait -> type), ``eqtl`` (variant_id, chrom, pos, ref, alt, gene, cell_type,
      effect_per_alt, model, alt_frequency_donors, maf_donors, vcf, donor_alt_dosage), ``spatial`` (regions, quant_trait_region,
      trait_regions), ``trait_region`` (= the quant_trait region), ``donors``, ``files`` (names of
      the outputs above), ``cell_truth_file``, ``spot_truth_file``, ``n_cells``, ``n_spots``,
      ``n_genes``, ``seed``, ``artefacts``. ``eqtl.donor_alt_dosage`` holds each donor's dosage
      (individual-level: this file stays with the demo data).

    Returns the truth dictionary plus ``paths`` (output name -> path).
    """
    out_dir = Path(out_dir)
    if n_cells < 500 or n_donors < 4 or n_spots < 100:
        raise CohortflowError(f"n_cells={n_cells}, n_donors={n_donors}, n_spots={n_spots}: need at least 500, 4, 100")
    rng = np.random.default_rng(seed)
    genes = read_gtf_genes(genes_gtf)
    if genes.empty:
        raise InputFormatError("no gene records", path=genes_gtf)
    dup = genes["gene_name"][genes["gene_name"].duplicated()]
    if len(dup):
        raise InputFormatError(f"gene_name {dup.iloc[0]!r} appears more than once", path=genes_gtf)
    causal = _read_causal_genes(truth_json, set(genes["gene_name"]))
    donors, vcf_samples_path = _read_donors(vcf_paths, n_donors)

    gene_names = list(genes["gene_name"]) + [m for m in MITO_GENES if m not in set(genes["gene_name"])]
    gene_ids = list(genes["gene_id"]) + gene_names[len(genes):]
    gene_index = {g: i for i, g in enumerate(gene_names)}
    mito_idx = np.array([gene_index[m] for m in MITO_GENES])

    # eQTL first: its gene must carry a common variant among the donors.
    reserved = set(causal["quant_trait"]) | set(causal["disease"]) | set(MITO_GENES)
    candidates = [g for g in genes["gene_name"] if g not in reserved]
    order = rng.permutation(len(candidates))
    eqtl = _find_eqtl_variant(vcf_paths, donors, genes.set_index("gene_name"), [candidates[i] for i in order])
    reserved.add(eqtl["gene"])

    type_names = [t for t, _, _ in CELL_TYPES]
    markers = _choose_markers(rng, [g for g in genes["gene_name"] if g not in reserved], type_names)
    profiles, phi = _expression_profiles(rng, gene_names, gene_index, type_names, markers, causal, eqtl["gene"],
                                         mito_idx)

    cells = _simulate_cells(rng, profiles, phi, type_names, donors, eqtl, gene_index, mito_idx, n_cells)
    spots = _simulate_spots(rng, profiles, phi, type_names, n_spots)

    names = {
        "singlecell": "singlecell.h5ad",
        "singlecell_truth": "singlecell_truth.tsv",
        "markers": "markers.tsv",
        "spatial": "spatial.h5ad",
        "spatial_truth": "spatial_truth.tsv",
        "truth": "singlecell_truth.json",
    }
    paths = {k: out_dir / v for k, v in names.items()}
    var = pd.DataFrame({"gene_id": gene_ids}, index=pd.Index(gene_names, name=None))

    _write_h5ad(paths["singlecell"], cells["counts"],
                pd.DataFrame({"donor": pd.Categorical(cells["donor"], categories=donors)},
                             index=pd.Index(cells["barcode"])), var)
    write_table_atomic(paths["singlecell_truth"], pd.DataFrame(
        {"barcode": cells["barcode"], "true_cell_type": cells["cell_type"], "artefact": cells["artefact"]}))
    marker_rows = [(t, g) for t in type_names for g in markers["table"][t]]
    write_table_atomic(paths["markers"], pd.DataFrame(marker_rows, columns=["cell_type", "gene"]))

    spot_obs = pd.DataFrame({"array_row": spots["row"], "array_col": spots["col"]}, index=pd.Index(spots["barcode"]))
    _write_h5ad(paths["spatial"], spots["counts"], spot_obs, var, obsm={"spatial": spots["xy"]})
    spatial_truth = pd.DataFrame({"barcode": spots["barcode"], "region": spots["region"], "n_cells": spots["n_cells"]})
    for j, t in enumerate(type_names):
        spatial_truth[f"prop_{t}"] = np.round(spots["proportions"][:, j], 4)
    write_table_atomic(paths["spatial_truth"], spatial_truth)

    truth = {
        "cell_types": type_names,
        "markers": {t: markers["table"][t] for t in type_names},
        "causal_genes": {trait: list(causal[trait]) for trait in TRAIT_CELL_TYPES},
        "trait_cell_types": dict(TRAIT_CELL_TYPES),
        "eqtl": eqtl,
        "spatial": {
            "regions": {name: desc for name, desc in _REGIONS},
            "quant_trait_region": "follicle",
            "trait_regions": {"quant_trait": "follicle", "disease": "medulla"},
            "grid": "hexagonal, Visium-like offset rows, spot spacing 100 (obsm['spatial'] units)",
        },
        "artefacts": {"low_quality_fraction": _LOW_QUALITY_FRACTION, "doublet_fraction": _DOUBLET_FRACTION,
                      "n_low_quality": int((cells["artefact"] == "low_quality").sum()),
                      "n_doublets": int((cells["artefact"] == "doublet").sum())},
        "donors": donors,
        "donor_source": str(vcf_samples_path.name),
        "files": {k: v for k, v in names.items()},
        "cell_truth_file": names["singlecell_truth"],
        "spot_truth_file": names["spatial_truth"],
        "trait_region": "follicle",
        "n_cells": int(n_cells),
        "n_spots": int(len(spots["barcode"])),
        "n_genes": len(gene_names),
        "seed": int(seed),
    }
    write_json_atomic(paths["truth"], truth)
    return {**truth, "paths": {k: str(v) for k, v in paths.items()}}


# --------------------------------------------------------------------------------------------- inputs

def _read_causal_genes(truth_json: str | Path, known_genes: set[str]) -> dict[str, list[str]]:
    """Causal genes per trait from the genome truth: ``traits -> {name -> {causal_genes: [...]}}``.

    Also accepts the traits at the top level. Genes absent from the GTF are an error; a gene causal
    for both traits is kept for quant_trait only (it cannot mark two cell types).
    """
    path = Path(truth_json)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFormatError("file not found", path=path) from None
    except json.JSONDecodeError as err:
        raise InputFormatError(f"not valid JSON ({err.msg})", path=path, record=f"line {err.lineno}") from None
    traits = data.get("traits", data) if isinstance(data, dict) else None
    if not isinstance(traits, dict):
        raise InputFormatError("expected an object with key 'traits'", path=path)
    out: dict[str, list[str]] = {}
    for trait in TRAIT_CELL_TYPES:
        entry = traits.get(trait)
        if not isinstance(entry, dict):
            raise InputFormatError(f"trait {trait!r} missing under 'traits'", path=path)
        genes_ = entry.get("causal_genes", [])
        if not isinstance(genes_, list) or not all(isinstance(g, str) for g in genes_):
            raise InputFormatError(f"traits.{trait}.causal_genes is not a list of gene names", path=path)
        missing = [g for g in genes_ if g not in known_genes]
        if missing:
            raise InputFormatError(f"traits.{trait}.causal_genes: {missing[0]!r} is not a gene_name of the GTF",
                                   path=path)
        out[trait] = list(dict.fromkeys(genes_))
    out["disease"] = [g for g in out["disease"] if g not in set(out["quant_trait"])]
    return out


def _read_donors(vcf_paths, n_donors: int) -> tuple[list[str], Path]:
    from cyvcf2 import VCF

    if not vcf_paths:
        raise CohortflowError("no VCF given for the donors")
    first = Path(vcf_paths[0])
    if not first.exists():
        raise InputFormatError("file not found", path=first)
    vcf = VCF(str(first), lazy=True)
    samples = list(vcf.samples)
    vcf.close()
    if len(samples) < n_donors:
        raise InputFormatError(f"{len(samples)} samples, need {n_donors} donors", path=first)
    return samples[:n_donors], first


def _find_eqtl_variant(vcf_paths, donors: list[str], genes: pd.DataFrame, candidates: list[str]) -> dict:
    """First candidate gene (in the given order) with a biallelic SNP within +-2 kb that no donor
    misses and whose minor-allele frequency among the donors is >= 0.25; its first such SNP.

    Uses the tabix index when present, else streams the VCFs; both give the same choice.
    """
    from cyvcf2 import VCF

    # A contig maps to every file naming it: per-chromosome VCFs usually all carry the whole
    # header's contig list, so the first file naming a contig need not hold its records.
    by_chrom: dict[str, list[Path]] = {}
    for p in vcf_paths:
        p = Path(p)
        if not p.exists():
            raise InputFormatError("file not found", path=p)
        vcf = VCF(str(p), samples=donors, lazy=True)
        for contig in vcf.seqnames:
            by_chrom.setdefault(str(contig), []).append(p)
        vcf.close()
    all_paths = list(dict.fromkeys(p for paths in by_chrom.values() for p in paths))

    def qualifies(v) -> np.ndarray | None:
        if len(v.ALT) != 1 or not v.is_snp:
            return None
        gt = v.gt_types  # 0 hom-ref, 1 het, 2 unknown, 3 hom-alt
        if (gt == 2).any():
            return None
        dosage = np.where(gt == 3, 2, gt).astype(np.int64)
        af = dosage.sum() / (2 * len(dosage))
        return dosage if min(af, 1 - af) >= EQTL_MIN_MAF else None

    def describe(gene: str, v, dosage: np.ndarray, path: Path) -> dict:
        af = dosage.sum() / (2 * len(dosage))
        vid = v.ID if v.ID not in (None, ".") else f"{v.CHROM}:{v.POS}:{v.REF}:{v.ALT[0]}"
        return {
            "variant_id": vid, "chrom": str(v.CHROM), "pos": int(v.POS), "ref": v.REF, "alt": v.ALT[0],
            "gene": gene, "cell_type": EQTL_CELL_TYPE, "effect_per_alt": EQTL_EFFECT_PER_ALT,
            "model": "mean expression in the cell type x (1 + effect_per_alt x donor ALT dosage); no effect elsewhere",
            "alt_frequency_donors": round(float(af), 4), "maf_donors": round(float(min(af, 1 - af)), 4),
            "donor_alt_dosage": {d: int(x) for d, x in zip(donors, dosage)}, "vcf": path.name,
        }

    windows = {}
    for g in candidates:
        row = genes.loc[g]
        if str(row["chrom"]) in by_chrom:
            lo, hi = max(1, int(row["start"]) - EQTL_WINDOW_BP), int(row["end"]) + EQTL_WINDOW_BP
            windows[g] = (str(row["chrom"]), lo, hi)
    indexed = all(Path(str(p) + ".tbi").exists() or Path(str(p) + ".csi").exists() for p in all_paths)
    if indexed:
        import pysam

        handles = {p: VCF(str(p), samples=donors) for p in all_paths}
        indexed_contigs = {}
        for p in all_paths:
            with pysam.TabixFile(str(p)) as tbx:
                indexed_contigs[p] = set(tbx.contigs)  # the contigs with records
        try:
            for g in candidates:
                if g not in windows:
                    continue
                chrom, lo, hi = windows[g]
                for p in by_chrom[chrom]:
                    if chrom not in indexed_contigs[p]:
                        continue
                    for v in handles[p](f"{chrom}:{lo}-{hi}"):
                        if v.POS < lo or v.POS > hi:
                            continue
                        dosage = qualifies(v)
                        if dosage is not None:
                            return describe(g, v, dosage, p)
        finally:
            for h in handles.values():
                h.close()
    else:
        # One pass: the first qualifying SNP of each candidate window, then the first candidate with one.
        found: dict[str, dict] = {}
        per_chrom: dict[str, list[tuple[int, int, str]]] = {}
        for g, (chrom, lo, hi) in windows.items():
            per_chrom.setdefault(chrom, []).append((lo, hi, g))
        for p in all_paths:
            vcf = VCF(str(p), samples=donors)
            for v in vcf:
                hits = [g for lo, hi, g in per_chrom.get(str(v.CHROM), ()) if lo <= v.POS <= hi and g not in found]
                if not hits:
                    continue
                dosage = qualifies(v)
                if dosage is not None:
                    for g in hits:
                        found[g] = describe(g, v, dosage, p)
            vcf.close()
        for g in candidates:
            if g in found:
                return found[g]
    raise CohortflowError(f"no biallelic SNP with MAF >= {EQTL_MIN_MAF} among the {len(donors)} donors and no "
                          f"missing call lies within {EQTL_WINDOW_BP} bp of a gene: cannot plant the eQTL")


# ------------------------------------------------------------------------------------------- profiles

def _choose_markers(rng, free_genes: list[str], type_names: list[str]) -> dict:
    """Type-specific markers (up to 12 per type) and shared-module markers (3 per module)."""
    n_types = len(type_names)
    n_specific = int(min(12, (len(free_genes) // 3 - 3 * len(_SHARED_MODULES)) // n_types))
    if n_specific < 3:
        raise CohortflowError(f"only {len(free_genes)} free genes in the GTF: too few for {n_types} cell types")
    picked = [free_genes[i] for i in rng.choice(len(free_genes), size=n_specific * n_types + 3 * len(_SHARED_MODULES),
                                                replace=False)]
    specific = {t: picked[i * n_specific:(i + 1) * n_specific] for i, t in enumerate(type_names)}
    rest = picked[n_types * n_specific:]
    shared = {m: rest[3 * i:3 * i + 3] for i, m in enumerate(_SHARED_MODULES)}
    table = {t: list(specific[t]) for t in type_names}
    for m, members in _SHARED_MODULES.items():
        for t in members:
            table[t] = table[t] + shared[m]
    return {"specific": specific, "shared": shared, "table": table}


def _expression_profiles(rng, gene_names, gene_index, type_names, markers, causal, eqtl_gene, mito_idx):
    """Per-type expression fractions (rows sum to 1) and per-gene NB overdispersion ``phi``."""
    n_types, n_genes = len(type_names), len(gene_names)
    tix = {t: i for i, t in enumerate(type_names)}
    special = np.zeros((n_types, n_genes))
    is_special = np.zeros(n_genes, dtype=bool)
    is_special[mito_idx] = True

    def plant(genes_, on_types, on_range, off_level):
        idx = np.array([gene_index[g] for g in genes_], dtype=np.int64)
        if idx.size == 0:
            return
        is_special[idx] = True
        special[:, idx] = off_level * rng.uniform(0.5, 1.5, size=(n_types, idx.size))
        level = rng.uniform(*on_range, size=idx.size)
        for t in on_types:
            special[tix[t], idx] = level * rng.uniform(0.85, 1.15, size=idx.size)

    for t in type_names:
        plant(markers["specific"][t], [t], (0.002, 0.008), 1e-4)
    for m, members in _SHARED_MODULES.items():
        plant(markers["shared"][m], members, (0.002, 0.006), 1e-4)
    for trait, t in TRAIT_CELL_TYPES.items():
        # Causal genes: clearly up in their cell type, low elsewhere.
        plant(causal[trait], [t], (0.001, 0.004), 5e-5)
    plant([eqtl_gene], _EQTL_GENE_TYPES, (0.003, 0.003), 2e-4)

    mito_share = rng.uniform(0.03, 0.05, size=n_types)
    mito_split = rng.dirichlet(np.full(mito_idx.size, 5.0))
    special[:, mito_idx] = mito_share[:, None] * mito_split[None, :]

    background = ~is_special
    base = rng.lognormal(0.0, 1.2, size=int(background.sum()))
    type_noise = rng.lognormal(0.0, 0.25, size=(n_types, base.size))
    bg = base[None, :] * type_noise
    remaining = 1.0 - special.sum(axis=1)
    if (remaining <= 0.2).any():
        raise CohortflowError("planted genes take more than 80% of expression: too many causal genes for the GTF")
    profiles = special.copy()
    profiles[:, background] = bg / bg.sum(axis=1, keepdims=True) * remaining[:, None]
    phi = rng.lognormal(np.log(0.2), 0.4, size=n_genes)
    return profiles, phi


# -------------------------------------------------------------------------------------------- counts

def _barcodes(rng, n: int) -> np.ndarray:
    """Unique 10x-like barcodes ``ACGT...(16)-1`` (duplicates redrawn, deterministic)."""
    letters = np.array(list("ACGT"))
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        draw = letters[rng.integers(0, 4, size=(n - len(out), 16))]
        for row in draw:
            code = "".join(row) + "-1"
            if code not in seen:
                seen.add(code)
                out.append(code)
    return np.array(out, dtype=object)


def _gamma_poisson(rng, lam: np.ndarray, phi: np.ndarray) -> sp.csr_matrix:
    shape = 1.0 / phi
    noisy = lam * rng.gamma(shape[None, :], 1.0 / shape[None, :], size=lam.shape)
    return sp.csr_matrix(rng.poisson(noisy).astype(np.float32))


def _simulate_cells(rng, profiles, phi, type_names, donors, eqtl, gene_index, mito_idx, n_cells):
    n_types, n_genes = profiles.shape
    n_donors = len(donors)
    share = np.array([s for _, s, _ in CELL_TYPES])
    lib_factor = np.array([f for _, _, f in CELL_TYPES])

    donor_of = rng.integers(0, n_donors, size=n_cells)
    donor_mix = rng.dirichlet(share * 60.0, size=n_donors)  # per-donor composition around the shares
    u = rng.random(n_cells)
    type_a = (u[:, None] > np.cumsum(donor_mix[donor_of], axis=1)).sum(axis=1).clip(0, n_types - 1)
    artefact = np.full(n_cells, "none", dtype=object)
    roles = rng.random(n_cells)
    artefact[roles < _LOW_QUALITY_FRACTION] = "low_quality"
    artefact[(roles >= _LOW_QUALITY_FRACTION) & (roles < _LOW_QUALITY_FRACTION + _DOUBLET_FRACTION)] = "doublet"
    is_doublet = artefact == "doublet"
    type_b = (type_a + rng.integers(1, n_types, size=n_cells)) % n_types  # always a different type

    lib_a = rng.lognormal(np.log(_MEDIAN_LIBRARY), 0.35, size=n_cells) * lib_factor[type_a]
    lib_b = np.where(is_doublet, rng.lognormal(np.log(_MEDIAN_LIBRARY), 0.35, size=n_cells) * lib_factor[type_b], 0.0)
    low_q = artefact == "low_quality"
    lib_a = np.where(low_q, rng.lognormal(np.log(500.0), 0.3, size=n_cells), lib_a)
    mito_frac = rng.uniform(0.3, 0.6, size=n_cells)

    donor_effect = rng.lognormal(0.0, 0.12, size=(n_donors, n_genes))
    dosage = np.array([eqtl["donor_alt_dosage"][d] for d in donors], dtype=float)
    eqtl_g = gene_index[eqtl["gene"]]
    eqtl_t = type_names.index(EQTL_CELL_TYPE)
    mito_mask = np.zeros(n_genes, dtype=bool)
    mito_mask[mito_idx] = True
    mito_profile = profiles[0] * mito_mask / profiles[0, mito_mask].sum()

    blocks = []
    for lo in range(0, n_cells, 1000):
        sl = slice(lo, min(n_cells, lo + 1000))
        pa, pb = profiles[type_a[sl]].copy(), profiles[type_b[sl]].copy()
        gain = 1.0 + EQTL_EFFECT_PER_ALT * dosage[donor_of[sl]]
        pa[:, eqtl_g] *= np.where(type_a[sl] == eqtl_t, gain, 1.0)
        pb[:, eqtl_g] *= np.where(type_b[sl] == eqtl_t, gain, 1.0)
        # Low-quality cells: cytoplasmic mRNA lost, so the mitochondrial share is high.
        lq = low_q[sl]
        nuclear = pa[lq] * (~mito_mask)
        share = mito_frac[sl][lq, None]
        pa[lq] = nuclear / nuclear.sum(axis=1, keepdims=True) * (1 - share) + share * mito_profile[None, :]
        lam = (pa * lib_a[sl, None] + pb * lib_b[sl, None]) * donor_effect[donor_of[sl]]
        blocks.append(_gamma_poisson(rng, lam, phi))
    counts = sp.vstack(blocks, format="csr")
    return {
        "counts": counts,
        "barcode": _barcodes(rng, n_cells),
        "donor": np.array(donors, dtype=object)[donor_of],
        "cell_type": np.array(type_names, dtype=object)[type_a],
        "artefact": artefact,
    }


def _hex_grid(n_spots: int):
    side = int(np.ceil(np.sqrt(n_spots)))
    rows, cols = np.divmod(np.arange(side * side), side)
    rows, cols = rows[:n_spots], cols[:n_spots]
    x = (cols + 0.5 * (rows % 2)) * 100.0
    y = rows * 100.0 * np.sqrt(3) / 2
    return rows, cols, np.column_stack([x, y]), side


def _region_of(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    region = np.full(u.shape, "cortex", dtype=object)
    region[(v > 0.05) & (v < 0.30)] = "T_zone"
    region[u > 0.72] = "medulla"
    region[(u - 0.30) ** 2 + (v - 0.62) ** 2 < 0.17 ** 2] = "follicle"
    return region


def _simulate_spots(rng, profiles, phi, type_names, n_spots):
    rows, cols, xy, side = _hex_grid(n_spots)
    span = np.ptp(xy, axis=0)
    u, v = (xy[:, 0] - xy[:, 0].min()) / span[0], (xy[:, 1] - xy[:, 1].min()) / span[1]
    region = _region_of(u, v)
    share = np.array([s for _, s, _ in CELL_TYPES])
    props = np.empty((n_spots, len(type_names)))
    for name, _ in _REGIONS:
        mean = share.copy()
        for t, k in _REGION_ENRICHMENT[name].items():
            mean[type_names.index(t)] *= k
        mean /= mean.sum()
        sel = region == name
        props[sel] = rng.dirichlet(mean * 30.0, size=int(sel.sum()))
    n_cells = 1 + rng.poisson(6.0, size=n_spots)
    lib = 1200.0 * n_cells * rng.lognormal(0.0, 0.25, size=n_spots)
    lam = (props @ profiles) * lib[:, None]
    counts = _gamma_poisson(rng, lam, phi)
    return {"counts": counts, "barcode": _barcodes(rng, n_spots), "row": rows, "col": cols, "xy": xy,
            "region": region, "n_cells": n_cells, "proportions": props}


def _write_h5ad(path: Path, counts: sp.csr_matrix, obs: pd.DataFrame, var: pd.DataFrame, *, obsm=None) -> None:
    import anndata as ad

    adata = ad.AnnData(X=counts, obs=obs, var=var)
    for k, val in (obsm or {}).items():
        adata.obsm[k] = val
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
