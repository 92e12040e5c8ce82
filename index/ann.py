"""Choose and build the FAISS index for a set of vectors: exact below a size, IVF or HNSW above."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Measured with bench/bench_scale.py (bench/results/scale.md): on 2 cores exact search costs
# ~15 ms per query at 100k passages and ~150 ms at 1M, while IVF keeps recall@10 >= 0.99 well
# before that; below the threshold exact search is fast enough and needs no training.
DEFAULT_THRESHOLD = 100_000
# IVF: k-means needs ~40 training points per list to be stable; more only slows training.
MIN_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 64


@dataclass(frozen=True)
class AnnParams:
    """What the settings ask for; `nlist` 0 means 4·sqrt(n) lists."""

    threshold: int = DEFAULT_THRESHOLD
    kind: str = "ivf"  # 'ivf' or 'hnsw', used at or above the threshold
    nlist: int = 0
    nprobe: int = 32
    hnsw_m: int = 32
    ef_search: int = 128
    ef_construction: int = 80

    @classmethod
    def from_settings(cls, settings) -> "AnnParams":
        return cls(threshold=settings.ann_threshold, kind=settings.ann_kind,
                   nlist=settings.ann_nlist, nprobe=settings.ann_nprobe,
                   hnsw_m=settings.ann_hnsw_m, ef_search=settings.ann_ef_search)


@dataclass(frozen=True)
class AnnChoice:
    """The index actually built, for the manifest: its kind and the parameters it used."""

    kind: str  # 'flat', 'ivf' or 'hnsw'
    vectors: int
    nlist: int = 0
    nprobe: int = 0
    hnsw_m: int = 0
    ef_search: int = 0
    ef_construction: int = 0
    train_size: int = 0

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v or k in ("kind", "vectors")}


def auto_nlist(n: int) -> int:
    """About 4·sqrt(n) lists, but never so many that k-means has too few points per list."""
    return max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


def build_ann(vectors: np.ndarray, ids: np.ndarray | None = None,
              params: AnnParams = AnnParams()):
    """A FAISS inner-product index over `vectors` (L2-normalised float32) keyed by `ids`.

    Returns (index, AnnChoice). Below `params.threshold` vectors it is exact (flat); at or above
    it, IVF-Flat or HNSW as `params.kind` says. Searches return the given ids (default 0..n-1).
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dimension = vectors.shape
    ids = np.arange(n, dtype=np.int64) if ids is None else np.ascontiguousarray(ids, np.int64)
    if len(ids) != n:
        raise ValueError(f"{n} vectors but {len(ids)} ids")
    if n < params.threshold or n < 2 * MIN_POINTS_PER_LIST:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        choice = AnnChoice("flat", n)
    elif params.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.ef_construction
        inner.hnsw.efSearch = params.ef_search
        index = faiss.IndexIDMap2(inner)
        choice = AnnChoice("hnsw", n, hnsw_m=params.hnsw_m, ef_search=params.ef_search,
                           ef_construction=params.ef_construction)
    elif params.kind == "ivf":
        nlist = min(params.nlist, n // MIN_POINTS_PER_LIST) if params.nlist else auto_nlist(n)
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        # A fixed sample keeps builds repeatable and k-means time bounded at any n.
        sample = min(n, TRAIN_POINTS_PER_LIST * nlist)
        rows = np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
        index.train(vectors[rows])
        index.nprobe = min(params.nprobe, nlist)
        choice = AnnChoice("ivf", n, nlist=nlist, nprobe=index.nprobe, train_size=sample)
    else:
        raise ValueError(f"unknown ANN kind '{params.kind}': use 'ivf' or 'hnsw'")
    index.add_with_ids(vectors, ids)
    return index, choice


def set_search_params(index, nprobe: int = 0, ef_search: int = 0) -> None:
    """Apply search-time knobs to an index read from disk (no effect on a flat index)."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    inner = faiss.downcast_index(inner)
    if nprobe and isinstance(inner, faiss.IndexIVF):
        inner.nprobe = min(nprobe, inner.nlist)
    if ef_search and isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = ef_search
