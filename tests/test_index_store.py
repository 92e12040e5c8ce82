"""The persisted index: incremental rebuilds, atomic switch, damage and model mismatch.

The tests that take `store_kind` run on the FAISS store and on Milvus Lite; the others are about
the FAISS store's files (manifest, checksums, passages.jsonl).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.embedding import HashingEmbedder
from index.errors import IndexDamaged, IndexMismatch, IndexMissing, UserError
from index.store import open_index, read_manifest
from index.store_protocol import all_passages, check_embedder
from qa.compose import Components
from qa.settings import Settings

from conftest import SEEDS, index_into, open_store

pytestmark = pytest.mark.both_stores  # the tests that take `store_kind`


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting what it is asked to embed."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.embedded = 0
        self.fail_after = fail_after

    def embed(self, texts):
        if self.fail_after is not None and self.embedded >= self.fail_after:
            raise KeyboardInterrupt("simulated kill in the middle of a build")
        self.embedded += len(texts)
        return super().embed(texts)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    return folder


def test_manifest_records_model_chunking_and_hashes(corpus: Path, tmp_path: Path):
    build_index([corpus], tmp_path / "data", HashingEmbedder())
    store = open_index(tmp_path / "data")
    manifest = read_manifest(store.path)
    assert manifest["format_version"] == 2 and manifest["generation"] == 1
    assert manifest["sources"] == [str(corpus)]
    assert manifest["embedder"] == {"name": "hashing-256", "dimension": 256}
    assert manifest["chunking"]["max_tokens"] == 160
    assert len(manifest["documents"]) == 5
    assert all(len(d["content_hash"]) == 64 for d in manifest["documents"])
    assert store.dense_size == store.count_passages() == len(all_passages(store)) > 100
    titles = {d.doc_id: d.title for d in store.list_documents()}
    assert titles["004_a0ef8930b097d28c"].startswith("Marriage of Convenience")
    assert store.get_document("003_d8c3740e974eafd9").meta["author"] == "Jamie Stewart"
    # Every stored file, texts included, has a size and checksum in the manifest.
    assert {f"texts/{d}.txt" for d in titles} <= set(manifest["files"])
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())


def test_rebuild_embeds_only_new_or_changed_and_drops_removed(corpus: Path, tmp_path: Path,
                                                             store_kind: str):
    data = tmp_path / "data"
    first = CountingEmbedder()
    index_into([corpus], data, first, store_kind)
    total = first.embedded
    assert total == open_store(data).count_passages()

    again = CountingEmbedder()
    report = index_into([corpus], data, again, store_kind)
    assert again.embedded == 0 and report.reused_documents == 5

    changed = corpus / "001_cc0add0a45bd4355.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nA new closing sentence about "
                       "Kurdish factions was added by the editor.\n", encoding="utf-8")
    (corpus / "003_d8c3740e974eafd9.txt").unlink()
    third = CountingEmbedder()
    report = index_into([corpus], data, third, store_kind)
    store = open_store(data)
    n_changed = len(store.passages_of("001_cc0add0a45bd4355"))
    assert third.embedded == n_changed
    assert (report.embedded_documents, report.reused_documents, report.removed_documents) == (1, 3, 1)
    assert store.get_document("003_d8c3740e974eafd9") is None
    assert all(p.doc_id != "003_d8c3740e974eafd9" for _, p in all_passages(store))
    # Reused vectors still belong to their passages (looked up by passage id).
    fresh = HashingEmbedder()
    from index.chunking import embedding_text
    pid, passage = store.passages_of("004_a0ef8930b097d28c")[3]
    [(found, score)] = store.search_dense(fresh.embed([embedding_text(passage)])[0], 1)
    assert found == pid and score == pytest.approx(1.0, abs=1e-4)
    if store_kind == "faiss":  # the stored vector itself (FaissStore.vector; not in the seam)
        assert np.allclose(store.vector(pid), fresh.embed([embedding_text(passage)])[0])


def test_killed_build_leaves_previous_index_usable(corpus: Path, tmp_path: Path,
                                                  store_kind: str):
    data = tmp_path / "data"
    index_into([corpus], data, HashingEmbedder(), store_kind)
    before = open_store(data)
    (corpus / "001_cc0add0a45bd4355.txt").write_text("Entirely new text about Tartus. " * 40,
                                                    encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        index_into([corpus], data, CountingEmbedder(fail_after=0), store_kind, rebuild=True)
    after = open_store(data)
    assert after.path == before.path and after.generation == before.generation
    assert after.is_latest()
    assert [p.text for _, p in all_passages(after)] == [p.text for _, p in all_passages(before)]


def test_damaged_index_file_gives_one_line_rebuild_hint(corpus: Path, tmp_path: Path):
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    target = open_index(data).path / "dense.faiss"
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(IndexDamaged) as error:
        open_index(data)
    message = str(error.value)
    assert "\n" not in message and "qa index --rebuild" in message and "damaged" in message


def test_garbage_manifest_is_reported_not_raised_raw(corpus: Path, tmp_path: Path):
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    (open_index(data).path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexDamaged, match="qa index --rebuild"):
        open_index(data)


def test_other_embedding_model_is_refused(corpus: Path, tmp_path: Path, store_kind: str):
    data = tmp_path / "data"
    index_into([corpus], data, HashingEmbedder(256), store_kind)
    with pytest.raises(IndexMismatch, match="hashing-256.*hashing-128.*qa index --rebuild"):
        check_embedder(open_store(data), "hashing-128", 128)


def test_missing_index_and_nothing_to_index(tmp_path: Path, store_kind: str):
    def settings(name: str) -> Settings:
        return Settings(data_dir=tmp_path / name, vector_store=store_kind)

    with pytest.raises(IndexMissing, match="qa index"):
        Components(settings("nowhere")).open_store()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="No documents to index"):
        index_into([empty], tmp_path / "data", HashingEmbedder(), store_kind)
    assert not (tmp_path / "data" / "index").exists()
    with pytest.raises(IndexMissing):  # nothing was committed on either store
        Components(settings("data")).open_store()


def test_passages_file_matches_document_texts(corpus: Path, tmp_path: Path):
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    store = open_index(data)
    for _, passage in all_passages(store):
        assert store.document_text(passage.doc_id)[passage.start:passage.end] == passage.text
        source = Path(store.get_document(passage.doc_id).source)
        assert source.read_text(encoding="utf-8")[passage.start:passage.end] == passage.text
    rows = [json.loads(line) for line in (store.path / "passages.jsonl").open(encoding="utf-8")]
    assert len(rows) == store.count_passages()
