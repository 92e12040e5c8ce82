"""The local store turns approximate past the ANN threshold, records it, and keeps working."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from index.ann import AnnParams
from index.contracts import Document, Passage
from index.store import empty_store, open_for_writing, open_index
from index.store_protocol import StoreConfig

DIMENSION = 16


def documents(count: int, per_doc: int, seed: int):
    """`count` documents of `per_doc` passages each, with clustered unit vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, DIMENSION))
    docs, passages, vectors = [], [], []
    for d in range(count):
        text = " ".join(f"word{d}x{i}." for i in range(per_doc))
        doc_id = f"s{seed}d{d}"
        docs.append(Document(doc_id, f"/tmp/{doc_id}.txt", doc_id, text,
                             hashlib.sha256(text.encode()).hexdigest(), "text"))
        start = 0
        for i in range(per_doc):
            piece = f"word{d}x{i}."
            passages.append(Passage(doc_id, start, start + len(piece), piece, ""))
            start += len(piece) + 1
            v = centres[(d + i) % 8] + 0.3 * rng.normal(size=DIMENSION)
            vectors.append(v / np.linalg.norm(v))
    return docs, passages, np.asarray(vectors, dtype=np.float32)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_store_switches_to_ann_past_the_threshold_and_back(tmp_path, kind):
    params = AnnParams(threshold=300, kind=kind, nprobe=8, ef_search=64)
    store = empty_store(tmp_path, StoreConfig("test-embedder", DIMENSION, {}))
    store.ann = params
    small_docs, small_passages, small_vectors = documents(10, 10, seed=1)
    store.add_documents(small_docs, small_passages, small_vectors)
    store.commit()
    assert open_index(tmp_path).dense_index["kind"] == "flat"  # 100 passages: exact search

    store = open_for_writing(tmp_path, store.config)
    store.ann = params
    big_docs, big_passages, big_vectors = documents(30, 10, seed=2)
    store.add_documents(big_docs, big_passages, big_vectors)
    store.commit()
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["dense_index"]["kind"] == kind and manifest["dense_index"]["vectors"] == 400
    reader = open_index(tmp_path)
    assert reader.dense_index["kind"] == kind
    all_passages = {pid: p for pid, p in reader.passages_of("s2d3")}
    pid, passage = next(iter(all_passages.items()))
    own = big_vectors[big_passages.index(passage)]
    assert reader.search_dense(own, 5)[0][0] == pid  # a passage's own vector finds it first

    # Deleting (HNSW rebuilds, IVF removes in place) and falling below the threshold: exact again.
    store = open_for_writing(tmp_path, store.config)
    store.ann = params
    store.delete_documents([d.doc_id for d in big_docs[:25]])
    store.commit()
    reader = open_index(tmp_path)
    assert reader.count_passages() == 150 and reader.dense_index["kind"] == "flat"
    kept = reader.passages_of("s2d27")
    pid, passage = kept[0]
    assert reader.search_dense(big_vectors[big_passages.index(passage)], 3)[0][0] == pid
    deleted = {d.doc_id for d in big_docs[:25]}
    found = [reader.passage(i).doc_id for i, _ in reader.search_dense(big_vectors[0], 150)]
    assert len(found) == 150 and not deleted & set(found)
