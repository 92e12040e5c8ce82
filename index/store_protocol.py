"""The store seam: documents, passages, dense and lexical search behind one small protocol.

Shaped like haystack's DocumentStore (count, write, delete, filter): the retriever, abstention
and the web layer use only these methods, so a server-side vector database (Milvus) can replace
the local FAISS + bm25s store without touching them. No FAISS or bm25s type crosses this line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .contracts import Document, Passage
from .errors import IndexMismatch

REBUILD_HINT = "rebuild it with: qa index --rebuild"


@dataclass(frozen=True)
class DocumentRecord:
    """What the store keeps about one indexed document (its text is kept apart)."""

    doc_id: str
    source: str  # absolute path of the file it was read from
    title: str
    kind: str
    content_hash: str  # sha256 of the text the offsets refer to
    n_passages: int
    meta: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StoreConfig:
    """How the collection was built, and what it was built from."""

    embedder: str
    dimension: int
    chunking: dict
    sources: tuple[str, ...] = ()  # files and folders the collection holds (absolute paths)
    excluded: tuple[str, ...] = ()  # files under a source folder that the user removed

    def with_sources(self, sources: Iterable[str], excluded: Iterable[str]) -> "StoreConfig":
        return StoreConfig(self.embedder, self.dimension, self.chunking,
                           tuple(dict.fromkeys(sources)), tuple(dict.fromkeys(excluded)))


@runtime_checkable
class DocumentStore(Protocol):
    """A read-only view of one version of the collection; it never changes under a reader."""

    config: StoreConfig
    generation: int  # grows by one with every committed change

    @property
    def fingerprint(self) -> str:
        """A short hash that changes whenever the collection does (recorded with eval runs)."""
        ...

    def is_latest(self) -> bool:
        """False once a newer version has been committed (cheap: readers poll it)."""
        ...

    def count_documents(self) -> int: ...

    def count_passages(self) -> int: ...

    def list_documents(self) -> list[DocumentRecord]: ...

    def get_document(self, doc_id: str) -> DocumentRecord | None: ...

    def document_text(self, doc_id: str) -> str:
        """The text a document's offsets refer to (a snapshot taken at indexing time)."""
        ...

    def passage(self, passage_id: int) -> Passage: ...

    def passages_of(self, doc_id: str) -> list[tuple[int, Passage]]:
        """(passage id, passage) of one document, in text order."""
        ...

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(passage id, inner product) of the `k` nearest passages to one normalised vector."""
        ...

    def search_lexical(self, query: str, k: int) -> list[tuple[int, float]]:
        """(passage id, BM25 score > 0) of the best lexical matches for a query text."""
        ...

    def lexical_terms(self, text: str) -> list[str]:
        """The terms lexical search matches `text` on (the store's own analysis)."""
        ...

    def known_terms(self, terms: Iterable[str]) -> set[str]:
        """Those of `terms` that occur in at least one passage."""
        ...


@runtime_checkable
class WritableStore(DocumentStore, Protocol):
    """A store one writer changes; readers see the changes only after `commit`."""

    def add_documents(self, documents: Sequence[Document], passages: Sequence[Passage],
                      vectors: np.ndarray) -> None:
        """Add documents with their passages and one vector per passage (rows in order)."""
        ...

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        """Remove documents with their passages and vectors; returns how many existed."""
        ...

    def update_record(self, record: DocumentRecord) -> None:
        """Replace what is known about a document (title, metadata) without re-embedding."""
        ...

    def set_config(self, config: StoreConfig) -> None: ...

    def commit(self) -> int:
        """Make every change visible to new readers at once; returns the new generation."""
        ...


def config_fingerprint(config: StoreConfig, records: Iterable[DocumentRecord]) -> str:
    """A short hash of what the collection holds and how it was built."""
    body = {"config": asdict(config),
            "documents": sorted((r.doc_id, r.content_hash) for r in records)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def checked_addition(documents: Sequence[Document], passages: Sequence[Passage],
                     vectors: np.ndarray, dimension: int, existing: Iterable[str]) -> np.ndarray:
    """The vectors as a float32 (passages × dimension) array, after checking that every passage
    belongs to a document being added and that none of those documents is already stored."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(passages), dimension)
    known = {d.doc_id for d in documents}
    if stray := {p.doc_id for p in passages} - known:
        raise ValueError(f"passages of documents not being added: {sorted(stray)[:3]}")
    if taken := known & set(existing):
        raise ValueError(f"documents already in the store: {sorted(taken)[:3]}")
    return vectors


def check_embedder(store: DocumentStore, name: str, dimension: int) -> None:
    """Refuse to search with a different embedding model than the index was built with."""
    built = store.config
    if built.embedder != name or built.dimension != dimension:
        raise IndexMismatch(
            f"The index was built with embedding model '{built.embedder}' ({built.dimension}-d) "
            f"but this run uses '{name}' ({dimension}-d); {REBUILD_HINT}.")


def all_passages(store: DocumentStore) -> list[tuple[int, Passage]]:
    """(passage id, passage) of every document, documents in store order, passages in text order."""
    return [item for record in store.list_documents() for item in store.passages_of(record.doc_id)]
