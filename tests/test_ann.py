"""The FAISS index choice: exact below the threshold, IVF or HNSW above it at recall@10 >= 0.99."""

from __future__ import annotations

import numpy as np
import pytest

from index.ann import AnnParams, auto_nlist, build_ann, set_search_params
from qa.settings import Settings


def clustered(n: int, dimension: int = 384, clusters: int = 1000, spread: float = 1.5,
              seed: int = 0) -> np.ndarray:
    """Unit vectors scattered around random topic centres (noise norm ~spread): hard for IVF
    because clusters outnumber its lists, the way passages outnumber topics."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dimension)).astype(np.float32) * (spread / np.sqrt(dimension))
    x = centres[rng.integers(0, clusters, n)] + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall_at_10(index, base: np.ndarray, queries: np.ndarray, ids: np.ndarray) -> float:
    exact = ids[np.argsort(-(queries @ base.T), axis=1)[:, :10]]
    _, got = index.search(queries, 10)
    return float(np.mean([len(set(a) & set(g)) / 10 for a, g in zip(exact, got)]))


@pytest.fixture(scope="module")
def data():
    x = clustered(50_200)
    ids = np.arange(50_000, dtype=np.int64) * 7 + 3  # not row numbers: ids must come back
    return x[:50_000], x[50_000:], ids


def test_below_the_threshold_the_index_is_exact(data):
    base, queries, ids = data
    index, choice = build_ann(base[:5000], ids[:5000], AnnParams(threshold=10_000))
    assert choice.kind == "flat" and choice.as_dict() == {"kind": "flat", "vectors": 5000}
    assert recall_at_10(index, base[:5000], queries, ids[:5000]) == 1.0


def test_ivf_above_the_threshold_keeps_recall_at_10(data):
    base, queries, ids = data
    index, choice = build_ann(base, ids, AnnParams(threshold=10_000, kind="ivf"))
    assert choice.kind == "ivf" and choice.nlist == auto_nlist(50_000) == 894
    assert choice.nprobe == Settings().ann_nprobe and index.ntotal == 50_000
    assert recall_at_10(index, base, queries, ids) >= 0.99
    # The same index probing one list loses neighbours: the measurement can fail.
    set_search_params(index, nprobe=1)
    assert recall_at_10(index, base, queries, ids) < 0.99


def test_hnsw_above_the_threshold_keeps_recall_at_10(data):
    base, queries, ids = data
    base, ids = base[:20_000], ids[:20_000]
    index, choice = build_ann(base, ids, AnnParams(threshold=10_000, kind="hnsw"))
    assert choice.as_dict() == {"kind": "hnsw", "vectors": 20_000, "hnsw_m": 32,
                                "ef_search": Settings().ann_ef_search, "ef_construction": 80}
    assert recall_at_10(index, base, queries, ids) >= 0.99
    set_search_params(index, ef_search=10)
    assert recall_at_10(index, base, queries, ids) < 0.99


def test_params_come_from_settings_and_survive_a_round_trip_to_disk(data, tmp_path):
    import faiss

    base, _, ids = data
    settings = Settings(ann_threshold=1000, ann_nlist=50, ann_nprobe=7)
    index, choice = build_ann(base[:5000], ids[:5000], AnnParams.from_settings(settings))
    assert (choice.kind, choice.nlist, choice.nprobe) == ("ivf", 50, 7)
    faiss.write_index(index, str(tmp_path / "dense.faiss"))
    loaded = faiss.read_index(str(tmp_path / "dense.faiss"))
    assert faiss.extract_index_ivf(loaded).nprobe == 7
    _, got = loaded.search(base[:3], 1)
    assert got[:, 0].tolist() == ids[:3].tolist()
