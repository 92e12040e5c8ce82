"""The collection's life: add, remove, sync, Unicode ids, leases on old builds, damaged files.

The stores are the real ones: the tests of add, remove, sync and ids run on the FAISS store
(FAISS with ids, bm25s, files on disk) and on Milvus Lite; those of build folders, leases and
damaged files are about the FAISS store's files and run on it alone. The hashing embedder is a
real, deterministic implementation of the embedder seam that keeps these tests fast.
"""

from __future__ import annotations

import gc
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from index.build import add_to_index, build_index, remove_from_index
from index.embedding import HashingEmbedder
from index.errors import IndexDamaged, IndexMismatch, UserError
from index.store import open_index, read_manifest
from index.store_protocol import DocumentStore, WritableStore, all_passages
from qa.compose import Components, store_backend
from qa.retrieve import make_retriever
from qa.settings import Settings
from web.documents import get_document

from conftest import SEEDS

pytestmark = pytest.mark.both_stores  # the tests that take `index` run on both stores

GRAIN = ("The ministry said the grain talks with Ankara failed in the spring of 2019 because "
         "the tariff on durum wheat was raised twice.")


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the texts it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed(self, texts):
        self.embedded += len(texts)
        return super().embed(texts)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    shutil.copytree(SEEDS, folder)
    return folder


@pytest.fixture
def extra(tmp_path: Path) -> Path:
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "grain.txt").write_text(f"Grain report\n\n{GRAIN}\n", encoding="utf-8")
    (folder / "ships.md").write_text("# Ship log\n\nThe frigate Admiral Grigorovich docked at "
                                     "Tartus in 2016 for repairs to its sonar.\n",
                                     encoding="utf-8")
    return folder


@dataclass
class Index:
    """One data folder on one store, changed by the indexer's functions as the CLI calls them
    (the store chosen through the composition root)."""

    data: Path
    store: str

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data, vector_store=self.store)

    def build(self, paths, embedder=None, **kwargs):
        return build_index(paths, self.data, embedder or HashingEmbedder(),
                           backend=store_backend(self.settings), **kwargs)

    def add(self, paths, embedder=None):
        return add_to_index(paths, self.data, embedder or HashingEmbedder(),
                            backend=store_backend(self.settings))

    def remove(self, targets):
        return remove_from_index(targets, self.data, backend=store_backend(self.settings))

    def open(self) -> DocumentStore:
        return Components(self.settings).open_store()

    def search_ids(self, question: str, k: int = 3) -> list[str]:
        retriever = make_retriever(self.open(), HashingEmbedder(), self.settings)
        return [h.doc_id for h in retriever.search(question, k)]


@pytest.fixture
def index(tmp_path: Path, store_kind: str) -> Index:
    return Index(tmp_path / "data", store_kind)


def test_the_store_implements_the_protocol(corpus: Path, index: Index):
    index.build([corpus])
    store = index.open()
    assert isinstance(store, DocumentStore) and isinstance(store, WritableStore)
    with pytest.raises(RuntimeError, match="opened for reading"):
        store.delete_documents(["001_cc0add0a45bd4355"])


def test_add_keeps_the_collection_and_embeds_only_the_new_file(corpus, extra, index):
    index.build([corpus])
    before = index.open()
    counting = CountingEmbedder()
    report = index.add([extra / "grain.txt"], counting)
    after = index.open()
    assert (report.embedded_documents, report.removed_documents, report.documents) == (1, 0, 6)
    assert counting.embedded == len(after.passages_of("grain")) == 1
    # Every earlier passage keeps its id.
    assert all(after.passage(pid) == passage for pid, passage in all_passages(before))
    assert after.generation == before.generation + 1
    assert index.search_ids("grain talks Ankara durum wheat tariff")[0] == "grain"
    assert after.config.sources == (str(corpus), str(extra / "grain.txt"))

    again = CountingEmbedder()
    report = index.add([extra / "grain.txt"], again)
    assert again.embedded == 0 and report.reused_documents == 1
    assert index.open().generation == after.generation  # nothing changed: no new version


def test_add_appends_new_vectors_and_leaves_the_others_untouched(corpus, extra, tmp_path):
    """FAISS only: reads the stored vectors (`FaissStore.vector`), which the seam does not."""
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    before = open_index(data)
    old = {pid: before.vector(pid) for pid, _ in all_passages(before)}
    add_to_index([extra / "grain.txt"], data, HashingEmbedder())
    after = open_index(data)
    # Every earlier passage keeps its id and its vector: nothing was re-stacked or re-embedded.
    assert all(np.array_equal(after.vector(pid), vector) for pid, vector in old.items())
    assert after.dense_size == len(old) + 1
    assert read_manifest(after.path)["sources"] == [str(corpus), str(extra / "grain.txt")]


def test_a_changed_file_is_re_embedded_on_add(corpus, extra, index):
    index.build([corpus])
    index.add([extra])
    (extra / "grain.txt").write_text("Grain report\n\nBarley prices in Odessa doubled in the "
                                     "autumn after the harbour strike ended.\n", encoding="utf-8")
    counting = CountingEmbedder()
    report = index.add([extra], counting)
    assert report.embedded == ("grain",) and report.reused_documents == 1
    store = index.open()
    assert "Odessa" in store.document_text("grain") and store.count_documents() == 7
    assert index.search_ids("barley Odessa harbour strike")[0] == "grain"
    assert "grain" not in index.search_ids("durum wheat tariff Ankara", k=1)


def test_index_paths_makes_the_index_hold_exactly_them_and_reports_removals(corpus, extra,
                                                                           index):
    index.build([corpus])
    report = index.build([extra / "grain.txt"])
    assert report.removed == ("000_039ca47dc707ee83", "001_cc0add0a45bd4355",
                              "002_f97a6adf81882357", "003_d8c3740e974eafd9",
                              "004_a0ef8930b097d28c")
    store = index.open()
    assert [r.doc_id for r in store.list_documents()] == ["grain"]
    assert store.config.sources == (str(extra / "grain.txt"),)


def test_remove_by_id_and_by_path_and_removed_files_stay_out(corpus, extra, index):
    index.build([corpus, extra])
    report = index.remove(["001_cc0add0a45bd4355", str(extra / "ships.md")])
    assert report.removed == ("001_cc0add0a45bd4355", "ships") and report.documents == 5
    store = index.open()
    assert store.get_document("ships") is None and store.passages_of("ships") == []
    assert "ships" not in index.search_ids("frigate Admiral Grigorovich Tartus sonar", k=5)
    # Both lived in source folders: a refresh of the recorded sources keeps them out ...
    refresh = index.build(None)
    assert refresh.documents == 5 and index.open().get_document("ships") is None
    # ... until they are added again by name.
    index.add([extra / "ships.md"])
    assert index.open().get_document("ships") is not None
    assert str(extra / "ships.md") not in index.open().config.excluded

    report = index.remove([str(extra)])
    assert set(report.removed) == {"grain", "ships"}
    assert str(extra) not in index.open().config.sources
    with pytest.raises(UserError, match="No document with id or path 'nope'.*qa list"):
        index.remove(["nope"])


def test_unicode_file_names_keep_their_letters_and_ids_never_collide(tmp_path, index):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    name = "my file ünï 日本.txt"
    (one / name).write_text(f"Unicode report\n\n{GRAIN}\n", encoding="utf-8")
    (two / name).write_text("Second report\n\nA different text about rice exports from "
                            "Vietnam to the Philippines.\n", encoding="utf-8")
    (one / "my file uni.txt").write_text("ASCII cousin\n\nOats and rye.\n", encoding="utf-8")
    index.build([one])
    index.add([two / name])  # same name, later, another folder
    store = index.open()
    ids = {Path(r.source).parent.name + "/" + Path(r.source).name: r.doc_id
           for r in store.list_documents()}
    assert ids[f"one/{name}"] == "my-file-ünï-日本"
    assert ids[f"two/{name}"].startswith("my-file-ünï-日本-") and ids["one/my file uni.txt"] \
        == "my-file-uni"
    assert len(set(ids.values())) == 3
    assert store.get_document("my-file-ünï-日本").title == "Unicode report"
    assert get_document(store, ids[f"two/{name}"]).title == "Second report"
    assert "rice exports" in store.document_text(ids[f"two/{name}"])
    # Re-adding keeps each file's id (no renaming when the index changes around it).
    index.add([one, two])
    again = {r.source: r.doc_id for r in index.open().list_documents()}
    assert sorted(again.values()) == sorted(ids.values())


def test_an_old_build_lives_while_a_reader_holds_it(corpus, extra, tmp_path):
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    (data / "builds" / "notes").mkdir()  # not ours: never deleted
    reader = open_index(data)
    first = reader.path
    for target in (extra / "grain.txt", extra / "ships.md"):
        add_to_index([target], data, HashingEmbedder())
    remove_from_index(["001_cc0add0a45bd4355"], data)
    # Three commits later the reader's build and texts are still there.
    assert first.is_dir() and not reader.is_latest()
    assert reader.document_text("001_cc0add0a45bd4355") == \
        (corpus / "001_cc0add0a45bd4355.txt").read_text(encoding="utf-8")
    hits = make_retriever(reader, HashingEmbedder(), Settings(data_dir=data)).search("Assad", 3)
    assert all(reader.document_text(h.doc_id)[h.start:h.end] == h.text for h in hits)
    builds = {p.name for p in (data / "builds").iterdir()}
    assert first.name in builds and len(builds) == 3  # the reader's, the current one, notes
    del reader, hits
    gc.collect()
    add_to_index([extra], data, HashingEmbedder())
    assert not first.exists() and (data / "builds" / "notes").is_dir()
    assert len(list((data / "builds").iterdir())) == 2


def test_truncated_stored_text_is_detected_on_open(corpus, tmp_path):
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    text = open_index(data).path / "texts" / "002_f97a6adf81882357.txt"
    text.write_bytes(text.read_bytes()[:1000])
    with pytest.raises(IndexDamaged) as error:
        open_index(data)
    message = str(error.value)
    assert "\n" not in message and "002_f97a6adf81882357.txt" in message
    assert "truncated" in message and "rebuild it with: qa index --rebuild" in message
    with pytest.raises(IndexDamaged):  # adding to a damaged index is refused, not papered over
        add_to_index([SEEDS / "001_cc0add0a45bd4355.txt"], data, HashingEmbedder())
    report = build_index([corpus], data, HashingEmbedder(), rebuild=True)
    assert report.embedded_documents == 5 and open_index(data).document_text(
        "002_f97a6adf81882357") == (corpus / "002_f97a6adf81882357.txt").read_text("utf-8")


def test_altered_text_of_the_same_size_is_caught_before_it_is_shown(corpus, tmp_path):
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    path = open_index(data).path / "texts" / "003_d8c3740e974eafd9.txt"
    body = path.read_bytes()
    path.write_bytes(body[:500] + (b"X" if body[500:501] != b"X" else b"Y") + body[501:])
    store = open_index(data)  # sizes agree; the content is hashed on first read
    assert store.document_text("001_cc0add0a45bd4355")
    with pytest.raises(IndexDamaged, match="003_d8c3740e974eafd9.txt.*checksum mismatch"):
        store.document_text("003_d8c3740e974eafd9")


def test_edited_manifest_is_detected(corpus, tmp_path):
    data = tmp_path / "data"
    build_index([corpus], data, HashingEmbedder())
    manifest = open_index(data).path / "manifest.json"
    manifest.write_text(manifest.read_text("utf-8").replace('"Jamie Stewart"', '"Someone"'),
                        encoding="utf-8")
    with pytest.raises(IndexDamaged, match="manifest.json is damaged.*qa index --rebuild"):
        open_index(data)


def test_adding_with_another_embedder_is_refused(corpus, extra, index):
    index.build([corpus], HashingEmbedder(256))
    with pytest.raises(IndexMismatch, match="embedding model.*qa index --rebuild"):
        index.add([extra], HashingEmbedder(128))
    assert index.open().count_documents() == 5


def test_an_index_of_the_previous_format_is_named_and_replaced(corpus, tmp_path):
    data = tmp_path / "data"
    old = data / "builds" / "20240101-120000-0123abcd"  # how the first format named builds
    old.mkdir(parents=True)
    (old / "manifest.json").write_text('{"format_version": 1, "documents": []}', "utf-8")
    (data / "index").symlink_to(Path("builds") / old.name)
    with pytest.raises(IndexDamaged, match="format version 1, this program reads 2.*"
                                           "qa index --rebuild"):
        open_index(data)
    report = build_index([corpus], data, HashingEmbedder())
    assert report.documents == 5 and not old.exists()
    assert open_index(data).count_documents() == 5
