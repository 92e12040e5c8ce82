"""The index fixtures build on the store they are parametrised with (tests/conftest.py)."""

from __future__ import annotations

import pytest

from index.milvus_store import MilvusStore
from index.store import FaissStore

from conftest import make_assistant, open_store

pytestmark = pytest.mark.both_stores


def test_the_seed_index_lives_in_the_store_it_is_named_for(hashing_seed_index, store_kind,
                                                           hashing_embedder, tmp_path_factory):
    store = open_store(hashing_seed_index)
    assert isinstance(store, {"faiss": FaissStore, "milvus": MilvusStore}[store_kind])
    assert store.count_documents() == 5 and store.count_passages() > 100
    if store_kind == "milvus":  # a Milvus Lite file under the session's temporary folder
        assert store.uri == str(hashing_seed_index / "milvus.db")
        assert hashing_seed_index.is_relative_to(tmp_path_factory.getbasetemp())
        assert not (hashing_seed_index / "index").exists()
    else:
        assert not (hashing_seed_index / "milvus.db").exists()
    assistant = make_assistant(hashing_seed_index, hashing_embedder, lambda: None)
    assert type(assistant.retriever.store) is type(store)
    assert assistant.settings.vector_store == store_kind
