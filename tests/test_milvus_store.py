"""The Milvus store behind the store seam, on a real Milvus Lite file (pymilvus + milvus-lite)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from index.chunking import ChunkingParams, chunk_text, embedding_text  # noqa: E402
from index.contracts import Document  # noqa: E402
from index.errors import IndexMismatch, IndexMissing  # noqa: E402
from index.milvus_store import (MilvusStore, connect, empty_milvus_store,  # noqa: E402
                                open_milvus_for_writing, open_milvus_index)
from index.store_protocol import (DocumentStore, StoreConfig, WritableStore,  # noqa: E402
                                  check_embedder)

PARAMS = ChunkingParams(60, 10)

IRAN = ("Iran and Russia cooperate in Syria. Tehran insists on keeping Bashar al-Assad in power. "
        "Moscow is more flexible about the future of the Syrian president. " * 3
        + "The zygomorphic orchid grew beside the Caspian pipeline. "
        + "Both capitals distrust Washington and its regional allies. ") * 2
TRADE = ("Trade between the two countries remains small. Oil and gas exports compete in the same "
         "markets. Sanctions limit banking ties, and the rouble and rial are weak currencies. ") * 4
# Longer than one VARCHAR (65,535 bytes) and than one stored piece; multi-byte characters too.
LONG = "".join(f"Paragraph {i}: the ünïcode archive of cables № {i} mentions Aleppo. "
               for i in range(1400)) + "日本語の文も入ります。" * 300


def _document(doc_id: str, text: str, title: str = "") -> Document:
    return Document(doc_id, f"/corpus/{doc_id}.txt", title or doc_id.title(), text,
                    hashlib.sha256(text.encode("utf-8")).hexdigest(), "text",
                    {"author": "test", "page_starts": list(range(5))})


def _write(store: MilvusStore, embedder, *documents: Document) -> dict[str, list]:
    """Add documents with real passages and hashing vectors; returns passages by doc id.

    Only the first 6,000 characters are cut into passages (sentence splitting the whole long
    text takes seconds); the passages are real spans of the stored text either way."""
    added = {}
    for document in documents:
        passages = chunk_text(document.doc_id, document.text[:6000], embedder.count_tokens,
                              PARAMS)
        vectors = embedder.embed([embedding_text(p) for p in passages])
        store.add_documents([document], passages, vectors)
        added[document.doc_id] = passages
    return added


@pytest.fixture(scope="module")
def config(hashing_embedder) -> StoreConfig:
    return StoreConfig(hashing_embedder.name, hashing_embedder.dimension, PARAMS.as_dict(),
                       ("/corpus",))


@pytest.fixture
def uri(tmp_path) -> str:
    return str(tmp_path / "qa.db")


def _fill(uri, config, embedder) -> dict[str, list]:
    store = open_milvus_for_writing(uri, "t", config)
    added = _write(store, embedder, _document("iran", IRAN), _document("trade", TRADE),
                   _document("long", LONG))
    store.commit()
    return added


@pytest.fixture(scope="module")
def shared(tmp_path_factory, config, hashing_embedder) -> tuple[str, dict[str, list]]:
    """One committed collection that read-only tests share."""
    uri = str(tmp_path_factory.mktemp("milvus") / "shared.db")
    return uri, _fill(uri, config, hashing_embedder)


@pytest.fixture
def filled(uri, config, hashing_embedder):
    """A committed collection with the Iran, trade and long documents (for tests that write)."""
    store = open_milvus_for_writing(uri, "t", config)
    added = _write(store, hashing_embedder, _document("iran", IRAN),
                   _document("trade", TRADE), _document("long", LONG))
    store.commit()
    return added


def test_implements_the_store_seam(shared, config):
    uri, filled = shared
    reader = open_milvus_index(uri, "t")
    writer = open_milvus_for_writing(uri, "t", config)
    assert isinstance(reader, DocumentStore)
    assert isinstance(writer, WritableStore)


def test_counts_lists_and_records(shared, config):
    uri, filled = shared
    store = open_milvus_index(uri, "t")
    assert store.count_documents() == 3
    assert store.count_passages() == sum(len(p) for p in filled.values())
    assert sorted(r.doc_id for r in store.list_documents()) == ["iran", "long", "trade"]
    record = store.get_document("iran")
    assert record.title == "Iran" and record.source == "/corpus/iran.txt"
    assert record.n_passages == len(filled["iran"]) and record.meta["author"] == "test"
    assert record.meta["page_starts"] == [0, 1, 2, 3, 4]
    assert store.get_document("absent") is None
    assert store.config.embedder == config.embedder and store.config.sources == ("/corpus",)
    assert store.generation == 1 and store.is_latest()


def test_document_text_round_trips_exactly(shared):
    uri, filled = shared
    store = open_milvus_index(uri, "t")
    assert len(LONG.encode("utf-8")) > 65_535
    assert store.document_text("long") == LONG
    assert store.document_text("iran") == IRAN
    with pytest.raises(KeyError):
        store.document_text("absent")


def test_passages_keep_their_offsets(shared):
    uri, filled = shared
    store = open_milvus_index(uri, "t")
    for doc_id, expected in filled.items():
        text = store.document_text(doc_id)
        items = store.passages_of(doc_id)
        assert [p for _, p in items] == expected
        for pid, passage in items:
            assert text[passage.start:passage.end] == passage.text
            assert store.passage(pid) == passage
    ids = [pid for doc in filled for pid, _ in store.passages_of(doc)]
    assert len(set(ids)) == len(ids) == store.count_passages()
    with pytest.raises(KeyError):
        store.passage(10**9)


def test_dense_search_finds_a_passage_by_its_own_vector(shared, hashing_embedder):
    uri, filled = shared
    store = open_milvus_index(uri, "t")
    items = [item for doc in filled for item in store.passages_of(doc)]
    texts = [embedding_text(p) for _, p in items]
    unique = [(pid, p) for (pid, p), t in zip(items, texts) if texts.count(t) == 1]
    assert len(unique) >= 6
    for pid, passage in unique[::max(1, len(unique) // 6)]:
        vector = hashing_embedder.embed([embedding_text(passage)])[0]
        hits = store.search_dense(vector, 5)
        assert hits[0][0] == pid
        assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
        assert all(a[1] >= b[1] for a, b in zip(hits, hits[1:]))


def test_lexical_search_finds_a_rare_word(shared):
    uri, filled = shared
    store = open_milvus_index(uri, "t")
    hits = store.search_lexical("Where did the zygomorphic orchid grow?", 5)
    assert hits and all(score > 0 for _, score in hits)
    assert "zygomorphic" in store.passage(hits[0][0]).text
    assert {store.passage(pid).doc_id for pid, _ in hits} == {"iran"}
    # Stemmed like the FAISS store's bm25s: "currency" matches "currencies".
    assert store.passage(store.search_lexical("currency", 3)[0][0]).doc_id == "trade"
    assert store.search_lexical("the of and", 5) == []
    assert store.lexical_terms("Orchids growing") == ["orchid", "grow"]
    assert store.known_terms(["orchid", "currenc", "unicorn"]) == {"orchid", "currenc"}


def test_delete_removes_a_document_from_both_searches(uri, config, filled, hashing_embedder):
    writer = open_milvus_for_writing(uri, "t", config)
    passage = filled["iran"][0]
    vector = hashing_embedder.embed([embedding_text(passage)])[0]
    assert writer.delete_documents(["iran", "absent"]) == 1
    assert writer.delete_documents(["iran"]) == 0
    assert writer.count_documents() == 2 and writer.passages_of("iran") == []
    before = open_milvus_index(uri, "t")  # readers see nothing until the commit
    assert before.get_document("iran") is not None
    assert writer.commit() == 2
    assert not before.is_latest()
    store = open_milvus_index(uri, "t")
    assert store.get_document("iran") is None and store.count_documents() == 2
    assert store.count_passages() == len(filled["trade"]) + len(filled["long"])
    assert store.search_lexical("zygomorphic orchid", 5) == []
    assert all(store.passage(pid).doc_id != "iran" for pid, _ in store.search_dense(vector, 50))
    assert store.known_terms(["zygomorph"]) == set()
    with pytest.raises(KeyError):
        store.document_text("iran")


def test_replace_update_and_config_survive_a_reopen(uri, config, filled, hashing_embedder):
    writer = open_milvus_for_writing(uri, "t", config)
    new_trade = TRADE + "A new caviar agreement was signed in Astrakhan. "
    writer.delete_documents(["trade"])
    _write(writer, hashing_embedder, _document("trade", new_trade))
    old = writer.get_document("iran")
    writer.update_record(type(old)(old.doc_id, "/moved/iran.txt", "Renamed", old.kind,
                                   old.content_hash, 0, {"author": "someone"}))
    writer.set_config(config.with_sources(["/corpus", "/moved"], ["/corpus/x.txt"]))
    with pytest.raises(ValueError):
        writer.add_documents([_document("iran", IRAN)], [], np.zeros((0, 256), np.float32))
    writer.commit()
    store = open_milvus_index(uri, "t")
    assert store.document_text("trade") == new_trade
    assert store.get_document("iran").title == "Renamed"
    assert store.get_document("iran").n_passages == len(filled["iran"])
    assert store.config.sources == ("/corpus", "/moved")
    assert store.config.excluded == ("/corpus/x.txt",)
    hits = store.search_lexical("caviar Astrakhan", 3)
    assert store.passage(hits[0][0]).doc_id == "trade"
    assert store.count_documents() == 3 and store.generation == 2
    assert sum(len(store.passages_of(d.doc_id)) for d in store.list_documents()) == \
        store.count_passages()


def test_two_clients_on_one_file_see_each_others_additions(uri, config, filled,
                                                           hashing_embedder):
    reader = open_milvus_index(uri, "t")  # one client ...
    writer = open_milvus_for_writing(uri, "t", config, client=connect(uri))  # ... and another
    _write(writer, hashing_embedder, _document("extra", "Quokkas live on Rottnest Island. " * 5))
    writer.commit()
    assert not reader.is_latest()
    assert reader.get_document("extra") is None  # the reader's version does not change
    # A hit of a document the old reader does not know is dropped, never half-described.
    assert all(reader.passage(pid).doc_id != "extra"
               for pid, _ in reader.search_lexical("quokkas Rottnest", 5))
    fresh = open_milvus_index(uri, "t", client=connect(uri))
    assert fresh.is_latest() and fresh.count_documents() == 4
    assert fresh.passage(fresh.search_lexical("quokkas Rottnest", 5)[0][0]).doc_id == "extra"


def test_empty_store_rebuilds_and_missing_index_is_reported(uri, config, filled,
                                                             hashing_embedder):
    with pytest.raises(IndexMissing):
        open_milvus_index(uri, "other")
    store = empty_milvus_store(uri, "t", config, generation=0)
    assert store.path is None
    _write(store, hashing_embedder, _document("trade", TRADE))
    assert store.commit() == 2  # generations keep growing across a rebuild
    reader = open_milvus_index(uri, "t")
    assert [r.doc_id for r in reader.list_documents()] == ["trade"]
    assert reader.search_lexical("zygomorphic", 5) == []
    assert reader.count_passages() == len(filled["trade"])
    with pytest.raises(IndexMismatch):
        check_embedder(reader, "another-model", 384)


def test_clients_of_a_lite_file_send_no_keepalive_pings(uri):
    """Milvus Lite's gRPC server answers keepalive pings on an idle connection with GOAWAY
    "too_many_pings", which failed a new client set up at that moment (seen in the suite after
    a Lite file sat idle); on loopback the pings are turned off."""
    options = connect(uri)._handler._grpc_options  # what pymilvus hands to the gRPC channel
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.keepalive_time_ms"] >= 10 * 60 * 1000
