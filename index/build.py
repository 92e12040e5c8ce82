"""Build or update the index from files: re-embed only new or changed documents."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .chunking import CHUNKER_VERSION, ChunkingParams, chunk_text, embedding_text
from .contracts import Document, Passage
from .embedding import Embedder
from .errors import IndexDamaged, IndexMismatch, IndexMissing, UserError
from .readers import Skipped, read_documents
from .store import IndexStore, open_index, write_index

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class BuildReport:
    """What a build did, for the CLI summary."""

    documents: int
    passages: int
    embedded_documents: int  # new or changed documents that were (re-)embedded
    reused_documents: int
    removed_documents: int
    skipped: tuple[Skipped, ...]
    seconds: float
    path: Path


def _apply_folder_metadata(documents: list[Document], paths: list[Path]) -> list[Document]:
    """Titles, authors and dates from a `metadata.json` beside the files, keyed by file name."""
    metadata: dict[str, dict] = {}
    for path in paths:
        folder = path if path.is_dir() else path.parent
        meta_file = folder / METADATA_FILE
        if meta_file.is_file():
            try:
                entries = json.loads(meta_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise UserError(f"{meta_file} is not valid JSON ({exc}); fix or remove it.") from exc
            for name, entry in entries.items():
                metadata[str((folder / name).resolve())] = entry
    out = []
    for document in documents:
        entry = metadata.get(str(Path(document.source).resolve()))
        if entry:
            meta = {**document.meta, **{k: v for k, v in entry.items() if k != "title"}}
            document = replace(document, title=entry.get("title") or document.title, meta=meta)
        out.append(document)
    return out


def _previous(data_dir: Path, embedder: Embedder, chunking: dict, rebuild: bool
              ) -> IndexStore | None:
    """The current index if it can be reused for unchanged documents."""
    if rebuild:
        return None
    try:
        store = open_index(data_dir)
        store.check_embedder(embedder.name, embedder.dimension)
    except (IndexMissing, IndexDamaged, IndexMismatch) as exc:
        if not isinstance(exc, IndexMissing):
            log.warning("%s -- building a fresh index instead.", exc)
        return None
    return store if store.manifest["chunking"] == chunking else None


def build_index(paths: list[Path], data_dir: Path, embedder: Embedder,
                params: ChunkingParams = ChunkingParams(), rebuild: bool = False,
                progress: Callable[[int], None] | None = None,
                on_document: Callable[[int], None] | None = None) -> BuildReport:
    """Make the index hold exactly the documents under `paths`, reusing unchanged ones."""
    started = time.perf_counter()
    documents, skipped = read_documents(paths)
    documents = _apply_folder_metadata(documents, paths)
    if not documents:
        problems = "; ".join(f"{s.path}: {s.reason}" for s in skipped) or "nothing given"
        raise UserError(f"No documents to index ({problems}); give files or folders with "
                        f".txt, .md, .html or .pdf documents.")
    if params.max_tokens > embedder.max_tokens:
        params = replace(params, max_tokens=embedder.max_tokens)
    chunking = {**params.as_dict(), "embedder_max_tokens": embedder.max_tokens,
                "chunker_version": CHUNKER_VERSION}
    previous = _previous(data_dir, embedder, chunking, rebuild)
    reused_rows: dict[str, list[int]] = {}
    if previous is not None:
        for row, passage in enumerate(previous.passages):
            reused_rows.setdefault(passage.doc_id, []).append(row)

    if on_document:
        on_document(len(documents))
    passages: list[Passage] = []
    vectors: list[np.ndarray] = []
    embedded = reused = 0
    for document in documents:
        old = previous.documents.get(document.doc_id) if previous else None
        if old is not None and old.content_hash == document.content_hash:
            rows = reused_rows.get(document.doc_id, [])
            passages.extend(previous.passages[r] for r in rows)
            vectors.append(previous.vectors[rows] if rows
                           else np.zeros((0, embedder.dimension), np.float32))
            reused += 1
        else:
            doc_passages = chunk_text(document.doc_id, document.text, embedder.count_tokens, params)
            passages.extend(doc_passages)
            vectors.append(embedder.embed([embedding_text(p) for p in doc_passages])
                           if doc_passages else np.zeros((0, embedder.dimension), np.float32))
            embedded += 1
        if progress:
            progress(1)
    removed = 0
    if previous is not None:
        current = {d.doc_id for d in documents}
        removed = sum(1 for doc_id in previous.documents if doc_id not in current)
    matrix = np.vstack(vectors) if vectors else np.zeros((0, embedder.dimension), np.float32)
    path = write_index(data_dir, documents, passages, matrix, embedder.name, embedder.dimension,
                       chunking)
    return BuildReport(len(documents), len(passages), embedded, reused, removed, tuple(skipped),
                       time.perf_counter() - started, path)
